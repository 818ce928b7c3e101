//! `bootlab sandbox run` through the built binary: isolation (PID 1, hostname, no
//! host processes, only `lo`, read-only root, capabilities, seccomp), limits (memory
//! OOM, pids), exit status and signals, the timeline, OCI bundles, and a mount target
//! symlinked out of the rootfs. Bad input is tested in `bad_input.rs`.
//! Sandbox runs need root: without it they print `SKIP: ...` (or fail with
//! `BOOTLAB_REQUIRE_ROOT=1` / `BOOTLAB_REQUIRE_KVM=1`).

use test_support::sandbox as support;

mod common;
use common::bootlab;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{cgroup_dirs_of, require_root, rootfs};
use test_support::TempDir;
use timeline::event;

/// `bootlab sandbox run --rootfs <test rootfs> EXTRA -- CMD`.
fn sandbox(extra: &[&str], cmd: &[&str]) -> Output {
    bootlab()
        .args(["sandbox", "run", "--rootfs"])
        .arg(rootfs())
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .expect("running bootlab")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a shell script in the default sandbox and returns its stdout, asserting exit 0.
fn sh(extra: &[&str], script: &str) -> String {
    let o = sandbox(extra, &["/bin/sh", "-c", script]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    stdout(&o)
}

/// Asserts a failed run: exit 1 and exactly one `bootlab: error: ...` line
/// containing `needle`.
fn assert_one_line_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("bootlab: error: "), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
}

#[test]
fn workload_is_pid1_with_own_hostname_and_no_host_processes() {
    if !require_root() {
        return;
    }
    let out = sh(
        &["--hostname", "box-1"],
        "echo pid=$$; echo host=$(hostname); ls /proc | grep -c '^[0-9]'",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "host=box-1");
    // The shell, its command substitution subshell/ls/grep: a handful, never the host's.
    let procs: usize = lines[2].trim().parse().unwrap();
    assert!((1..=4).contains(&procs), "{procs} processes visible");
}

/// Started with stdout closed, the runtime puts /dev/null there before it opens
/// anything: else its first descriptor (a pipe of its own) would become the
/// workload's stdout.
#[test]
fn a_closed_stdout_becomes_dev_null_not_a_runtime_descriptor() {
    if !require_root() {
        return;
    }
    let mut cmd = bootlab();
    cmd.args(["sandbox", "run", "--rootfs"])
        .arg(rootfs())
        .args([
            "--",
            "/bin/sh",
            "-c",
            r#"x=$(readlink /proc/$$/fd/1); echo "fd1=$x" >&2"#,
        ])
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // close(2), which is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::close(1);
            Ok(())
        });
    }
    let o = cmd.output().expect("running bootlab");
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains("fd1=/dev/null"), "{}", stderr(&o));
}

#[test]
fn only_loopback_and_it_is_up() {
    if !require_root() {
        return;
    }
    let out = sh(&[], "tail -n +3 /proc/net/dev | cut -d: -f1; ip -o link");
    let mut lines = out.lines();
    assert_eq!(lines.next().map(str::trim), Some("lo"));
    let link = lines.next().unwrap_or_default();
    assert!(link.contains("lo:") && link.contains("UP"), "{out}");
    assert_eq!(lines.next(), None, "{out}");
}

/// The runtime pins itself to one CPU for the clone (container's `affinity`): the
/// workload must still get the caller's whole CPU mask.
#[test]
fn the_workload_gets_the_callers_cpu_mask() {
    if !require_root() {
        return;
    }
    let allowed = |status: &str| {
        status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
    };
    let ours = allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let out = sh(&[], "cat /proc/self/status");
    assert!(ours.is_some());
    assert_eq!(allowed(&out), ours, "{out}");
}

/// The start runs with a short scheduler slice (the container crate's `slice`);
/// the workload must get the kernel's default slice back, with the caller's nice
/// value and policy.
#[test]
fn the_workload_gets_the_default_slice_and_the_callers_nice_value() {
    if !require_root() {
        return;
    }
    let field = |sched: &str, name: &str| {
        sched
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_owned())
    };
    let ours = std::fs::read_to_string("/proc/self/sched").unwrap();
    let bin = bootlab().get_program().to_owned();
    let o = Command::new("nice")
        .args(["-n", "3"])
        .arg(bin)
        .args(["sandbox", "run", "--rootfs"])
        .arg(rootfs())
        .args(["--", "/bin/cat", "/proc/self/sched"])
        .output()
        .expect("running nice bootlab");
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let slice = field(&out, "se.slice");
    assert!(slice.is_some(), "{out}");
    assert_eq!(slice, field(&ours, "se.slice"), "{out}");
    let prio = |s: &str| field(s, "prio").and_then(|v| v.parse::<i64>().ok());
    assert_eq!(prio(&out), prio(&ours).map(|p| p + 3), "{out}");
    assert_eq!(field(&out, "policy"), field(&ours, "policy"), "{out}");
}

