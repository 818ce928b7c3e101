//! `bootlab oci ...` / `bootlab-runc ...`, the OCI runtime with runc's command line,
//! through the built binary: the lifecycle (create -> created with a waiting init ->
//! start -> output on the stdout `create` was given -> stopped -> delete leaves no
//! state, cgroup or process), `run` with its exit status, `kill` with signal names
//! and numbers, bad input (one line, exit 1), the `bootlab-runc` link, the JSON log
//! line engines read, `features`. The lifecycle and the bad-input rows also run
//! against runc, as the control that tells a host problem from ours.
//!
//! The bundle's root is guest-images/out/rootfs (`/sbin/guest-init hello` and a
//! busybox). Needs root and that rootfs; skips loudly otherwise (fails with
//! `BOOTLAB_REQUIRE_KVM=1`).

mod common;

use serde_json::{json, Value};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use test_support::{need, Need, TempDir};

/// The guest images' rootfs.
fn guest_rootfs() -> PathBuf {
    std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"))
        .join("rootfs")
}

/// Root and the guest rootfs.
fn ready(test: &str) -> bool {
    let init = guest_rootfs().join("sbin/guest-init");
    need(
        test,
        &[
            Need::Root,
            Need::Path(&init, "run `bootlab images build` (guest-images/build.sh)"),
        ],
    )
}

/// A runtime under test: ours, or runc as the control.
#[derive(Debug, Clone)]
struct Runtime {
    name: &'static str,
    /// The program and the arguments before the global options.
    argv: Vec<String>,
}

impl Runtime {
    fn bootlab() -> Runtime {
        Runtime {
            name: "bootlab",
            argv: vec![env!("CARGO_BIN_EXE_bootlab").into(), "oci".into()],
        }
    }

    fn runc() -> Option<Runtime> {
        test_support::tool("runc").map(|p| Runtime {
            name: "runc",
            argv: vec![p.display().to_string()],
        })
    }

    /// `RUNTIME --root ROOT ARGS`.
    fn cmd(&self, root: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]).arg("--root").arg(root).args(args);
        c.env_remove("BOOTLAB_SPAWN_NS");
        c
    }

    /// Runs a command whose stdio the container does not take (so `output` does not
    /// wait for the container to close a pipe).
    fn out(&self, root: &Path, args: &[&str]) -> Output {
        self.cmd(root, args)
            .stdin(Stdio::null())
            .output()
            .expect("running the runtime")
    }
}

