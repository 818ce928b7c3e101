//! The sandbox library run for real (as root), with controls the CLI cannot switch
//! off: PID 1 only with the PID namespace, EPERM only with the seccomp filter; exit
//! statuses, the timeout and its cgroup removal, typed errors. (The 200-run leak test
//! is `tests/sandbox_leaks.rs` of the root package.)

use test_support::sandbox as support;
use test_support::TempDir;

use container::{Error, ExitStatus, Namespace, SandboxSpec};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests count mounts and cgroups: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn spec(script: &str) -> SandboxSpec {
    let root = support::rootfs().to_path_buf();
    SandboxSpec::new(Some(root), vec!["sh".into(), "-c".into(), script.into()])
}

fn status(s: &SandboxSpec) -> ExitStatus {
    container::run(s).expect("sandbox runs").status
}

#[test]
fn workload_is_pid1_with_own_hostname_and_readonly_root() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = spec(
        r#"[ $$ = 1 ] && [ "$(hostname)" = lib-test ] && ! touch /x 2>/dev/null && touch /tmp/ok"#,
    );
    s.hostname = Some("lib-test".into());
    assert_eq!(status(&s), ExitStatus::Exited(0));
    // Without the PID namespace the shell is not PID 1: the same check fails.
    s.namespaces = s.namespaces.without(Namespace::Pid);
    assert_eq!(status(&s), ExitStatus::Exited(1));
}

/// Runs `probe syscalls` as PID 1 (so its `ptrace` attach targets itself and stops
/// nobody) and returns its report, written to a bind-mounted host directory.
fn probe_report(seccomp: bool) -> String {
    let dir = TempDir::new_in(Some(Path::new(env!("CARGO_TARGET_TMPDIR"))), "probe-out").unwrap();
    let mut s = spec("exec probe syscalls > /out/report");
    s.seccomp = seccomp;
    s.mounts.push(container::Mount {
        destination: "/out".into(),
        fstype: None,
        source: Some(dir.to_path_buf()),
        options: vec!["rbind".into(), "rw".into()],
    });
    s.timeout = Some(Duration::from_secs(20));
    assert_eq!(status(&s), ExitStatus::Exited(0));
    std::fs::read_to_string(dir.join("report")).unwrap()
}

#[test]
fn seccomp_filter_returns_eperm_and_only_because_of_the_filter() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let with = probe_report(true);
    for call in ["keyctl", "kexec_load", "init_module", "bpf", "unshare"] {
        assert!(
            with.lines().any(|l| l == format!("{call}=EPERM")),
            "{call}: {with}"
        );
    }
    assert!(with.lines().any(|l| l == "getpid=OK"), "{with}");
    // Control: without the filter keyctl is answered by the kernel's keyring code
    // (not EPERM), so the EPERM above is the filter's doing.
    let without = probe_report(false);
    let keyctl = without
        .lines()
        .find(|l| l.starts_with("keyctl="))
        .unwrap_or_default();
    assert!(!keyctl.is_empty() && keyctl != "keyctl=EPERM", "{without}");
}

#[test]
fn exit_status_and_signal_deaths_propagate() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(status(&spec("exit 7")), ExitStatus::Exited(7));
    // PID 1 of a namespace cannot kill itself with a signal; without it, it can.
    let mut s = spec("kill -9 $$");
    s.namespaces = s.namespaces.without(Namespace::Pid);
    let st = status(&s);
    assert_eq!(st, ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(st.code(), 128 + libc::SIGKILL);
}

fn our_cgroups() -> Vec<PathBuf> {
    support::cgroup_dirs_of(Path::new("/sys/fs/cgroup"), std::process::id())
}

#[test]
fn timeout_kills_the_sandbox_and_removes_its_cgroup() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = spec("sleep 30 & sleep 30");
    s.timeout = Some(Duration::from_millis(300));
    let t = Instant::now();
    let out = container::run(&s).unwrap();
    assert!(out.timed_out);
    assert_eq!(out.status, ExitStatus::Signaled(libc::SIGKILL));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(out.cgroup_backend.is_some());
    assert!(our_cgroups().is_empty(), "left: {:?}", our_cgroups());
}

#[test]
fn bad_inputs_are_typed_errors() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = spec("true");
    s.rootfs = Some(Path::new("/nonexistent/rootfs").into());
    assert!(matches!(container::run(&s), Err(Error::Rootfs { .. })));
    let mut s = spec("true");
    s.args = vec!["no-such-command".into()];
    assert!(matches!(container::run(&s), Err(Error::CommandNotFound(c)) if c == "no-such-command"));
    let mut s = spec("true");
    s.namespaces = s.namespaces.without(Namespace::Mount);
    assert!(matches!(container::run(&s), Err(Error::Config(_))));
}

/// Sleeps when run as the "workload" of the CVE-2019-5736 guard test below (inside
/// the sandbox); an ordinary no-op test otherwise.
#[test]
fn guard_helper_sleeps_in_sandbox() {
    if std::env::var_os("BOOTLAB_GUARD_HELPER").is_some() {
        std::thread::sleep(Duration::from_secs(20));
    }
}

#[test]
fn runtime_binary_as_workload_is_refused() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The "runtime" is this test binary (its /proc/self/exe); bind it into the sandbox
    // with the libraries it needs and make it the workload.
    let me = std::env::current_exe().unwrap();
    let mut s = spec("true");
    let ro_bind = |src: &str, dst: &str| container::Mount {
        destination: dst.into(),
        fstype: None,
        source: Some(src.into()),
        options: vec!["rbind".into(), "ro".into()],
    };
    s.mounts.push(ro_bind("/usr/lib", "/lib"));
    s.mounts.push(ro_bind("/usr/lib64", "/lib64"));
    s.mounts.push(ro_bind(me.to_str().unwrap(), "/runtime"));
    s.args = vec![
        "/runtime".into(),
        "guard_helper_sleeps_in_sandbox".into(),
        "--exact".into(),
    ];
    s.env.push("BOOTLAB_GUARD_HELPER=1".into());
    s.timeout = Some(Duration::from_secs(30));
    let t = Instant::now();
    let r = container::run(&s);
    assert!(matches!(r, Err(Error::RuntimeExe)), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "killed at once, not after the sleep"
    );
    assert!(our_cgroups().is_empty());
}

#[test]
fn custom_id_maps_are_written_by_the_parent_and_the_workload_is_root_inside() {
    if !support::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = spec(
        r#"[ "$(id -u):$(id -g)" = 0:0 ] && grep -Eq "^ +0 +100000 +65536$" /proc/self/uid_map"#,
    );
    s.namespaces = s.namespaces.with(Namespace::User);
    let map = container::IdMap {
        inside: 0,
        outside: 100_000,
        count: 65_536,
    };
    s.uid_mappings = vec![map];
    s.gid_mappings = vec![map];
    assert_eq!(status(&s), ExitStatus::Exited(0));
    // Control: the check itself fails without the mapping.
    s.namespaces = s.namespaces.without(Namespace::User);
    s.uid_mappings.clear();
    s.gid_mappings.clear();
    assert_eq!(status(&s), ExitStatus::Exited(1));
}
