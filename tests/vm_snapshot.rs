//! Snapshots of the lab guest end to end, through the built binary: `vm run
//! --snapshot-at snapshot` saves the machine at the guest's snapshot point, and
//! `vm restore` carries on from there in fresh processes, also several at once.
//! Bad snapshots are rows in `bad_input.rs`.

mod common;
use common::{bootlab, kvm_or_skip};

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use timeline::{event, step, EventSource, Timeline, RESTORED_VM_MODEL};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bootlab-snaptest-{}-{name}", std::process::id()))
}

/// Saves the lab guest at its snapshot point into a fresh folder `name`.
fn take_snapshot(name: &str, extra: &[&str]) -> (Output, PathBuf) {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    let out = bootlab()
        .args(["vm", "run", "--guest", "lab", "--timeout", "20"])
        .args(["--snapshot-at", "snapshot", "--snapshot-out"])
        .arg(&dir)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, dir)
}

/// `bootlab vm restore DIR` with its timeline written to `timeline`.
fn restore(dir: &Path, timeline: &Path) -> std::process::Child {
    bootlab()
        .args(["vm", "restore"])
        .arg(dir)
        .args(["--timeout", "20", "--timeline-out"])
        .arg(timeline)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn markers(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("@@bootlab"))
        .map(str::to_owned)
        .collect()
}

/// Checks a restored run: exit 0, only what follows the snapshot point on the
/// console, and the restored phases from the monitor's own stamps.
fn check_restored(out: &Output, t: &Timeline) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "@@bootlab exec\nhello from the lab guest\n@@bootlab done\n"
    );
    let at = |name: &str| {
        t.events
            .iter()
            .find(|e| e.name == name && e.source == EventSource::Monitor)
            .unwrap_or_else(|| panic!("no monitor event {name} in {t:?}"))
            .t_ns
    };
    let seq = [
        at(step::RESTORE_MEMORY_MAPPED),
        at(step::RESTORE_VCPUS),
        at(event::FIRST_KVM_RUN),
        at(event::EXEC),
        at(event::DONE),
    ];
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
    // Nothing before the snapshot point runs again.
    for name in [event::INIT_START, event::SNAPSHOT, step::VMM_KERNEL_LOADED] {
        assert!(
            t.event_ns(name).is_none(),
            "{name} in a restored run: {t:?}"
        );
    }
    let phases: Vec<String> = t
        .phases(&RESTORED_VM_MODEL)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(phases, ["restore", "process", "teardown"]);
    assert_eq!(t.runtime, "bootlab-vm-lab-restore");
    assert_eq!(t.exit_code, Some(0));
}

fn read_timeline(path: &Path) -> Timeline {
    let json = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::remove_file(path).ok();
    serde_json::from_str(&json).unwrap_or_default()
}

