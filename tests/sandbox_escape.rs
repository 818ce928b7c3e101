//! A hostile workload against `bootlab sandbox run`: escape attempts that must fail,
//! one test each, through the real binary: the runtime binary through
//! `/proc/self/exe` (also as a `#!` interpreter) and `/proc/PID/exe`; mount, umount,
//! pivot_root, chroot, file handles (shocker); host devices (mknod, /dev/mem,
//! /dev/kmsg, /dev/kvm, the host disk) and device nodes shipped in the image; host
//! sysctls (`core_pattern`) and kernel memory; ptrace, kill, setns of a host process;
//! the host's environment; descriptors of the runtime or its caller, also as the
//! working directory (CVE-2024-21626) or a host process's `/proc/PID/cwd`; a new user
//! namespace; seccomp through the i386 ABI; a recursive fork bomb; filling /tmp and
//! /dev; outliving the runtime's SIGKILL (at rest, across a uid change, without a PID
//! namespace, at any moment of the start).
//!
//! Each attempt is made by the static `probe` (its `attack` mode prints
//! `OP=OK|ERRNO` per attempt, see `container/tests/probe/probe.rs`) or by busybox,
//! and the test checks that the attempt was really made and failed for the expected
//! reason (the errno), not only that nothing happened.
//!
//! The runtime is a COPY of the bootlab binary in a temp dir, so an attack on it that
//! succeeded could not damage the build; the tests that aim at it compare it with the
//! original afterwards. The plain pids and memory limits are covered in
//! `tests/sandbox_cli.rs` (`pids_limit_stops_a_fork_bomb`,
//! `memory_limit_oom_kills_and_is_reported`). Needs root: without it every test
//! prints `SKIP: ...` (or fails with `BOOTLAB_REQUIRE_KVM=1` /
//! `BOOTLAB_REQUIRE_ROOT=1`).

use test_support::sandbox as support;

mod common;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{require_root, rootfs};

/// This test process's scratch directory (stale ones of dead test processes go).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("sandbox-escape-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let d = base.join(format!("sandbox-escape-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// The copy of the bootlab binary that the tests run as the runtime.
fn runtime() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let p = scratch().join("bootlab-runtime");
        support::copy_executable(Path::new(env!("CARGO_BIN_EXE_bootlab")), &p);
        p
    })
}

/// Asserts the runtime copy is byte for byte the built binary.
fn assert_runtime_intact() {
    let orig = std::fs::read(env!("CARGO_BIN_EXE_bootlab")).unwrap();
    let copy = std::fs::read(runtime()).unwrap();
    assert!(orig == copy, "the runtime binary was modified");
}

fn bootlab() -> Command {
    let mut c = Command::new(runtime());
    c.env_remove("BOOTLAB_SPAWN_NS");
    c
}

/// `bootlab sandbox run --rootfs ROOT EXTRA -- CMD` (not yet spawned).
fn sandbox_cmd(root: &Path, extra: &[&str], cmd: &[&str]) -> Command {
    let mut c = bootlab();
    c.args(["sandbox", "run", "--rootfs"])
        .arg(root)
        .args(extra)
        .arg("--")
        .args(cmd);
    c
}