/// One test's folder: the runtime's root, bundles, output files.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        Fixture {
            dir: TempDir::new(tag).expect("temp dir"),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// A bundle `name` that runs `args` over the guest rootfs (read-only), with the
    /// namespaces and mounts `runc spec` writes, minus what a runtime may not honour
    /// yet (the terminal, seccomp, cgroups paths).
    fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let b = self.dir.join(name);
        std::fs::create_dir_all(&b).unwrap();
        let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": true
            },
            "root": {"path": guest_rootfs(), "readonly": true},
            "hostname": "oci-test",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                               {"type": "uts"}, {"type": "mount"}],
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"]
            }
        });
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        b
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A test that fails half-way leaves no container behind: every container left in
/// the root is deleted with --force by each runtime (the folder is a runtime's).
impl Drop for Fixture {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir(self.root()) else {
            return;
        };
        let runtimes: Vec<Runtime> = [Some(Runtime::bootlab()), Runtime::runc()]
            .into_iter()
            .flatten()
            .collect();
        for id in rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            for rt in &runtimes {
                let _ = rt.out(&self.root(), &["delete", "--force", &id]);
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `state ID` as JSON.
fn state(rt: &Runtime, root: &Path, id: &str) -> Value {
    let o = rt.out(root, &["state", id]);
    assert!(
        o.status.success(),
        "{} state {id}: {}",
        rt.name,
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("state is JSON")
}

/// Polls `state ID` until its status is `want` (10 s at most).
fn wait_status(rt: &Runtime, root: &Path, id: &str, want: &str) -> Value {
    let t = Instant::now();
    loop {
        let s = state(rt, root, id);
        if s["status"] == want {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}: {id} never became {want}: {s}",
            rt.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `create` with the container's stdout and stderr in files (a pipe would keep
/// `output()` waiting for the container).
fn create(rt: &Runtime, f: &Fixture, bundle: &Path, id: &str, extra: &[&str]) -> PathBuf {
    let out = f.file(&format!("{id}.out"));
    let err = f.file(&format!("{id}.err"));
    let st = rt
        .cmd(&f.root(), &["create", "--bundle"])
        .arg(bundle)
        .args(extra)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "{} create {id}: {}",
        rt.name,
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    out
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// cgroup folders named after the container anywhere under /sys/fs/cgroup.
fn cgroups_named(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth > 6 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(e.path());
            }
            walk(&e.path(), needle, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 0, &mut out);
    out
}

/// The whole lifecycle of `/sbin/guest-init hello` under `rt`.
fn lifecycle(rt: &Runtime, tag: &str) {
    let f = Fixture::new(tag);
    let bundle = f.bundle("hello", &["/sbin/guest-init", "hello"]);
    let id = format!("{tag}-{}", std::process::id());
    let pid_file = f.file("pid");
    let out = create(
        rt,
        &f,
        &bundle,
        &id,
        &["--pid-file", pid_file.to_str().unwrap()],
    );

    let s = state(rt, &f.root(), &id);
    assert_eq!(s["status"], "created", "{}: {s}", rt.name);
    assert_eq!(s["id"], id.as_str());
    assert_eq!(Path::new(s["bundle"].as_str().unwrap()), bundle);
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0 && alive(pid), "{}: init {pid} not alive", rt.name);
    let written: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, pid, "{}: the pid file", rt.name);
    // Waiting before its execve: nothing printed yet.
    assert!(
        !std::fs::read_to_string(&out).unwrap().contains("hello"),
        "{}: the workload ran before start",
        rt.name
    );
    let ps = rt.out(&f.root(), &["ps", "--format", "json", &id]);
    assert!(ps.status.success(), "{}: ps: {}", rt.name, text(&ps.stderr));
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{}: ps {pids:?} lacks {pid}", rt.name);
    let list = rt.out(&f.root(), &["list"]);
    assert!(text(&list.stdout).contains(&id), "{}: list", rt.name);

    let started = rt.out(&f.root(), &["start", &id]);
    assert!(
        started.status.success(),
        "{}: start: {}",
        rt.name,
        text(&started.stderr)
    );
    wait_status(rt, &f.root(), &id, "stopped");
    let printed = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        test_support::missing_in_order(
            &printed,
            &[
                "@@bootlab init-start",
                "@@bootlab exec",
                "hello from bootlab guest-init",
                "@@bootlab done"
            ]
        ),
        None,
        "{}: the workload's output on create's stdout: {printed}",
        rt.name
    );

    let deleted = rt.out(&f.root(), &["delete", &id]);
    assert!(
        deleted.status.success(),
        "{}: delete: {}",
        rt.name,
        text(&deleted.stderr)
    );
    assert!(!f.root().join(&id).exists(), "{}: state dir left", rt.name);
    assert_eq!(cgroups_named(&id), Vec::<PathBuf>::new(), "{}", rt.name);
    assert!(!alive(pid), "{}: the init {pid} lives on", rt.name);
    let gone = rt.out(&f.root(), &["state", &id]);
    assert!(!gone.status.success(), "{}: state after delete", rt.name);
}

#[test]
fn create_start_state_delete_runs_the_workload_and_leaves_nothing() {
    if !ready("oci lifecycle") {
        return;
    }
    lifecycle(&Runtime::bootlab(), "oci-life");
}

#[test]
fn runc_control_runs_the_same_lifecycle() {
    if !ready("oci lifecycle (runc control)") {
        return;
    }
    let Some(runc) = Runtime::runc() else {
        test_support::skip("oci lifecycle (runc control)", "runc is not on PATH");
        return;
    };
    lifecycle(&runc, "oci-runc");
}

#[test]
fn run_propagates_the_exit_status_and_cleans_up() {
    if !ready("oci run") {
        return;
    }
    let f = Fixture::new("oci-run");
    let mut runtimes = vec![Runtime::bootlab()];
    runtimes.extend(Runtime::runc());
    for rt in &runtimes {
        for (code, args) in [
            (0, vec!["/sbin/guest-init", "hello"]),
            (7, vec!["/bin/sh", "-c", "exit 7"]),
        ] {
            let bundle = f.bundle(&format!("run-{code}"), &args);
            let id = format!("run-{}-{code}-{}", rt.name, std::process::id());
            let o = rt
                .cmd(&f.root(), &["run", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(
                o.status.code(),
                Some(code),
                "{}: {}",
                rt.name,
                text(&o.stderr)
            );
            if code == 0 {
                assert!(text(&o.stdout).contains("hello from bootlab guest-init"));
            }
            assert!(!f.root().join(&id).exists(), "{}: state left", rt.name);
        }
    }
}

#[test]
fn kill_takes_signal_names_with_and_without_sig_and_numbers() {
    if !ready("oci kill") {
        return;
    }
    let rt = Runtime::bootlab();
    let f = Fixture::new("oci-kill");
    // PID 1 of its namespace gets only the signals it handles: the trap makes TERM
    // and USR1 end it with a status of their own.
    let bundle = f.bundle(
        "trap",
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 3' TERM; trap 'exit 4' USR1; echo trapped; while :; do sleep 0.05; done",
        ],
    );
    for (n, sig) in ["TERM", "SIGTERM", "15", "usr1", "10", "KILL", "9"]
        .iter()
        .enumerate()
    {
        let id = format!("kill-{n}-{}", std::process::id());
        let out = create(&rt, &f, &bundle, &id, &[]);
        let o = rt.out(&f.root(), &["start", &id]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        // Signalled once its traps are set (before, PID 1 ignores TERM and USR1).
        let t = Instant::now();
        while !std::fs::read_to_string(&out).unwrap().contains("trapped") {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the workload never ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let o = rt.out(&f.root(), &["kill", &id, sig]);
        assert!(o.status.success(), "kill {sig}: {}", text(&o.stderr));
        wait_status(&rt, &f.root(), &id, "stopped");
        // A stopped container cannot be signalled.
        let o = rt.out(&f.root(), &["kill", &id, sig]);
        assert_eq!(o.status.code(), Some(1), "kill of a stopped one");
        assert!(rt.out(&f.root(), &["delete", &id]).status.success());
    }
    // --all signals every process of the cgroup; delete --force takes a running one.
    let id = format!("kill-all-{}", std::process::id());
    create(&rt, &f, &bundle, &id, &[]);
    assert!(rt.out(&f.root(), &["start", &id]).status.success());
    let o = rt.out(&f.root(), &["delete", &id]);
    assert_eq!(o.status.code(), Some(1), "delete of a running container");
    assert!(text(&o.stderr).contains("running"), "{}", text(&o.stderr));
    let o = rt.out(&f.root(), &["kill", "--all", &id, "KILL"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_status(&rt, &f.root(), &id, "stopped");
    assert!(rt.out(&f.root(), &["delete", &id]).status.success());
    let id = format!("kill-force-{}", std::process::id());
    create(&rt, &f, &bundle, &id, &[]);
    assert!(rt.out(&f.root(), &["start", &id]).status.success());
    let pid = state(&rt, &f.root(), &id)["pid"].as_i64().unwrap();
    assert!(rt
        .out(&f.root(), &["delete", "--force", &id])
        .status
        .success());
    assert!(!alive(pid) && !f.root().join(&id).exists());
}

/// Exit 1 and one line on stderr (ours: `bootlab: error: ...` naming `needle`).
fn assert_refused(rt: &Runtime, o: &Output, what: &str, needle: &str) {
    assert_refused_with(rt, o, 1, what, needle);
}

/// [`assert_refused`] with exit status `code`.
fn assert_refused_with(rt: &Runtime, o: &Output, code: i32, what: &str, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{} {what}: {err}", rt.name);
    if rt.name == "bootlab" {
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line, got: {err}");
        assert!(lines[0].starts_with("bootlab: error: "), "{what}: {err}");
        assert!(lines[0].contains(needle), "{what}: `{needle}` not in {err}");
    }
}

#[test]
fn bad_input_is_one_line_and_exit_1_like_runc() {
    if !ready("oci bad input") {
        return;
    }
    let mut runtimes = vec![Runtime::bootlab()];
    runtimes.extend(Runtime::runc());
    for rt in &runtimes {
        let f = Fixture::new("oci-bad");
        let root = f.root();
        let bundle = f.bundle("hello", &["/sbin/guest-init", "hello"]);
        let none = "no-such-container";
        for op in [
            &["state", none][..],
            &["start", none],
            &["kill", none],
            &["delete", none],
        ] {
            assert_refused(rt, &rt.out(&root, op), op[0], "does not exist");
        }
        let id = format!("bad-{}", std::process::id());
        create(rt, &f, &bundle, &id, &[]);
        let o = rt
            .cmd(&root, &["create", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_refused(rt, &o, "duplicate create", "already exists");
        for sig in ["BOGUS", "SIGBOGUS", "65", "-9"] {
            let o = rt.out(&root, &["kill", &id, sig]);
            assert_refused(rt, &o, &format!("kill {sig}"), "signal");
        }
        assert!(rt.out(&root, &["delete", &id]).status.success());
        let missing = f.file("no-bundle");
        let o = rt.out(
            &root,
            &["create", "--bundle", missing.to_str().unwrap(), "x1"],
        );
        assert_refused(rt, &o, "missing bundle", "no-bundle");
        assert!(
            !root.join("x1").exists(),
            "{}: a failed create left state",
            rt.name
        );
        let o = rt.out(
            &root,
            &["create", "--bundle", bundle.to_str().unwrap(), "../x"],
        );
        assert_refused(rt, &o, "unsafe ID", "../x");
        // A terminal without a console socket, a console socket that is not one.
        let tty = f.dir.join("tty");
        std::fs::create_dir_all(&tty).unwrap();
        let mut cfg: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        cfg["process"]["terminal"] = json!(true);
        std::fs::write(tty.join("config.json"), cfg.to_string()).unwrap();
        let o = rt.out(&root, &["create", "--bundle", tty.to_str().unwrap(), "t1"]);
        assert_refused(
            rt,
            &o,
            "terminal without --console-socket",
            "console-socket",
        );
        let not_socket = f.file("not-a-socket");
        std::fs::write(&not_socket, "").unwrap();
        let o = rt.out(
            &root,
            &[
                "create",
                "--console-socket",
                not_socket.to_str().unwrap(),
                "--bundle",
                tty.to_str().unwrap(),
                "t2",
            ],
        );
        assert_refused(rt, &o, "--console-socket of a file", "not-a-socket");
        assert!(!root.join("t1").exists() && !root.join("t2").exists());
        // Start of a stopped container.
        let id = format!("stopped-{}", std::process::id());
        create(rt, &f, &bundle, &id, &[]);
        assert!(rt.out(&root, &["start", &id]).status.success());
        wait_status(rt, &root, &id, "stopped");
        assert_refused(
            rt,
            &rt.out(&root, &["start", &id]),
            "start of a stopped one",
            "stopped",
        );
        assert!(rt.out(&root, &["delete", &id]).status.success());
    }
}

#[test]
fn bootlab_runc_link_is_the_oci_command_line() {
    let f = Fixture::new("oci-link");
    let link = f.file("bootlab-runc");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_bootlab"), &link).unwrap();
    let o = Command::new(&link).arg("--version").output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v = text(&o.stdout);
    assert!(v.starts_with("bootlab-runc version "), "{v}");
    assert!(v.contains("spec: 1."), "{v}");
    let o = Command::new(&link)
        .args(["--root"])
        .arg(f.root())
        .args(["state", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("container `nope` does not exist"));
    let o = Command::new(&link).arg("--help").output().unwrap();
    assert!(text(&o.stdout).contains("create"), "{}", text(&o.stdout));
}

#[test]
fn json_log_has_the_error_line_engines_read() {
    let f = Fixture::new("oci-log");
    let log = f.file("log.json");
    let rt = Runtime::bootlab();
    // Global options come before the command.
    let o = Command::new(env!("CARGO_BIN_EXE_bootlab"))
        .args(["oci", "--log"])
        .arg(&log)
        .args(["--log-format", "json", "--root"])
        .arg(f.root())
        .args(["state", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap().contains("`nope` does not exist"),
        "{v}"
    );
    let time = v["time"].as_str().unwrap();
    assert!(
        time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    // --systemd-cgroup is refused with a reason.
    let o = rt.out(&f.root(), &["--systemd-cgroup", "list"]);
    assert!(text(&o.stderr).contains("systemd"), "{}", text(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_bootlab"))
        .args(["oci", "--systemd-cgroup", "list"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--systemd-cgroup is not supported"));
}

#[test]
fn features_is_the_runtime_spec_features_document() {
    let o = Command::new(env!("CARGO_BIN_EXE_bootlab"))
        .args(["oci", "features"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let f: oci_spec::runtime::Features =
        serde_json::from_slice(&o.stdout).expect("features parse as the spec's type");
    assert_eq!(f.oci_version_min(), "1.0.0");
    let linux = f.linux().as_ref().expect("a linux section");
    let ns = linux.namespaces().as_ref().expect("namespaces");
    assert!(ns.contains(&oci_spec::runtime::LinuxNamespaceType::Pid));
    let caps = linux.capabilities().as_ref().expect("capabilities");
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
    // What the runtime honours: a bundle's seccomp profile (with every operator),
    // all six hook stages, AppArmor where the host has it.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["linux"]["seccomp"]["enabled"], true, "{v}");
    let ops = v["linux"]["seccomp"]["operators"].as_array().unwrap();
    assert!(ops.iter().any(|o| o == "SCMP_CMP_MASKED_EQ"), "{v}");
    let hooks = v["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 6, "{v}");
    assert!(hooks.iter().any(|h| h == "createRuntime"), "{v}");
    assert_eq!(v["linux"]["apparmor"]["enabled"], true, "{v}");
}

/// `exec` under `rt`: a command in the container's namespaces with its status, a
/// process JSON detached with a pid file, refusals.
fn exec_cases(rt: &Runtime, tag: &str) {
    let f = Fixture::new(tag);
    let bundle = f.bundle(
        "loop",
        &["/bin/sh", "-c", "echo up; while :; do sleep 0.05; done"],
    );
    let id = format!("{tag}-{}", std::process::id());
    create(rt, &f, &bundle, &id, &[]);
    assert!(rt.out(&f.root(), &["start", &id]).status.success());
    let o = rt.out(
        &f.root(),
        &[
            "exec",
            &id,
            "/bin/sh",
            "-c",
            "echo in $(hostname) pid $$; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}: {}", rt.name, text(&o.stderr));
    let printed = text(&o.stdout);
    // The container's UTS and PID namespaces: its hostname, a small pid.
    assert!(
        printed.starts_with("in oci-test pid "),
        "{}: {printed}",
        rt.name
    );
    let pid: u32 = printed.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(pid < 100, "{}: pid {pid} is not the container's", rt.name);
    let proc_json = f.file("process.json");
    std::fs::write(
        &proc_json,
        r#"{"args": ["/bin/sh", "-c", "sleep 5"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let pid_file = f.file("exec.pid");
    let o = rt
        .cmd(&f.root(), &["exec", "--detach", "--process"])
        .arg(&proc_json)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(f.file("exec.err")).unwrap())
        .status()
        .unwrap();
    assert!(
        o.success(),
        "{}: exec --detach: {}",
        rt.name,
        std::fs::read_to_string(f.file("exec.err")).unwrap_or_default()
    );
    let epid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ps = rt.out(&f.root(), &["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(
        pids.contains(&epid),
        "{}: {epid} not in ps {pids:?}",
        rt.name
    );
    // exec's own failures are 255 (runc's), apart from its process's statuses.
    assert_refused_with(
        rt,
        &rt.out(&f.root(), &["exec", "nope", "/bin/true"]),
        255,
        "exec in an unknown container",
        "does not exist",
    );
    assert!(rt
        .out(&f.root(), &["delete", "--force", &id])
        .status
        .success());
    assert!(!alive(epid), "{}: the exec'd process lives on", rt.name);
}

#[test]
fn exec_joins_the_container_and_returns_its_status() {
    if !ready("oci exec") {
        return;
    }
    exec_cases(&Runtime::bootlab(), "oci-exec");
}

#[test]
fn runc_control_runs_the_same_exec() {
    if !ready("oci exec (runc control)") {
        return;
    }
    let Some(runc) = Runtime::runc() else {
        test_support::skip("oci exec (runc control)", "runc is not on PATH");
        return;
    };
    exec_cases(&runc, "oci-exec-runc");
}

/// A bundle over the sandbox tests' busybox rootfs with the `probe` helper.
fn probe_bundle(f: &Fixture, name: &str, args: &[&str]) -> PathBuf {
    let b = f.bundle(name, args);
    let path = b.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["root"]["path"] = json!(test_support::sandbox::rootfs());
    std::fs::write(&path, cfg.to_string()).unwrap();
    b
}

#[test]
fn runtime_binary_and_runtime_fds_stay_out_of_reach_on_the_fifo_path_and_in_exec() {
    if !ready("oci security") || !test_support::sandbox::require_root() {
        return;
    }
    let rt = Runtime::bootlab();
    let f = Fixture::new("oci-sec");
    let root = f.root();
    // CVE-2019-5736: the runtime's binary as the workload is refused by create.
    let evil = probe_bundle(&f, "evil", &["/proc/self/exe", "--version"]);
    let o = rt.out(
        &root,
        &["create", "--bundle", evil.to_str().unwrap(), "evil"],
    );
    assert_refused(&rt, &o, "the runtime as workload", "runtime's own binary");
    assert!(!root.join("evil").exists());
    // A created container's init waits on the exec FIFO as the runtime's binary:
    // a process exec'd next to it cannot open that binary through /proc/1/exe
    // (the init is non-dumpable), for writing, reading or as a path.
    let b = probe_bundle(
        &f,
        "idle",
        &["/bin/sh", "-c", "while :; do sleep 0.05; done"],
    );
    let id = format!("sec-{}", std::process::id());
    create(&rt, &f, &b, &id, &[]);
    let ops = [
        "open:/proc/1/exe:w",
        "open:/proc/1/exe:r",
        "open:/proc/1/exe:path",
    ];
    let o = rt.out(
        &root,
        &[&["exec", &id, "probe", "attack"][..], &ops].concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let got: Vec<String> = text(&o.stdout).lines().map(str::to_owned).collect();
    for op in ops {
        assert!(
            got.contains(&format!("{op}=EACCES")),
            "{op}: {got:?} (the init before start)"
        );
    }
    // exec of the runtime's binary is refused like create's (255: exec's own
    // failure).
    let o = rt.out(&root, &["exec", &id, "/proc/self/exe", "--version"]);
    assert_refused_with(&rt, &o, 255, "exec of the runtime", "runtime's own binary");
    // CVE-2024-21626: no descriptor of the runtime is open when the exec'd process
    // changes to its working directory.
    for fd in 3..8 {
        let cwd = format!("/proc/self/fd/{fd}");
        let o = rt.out(&root, &["exec", "--cwd", &cwd, &id, "/bin/true"]);
        // Refused because nothing is open there (ENOENT), not for another reason.
        assert_refused_with(&rt, &o, 255, &format!("--cwd {cwd}"), "ENOENT");
    }
    assert!(rt.out(&root, &["start", &id]).status.success());
    assert!(rt.out(&root, &["delete", "--force", &id]).status.success());
}

/// Live (non-zombie) processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
                && alive(p.parse().unwrap_or(0))
        })
        .collect()
}

#[test]
fn a_create_killed_at_any_moment_leaves_what_delete_force_removes() {
    if !ready("oci create killed") {
        return;
    }
    let rt = Runtime::bootlab();
    let f = Fixture::new("oci-killed");
    let me = std::process::id();
    for i in 0..24u64 {
        let id = format!("killed-{i}-{me}");
        // The ID in the workload's arguments too: its processes are found by it
        // before and after the execve.
        let b = f.bundle(&id, &["/bin/sh", "-c", "while :; do sleep 0.05; done", &id]);
        let mut child = rt
            .cmd(&f.root(), &["create", "--bundle"])
            .arg(&b)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From right after the spawn to past the end of a create (15-30 ms here):
        // before the folder, before the cgroup is recorded (seen: the cgroup then
        // is found by its name), while the init sets up, and after.
        std::thread::sleep(Duration::from_micros(i * 2000));
        let _ = child.kill();
        let _ = child.wait();
        if f.root().join(&id).exists() {
            let o = rt.out(&f.root(), &["delete", "--force", &id]);
            assert!(o.status.success(), "{id}: {}", text(&o.stderr));
        }
        assert!(!f.root().join(&id).exists(), "{id}: state left");
        assert_eq!(
            cgroups_named(&id),
            Vec::<PathBuf>::new(),
            "{id}: cgroup left"
        );
        let t = Instant::now();
        while !processes_with(&id).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{id}: processes left: {:?}",
                processes_with(&id)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_second_runtime_on_the_same_container_waits_for_the_first() {
    if !ready("oci lock") {
        return;
    }
    let rt = Runtime::bootlab();
    let f = Fixture::new("oci-lock");
    let b = f.bundle("idle", &["/bin/sh", "-c", "while :; do sleep 0.05; done"]);
    let id = format!("lock-{}", std::process::id());
    create(&rt, &f, &b, &id, &[]);
    // Hold the container's lock as a runtime in the middle of a command would.
    let dir = File::open(f.root().join(&id)).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(fd, libc::LOCK_EX) }, 0);
    let mut waiting = rt
        .cmd(&f.root(), &["kill", &id, "KILL"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "kill did not wait for the lock"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::flock(fd, libc::LOCK_UN) }, 0);
    assert!(waiting.wait().unwrap().success());
    wait_status(&rt, &f.root(), &id, "stopped");
    assert!(rt.out(&f.root(), &["delete", &id]).status.success());
}

/// `run --preserve-fds N` (N given or not) with a pipe's write end as fd 3; returns
/// the exit status and what arrived on the pipe.
fn run_with_fd3(
    rt: &Runtime,
    f: &Fixture,
    bundle: &Path,
    id: &str,
    preserve: &[&str],
) -> (i32, String) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let (r, w) = nix::unistd::pipe().unwrap();
    let w_raw = std::os::fd::AsRawFd::as_raw_fd(&w);
    let mut cmd = rt.cmd(&f.root(), &["run"]);
    cmd.args(preserve).arg("--bundle").arg(bundle).arg(id);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only dup2 between fork and exec (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w_raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(w);
    let mut got = String::new();
    File::from(r).read_to_string(&mut got).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, got)
}

#[test]
fn preserve_fds_passes_the_callers_descriptors_on_and_only_those() {
    if !ready("oci preserve-fds") {
        return;
    }
    let mut runtimes = vec![Runtime::bootlab()];
    runtimes.extend(Runtime::runc());
    for rt in &runtimes {
        let f = Fixture::new("oci-fds");
        let b = f.bundle("fd3", &["/bin/sh", "-c", "echo via-fd3 >&3"]);
        let me = std::process::id();
        let (code, got) = run_with_fd3(rt, &f, &b, &format!("fds1-{me}"), &["--preserve-fds", "1"]);
        assert_eq!((code, got.as_str()), (0, "via-fd3\n"), "{}", rt.name);
        // Without it the workload finds no fd 3 (and the pipe gets nothing).
        let (code, got) = run_with_fd3(rt, &f, &b, &format!("fds0-{me}"), &[]);
        assert!(code != 0 && got.is_empty(), "{}: {code} {got:?}", rt.name);
    }
}

#[test]
fn state_is_root_only_and_never_read_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    if !ready("oci state files") {
        return;
    }
    let rt = Runtime::bootlab();
    let f = Fixture::new("oci-state");
    let root = f.root();
    let b = f.bundle("idle", &["/bin/sh", "-c", "while :; do sleep 0.05; done"]);
    let id = format!("st-{}", std::process::id());
    create(&rt, &f, &b, &id, &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join(&id)), 0o700);
    assert_eq!(mode(&root.join(&id).join("state.json")), 0o600);
    // A container folder that is a symlink (to the real one) is not followed.
    let link = format!("{id}-link");
    std::os::unix::fs::symlink(root.join(&id), root.join(&link)).unwrap();
    let o = rt.out(&root, &["state", &link]);
    assert_refused(&rt, &o, "a symlinked container folder", &link);
    std::fs::remove_file(root.join(&link)).unwrap();
    // Nor is a state.json that is a symlink.
    let real = root.join(&id).join("state.json");
    let moved = f.file("state.json.real");
    std::fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &real).unwrap();
    let o = rt.out(&root, &["state", &id]);
    assert_refused(&rt, &o, "a symlinked state.json", "state.json");
    std::fs::remove_file(&real).unwrap();
    std::fs::rename(&moved, &real).unwrap();
    assert!(rt.out(&root, &["delete", "--force", &id]).status.success());
}

#[test]
fn mount_pivot_root_chroot_and_file_handles_fail_in_a_container_made_by_create_and_start() {
    if !ready("oci escape") || !test_support::sandbox::require_root() {
        return;
    }
    // The attacks of tests/sandbox_escape.rs's mount test, through the lifecycle
    // (`run` = create + start) with a bundle that carries no seccomp profile: our
    // default filter answers first (EPERM), as for `sandbox run`.
    let ops = test_support::sandbox::MOUNT_ESCAPES;
    let rt = Runtime::bootlab();
    let f = Fixture::new("oci-escape");
    let args: Vec<&str> = ["probe", "attack"].into_iter().chain(ops).collect();
    let b = probe_bundle(&f, "attack", &args);
    let o = rt
        .cmd(&f.root(), &["run", "--bundle"])
        .arg(&b)
        .arg(format!("escape-{}", std::process::id()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let got = text(&o.stdout);
    for op in ops {
        assert!(
            got.lines().any(|l| l == format!("{op}=EPERM")),
            "{op}: {got}"
        );
    }
}
