//! Load: 100 microVM boots of the lab guest (`bootlab vm run --guest lab`) and 500
//! sandbox runs (`bootlab sandbox run` on the default rootfs of the guest images: the
//! guest-init `hello` workload, or a shell that reports its network namespace and
//! leaves an endless background loop behind; half of them with cgroup limits and a
//! timeout), 4 at a time, interleaved. Every run must succeed, and nothing may be left behind:
//! counted before and after are this process's threads and fds, bootlab processes and
//! our children, mounts naming the rootfs, `bootlab-<runtime pid>-*` cgroups of our
//! runs in every hierarchy, and processes still in our runs' network namespaces.
//! The host-wide figures (all threads, fds, mount lines, bootlab cgroups, network
//! namespaces) are printed too, but not asserted: other users of the host change them.
//!
//! One test in its own binary, so no other test of ours runs meanwhile. Needs KVM,
//! root and the built guest images; skips loudly without them unless
//! `BOOTLAB_REQUIRE_KVM=1`.

mod common;
use common::is_root;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const VM_BOOTS: usize = 100;
const SANDBOX_RUNS: usize = 500;
const AT_A_TIME: usize = 4;
/// A run that takes longer than this has hung: it is killed and counted as failed.
const RUN_LIMIT: Duration = Duration::from_secs(60);

const BIN: &str = env!("CARGO_BIN_EXE_bootlab");

fn skip(why: &str) {
    test_support::skip("load", why);
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

fn pids() -> Vec<PathBuf> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path())
        .collect()
}

fn cmdline(proc: &Path) -> String {
    let raw = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

fn ppid(proc: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(proc.join("stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces, so split after the ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `bootlab-*` cgroup directories in every hierarchy (v1 controllers and cgroup2).
fn bootlab_cgroups() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with("bootlab-") {
                out.insert(e.path().display().to_string());
            }
            // Ours sit below the runtime's own cgroup, a few levels down.
            if e.path().components().count() <= 12 {
                dirs.push(e.path());
            }
        }
    }
    out
}

/// What is counted before and after.
#[derive(Debug)]
struct Counts {
    own_threads: usize,
    own_fds: usize,
    /// Processes running our bootlab binary.
    bootlab_procs: Vec<String>,
    /// Our children (runtimes not yet reaped) and processes with the run marker.
    ours: Vec<String>,
    /// Mount lines (host namespace) naming the rootfs.
    rootfs_mounts: Vec<String>,
    cgroups: BTreeSet<String>,
    host_threads: usize,
    host_fds: usize,
    host_mount_lines: usize,
    host_netns: BTreeSet<String>,
}

fn counts(rootfs: &Path, marker: &str) -> Counts {
    let me = std::process::id();
    let bin = std::fs::canonicalize(BIN).unwrap();
    let (mut bootlab_procs, mut ours) = (Vec::new(), Vec::new());
    let (mut host_threads, mut host_fds) = (0, 0);
    let mut host_netns = BTreeSet::new();
    for p in pids() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        host_threads += count_dir(&format!("/proc/{name}/task"));
        host_fds += count_dir(&format!("/proc/{name}/fd"));
        if let Ok(ns) = std::fs::read_link(p.join("ns/net")) {
            host_netns.insert(ns.display().to_string());
        }
        if name == me.to_string() {
            continue;
        }
        let cmd = cmdline(&p);
        if std::fs::read_link(p.join("exe")).ok().as_deref() == Some(bin.as_path()) {
            bootlab_procs.push(format!("{name}: {cmd}"));
        } else if ppid(&p) == Some(me) || cmd.contains(marker) {
            ours.push(format!("{name}: {cmd}"));
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = rootfs.display().to_string();
    Counts {
        own_threads: count_dir("/proc/self/task"),
        own_fds: count_dir("/proc/self/fd"),
        bootlab_procs,
        ours,
        rootfs_mounts: mountinfo
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_owned)
            .collect(),
        cgroups: bootlab_cgroups(),
        host_threads,
        host_fds,
        host_mount_lines: mountinfo.lines().count(),
        host_netns,
    }
}

/// Runs one command to its end, killing it after [`RUN_LIMIT`].
fn run(mut cmd: Command) -> (u32, Output) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bootlab");
    let pid = child.id();
    let started = Instant::now();
    // The outputs are a few lines, far below a pipe's capacity: polling for the exit
    // and reading afterwards cannot dead-lock on a full pipe.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (pid, child.wait_with_output().unwrap())
}