fn run(root: &Path, extra: &[&str], cmd: &[&str]) -> Output {
    sandbox_cmd(root, extra, cmd).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `probe attack OPS` (stdin: `stdin_line`, for `{pid}`) and returns the
/// `OP -> result` lines, asserting the probe ran through (exit 0).
fn attack(extra: &[&str], stdin_line: &str, ops: &[&str]) -> BTreeMap<String, String> {
    let mut child = sandbox_cmd(rootfs(), extra, &[&["probe", "attack"][..], ops].concat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "{stdin_line}");
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    results(&stdout(&o))
}

fn results(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.rsplit_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Asserts every `(op, errno)` of `want` was attempted and failed with that errno.
fn assert_failed(got: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    for (op, errno) in want {
        assert_eq!(
            got.get(*op).map(String::as_str),
            Some(*errno),
            "{op}: all results: {got:?}"
        );
    }
}

/// A copy of the test rootfs with `files` (path below the root, content, mode) added.
fn hostile_rootfs(tag: &str, files: &[(&str, &str, u32)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch().join(format!("rootfs-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&d)
        .status()
        .unwrap();
    assert!(st.success());
    for (path, content, mode) in files {
        let p = d.join(path.trim_start_matches('/'));
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    d
}

/// Asserts a run refused with exit 1 and one `bootlab: error:` line containing
/// `needle`.
fn assert_one_line_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("bootlab: error: "), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
}

const RUNTIME_EXE_ERROR: &str = "the workload resolved to the runtime's own binary";

#[test]
fn runtime_binary_through_proc_self_exe_is_refused() {
    if !require_root() {
        return;
    }
    // CVE-2019-5736: the workload is the runtime itself, directly, as a script's
    // interpreter, or two scripts deep. Were it run, `--version` would print
    // `bootlab ...` from inside the sandbox.
    let root = hostile_rootfs(
        "self-exe",
        &[
            ("/bin/evil", "#!/proc/self/exe --version\n", 0o755),
            ("/bin/evil2", "#! /bin/evil\n", 0o755),
        ],
    );
    for extra in [&[][..], &["--no-pid"][..], &["--pids", "8"][..]] {
        for cmd in [&["/proc/self/exe", "--version"][..], &["evil"], &["evil2"]] {
            let o = run(&root, extra, cmd);
            assert_one_line_error(&o, RUNTIME_EXE_ERROR);
            assert_eq!(stdout(&o), "", "{extra:?} {cmd:?}");
        }
    }
    // The same script with a harmless interpreter runs: the refusal is about the
    // runtime binary, not about scripts.
    let root2 = hostile_rootfs(
        "self-exe-ok",
        &[("/bin/ok", "#!/bin/sh\necho ran\n", 0o755)],
    );
    let o = run(&root2, &[], &["ok"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "ran");
    assert_runtime_intact();
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(root2);
}

#[test]
fn runtime_binary_through_proc_pid_exe_is_unreachable() {
    if !require_root() {
        return;
    }
    let ops = [
        "open:/proc/{pid}/exe:w",
        "open:/proc/{pid}/exe:r",
        "open:/proc/{pid}/exe:path",
    ];
    // A neighbour sandbox's runtime, alive while the attacks run (and killed, with
    // its sandbox, if an assertion fails first).
    let mut guard = KillOnDrop(
        sandbox_cmd(rootfs(), &[], &["sh", "-c", "echo up; read x; exit 0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let neighbour = &mut guard.0;
    let mut line = String::new();
    BufReader::new(neighbour.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up");
    let npid = neighbour.id().to_string();
    // In its own PID namespace the workload cannot even name a runtime.
    let got = attack(&[], &npid, &ops);
    let want: Vec<(String, &str)> = ops
        .iter()
        .map(|o| (o.replace("{pid}", &npid), "ENOENT"))
        .collect();
    let want_ref: Vec<(&str, &str)> = want.iter().map(|(o, e)| (o.as_str(), *e)).collect();
    assert_failed(&got, &want_ref);
    // Sharing the host's PID namespace it can name them, but both its own runtime
    // and the neighbour's are non-dumpable and hold capabilities it lacks: EACCES.
    for target in ["{ppid}", "{pid}"] {
        let ops: Vec<String> = ops.iter().map(|o| o.replace("{pid}", target)).collect();
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        let got = attack(&["--no-pid"], &npid, &ops);
        assert_eq!(got.len(), ops.len(), "{got:?}");
        for (op, res) in &got {
            assert_eq!(res, "EACCES", "{op}: {got:?}");
        }
    }
    drop(neighbour.stdin.take());
    assert_eq!(neighbour.wait().unwrap().code(), Some(0));
    assert_runtime_intact();
}

#[test]
fn mount_umount_pivot_root_chroot_and_file_handles_fail() {
    if !require_root() {
        return;
    }
    let ops = test_support::sandbox::MOUNT_ESCAPES;
    // Seccomp answers first (EPERM); without the user namespace the bounding set has
    // no CAP_SYS_ADMIN either; with it (`--unshare all`) the same.
    for extra in [&[][..], &["--unshare", "all"][..]] {
        let got = attack(extra, "", &ops);
        let want: Vec<(&str, &str)> = ops.iter().map(|o| (*o, "EPERM")).collect();
        assert_failed(&got, &want);
    }
    // The same with the tools an attacker would use, and the mounts are unchanged.
    let o = run(
        rootfs(),
        &[],
        &[
            "sh",
            "-c",
            "before=$(cat /proc/self/mountinfo | wc -l); \
             mount -t tmpfs none /tmp; echo mount=$?; \
             umount -l /proc; echo umount=$?; \
             cd / && pivot_root . .; echo pivot_root=$?; \
             echo same=$(test \"$(cat /proc/self/mountinfo | wc -l)\" = \"$before\" && echo yes)",
        ],
    );
    let out = stdout(&o);
    let err = stderr(&o);
    for step in ["mount=", "umount=", "pivot_root="] {
        let code = out
            .lines()
            .find_map(|l| l.strip_prefix(step))
            .unwrap_or_else(|| panic!("no {step} in {out}"));
        assert_ne!(code, "0", "{step}: {out}");
    }
    assert!(out.contains("same=yes"), "{out}");
    // busybox words mount(2)'s EPERM as "permission denied".
    assert!(err.contains("mount: permission denied"), "{err}");
    assert!(err.matches("Operation not permitted").count() >= 2, "{err}");
}

/// (major, minor) of the block device holding the host's root filesystem.
fn host_root_disk() -> (u64, u64) {
    let dev = std::fs::metadata("/").unwrap().dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

#[test]
fn host_devices_cannot_be_opened_or_made() {
    if !require_root() {
        return;
    }
    let (maj, min) = host_root_disk();
    let disk_tmp = format!("mknod:/tmp/disk:b:{maj}:{min}");
    let disk_dev = format!("mknod:/dev/disk:b:{maj}:{min}");
    let ops = [
        disk_tmp.as_str(),
        disk_dev.as_str(),
        "mknod:/tmp/mem:c:1:1",
        "mknod:/tmp/kmsg:c:1:11",
        "mknod:/tmp/kvm:c:10:232",
        "open:/dev/mem:r",
        "open:/dev/kmsg:r",
        "open:/dev/kvm:r",
        "open:/dev/vda:r",
        "open:/dev/sda:r",
        "open:/proc/kmsg:r",
        "open:/sys/block:r",
    ];
    let got = attack(&[], "", &ops);
    assert_failed(
        &got,
        &[
            // No CAP_MKNOD in the default set.
            (disk_tmp.as_str(), "EPERM"),
            (disk_dev.as_str(), "EPERM"),
            ("mknod:/tmp/mem:c:1:1", "EPERM"),
            ("mknod:/tmp/kmsg:c:1:11", "EPERM"),
            ("mknod:/tmp/kvm:c:10:232", "EPERM"),
            // The minimal /dev has none of them, /sys is not mounted.
            ("open:/dev/mem:r", "ENOENT"),
            ("open:/dev/kmsg:r", "ENOENT"),
            ("open:/dev/kvm:r", "ENOENT"),
            ("open:/dev/vda:r", "ENOENT"),
            ("open:/dev/sda:r", "ENOENT"),
            ("open:/sys/block:r", "ENOENT"),
            // The kernel log through procfs needs CAP_SYSLOG.
            ("open:/proc/kmsg:r", "EPERM"),
        ],
    );
    // The devices the sandbox does have work (the probe really opens things).
    let got = attack(&[], "", &["open:/dev/null:w", "open:/dev/urandom:r"]);
    assert_failed(
        &got,
        &[("open:/dev/null:w", "OK"), ("open:/dev/urandom:r", "OK")],
    );
}

#[test]
fn device_nodes_shipped_in_the_rootfs_open_nothing() {
    if !require_root() {
        return;
    }
    // An untrusted image may carry device nodes made on the host: its disk,
    // /dev/kvm, /dev/kmsg (writable without any capability). The root is `nodev`.
    let root = hostile_rootfs("devnodes", &[]);
    let (maj, min) = host_root_disk();
    for (name, kind, maj, min) in [
        ("disk", "b", maj, min),
        ("kvm", "c", 10, 232),
        ("kmsg", "c", 1, 11),
        ("null", "c", 1, 3),
    ] {
        let st = Command::new("mknod")
            .arg(root.join("bin").join(name))
            .args([kind, &maj.to_string(), &min.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "mknod {name}");
    }
    let ops = [
        "open:/bin/disk:r",
        "open:/bin/kvm:w",
        "open:/bin/kmsg:w",
        "open:/bin/null:w",
        "open:/dev/null:w",
    ];
    for extra in [&[][..], &["--rw"][..]] {
        let o = sandbox_cmd(&root, extra, &[&["probe", "attack"][..], &ops].concat())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let got = results(&stdout(&o));
        assert_failed(
            &got,
            &[
                ("open:/bin/disk:r", "EACCES"),
                ("open:/bin/kvm:w", "EACCES"),
                ("open:/bin/kmsg:w", "EACCES"),
                ("open:/bin/null:w", "EACCES"),
                // The sandbox's own /dev works: the probe really opens devices.
                ("open:/dev/null:w", "OK"),
            ],
        );
    }
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn host_kernel_settings_are_read_only_and_kernel_memory_hidden() {
    if !require_root() {
        return;
    }
    let host_core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    // A writable core_pattern is a host root shell (`|/proc/%P/root/evil`).
    let ops = [
        "open:/proc/sys/kernel/core_pattern:r",
        "open:/proc/sys/kernel/core_pattern:w",
        "open:/proc/sys/kernel/modprobe:w",
        "open:/proc/sys/vm/drop_caches:w",
        "open:/proc/sysrq-trigger:w",
    ];
    let got = attack(&[], "", &ops);
    assert_failed(&got, &[("open:/proc/sys/kernel/core_pattern:r", "OK")]);
    // The files this kernel has are read-only (it may lack modules or sysrq).
    for op in &ops[1..] {
        let path = op.split(':').nth(1).unwrap();
        let want = if Path::new(path).exists() {
            "EROFS"
        } else {
            "ENOENT"
        };
        assert_failed(&got, &[(op, want)]);
    }
    let o = run(
        rootfs(),
        &[],
        &[
            "sh",
            "-c",
            "echo '|/proc/%P/root/tmp/x' > /proc/sys/kernel/core_pattern; echo w=$?; \
             for f in kcore keys timer_list sched_debug; do \
               [ -e /proc/$f ] && echo $f=$(head -c 64 /proc/$f | wc -c); done; true",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("w=1"), "{out}");
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    // Whatever the host has of these is masked: empty.
    for l in out.lines().filter(|l| !l.starts_with("w=")) {
        assert!(l.ends_with("=0"), "{l} not masked: {out}");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        host_core
    );
}

/// A child process killed and reaped when the guard goes (a failed assertion must
/// not leave it running).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A host process for the attacks: `sleep 60`, killed on drop.
struct HostSleep {
    sleep: KillOnDrop,
}

impl HostSleep {
    fn start() -> HostSleep {
        HostSleep {
            sleep: KillOnDrop(Command::new("sleep").arg("60").spawn().unwrap()),
        }
    }
    fn pid(&self) -> String {
        self.sleep.0.id().to_string()
    }
    fn alive(&mut self) -> bool {
        self.sleep.0.try_wait().unwrap().is_none()
    }
}

#[test]
fn host_process_cannot_be_ptraced_or_killed() {
    if !require_root() {
        return;
    }
    let mut victim = HostSleep::start();
    let pid = victim.pid();
    let ops = [
        "kill:{pid}:9",
        "kill:{pid}:0",
        "ptrace:{pid}",
        "pidfd:{pid}",
        "open:/proc/{pid}/mem:r",
        "setns:/proc/{pid}/ns/mnt",
    ];
    let got = attack(&[], &pid, &ops);
    let p = |o: &str| o.replace("{pid}", &pid);
    let want = [
        // The host's processes do not exist in the sandbox's PID namespace.
        (p(ops[0]), "ESRCH"),
        (p(ops[1]), "ESRCH"),
        // ptrace is denied by seccomp before the pid is even looked up.
        (p(ops[2]), "EPERM"),
        (p(ops[3]), "ESRCH"),
        (p(ops[4]), "ENOENT"),
        (p(ops[5]), "ENOENT"),
    ];
    let want_ref: Vec<(&str, &str)> = want.iter().map(|(o, e)| (o.as_str(), *e)).collect();
    assert_failed(&got, &want_ref);
    // Sharing the host's PID namespace (`--no-pid`, which also shares its signals by
    // design): ptrace and its cousins are still denied, /proc/PID/mem is EACCES.
    let got = attack(
        &["--no-pid"],
        &pid,
        &[
            "ptrace:{pid}",
            "open:/proc/{pid}/mem:r",
            "setns:/proc/{pid}/ns/mnt",
        ],
    );
    assert_failed(
        &got,
        &[
            (&p("ptrace:{pid}"), "EPERM"),
            (&p("open:/proc/{pid}/mem:r"), "EACCES"),
            (&p("setns:/proc/{pid}/ns/mnt"), "EACCES"),
        ],
    );
    assert!(victim.alive(), "the host process was killed");
}

#[test]
fn host_environment_is_not_visible() {
    if !require_root() {
        return;
    }
    let secret = format!("s3cret-{}-{:?}", std::process::id(), Instant::now());
    let script = "cat /proc/1/environ | tr '\\0' '\\n'; echo; \
                  cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; env";
    for extra in [&[][..], &["--no-pid"][..]] {
        let o = sandbox_cmd(rootfs(), extra, &["sh", "-c", script])
            .env("BOOTLAB_ESCAPE_SECRET", &secret)
            .output()
            .unwrap();
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(
            !out.contains(&secret) && !err.contains(&secret),
            "{extra:?}"
        );
        // The reads were made: the sandbox's own environment is there.
        assert!(out.contains("PATH="), "{extra:?}: {out}");
    }
    // In the sandbox's PID namespace /proc/1 is the workload itself; sharing the
    // host's, /proc/1 is the host's init and the parent is the runtime: EACCES.
    let got = attack(
        &["--no-pid"],
        "",
        &["open:/proc/1/environ:r", "open:/proc/{ppid}/environ:r"],
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.values().all(|v| v == "EACCES"), "{got:?}");
    let got = attack(&[], "", &["open:/proc/1/environ:r"]);
    assert_failed(&got, &[("open:/proc/1/environ:r", "OK")]);
}

#[test]
fn new_user_namespace_does_not_regain_capabilities() {
    if !require_root() {
        return;
    }
    let ops = ["unshare-user", "clone-user", "clone3"];
    for extra in [&[][..], &["--unshare", "all"][..]] {
        let got = attack(extra, "", &ops);
        // clone3's flags live in memory seccomp cannot read: it is ENOSYS, so libc
        // falls back to clone, whose CLONE_NEWUSER is EPERM.
        assert_failed(
            &got,
            &[
                ("unshare-user", "EPERM"),
                ("clone-user", "EPERM"),
                ("clone3", "ENOSYS"),
            ],
        );
        assert!(
            !got.contains_key("unshare-user-then-mount")
                && !got.contains_key("clone-user-then-mount"),
            "{got:?}"
        );
    }
    // busybox's unshare, as an attacker would try it.
    let o = run(rootfs(), &[], &["unshare", "-U", "-r", "id"]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            c.contains(marker)
                .then(|| format!("{}: {c}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// Waits up to `limit` for `f` to hold.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// The cgroup directories named `bootlab-<pid>-*` in every hierarchy.
fn cgroup_dirs_of(pid: u32) -> Vec<PathBuf> {
    support::cgroup_dirs_of(Path::new("/sys/fs/cgroup"), pid)
}

/// A unique marker of this test process (digits only: it is also a `sleep` time).
fn marker(variant: u32) -> String {
    format!("99{}{variant}", std::process::id())
}

#[test]
fn recursive_fork_bomb_is_held_at_the_pids_limit_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let m = marker(0);
    let child = sandbox_cmd(
        rootfs(),
        &["--pids", "16", "--timeout", "3"],
        &["probe", "forkbomb", &m],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let rt = child.id();
    let mut dirs = Vec::new();
    assert!(
        eventually(Duration::from_secs(2), || {
            dirs = cgroup_dirs_of(rt);
            dirs.iter().any(|d| d.join("pids.max").exists())
        }),
        "no pids cgroup for the runtime"
    );
    let pids = dirs
        .iter()
        .find(|d| d.join("pids.max").exists())
        .unwrap()
        .clone();
    // Sample the bomb while it runs: it reaches the limit and never passes it.
    let mut max = 0u64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        if let Ok(s) = std::fs::read_to_string(pids.join("pids.current")) {
            max = max.max(s.trim().parse().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let events = std::fs::read_to_string(pids.join("pids.events")).unwrap_or_default();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("timeout"), "{}", stderr(&o));
    assert_eq!(max, 16, "pids.current peaked at {max}");
    let refused: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(refused > 0, "no fork was refused: {events}");
    assert!(processes_with(&m).is_empty(), "{:?}", processes_with(&m));
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// What a live sandbox is made of, as seen from the host.
struct Live {
    runtime: Child,
    netns: String,
    cgroups: Vec<PathBuf>,
    host_pids: Vec<i32>,
}

/// Starts `cmd` (a runtime whose workload prints its network namespace, then
/// `ready`) and collects what it is made of.
fn start_live(mut cmd: Command) -> Live {
    let mut runtime = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(runtime.stdout.take().unwrap());
    let (mut netns, mut ready) = (String::new(), String::new());
    out.read_line(&mut netns).unwrap();
    out.read_line(&mut ready).unwrap();
    assert!(netns.starts_with("net:["), "{netns}");
    assert_eq!(ready.trim(), "ready");
    let cgroups = cgroup_dirs_of(runtime.id());
    let host_pids = container::cgroups::pids_in(&cgroups);
    Live {
        runtime,
        netns: netns.trim().to_owned(),
        cgroups,
        host_pids,
    }
}

/// Any process in the network namespace `ns` whose command line has `marker`.
fn netns_holders(ns: &str, marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path().join("ns/net"))
                .map(|l| l.display().to_string() == ns)
                .unwrap_or(false)
        })
        .filter_map(|e| {
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            c.contains(marker).then_some(c)
        })
        .collect()
}

/// SIGKILLs the runtime of `live` and checks the sandbox dies with it: every process
/// (by marker and by the host pids its cgroups held), its network namespace, its
/// mounts (none ever visible on the host), and its cgroups: killed at once when
/// `pid_namespace`, and all removed by the next run that creates a cgroup.
fn kill_runtime_and_check(mut live: Live, marker: &str, pid_namespace: bool) {
    assert!(
        !processes_with(marker).is_empty(),
        "the workload is not seen"
    );
    live.runtime.kill().unwrap();
    let _ = live.runtime.wait();
    // Dead: gone, or a zombie waiting for the host's init to reap it (it was
    // reparented there and holds nothing but its pid).
    let dead = |p: &i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| {
                let state = s.rsplit_once(')').map(|(_, r)| r.trim_start());
                matches!(state.and_then(|r| r.chars().next()), Some('Z' | 'X'))
            })
            .unwrap_or(true)
    };
    let gone = |pids: &[i32]| eventually(Duration::from_secs(5), || pids.iter().all(dead));
    if pid_namespace {
        assert!(
            eventually(Duration::from_secs(5), || processes_with(marker).is_empty()),
            "still running after the runtime's SIGKILL: {:?}",
            processes_with(marker)
        );
        assert!(gone(&live.host_pids), "{:?}", live.host_pids);
        assert!(netns_holders(&live.netns, marker).is_empty());
        for d in &live.cgroups {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            assert_eq!(procs.trim(), "", "{} still has tasks", d.display());
        }
    }
    let root = rootfs().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&root), "{mounts}");
    // The next run with a cgroup sweeps what the killed runtime left.
    let o = run(rootfs(), &["--pids", "8"], &["true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for d in &live.cgroups {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert!(
        eventually(Duration::from_secs(5), || processes_with(marker).is_empty()),
        "{:?}",
        processes_with(marker)
    );
    assert!(gone(&live.host_pids), "{:?}", live.host_pids);
    assert!(netns_holders(&live.netns, marker).is_empty());
}

/// The workload: two background sleeps (their time is the marker), then `ready`.
fn sleeper_script(m: &str) -> String {
    format!("sleep {m} & sleep {m} & readlink /proc/self/ns/net; echo ready; wait")
}

#[test]
fn sigkilled_runtime_takes_the_sandbox_and_its_cgroups_with_it() {
    if !require_root() {
        return;
    }
    // With limits (cgroups) and without (nothing but the PID namespace).
    for (v, extra) in [
        (
            1,
            &["--memory", "64M", "--pids", "32", "--timeout", "60"][..],
        ),
        (2, &[][..]),
    ] {
        let m = marker(v);
        let live = start_live(sandbox_cmd(
            rootfs(),
            extra,
            &["sh", "-c", &sleeper_script(&m)],
        ));
        if v == 1 {
            assert!(!live.cgroups.is_empty() && live.host_pids.len() >= 3);
        }
        kill_runtime_and_check(live, &m, true);
    }
}

#[test]
fn sigkilled_runtime_takes_a_sandbox_of_another_user_with_it() {
    if !require_root() {
        return;
    }
    // The workload runs as uid 1000: the uid change clears the parent-death signal,
    // so the runtime must arm it again.
    let m = marker(3);
    let dir = scratch().join("bundle-user");
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 1000, "gid": 1000},
            "args": ["sh", "-c", sleeper_script(&m)], "env": ["PATH=/bin"], "cwd": "/"},
        "root": {"path": rootfs(), "readonly": true},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}],
            "resources": {"pids": {"limit": 32}}}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut cmd = bootlab();
    cmd.args(["sandbox", "run", "--bundle"]).arg(&dir);
    let live = start_live(cmd);
    assert!(
        !live.cgroups.is_empty(),
        "the bundle's pids limit made no cgroup"
    );
    kill_runtime_and_check(live, &m, true);
}

#[test]
fn sigkilled_runtime_without_pid_namespace_leaves_nothing_after_the_sweep() {
    if !require_root() {
        return;
    }
    // Only the workload gets the parent-death signal; its children are in the
    // cgroup, which the next run kills and removes.
    let m = marker(4);
    let live = start_live(sandbox_cmd(
        rootfs(),
        &["--no-pid", "--pids", "32"],
        &["sh", "-c", &sleeper_script(&m)],
    ));
    assert!(live.host_pids.len() >= 3, "{:?}", live.host_pids);
    kill_runtime_and_check(live, &m, false);
}

#[test]
fn no_descriptor_of_the_runtime_or_its_caller_reaches_the_workload() {
    if !require_root() {
        return;
    }
    // The caller leaves descriptors 7 (a host file) and 8 (a host directory) open;
    // the runtime has its own (pipes). The workload sees 0, 1, 2 only.
    let script = format!(
        "exec 7</etc/hostname 8</; exec '{}' sandbox run --rootfs '{}' -- \
         sh -c 'ls /proc/$$/fd; ls /proc/$$/fd/7 /proc/$$/fd/8'",
        runtime().display(),
        rootfs().display()
    );
    let o = Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let fds: Vec<String> = stdout(&o).split_whitespace().map(String::from).collect();
    assert_eq!(fds, ["0", "1", "2"], "{}", stderr(&o));
    assert!(stderr(&o).contains("No such file"), "{}", stderr(&o));
}

#[test]
fn sigkill_at_any_moment_of_the_start_leaves_nothing() {
    if !require_root() {
        return;
    }
    // The runtime is killed at spread moments of its start: before the clone, while
    // the child sets up (the parent-death signal not yet armed, or cleared by the uid
    // change of an OCI `process.user`), right after the execve. Nothing may survive.
    let m = marker(5);
    let dir = scratch().join("bundle-any-moment");
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 1000, "gid": 1000},
            "args": ["sleep", m], "env": ["PATH=/bin"], "cwd": "/"},
        "root": {"path": rootfs(), "readonly": true},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}],
            "resources": {"pids": {"limit": 8}}}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    // Spread the kill over the start of a run, measured once.
    let t = Instant::now();
    assert_eq!(
        run(rootfs(), &["--pids", "8"], &["true"]).status.code(),
        Some(0)
    );
    let start = t.elapsed();
    let mut runtimes = Vec::new();
    const RUNS: u32 = 24;
    for i in 0..RUNS {
        let mut cmd = if i % 2 == 0 {
            sandbox_cmd(rootfs(), &["--pids", "8"], &["sleep", &m])
        } else {
            let mut c = bootlab();
            c.args(["sandbox", "run", "--bundle"]).arg(&dir);
            c
        };
        let mut child = cmd.stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(start * (i / 2) / (RUNS / 2));
        runtimes.push(child.id());
        child.kill().unwrap();
        let _ = child.wait();
    }
    assert!(
        eventually(Duration::from_secs(5), || processes_with(&m).is_empty()),
        "survived their runtime: {:?}",
        processes_with(&m)
    );
    let o = run(rootfs(), &["--pids", "8"], &["true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for pid in runtimes {
        assert_eq!(cgroup_dirs_of(pid), Vec::<PathBuf>::new());
    }
}

#[test]
fn seccomp_is_not_bypassed_through_the_i386_abi() {
    if !require_root() {
        return;
    }
    // i386 keyctl (288) is x86-64 accept4, i386 unshare (310) is x86-64
    // process_vm_readv, i386 getpid (20) is x86-64 getpid... a filter that looked at
    // the number only would judge the wrong call. keyctl needs no capability: only
    // the filter's architecture check stops it.
    let ops = ["i386:288:0:-3:0", "i386:310:268435456:0:0", "i386:20:0:0:0"];
    let got = attack(&[], "", &ops);
    let want: Vec<(&str, &str)> = ops.iter().map(|o| (*o, "EPERM")).collect();
    assert_failed(&got, &want);
    // Outside the sandbox the same probe's calls go through (the kernel has the
    // i386 ABI), so the EPERM above is the filter's.
    let probe = rootfs().join("bin/probe");
    let o = Command::new(&probe)
        .args(["attack", "i386:20:0:0:0"])
        .output()
        .unwrap();
    let host = results(&stdout(&o));
    if host.get("i386:20:0:0:0").map(String::as_str) != Some("OK") {
        test_support::skip(
            "seccomp_is_not_bypassed_through_the_i386_abi",
            &format!("the kernel has no i386 ABI: {host:?}"),
        );
    }
}

#[test]
fn tmp_and_dev_cannot_fill_the_hosts_memory() {
    if !require_root() {
        return;
    }
    // The writable tmpfs mounts live in host memory: they are bounded (64 MiB /tmp,
    // 64 KiB /dev) even without a memory limit.
    let o = run(
        rootfs(),
        &[],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null; \
             echo tmp=$(wc -c < /tmp/fill); \
             dd if=/dev/zero of=/dev/fill bs=1k count=1000 2>/dev/null; \
             echo dev=$(wc -c < /dev/fill)",
        ],
    );
    let out = stdout(&o);
    let size = |k: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {out}"))
    };
    // Filled up to the bound (the attempt was made), never past it.
    assert!((60 << 20..=64 << 20).contains(&size("tmp=")), "{out}");
    assert!((32 << 10..=64 << 10).contains(&size("dev=")), "{out}");
}

/// An OCI bundle over the test rootfs running `ls` in `cwd`, with `namespaces`.
fn ls_bundle(tag: &str, cwd: &str, namespaces: &[&str]) -> PathBuf {
    let dir = scratch().join(format!("bundle-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ns: Vec<serde_json::Value> = namespaces
        .iter()
        .map(|n| serde_json::json!({ "type": n }))
        .collect();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["ls", "-a"],
            "env": ["PATH=/bin"], "cwd": cwd},
        "root": {"path": rootfs(), "readonly": true},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": ns}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn leaked_descriptor_or_magic_link_cwd_cannot_reach_the_host() {
    if !require_root() {
        return;
    }
    // CVE-2024-21626 ("leaky vessels"): the working directory (an image's WORKDIR)
    // through a descriptor the caller leaked, `/proc/self/fd/N`, or through a host
    // process's `/proc/PID/cwd`, would start the workload in the HOST's tree.
    let host_dir = scratch().join("host-secret-dir");
    std::fs::create_dir_all(&host_dir).unwrap();
    let secret = format!("host-only-file-{}", std::process::id());
    std::fs::write(host_dir.join(&secret), "x").unwrap();
    let b = ls_bundle("fd-cwd", "/proc/self/fd/7", &["pid", "mount", "network"]);
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "exec 7<'{}'; exec '{}' sandbox run --bundle '{}'",
            host_dir.display(),
            runtime().display(),
            b.display()
        ))
        .output()
        .unwrap();
    assert!(!stdout(&o).contains(&secret), "{}", stdout(&o));
    assert_one_line_error(&o, "chdir /proc/self/fd/7");
    // The same descriptor as the command's path.
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "exec 7</; exec '{}' sandbox run --rootfs '{}' -- /proc/self/fd/7/bin/ls '/proc/self/fd/7{}'",
            runtime().display(),
            rootfs().display(),
            host_dir.display()
        ))
        .output()
        .unwrap();
    assert!(!stdout(&o).contains(&secret), "{}", stdout(&o));
    assert_one_line_error(&o, "not found");
    // Without a PID namespace, a host process's cwd (the runtime still holds every
    // capability when it changes directory): refused after the chdir.
    let mut host = Command::new("sleep")
        .arg("60")
        .current_dir(&host_dir)
        .spawn()
        .unwrap();
    let b = ls_bundle(
        "pid-cwd",
        &format!("/proc/{}/cwd", host.id()),
        &["mount", "network"],
    );
    let o = bootlab()
        .args(["sandbox", "run", "--bundle"])
        .arg(&b)
        .output()
        .unwrap();
    let _ = host.kill();
    let _ = host.wait();
    assert!(!stdout(&o).contains(&secret), "{}", stdout(&o));
    assert_one_line_error(&o, "outside the sandbox's root");
}