#[test]
fn lab_snapshot_restores_after_its_snapshot_point() {
    if !kvm_or_skip("lab_snapshot_restores_after_its_snapshot_point") {
        return;
    }
    for (chip, vcpus) in [
        ("split", "1"),
        ("kernel", "1"),
        ("split", "2"),
        ("kernel", "2"),
    ] {
        let (out, dir) = take_snapshot(
            &format!("e2e-{chip}-{vcpus}"),
            &["--irqchip", chip, "--vcpus", vcpus],
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        // The run stopped at the snapshot point.
        assert_eq!(
            markers(&out.stdout),
            ["@@bootlab init-start", "@@bootlab snapshot"],
            "{chip}"
        );
        // Memory is sparse: the guest touched a few pages of its 128 MiB.
        let mem = std::fs::metadata(dir.join(vmm::snapshot::MEMORY_FILE)).unwrap();
        assert_eq!(mem.len(), 128 << 20);
        let on_disk = std::os::unix::fs::MetadataExt::blocks(&mem) * 512;
        assert!(on_disk < 4 << 20, "{chip}: {on_disk} bytes on disk");
        let tl = tmp(&format!("e2e-{chip}-{vcpus}.json"));
        let out = restore(&dir, &tl).wait_with_output().unwrap();
        check_restored(&out, &read_timeline(&tl));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn snapshot_continue_keeps_the_guest_running() {
    if !kvm_or_skip("snapshot_continue_keeps_the_guest_running") {
        return;
    }
    let (out, dir) = take_snapshot("continue", &["--snapshot-continue"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        markers(&out.stdout),
        [
            "@@bootlab init-start",
            "@@bootlab snapshot",
            "@@bootlab exec",
            "@@bootlab done"
        ]
    );
    let tl = tmp("continue.json");
    let out = restore(&dir, &tl).wait_with_output().unwrap();
    check_restored(&out, &read_timeline(&tl));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A restored machine is saved again (`vm restore --snapshot-at exec`), and that
/// snapshot restores to the rest of the run: a chain of two restores prints
/// exactly what the one restore does.
#[test]
fn a_restored_guest_saved_again_restores_to_the_rest_of_its_run() {
    if !kvm_or_skip("a_restored_guest_saved_again_restores_to_the_rest_of_its_run") {
        return;
    }
    let (out, first) = take_snapshot("chain-1", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let second = tmp("chain-2");
    let _ = std::fs::remove_dir_all(&second);
    let out = bootlab()
        .args(["vm", "restore"])
        .arg(&first)
        .args(["--timeout", "20", "--snapshot-at", "exec", "--snapshot-out"])
        .arg(&second)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "@@bootlab exec\n");
    let tl = tmp("chain.json");
    let out = restore(&second, &tl).wait_with_output().unwrap();
    let _ = read_timeline(&tl);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the lab guest\n@@bootlab done\n"
    );
    for d in [first, second] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The snapshot folder's files, byte for byte.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

/// Ten restores of one snapshot, four at a time: all succeed with the same
/// output, the snapshot is unchanged (MAP_PRIVATE), and no process or file is
/// left behind.
#[test]
fn ten_restores_four_at_a_time_all_succeed_and_leave_nothing() {
    if !kvm_or_skip("ten_restores_four_at_a_time_all_succeed_and_leave_nothing") {
        return;
    }
    let (out, dir) = take_snapshot("many", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let before = files(&dir);
    let mut outputs = Vec::new();
    for batch in 0..3 {
        let n = if batch == 2 { 2 } else { 4 };
        let children: Vec<_> = (0..n)
            .map(|i| {
                let tl = tmp(&format!("many-{batch}-{i}.json"));
                (restore(&dir, &tl), tl)
            })
            .collect();
        for (child, tl) in children {
            let pid = child.id();
            let out = child.wait_with_output().unwrap();
            check_restored(&out, &read_timeline(&tl));
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "restore {pid} still running"
            );
            outputs.push(out.stdout);
        }
    }
    assert_eq!(outputs.len(), 10);
    // The same snapshot gives the same output every time.
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    // The guest wrote to its memory (its stack), never into the snapshot, and the
    // restores added no file to the folder.
    assert_eq!(files(&dir), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The Linux guest saved right before its workload (guest-init's
/// `bootlab.snapshot`) restores to the workload's exec and done, and its status.
/// Slow on an emulated host: the boot to the snapshot point takes about a minute.
#[test]
fn linux_snapshot_restores_to_the_workload_slow() {
    if !kvm_or_skip("linux_snapshot_restores_to_the_workload_slow") {
        return;
    }
    let images = std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"));
    if !images.join("vmlinux").is_file() {
        if common::required() {
            panic!("guest-images/out/vmlinux is missing: run guest-images/build.sh");
        }
        eprintln!("SKIP linux_snapshot_restores_to_the_workload_slow: no vmlinux");
        return;
    }
    let dir = tmp("linux");
    let _ = std::fs::remove_dir_all(&dir);
    let out = bootlab()
        .env("BOOTLAB_IMAGES", &images)
        .args(["vm", "run", "--guest", "linux", "--timeout", "600"])
        .args(["--snapshot-at", "snapshot", "--snapshot-out"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    if !String::from_utf8_lossy(&out.stdout).contains("@@bootlab snapshot") {
        // The guest ran to its end without a snapshot point: its init predates
        // bootlab.snapshot.
        let msg = "the guest images' init has no bootlab.snapshot: rebuild them with \
                   guest-images/build.sh";
        if common::required() {
            panic!("{msg}");
        }
        eprintln!("SKIP linux_snapshot_restores_to_the_workload_slow: {msg}");
        return;
    }
    assert!(
        dir.join(vmm::snapshot::STATE_FILE).is_file(),
        "no snapshot taken: {stderr}"
    );
    let seen = markers(&out.stdout);
    assert_eq!(
        seen.iter().map(|l| l.trim_end()).collect::<Vec<_>>(),
        ["@@bootlab init-start", "@@bootlab snapshot"]
    );
    let tl = tmp("linux.json");
    let out = bootlab()
        .args(["vm", "restore"])
        .arg(&dir)
        .args(["--timeout", "60", "--timeline-out"])
        .arg(&tl)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let t = read_timeline(&tl);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Vec<String> = markers(&out.stdout)
        .iter()
        .map(|l| l.trim_end().to_owned())
        .collect();
    assert_eq!(seen, ["@@bootlab exec", "@@bootlab done"], "{stdout}");
    assert!(stdout.contains("hello from bootlab guest-init"), "{stdout}");
    let phases: Vec<String> = t
        .phases(&RESTORED_VM_MODEL)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(phases, ["restore", "process", "teardown"]);
    assert_eq!(t.runtime, "bootlab-vm-linux-restore");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--snapshot-at signal`: SIGUSR1 saves a guest in the middle of its endless
/// loop (the fuzz guest's `markers` mode: a marker-port write and a console line,
/// again and again), and the restored guest carries on with that loop until the
/// restore's timeout.
#[test]
fn a_signal_saves_a_running_guest_that_restores_where_it_was() {
    if !kvm_or_skip("a_signal_saves_a_running_guest_that_restores_where_it_was") {
        return;
    }
    use std::io::Read;
    let dir = tmp("signal");
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = bootlab()
        .args(["vm", "run", "--guest", "fuzz", "--cmdline", "markers"])
        .args([
            "--timeout",
            "20",
            "--snapshot-at",
            "signal",
            "--snapshot-out",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The guest's first line means the monitor runs it, and has blocked the signal
    // (it does so before the first KVM_RUN).
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("@@bootlab done\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the guest printed nothing");
        seen.extend_from_slice(&buf[..n]);
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let status = child.wait().unwrap();
    drain.join().unwrap().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(dir.join(vmm::snapshot::STATE_FILE).is_file(), "{err}");

    let out = bootlab()
        .args(["vm", "restore"])
        .arg(&dir)
        .args(["--timeout", "0.5"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first line may be the rest of one the save cut; every other complete
    // line is the loop's.
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert!(lines.len() > 2, "{text}");
    for l in &lines[1..lines.len() - 1] {
        assert_eq!(*l, "@@bootlab done\n");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
