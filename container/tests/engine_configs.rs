//! The config.json podman 4.3 and containerd 1.6 write by default (captured on
//! Debian 12 with a logging shim in front of runc, tests/fixtures/), run for real:
//! only the host paths are adapted (root, bind sources, the network namespace the
//! engine made, the cgroupsPath), the command is a shell script that reports what
//! the sandbox looks like from inside, and the cgroup is read from the host while
//! the workload waits. Each config must be accepted whole and each of its settings
//! must show: the seccomp profile's own answers, rlimits, umask, user and groups,
//! masked and read-only paths, sysctls, the joined network namespace, the mounts
//! (sysfs and cgroup read-only, devpts with /dev/ptmx, mqueue, binds), the device
//! rules and the memory and pids limits.

use container::{ExitStatus, SandboxSpec};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use test_support::sandbox as support;
use test_support::TempDir;

/// The tests make cgroups, network namespaces and mounts: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the workload reports (to /out/report), then it waits for /out/go so the
/// host can read its cgroup.
const SCRIPT: &str = r#"
exec > /out/report 2>&1
grep -E '^(Uid|Gid|Groups|Umask):' /proc/self/status
grep -E '^Max (open files|processes)' /proc/self/limits
probe call kexec_load:246 add_key:248 getpid:39 ptrace_traceme:101
echo timer_list=$(wc -c < /proc/timer_list) version=$(wc -c < /proc/version)
echo sysfw=$(ls -A /sys/firmware | wc -l)
awk '$2 == "/proc/sys" || $2 == "/sys" || $2 == "/sys/fs/cgroup" || $2 == "/dev/mqueue" || $2 == "/dev/pts" || $2 == "/dev/shm" {print "mount " $2 " " $3 " " $4}' /proc/mounts
echo ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
echo ttl=$(cat /proc/sys/net/ipv4/ip_default_ttl)
echo ptmx=$(readlink /dev/ptmx)
echo hosts=$(cat /etc/hosts)
echo devnull=$(head -c 1 /dev/zero > /dev/null && echo ok)
[ "$(id -u)" = 0 ] && probe attack mknod:/dev/hostdisk:b:DISK open:/dev/hostdisk:r
touch /out/ready
while [ ! -e /out/go ]; do sleep 0.05; done
"#;

/// A network namespace made the way engines make theirs (`ip netns add`), with a
/// marker sysctl the sandbox must see (ttl 77) and forwarding off (a new netns
/// inherits the host's value), so a `--sysctl` turning it on shows; deleted when
/// dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("bootlab-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip netns add {name}");
        let ok = Command::new("ip")
            .args(["netns", "exec", &name, "sh", "-c"])
            .arg("echo 77 > /proc/sys/net/ipv4/ip_default_ttl; echo 0 > /proc/sys/net/ipv4/ip_forward")
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "marking {name}");
        Netns(name)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// major:minor of the block device holding the host's root filesystem: what a
/// container with CAP_MKNOD would open without the devices cgroup.
fn host_disk() -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").unwrap().dev();
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

/// The cgroupsPath the tests use, below a parent of their own.
fn cgroup_parent() -> String {
    format!("/bootlab-engine-test-{}", std::process::id())
}

/// Removes the (empty) parent cgroups the runtime made for the cgroupsPath.
fn remove_cgroup_parents() {
    let parent = cgroup_parent();
    for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let Ok(rd) = std::fs::read_dir(base) else {
            continue;
        };
        let _ = std::fs::remove_dir(format!("{base}{parent}"));
        for e in rd.flatten() {
            let _ = std::fs::remove_dir(e.path().join(parent.trim_start_matches('/')));
        }
    }
}

/// One captured config, adapted to this host, and where its sandbox reports.
struct Run {
    spec: SandboxSpec,
    out: TempDir,
    cgroup: String,
    _netns: Option<Netns>,
}

