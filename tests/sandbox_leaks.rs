//! After 200 `bootlab sandbox run`s (half of them with cgroup limits, some killed by
//! their timeout) nothing is left behind on the host: no mount, no `bootlab-*`
//! cgroup, no network namespace, no process. Its own test binary, so no other test
//! of ours runs sandboxes meanwhile; only what belongs to these runs is checked
//! (mounts naming the rootfs, `bootlab-<runtime pid>-*` cgroups, processes with the
//! run marker and the namespaces they reported), so other users of the host do not
//! make it flaky. Needs root (else `SKIP: ...`).

use test_support::sandbox as support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Lines of the host's mount table that mention `root` (the sandboxes' mounts live in
/// their own namespaces; a leak or a propagation would show up here).
fn mounts_of(root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(str::to_owned)
        .collect()
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

/// Processes of ours (command line with `marker`, or the runtime `bin`) that are in
/// one of the network namespaces `ids` (`net:[inode]`).
fn netns_holders(ids: &BTreeSet<String>, marker: &str, bin: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(l) = std::fs::read_link(e.path().join("ns/net")) else {
            continue;
        };
        if !ids.contains(&l.display().to_string()) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) || cmd.starts_with(bin) {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
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
    let c0 = cgroups();
    assert_eq!(mounts_of(root), Vec::<String>::new());
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
        .args(["--", "sh", "-c"])
        .arg(format!(
            "readlink /proc/self/ns/net; sleep 10; exit 0 # {marker}"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(live.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let live_ns = BTreeSet::from([line.trim().to_owned()]);
    assert!(
        !netns_holders(&live_ns, &marker, bin).is_empty(),
        "the live sandbox's network namespace holder is not seen: {line}"
    );
    assert!(
        cgroups().len() > c0.len(),
        "the live sandbox's cgroup is not seen"
    );
    assert_eq!(
        mounts_of(root),
        Vec::<String>::new(),
        "a live sandbox's mount leaked out"
    );
    assert_eq!(live.wait().unwrap().code(), Some(137));
    // Other helpers may mount, make cgroups or network namespaces on this host at the
    // same time: only what belongs to OUR runs is checked (their runtime pids, their
    // rootfs path, the network namespaces their workloads reported).
    let mut pids = Vec::new();
    let mut our_netns = BTreeSet::new();
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
        let tail = if i % 20 == 3 {
            cmd.args(["--timeout", "0.05"]);
            "sleep 10"
        } else {
            "exit 0"
        };
        let script = format!("readlink /proc/self/ns/net; sleep 10 & {tail} # {marker}");
        let child = cmd
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        pids.push(child.id());
        let out = child.wait_with_output().unwrap();
        let want = if i % 20 == 3 { 137 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "run {i}");
        let ns = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(ns.starts_with("net:["), "run {i}: {ns}");
        our_netns.insert(ns);
    }
    assert_eq!(mounts_of(root), Vec::<String>::new(), "mounts left behind");
    let left: Vec<String> = cgroups()
        .into_iter()
        .filter(|c| !c0.contains(c))
        .filter(|c| pids.iter().any(|p| c.contains(&format!("bootlab-{p}-"))))
        .collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    // A network namespace lives while a process, a mount or an open descriptor holds
    // it. Mounts are checked above and the runtimes (the only fd holders) exited; no
    // process of ours may still be in one of our runs' namespaces. (Namespace inode
    // numbers are reused, so holders from elsewhere on the host are not counted.)
    let held = netns_holders(&our_netns, &marker, bin);
    assert!(
        held.is_empty(),
        "network namespaces still held by: {held:?}"
    );
    assert_eq!(processes_with(&marker), 0, "processes left behind");
}
