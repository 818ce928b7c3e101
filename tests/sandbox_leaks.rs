//! After 200 `bootlab sandbox run`s (half of them with cgroup limits, some killed by
//! their timeout) nothing is left behind on the host: no mount, no `bootlab-*`
//! cgroup, no network namespace, no process. Its own test binary, so no other test
//! runs sandboxes while it counts. Needs root (else `SKIP: ...`).

#[path = "../container/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Lines of the host's mount table.
fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// `bootlab-*` cgroups in every hierarchy.
fn cgroups() -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new("/sys/fs/cgroup").to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with("bootlab-") {
                out.push(e.path().display().to_string());
            }
            // Ours sit below the runtime's own cgroup, a few levels down.
            if e.path().components().count() <= 12 {
                dirs.push(e.path());
            }
        }
    }
    out
}

/// Distinct network namespaces held by any process.
fn netns() -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(l) = std::fs::read_link(e.path().join("ns/net")) {
            set.insert(l.display().to_string());
        }
    }
    set
}

/// Processes whose command line contains `marker`.
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

#[test]
fn two_hundred_runs_leave_nothing_behind() {
    if !support::require_root() {
        return;
    }
    let root = support::rootfs();
    let marker = format!("leakcheck{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_bootlab");
    // Warm-up run, so lazily created host state (none expected) is not counted.
    let _ = Command::new(bin)
        .args(["sandbox", "run", "--rootfs"])
        .arg(root)
        .args(["--", "true"])
        .status();
    let (m0, c0, n0) = (mounts(), cgroups(), netns());
    // The counters see a live sandbox's cgroup, mounts are in its own namespace.
    let mut live = Command::new(bin)
        .args([
            "sandbox",
            "run",
            "--memory",
            "16M",
            "--timeout",
            "2",
            "--rootfs",
        ])
        .arg(root)
        .args(["--", "sh", "-c", "echo ready; sleep 10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(live.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    assert!(
        cgroups().len() > c0.len(),
        "the live sandbox's cgroup is not seen"
    );
    assert_eq!(mounts(), m0);
    assert_eq!(live.wait().unwrap().code(), Some(137));
    for i in 0..200 {
        let mut cmd = Command::new(bin);
        cmd.args(["sandbox", "run", "--rootfs"]).arg(root);
        match i % 4 {
            0 => {
                cmd.args(["--memory", "16M", "--pids", "8"]);
            }
            1 => {
                cmd.args(["--timeout", "5"]);
            }
            _ => {}
        }
        // Every 20th run leaves a background child and is killed by its timeout.
        let script = if i % 20 == 3 {
            cmd.args(["--timeout", "0.05"]);
            format!("sleep 10 & sleep 10 # {marker}")
        } else {
            format!("sleep 10 & exit 0 # {marker}")
        };
        let st = cmd
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let want = if i % 20 == 3 { 137 } else { 0 };
        assert_eq!(st.code(), Some(want), "run {i}");
    }
    assert_eq!(mounts(), m0, "mounts left behind");
    assert_eq!(cgroups(), c0, "cgroups left behind");
    // Network namespaces are freed asynchronously only once unreferenced; none of
    // ours may still be held by a process.
    let n1 = netns();
    assert!(n1.is_subset(&n0), "netns left: {n1:?} vs {n0:?}");
    assert_eq!(processes_with(&marker), 0, "processes left behind");
}