/// Loads fixture `name` with its host paths replaced and [`SCRIPT`] as the command.
fn adapt(name: &str) -> Run {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tmp = Some(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let out = TempDir::new_in(tmp, "engine-out").unwrap();
    let files = out.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let chmod = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(&out, 0o777);
    cfg["root"]["path"] = json!(support::rootfs());
    cfg["process"]["args"] = json!(["sh", "-c", SCRIPT.replace("DISK", &host_disk())]);
    // Bind sources the engine made in its own storage: files of ours instead.
    for (i, m) in cfg["mounts"].as_array_mut().unwrap().iter_mut().enumerate() {
        let Some(src) = m["source"].as_str() else {
            continue;
        };
        if !src.starts_with('/') || Path::new(src).exists() {
            continue;
        }
        let dest = m["destination"].as_str().unwrap().to_owned();
        let p = files.join(i.to_string());
        if dest == "/dev/shm" {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::fs::write(&p, format!("marker-of-{dest}")).unwrap();
        }
        m["source"] = json!(p);
    }
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/out", "type": "bind", "source": out.to_path_buf(), "options": ["rbind", "rw"]}));
    let mut netns = None;
    for n in cfg["linux"]["namespaces"].as_array_mut().unwrap() {
        if n.get("path").is_some() {
            let ns = Netns::new("engine");
            n["path"] = json!(ns.path());
            netns = Some(ns);
        }
    }
    let cgroup = format!("{}/{}", cgroup_parent(), name.trim_end_matches(".json"));
    cfg["linux"]["cgroupsPath"] = json!(cgroup);
    let bundle = out.join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), cfg.to_string()).unwrap();
    let spec = container::oci::load_bundle(&bundle)
        .unwrap_or_else(|e| panic!("{name} must be accepted: {e}"));
    Run {
        spec,
        out,
        cgroup,
        _netns: netns,
    }
}

/// What the sandbox reported, and the host's view of its cgroup while it ran:
/// (file, content) for each limit file that exists.
struct Seen {
    report: String,
    cgroup_files: Vec<(String, String)>,
}

impl Seen {
    fn line(&self, prefix: &str) -> &str {
        self.report
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{}", self.report))
    }

    fn has(&self, line: &str) -> bool {
        self.report.lines().any(|l| l == line)
    }

    /// (soft, hard) of a /proc/self/limits row.
    fn limit(&self, row: &str) -> (String, String) {
        let rest = self.line(row)[row.len()..].to_owned();
        let mut f = rest.split_whitespace().map(str::to_owned);
        (f.next().unwrap_or_default(), f.next().unwrap_or_default())
    }

    fn cgroup(&self, file: &str) -> Option<&str> {
        self.cgroup_files
            .iter()
            .find(|(f, _)| f.ends_with(file))
            .map(|(_, v)| v.trim())
    }
}

const LIMIT_FILES: [&str; 7] = [
    "memory/CG/memory.limit_in_bytes",
    "memory/CG/memory.memsw.limit_in_bytes",
    "pids/CG/pids.max",
    "devices/CG/devices.list",
    "unified/CG/memory.max",
    "unified/CG/pids.max",
    "CG/cgroup.procs",
];