#[test]
fn root_is_read_only_tmp_is_writable_and_rw_flag_works() {
    if !require_root() {
        return;
    }
    let o = sandbox(&[], &["/bin/sh", "-c", "touch /x"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    sh(
        &[],
        "echo hi > /tmp/f && cat /tmp/f && ls /dev/null /dev/zero /dev/urandom",
    );
    let marker = format!("rw-test-{}", std::process::id());
    sh(
        &["--rw"],
        &format!("touch /tmp/../{marker} && rm /{marker}"),
    );
}

#[test]
fn capabilities_are_the_default_set_only() {
    if !require_root() {
        return;
    }
    let out = sh(&[], "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status");
    let want = format!("{:016x}", container::security::caps::default_mask());
    for line in out.lines() {
        let (name, val) = line.split_once(':').unwrap();
        let expect = if matches!(name, "CapInh" | "CapAmb") {
            "0000000000000000"
        } else {
            want.as_str()
        };
        assert_eq!(val.trim(), expect, "{name}");
    }
    // No CAP_SYS_ADMIN in the set, whatever the default is.
    assert_eq!(container::security::caps::default_mask() & (1 << 21), 0);
}

#[test]
fn seccomp_denies_dangerous_calls_with_eperm() {
    if !require_root() {
        return;
    }
    let o = sandbox(&[], &["probe", "syscalls"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.contains("getpid=OK"), "{out}");
    // keyctl needs no capability: only the filter makes it EPERM.
    for name in [
        "keyctl",
        "kexec_load",
        "init_module",
        "mount",
        "unshare",
        "ptrace",
    ] {
        assert!(out.contains(&format!("{name}=EPERM")), "{name}: {out}");
    }
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    if !require_root() {
        return;
    }
    let o = sandbox(
        &["--memory", "32M", "--timeout", "20"],
        &["probe", "alloc", "200"],
    );
    assert_eq!(o.status.code(), Some(137), "stderr: {}", stderr(&o));
    assert!(!stdout(&o).contains("allocated"));
    assert!(stderr(&o).contains("out-of-memory"), "{}", stderr(&o));
    // Under the limit the same workload runs through.
    let o = sandbox(&["--memory", "64M"], &["probe", "alloc", "8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("allocated 8"));
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !require_root() {
        return;
    }
    let o = sandbox(
        &["--pids", "8", "--timeout", "20"],
        &["probe", "forks", "100"],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // PID 1 itself counts: at most 7 children.
    let forked: usize = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("forked="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(forked < 8, "{out}");
    assert!(out.contains("errno=EAGAIN"), "{out}");
}

#[test]
fn exit_status_and_signal_deaths_propagate() {
    if !require_root() {
        return;
    }
    assert_eq!(sandbox(&[], &["sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(sandbox(&[], &["true"]).status.code(), Some(0));
    // Without a PID namespace the shell is not an init and dies of its own signal.
    let o = sandbox(&["--no-pid"], &["sh", "-c", "kill -TERM $$; sleep 5"]);
    assert_eq!(o.status.code(), Some(128 + 15), "{}", stderr(&o));
    // The timeout kills the whole sandbox with SIGKILL.
    let o = sandbox(&["--timeout", "0.3"], &["sh", "-c", "sleep 30 & sleep 30"]);
    assert_eq!(o.status.code(), Some(128 + 9));
    assert!(stderr(&o).contains("timeout"), "{}", stderr(&o));
}

#[test]
fn signals_are_forwarded_to_the_workload() {
    if !require_root() {
        return;
    }
    let mut child = bootlab()
        .args(["sandbox", "run", "--rootfs"])
        .arg(rootfs())
        .args(["--timeout", "20", "--"])
        .args([
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // SAFETY (test): kill(2) on our own child.
    let pid = i32::try_from(child.id()).unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "got-term");
    assert_eq!(status.code(), Some(42));
}

#[test]
fn timeline_reports_spawn_exec_done_exit_in_order() {
    if !require_root() {
        return;
    }
    let dir = tempdir("timeline");
    let file = dir.join("t.json");
    let o = bootlab()
        .args(["sandbox", "run", "--timeline", "json", "--timeline-out"])
        .arg(&file)
        .arg("--rootfs")
        .arg(rootfs())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = stderr(&o);
    let printed: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(printed, written);
    let events = written["events"].as_array().unwrap();
    let t = |name: &str| {
        events
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["t_ns"].as_u64())
            .unwrap_or_else(|| panic!("no {name} in {written}"))
    };
    let (spawn, exec, done, exit) = (
        t(event::SPAWN),
        t(event::EXEC),
        t(event::DONE),
        t(event::EXIT),
    );
    assert!(spawn < exec && exec <= done && done <= exit, "{written}");
}

/// A fresh directory in CARGO_TARGET_TMPDIR (or the system temp dir when that is not
/// writable, e.g. the bad-input tests run without root), removed when dropped.
fn tempdir(tag: &str) -> TempDir {
    TempDir::new_in(Some(Path::new(env!("CARGO_TARGET_TMPDIR"))), tag).unwrap()
}

/// A bundle with `config.json` = `runc spec`-like JSON over the test rootfs.
fn bundle(tag: &str, config: &str) -> TempDir {
    let d = tempdir(tag);
    std::fs::write(d.join("config.json"), config).unwrap();
    d
}

fn oci_config(root: &Path, extra_linux: &str) -> String {
    format!(
        r#"{{
  "ociVersion": "1.0.2",
  "process": {{"terminal": false, "user": {{"uid": 0, "gid": 0}},
    "args": ["sh", "-c", "echo $(hostname) $$ $FOO"], "env": ["PATH=/bin", "FOO=bar"],
    "cwd": "/", "noNewPrivileges": true}},
  "root": {{"path": "{root}", "readonly": true}},
  "hostname": "oci-box",
  "mounts": [{{"destination": "/proc", "type": "proc", "source": "proc"}}],
  "linux": {{"namespaces": [{{"type": "pid"}}, {{"type": "mount"}}, {{"type": "uts"}},
    {{"type": "network"}}, {{"type": "ipc"}}]{extra_linux}}}
}}"#,
        root = root.display()
    )
}

#[test]
fn oci_bundle_runs() {
    if !require_root() {
        return;
    }
    let b = bundle("oci-ok", &oci_config(rootfs(), ""));
    let o = bootlab()
        .args(["sandbox", "run", "--bundle"])
        .arg(b.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "oci-box 1 bar");
}

/// `cat /proc/self/uid_map` as whitespace-separated numbers.
fn map_fields(out: &str) -> Vec<Vec<u64>> {
    out.lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .collect()
}

#[test]
fn user_namespace_as_root_is_optional_and_works() {
    if !require_root() {
        return;
    }
    let out = sh(
        &["--unshare", "all"],
        "cat /proc/self/uid_map /proc/self/gid_map; echo $$",
    );
    let f = map_fields(&out);
    assert_eq!(f[0], vec![0, 0, 1], "{out}");
    assert_eq!(f[1], vec![0, 0, 1], "{out}");
    assert_eq!(f[2], vec![1], "{out}");
    // Without it (the default as root) the workload shares the host's user namespace.
    let out = sh(&[], "cat /proc/self/uid_map");
    assert_eq!(map_fields(&out)[0], vec![0, 0, 4294967295], "{out}");
}

#[test]
fn rootless_mode_maps_the_caller_to_root() {
    if !require_root() {
        return;
    }
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        test_support::skip(
            "rootless_mode_maps_the_caller_to_root",
            "no setpriv to drop to an unprivileged user",
        );
        return;
    };
    // The test rootfs and binary live below target/: readable by all.
    let o = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_bootlab"))
        .args(["sandbox", "run", "--rootfs"])
        .arg(rootfs())
        .args([
            "--",
            "sh",
            "-c",
            "cat /proc/self/uid_map; echo $$; hostname; tail -n +3 /proc/net/dev | cut -d: -f1",
        ])
        .output()
        .unwrap();
    if o.status.code() == Some(1) && stderr(&o).contains("clone") {
        test_support::skip(
            "rootless_mode_maps_the_caller_to_root",
            &format!("unprivileged user namespaces unavailable: {}", stderr(&o)),
        );
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(map_fields(lines[0])[0], vec![0, 65534, 1], "{out}");
    assert_eq!(&lines[1..], &["1", "bootlab", "lo"], "{out}");
}

#[test]
fn mount_target_symlinked_out_of_the_rootfs_is_refused() {
    if !require_root() {
        return;
    }
    let d = tempdir("evil-rootfs");
    let (root, outside) = (d.join("root"), d.join("outside"));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    support::copy_executable(Path::new(support::BUSYBOX), &root.join("bin/busybox"));
    std::os::unix::fs::symlink("busybox", root.join("bin/true")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("proc")).unwrap();
    let o = bootlab()
        .args(["sandbox", "run", "--rootfs"])
        .arg(&root)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "resolves outside the rootfs");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn limits_are_written_to_the_hosts_cgroup_backend() {
    if !require_root() {
        return;
    }
    let mut child = bootlab()
        .args(["sandbox", "run", "--rootfs"])
        .arg(rootfs())
        .args([
            "--memory",
            "48M",
            "--pids",
            "12",
            "--cpus",
            "0.5",
            "--timeout",
            "2",
        ])
        .args(["--", "sh", "-c", "echo ready; sleep 10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let dirs = cgroup_dirs_of(Path::new("/sys/fs/cgroup"), child.id());
    let read = |file: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
            .map(|s| s.trim().to_owned())
    };
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        assert_eq!(read("memory.max").as_deref(), Some("50331648"), "{dirs:?}");
        assert_eq!(read("pids.max").as_deref(), Some("12"), "{dirs:?}");
        assert_eq!(read("cpu.max").as_deref(), Some("50000 100000"), "{dirs:?}");
    } else {
        assert_eq!(
            read("memory.limit_in_bytes").as_deref(),
            Some("50331648"),
            "{dirs:?}"
        );
        assert_eq!(read("pids.max").as_deref(), Some("12"), "{dirs:?}");
        assert_eq!(
            read("cpu.cfs_quota_us").as_deref(),
            Some("50000"),
            "{dirs:?}"
        );
        assert_eq!(
            read("cpu.cfs_period_us").as_deref(),
            Some("100000"),
            "{dirs:?}"
        );
    }
    assert_eq!(child.wait().unwrap().code(), Some(137));
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// The old root is detached after pivot_root: the workload's mount table holds the
/// sandbox's mounts only, none of the host's, also under a pids limit of 1.
#[test]
fn workload_sees_only_the_sandbox_mounts() {
    if !require_root() {
        return;
    }
    let host: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m != "/")
        .collect();
    assert!(!host.is_empty(), "the host has no mounts but /");
    for extra in [&[][..], &["--pids", "1"][..]] {
        let o = sandbox(extra, &["/bin/cat", "/proc/self/mountinfo"]);
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stderr(&o));
        let inside = stdout(&o);
        let points: Vec<&str> = inside.lines().filter_map(|l| l.split(' ').nth(4)).collect();
        assert!(points.contains(&"/proc"), "{extra:?}: no /proc in {inside}");
        for p in &points {
            let ours = *p == "/"
                || ["/proc", "/dev", "/tmp"]
                    .iter()
                    .any(|d| p == d || p.starts_with(&format!("{d}/")));
            assert!(ours, "{extra:?}: host mount {p} visible inside:\n{inside}");
        }
    }
}

/// A bundle's sysfs shows the sandbox's network namespace (only `lo`), not the
/// host's: sysfs takes the mounter's network namespace when it is mounted, so the
/// child must be in its new namespace by then.
#[test]
fn oci_sysfs_mount_shows_only_the_sandbox_network() {
    if !require_root() {
        return;
    }
    let host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    assert!(!host.is_empty(), "the host has no network interface but lo");
    let config = oci_config(rootfs(), "").replace(
        r#""mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]"#,
        r#""mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
          {"destination": "/sys", "type": "sysfs", "source": "sysfs",
           "options": ["nosuid", "noexec", "nodev", "ro"]}]"#,
    );
    assert!(config.contains("sysfs"), "{config}");
    let config = config.replace(
        r#""args": ["sh", "-c", "echo $(hostname) $$ $FOO"]"#,
        r#""args": ["ls", "/sys/class/net"]"#,
    );
    let b = bundle("oci-sysfs", &config);
    let o = bootlab()
        .args(["sandbox", "run", "--bundle"])
        .arg(b.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let inside: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(inside, vec!["lo"], "host interfaces {host:?}");
}
