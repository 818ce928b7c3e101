//! The sandbox library run for real (as root): PID 1, hostname, seccomp with and
//! without the filter, exit statuses, timeout, errors, and no leftovers after 200 runs.

mod common;

use container::{Error, ExitStatus, Namespace, SandboxSpec};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests count mounts and cgroups: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn base() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn spec(script: &str) -> SandboxSpec {
    common::sweep_old(&base());
    let root = common::rootfs(&base());
    SandboxSpec::new(Some(root), vec!["sh".into(), "-c".into(), script.into()])
}

fn status(s: &SandboxSpec) -> ExitStatus {
    container::run(s).expect("sandbox runs").status
}

#[test]
fn workload_is_pid1_with_own_hostname_and_readonly_root() {
    if !common::require_root("workload_is_pid1") {
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

#[test]
fn seccomp_filter_returns_eperm_and_only_because_of_the_filter() {
    if !common::require_root("seccomp") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = spec(
        r#"out=$(sc-probe); echo "$out" | grep -qx "keyctl 1" && echo "$out" | grep -qx "ptrace 1""#,
    );
    assert_eq!(
        status(&s),
        ExitStatus::Exited(0),
        "keyctl and ptrace get EPERM"
    );
    // Control: without the filter the same calls succeed, so the EPERM above is the
    // filter's doing.
    s.seccomp = false;
    assert_eq!(status(&s), ExitStatus::Exited(1));
    s.args[2] = r#"out=$(sc-probe); echo "$out" | grep -qx "keyctl 0" && echo "$out" | grep -qx "ptrace 0""#.into();
    assert_eq!(status(&s), ExitStatus::Exited(0));
}

#[test]
fn exit_status_and_signal_deaths_propagate() {
    if !common::require_root("exit_status") {
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
    let prefix = format!("bootlab-{}-", std::process::id());
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    found.push(e.path());
                } else {
                    stack.push(e.path());
                }
            }
        }
    }
    found
}

#[test]
fn timeout_kills_the_sandbox_and_removes_its_cgroup() {
    if !common::require_root("timeout") {
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
    if !common::require_root("bad_inputs") {
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

fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

fn netns_in_use() -> std::collections::HashSet<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("ns/net")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn two_hundred_runs_leave_nothing_behind() {
    if !common::require_root("leaks") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let marker = format!("leak-marker-{}", std::process::id());
    let out_dir = base().join(format!("leak-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    // Each run leaves a background shell behind (named by the marker) and records its
    // network namespace in a bind-mounted host directory.
    let mut s = spec(&format!(
        "sh -c 'sleep 10; :' {marker} & readlink /proc/self/ns/net > /out/$(cat /proc/sys/kernel/random/uuid)"
    ));
    s.mounts.push(container::Mount {
        destination: "/out".into(),
        fstype: None,
        source: Some(out_dir.clone()),
        options: vec!["rbind".into(), "rw".into()],
    });
    let mounts = mount_count();
    for i in 0..200 {
        // Every other run with a cgroup (pids limit), so both paths are covered.
        s.resources.pids = (i % 2 == 0).then_some(16);
        let out = container::run(&s).unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0));
    }
    let files: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 200, "every run reported its network namespace");
    // (namespace inode numbers are recycled, so they are not all distinct)
    let seen: std::collections::HashSet<String> = files
        .iter()
        .map(|e| std::fs::read_to_string(e.path()).unwrap().trim().to_owned())
        .collect();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(
        !seen.contains(host.to_string_lossy().as_ref()),
        "ran in the host's netns"
    );
    assert_eq!(mount_count(), mounts, "mounts leaked");
    assert!(
        our_cgroups().is_empty(),
        "cgroups leaked: {:?}",
        our_cgroups()
    );
    assert_eq!(processes_with(&marker), 0, "processes leaked");
    let alive: Vec<_> = netns_in_use().intersection(&seen).cloned().collect();
    assert!(
        alive.is_empty(),
        "network namespaces still in use: {alive:?}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}