/// Runs the adapted config, reads its cgroup while the workload waits, lets it
/// finish, and checks that its cgroup is gone.
fn run(r: &Run) -> Seen {
    let spec = r.spec.clone();
    let worker = std::thread::spawn(move || container::run(&spec));
    let ready = r.out.join("ready");
    let start = Instant::now();
    while !ready.exists() {
        if worker.is_finished() || start.elapsed() > Duration::from_secs(30) {
            let report = std::fs::read_to_string(r.out.join("report")).unwrap_or_default();
            let _ = std::fs::write(r.out.join("go"), "");
            panic!(
                "the workload never got ready ({:?}); report:\n{report}",
                worker.join().map(|o| o.map(|o| o.status))
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cgroup_files = LIMIT_FILES
        .iter()
        .map(|f| {
            format!(
                "/sys/fs/cgroup/{}",
                f.replace("CG", r.cgroup.trim_start_matches('/'))
            )
        })
        .filter_map(|f| Some((f.clone(), std::fs::read_to_string(&f).ok()?)))
        .collect();
    std::fs::write(r.out.join("go"), "").unwrap();
    let outcome = worker.join().unwrap().expect("the sandbox runs");
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    for base in ["memory", "pids", "devices", "unified", ""] {
        let leaf = Path::new("/sys/fs/cgroup")
            .join(base)
            .join(r.cgroup.trim_start_matches('/'));
        assert!(!leaf.exists(), "{} left behind", leaf.display());
    }
    Seen {
        report: std::fs::read_to_string(r.out.join("report")).unwrap(),
        cgroup_files,
    }
}

fn require() -> bool {
    support::require_root()
        && test_support::need("engine config test", &[test_support::Need::Tool("ip")])
}

/// What every engine config gets: mounts, masked and read-only paths, devices.
/// `root`: the workload runs as root (with CAP_MKNOD); `cgroup_mount`: the config
/// mounts /sys/fs/cgroup (podman does, containerd's `ctr run` does not).
fn check_common(s: &Seen, root: bool, cgroup_mount: bool) {
    assert!(
        s.line("timer_list=").starts_with("timer_list=0 "),
        "masked: {}",
        s.report
    );
    assert!(
        !s.line("timer_list=").ends_with("version=0"),
        "control: {}",
        s.report
    );
    assert!(s.line("mount /proc/sys ").contains(" ro,"), "{}", s.report);
    assert!(s.line("mount /sys sysfs ").contains(" ro,"), "{}", s.report);
    if cgroup_mount {
        assert!(
            s.line("mount /sys/fs/cgroup ").contains(" ro,"),
            "{}",
            s.report
        );
    }
    assert!(
        s.line("mount /dev/pts devpts ").contains("ptmxmode=666"),
        "{}",
        s.report
    );
    assert!(
        s.line("mount /dev/mqueue mqueue ").contains("rw,"),
        "{}",
        s.report
    );
    assert_eq!(s.line("ptmx="), "ptmx=pts/ptmx");
    assert_eq!(
        s.line("devnull="),
        "devnull=ok",
        "/dev/null and /dev/zero usable"
    );
    assert_eq!(s.limit("Max open files"), ("1024".into(), "1024".into()));
    if root {
        // CAP_MKNOD is granted, the devices cgroup must refuse the host's disk.
        assert!(
            s.has(&format!("mknod:/dev/hostdisk:b:{}=OK", host_disk())),
            "{}",
            s.report
        );
        assert!(s.has("open:/dev/hostdisk:r=EPERM"), "{}", s.report);
    }
    if let Some(list) = s.cgroup("devices.list") {
        assert!(!list.contains("a *:* rwm"), "{list}");
        assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    }
}

#[test]
fn podman_default_config_runs_with_its_profile_namespace_and_limits() {
    if !require() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = adapt("podman-4.3-default.json");
    let s = run(&r);
    remove_cgroup_parents();
    check_common(&s, true, true);
    // Podman's profile, not ours: kexec_load is listed (errnoRet 1), add_key is
    // not (defaultErrnoRet 38); our default filter answers EPERM to both.
    assert!(
        s.has("kexec_load=EPERM") && s.has("add_key=ENOSYS"),
        "{}",
        s.report
    );
    assert!(s.has("getpid=OK"), "{}", s.report);
    assert_eq!(s.line("Umask:"), "Umask:\t0022");
    assert_eq!(s.line("sysfw="), "sysfw=0", "/sys/firmware masked");
    assert_eq!(
        s.line("ttl="),
        "ttl=77",
        "the engine's network namespace is joined"
    );
    assert_eq!(s.limit("Max processes"), ("4096".into(), "4096".into()));
    assert!(s.line("hosts=").starts_with("hosts=marker-of-/etc/hosts"));
    assert_eq!(s.cgroup("pids.max"), Some("2048"), "{:?}", s.cgroup_files);
}

#[test]
fn podman_config_with_limits_user_and_sysctl() {
    if !require() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = adapt("podman-4.3-limits.json");
    let s = run(&r);
    remove_cgroup_parents();
    check_common(&s, false, true);
    assert!(
        s.line("Uid:").starts_with("Uid:\t1000\t1000"),
        "{}",
        s.report
    );
    assert!(
        s.line("Gid:").starts_with("Gid:\t1000\t1000"),
        "{}",
        s.report
    );
    assert_eq!(s.line("Groups:").trim_end(), "Groups:\t1000 2000");
    assert_eq!(
        s.line("ip_forward="),
        "ip_forward=1",
        "--sysctl in the joined netns"
    );
    assert_eq!(s.line("ttl="), "ttl=77");
    let mem = s.cgroup("memory.limit_in_bytes").or(s.cgroup("memory.max"));
    assert_eq!(mem, Some("67108864"), "{:?}", s.cgroup_files);
    if let Some(sw) = s.cgroup("memory.memsw.limit_in_bytes") {
        assert_eq!(sw, "134217728");
    }
    assert_eq!(s.cgroup("pids.max"), Some("50"), "{:?}", s.cgroup_files);
}

#[test]
fn containerd_configs_run_with_our_filter_or_theirs() {
    if !require() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // No profile (ctr without --seccomp): our default filter.
    let s = run(&adapt("containerd-1.6-default.json"));
    check_common(&s, true, false);
    assert!(
        s.has("add_key=EPERM") && s.has("ptrace_traceme=EPERM"),
        "{}",
        s.report
    );
    assert_eq!(s.line("ttl="), "ttl=64", "a fresh network namespace");
    // containerd's /dev/shm: a tmpfs with its size and mode (podman binds its own).
    let shm = s.line("mount /dev/shm tmpfs ");
    assert!(
        shm.contains("size=65536k") && shm.contains("nosuid,nodev,noexec"),
        "{shm}"
    );
    assert!(
        s.line("Groups:").contains('0'),
        "additionalGids [0]: {}",
        s.report
    );
    // containerd's profile allows ptrace (PTRACE_TRACEME here), ours does not.
    let s = run(&adapt("containerd-1.6-seccomp.json"));
    assert!(
        s.has("ptrace_traceme=OK") && s.has("add_key=EPERM"),
        "{}",
        s.report
    );
    let s = run(&adapt("containerd-1.6-limits.json"));
    remove_cgroup_parents();
    let mem = s.cgroup("memory.limit_in_bytes").or(s.cgroup("memory.max"));
    assert_eq!(mem, Some("67108864"), "{:?}", s.cgroup_files);
}

/// Control for the seccomp checks above: the same probe with no filter at all
/// reaches the kernel (add_key with null arguments: EFAULT or EINVAL, not the
/// filters' EPERM/ENOSYS), so those answers came from the filters.
#[test]
fn without_a_filter_the_kernel_answers() {
    if !require() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = adapt("containerd-1.6-default.json");
    r.spec.seccomp = false;
    let s = run(&r);
    remove_cgroup_parents();
    let add_key = s.line("add_key=");
    assert!(
        add_key != "add_key=EPERM" && add_key != "add_key=ENOSYS",
        "{}",
        s.report
    );
}

/// A hook that appends its stage name and the state it was given to `log`.
fn logging_hook(stage: &str, log: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo \"$0 $(cat)\" >> {log}"), stage], "timeout": 10})
}