enum Job {
    Vm,
    /// The k-th sandbox run.
    Sandbox(usize),
}

/// What one run leaves for the checks.
#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    runtime_pids: Vec<u32>,
    netns: BTreeSet<String>,
    vm_ok: usize,
    sandbox_ok: usize,
}

fn one(job: &Job, images: &Path, marker: &str) -> (u32, Result<Option<String>, String>) {
    let mut cmd = Command::new(BIN);
    cmd.env("BOOTLAB_IMAGES", images)
        .env_remove("BOOTLAB_SPAWN_NS");
    // The background subshell is a fork of this shell, so it carries the marker in
    // its command line: if the sandbox's end did not kill it, it would be found.
    let netns_script =
        format!("readlink /proc/self/ns/net; (while :; do sleep 1; done) & exit 0 # {marker}");
    let want = match job {
        Job::Vm => {
            cmd.args(["vm", "run", "--guest", "lab", "--timeout", "30"]);
            "@@bootlab done"
        }
        Job::Sandbox(k) => {
            cmd.args(["sandbox", "run"]);
            if k % 4 >= 2 {
                cmd.args(["--memory", "64M", "--pids", "32", "--timeout", "30"]);
            }
            if k % 2 == 0 {
                cmd.args(["--", "/sbin/guest-init"]);
                "@@bootlab done"
            } else {
                cmd.args(["--", "sh", "-c", &netns_script]);
                "net:["
            }
        }
    };
    let (pid, out) = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = if out.status.code() != Some(0) || !stdout.contains(want) {
        Err(format!(
            "exit {:?}, stdout {:?}, stderr {:?}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    } else {
        Ok(stdout
            .lines()
            .find(|l| l.starts_with("net:["))
            .map(str::to_owned))
    };
    (pid, result)
}

/// Polls until this process is back to `threads` threads and `fds` fds and has no
/// child left, or a second has passed (exited threads and reaped children may take a
/// moment to disappear from /proc).
fn settle(threads: usize, fds: usize) {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let me = std::process::id();
        let children = pids().iter().any(|p| ppid(p) == Some(me));
        if count_dir("/proc/self/task") == threads && count_dir("/proc/self/fd") == fds && !children
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hundred_vm_boots_and_five_hundred_sandboxes_four_at_a_time_leak_nothing() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return skip("/dev/kvm is not usable");
    }
    if !is_root() {
        return skip("the sandbox runs need root");
    }
    let images = std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"));
    let rootfs = images.join("rootfs");
    if !rootfs.join("sbin/guest-init").is_file() {
        return skip(&format!(
            "no guest images rootfs at {} (run guest-images/build.sh)",
            rootfs.display()
        ));
    }
    let rootfs = std::fs::canonicalize(&rootfs).unwrap();
    let marker = format!("loadcheck{}", std::process::id());

    // One run of each kind first: lazily created host state is not a leak.
    for job in [Job::Vm, Job::Sandbox(0), Job::Sandbox(3)] {
        let (_, r) = one(&job, &images, &marker);
        r.expect("warm-up run");
    }
    let before = counts(&rootfs, &marker);

    let jobs: Vec<Job> = (0..VM_BOOTS + SANDBOX_RUNS)
        .scan(0, |k, i| {
            // Interleaved: one VM boot in every six runs.
            Some(if i % 6 == 0 && i / 6 < VM_BOOTS {
                Job::Vm
            } else {
                *k += 1;
                Job::Sandbox(*k - 1)
            })
        })
        .collect();
    assert_eq!(
        jobs.iter().filter(|j| matches!(j, Job::Vm)).count(),
        VM_BOOTS
    );
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..AT_A_TIME {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let (pid, r) = one(job, &images, &marker);
                let mut t = tally.lock().unwrap();
                t.runtime_pids.push(pid);
                match (r, job) {
                    (Ok(ns), Job::Vm) => {
                        t.vm_ok += 1;
                        t.netns.extend(ns);
                    }
                    (Ok(ns), Job::Sandbox(_)) => {
                        t.sandbox_ok += 1;
                        t.netns.extend(ns);
                    }
                    (Err(e), _) => t.failures.push(format!("run {i}: {e}")),
                }
            });
        }
    });
    let elapsed = started.elapsed();
    settle(before.own_threads, before.own_fds);
    let after = counts(&rootfs, &marker);
    let t = tally.into_inner().unwrap();

    let ours_new: Vec<&String> = after
        .cgroups
        .difference(&before.cgroups)
        .filter(|c| {
            t.runtime_pids
                .iter()
                .any(|p| c.contains(&format!("bootlab-{p}-")))
        })
        .collect();
    // A network namespace lives while a process, a mount or an fd holds it: the
    // mounts are counted, the runtimes (the only fd holders) are gone, and no process
    // of ours may remain; so any holder of our runs' namespaces would be listed here.
    let netns_held: Vec<String> = pids()
        .iter()
        .filter(|p| {
            std::fs::read_link(p.join("ns/net"))
                .map(|l| t.netns.contains(&l.display().to_string()))
                .unwrap_or(false)
        })
        .map(|p| format!("{}: {}", p.display(), cmdline(p)))
        .filter(|l| l.contains(&marker) || l.contains(BIN))
        .collect();

    eprintln!(
        "load: {} vm boots ({} ok) + {} sandbox runs ({} ok), {AT_A_TIME} at a time, in {:.1} s: {} failed",
        VM_BOOTS,
        t.vm_ok,
        SANDBOX_RUNS,
        t.sandbox_ok,
        elapsed.as_secs_f64(),
        t.failures.len()
    );
    eprintln!("  {:<34} {:>8} {:>8}", "counted", "before", "after");
    let row = |what: &str, b: usize, a: usize| eprintln!("  {what:<34} {b:>8} {a:>8}");
    row(
        "test process threads",
        before.own_threads,
        after.own_threads,
    );
    row("test process fds", before.own_fds, after.own_fds);
    row(
        "bootlab processes",
        before.bootlab_procs.len(),
        after.bootlab_procs.len(),
    );
    row(
        "our children / marked processes",
        before.ours.len(),
        after.ours.len(),
    );
    row(
        "mounts naming the rootfs",
        before.rootfs_mounts.len(),
        after.rootfs_mounts.len(),
    );
    row("cgroups of our runs", 0, ours_new.len());
    row("processes in our runs' netns", 0, netns_held.len());
    row(
        "(host) bootlab-* cgroups",
        before.cgroups.len(),
        after.cgroups.len(),
    );
    row(
        "(host) network namespaces",
        before.host_netns.len(),
        after.host_netns.len(),
    );
    row(
        "(host) mountinfo lines",
        before.host_mount_lines,
        after.host_mount_lines,
    );
    row("(host) threads", before.host_threads, after.host_threads);
    row("(host) open fds", before.host_fds, after.host_fds);
    eprintln!(
        "  ({} distinct network namespaces seen in the netns-reporting runs)",
        t.netns.len()
    );

    assert!(
        t.failures.is_empty(),
        "{} of {} runs failed; first ones:\n{}",
        t.failures.len(),
        jobs.len(),
        t.failures[..t.failures.len().min(5)].join("\n")
    );
    assert_eq!(t.vm_ok, VM_BOOTS);
    assert_eq!(t.sandbox_ok, SANDBOX_RUNS);
    assert_eq!(after.own_threads, before.own_threads, "threads leaked");
    assert_eq!(after.own_fds, before.own_fds, "fds leaked");
    assert_eq!(
        after.bootlab_procs, before.bootlab_procs,
        "bootlab processes left"
    );
    assert!(after.ours.is_empty(), "processes left: {:?}", after.ours);
    assert_eq!(after.rootfs_mounts, before.rootfs_mounts, "mounts left");
    assert!(ours_new.is_empty(), "cgroups left: {ours_new:?}");
    assert!(
        netns_held.is_empty(),
        "network namespaces held: {netns_held:?}"
    );
    // The netns-reporting runs really had namespaces of their own.
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(
        !t.netns.is_empty() && !t.netns.contains(&host_ns.display().to_string()),
        "{:?}",
        t.netns
    );
}