#[test]
fn hooks_run_in_order_with_the_state_and_a_failing_one_stops_the_start() {
    if !require() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = adapt("containerd-1.6-default.json");
    let host_log = r.out.join("hooks.log").display().to_string();
    let mut hooks = json!({});
    for stage in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        hooks[stage] = json!([logging_hook(stage, &host_log)]);
    }
    // After the pivot: the container's /bin/sh, its /out.
    hooks["startContainer"] = json!([logging_hook("startContainer", "/out/hooks.log")]);
    r.spec.hooks = Some(serde_json::from_value(hooks.clone()).unwrap());
    r.spec
        .annotations
        .insert("org.example/k".into(), "v".into());
    r.spec.args = vec!["true".into()];
    let out = container::run(&r.spec).expect("the sandbox runs");
    assert_eq!(out.status, ExitStatus::Exited(0));
    let log = std::fs::read_to_string(&host_log).unwrap();
    let lines: Vec<(&str, Value)> = log
        .lines()
        .map(|l| {
            let (stage, state) = l.split_once(' ').unwrap();
            (stage, serde_json::from_str(state).unwrap())
        })
        .collect();
    let stages: Vec<&str> = lines.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{log}"
    );
    let pid = lines[0].1["pid"].as_i64().unwrap();
    assert!(pid > 1, "{log}");
    for (stage, st) in &lines {
        assert_eq!(st["pid"].as_i64(), Some(pid), "{stage}: {log}");
        assert_eq!(st["annotations"]["org.example/k"], "v", "{stage}: {log}");
        let want = match *stage {
            "prestart" | "createRuntime" | "createContainer" => "creating",
            "poststop" => "stopped",
            _ => "running",
        };
        assert_eq!(st["status"], want, "{stage}: {log}");
    }
    // A failing createRuntime hook: the start fails with its message, the later
    // stages never run, and nothing is left behind.
    std::fs::remove_file(&host_log).unwrap();
    hooks["createRuntime"] = json!([{"path": "/bin/false"}]);
    r.spec.hooks = Some(serde_json::from_value(hooks).unwrap());
    let e = container::run(&r.spec).unwrap_err().to_string();
    assert!(e.contains("createRuntime hook /bin/false failed"), "{e}");
    let log = std::fs::read_to_string(&host_log).unwrap_or_default();
    assert_eq!(log.lines().count(), 1, "only prestart ran: {log}");
    remove_cgroup_parents();
    let leaf = Path::new("/sys/fs/cgroup/pids").join(r.cgroup.trim_start_matches('/'));
    assert!(!leaf.exists());
}

/// The create/start/delete steps (what `bootlab oci` runs for an engine) run the
/// same hooks, each at its step, with the container's ID in the state.
#[test]
fn lifecycle_steps_run_the_hooks_with_the_container_id() {
    if !require() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = adapt("containerd-1.6-default.json");
    let bundle = r.out.join("bundle");
    let host_log = r.out.join("hooks.log").display().to_string();
    let cfg_path = bundle.join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    for stage in ["createRuntime", "createContainer", "poststart", "poststop"] {
        cfg["hooks"][stage] = json!([logging_hook(stage, &host_log)]);
    }
    cfg["hooks"]["startContainer"] = json!([logging_hook("startContainer", "/out/hooks.log")]);
    cfg["process"]["args"] = json!(["true"]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let root = r.out.join("state");
    let id = format!("hooks-{}", std::process::id());
    let opts = container::lifecycle::CreateOptions {
        root: root.clone(),
        id: id.clone(),
        bundle: bundle.clone(),
        pid_file: None,
        console_socket: None,
        preserve_fds: 0,
    };
    let state = container::lifecycle::create(&opts).expect("create");
    let after_create = std::fs::read_to_string(&host_log).unwrap_or_default();
    container::lifecycle::start(&root, &id).expect("start");
    // The init is our child: reap it.
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(state.pid, &mut status, 0) };
    container::lifecycle::delete(&root, &id, false).expect("delete");
    remove_cgroup_parents();
    let log = std::fs::read_to_string(&host_log).unwrap();
    let lines: Vec<(&str, Value)> = log
        .lines()
        .map(|l| {
            let (stage, state) = l.split_once(' ').unwrap();
            (stage, serde_json::from_str(state).unwrap())
        })
        .collect();
    let stages: Vec<&str> = lines.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        [
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{log}"
    );
    assert_eq!(
        after_create.lines().count(),
        2,
        "create ran createRuntime and createContainer only: {after_create}"
    );
    for (stage, st) in &lines {
        assert_eq!(st["id"], id.as_str(), "{stage}: {log}");
        assert_eq!(
            st["pid"].as_i64(),
            Some(i64::from(state.pid)),
            "{stage}: {log}"
        );
    }
}
