//! guest-init's VM path (PID 1, /proc not mounted) exercised without a VM: the
//! built static guest-init runs as PID 1 of a new PID + mount namespace, chrooted
//! into an empty directory, with CAP_SYS_RAWIO dropped so that it cannot write
//! I/O ports of the host. It must announce the markers, mount /proc, /sys and
//! /dev, run the default workload (the host's /proc/cmdline names none) and end
//! with reboot(2), which in a PID namespace kills its init with SIGHUP.
//! Needs root, unshare, setpriv and chroot (util-linux, coreutils).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use timeline::marker::Marker;

#[test]
fn pid1_without_proc_mounts_runs_and_reboots() {
    let Some(bin) = common::need(&common::images_dir().join("guest-init"), "guest-init") else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("VM-mode test needs root (namespaces, mounts)");
        return;
    }
    let root = std::env::temp_dir().join(format!("bootlab-vm-mode-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&bin, root.join("init")).unwrap();
    let out = Command::new("timeout")
        .args([
            "20",
            "unshare",
            "--pid",
            "--fork",
            "--mount",
            "--propagation",
            "private",
        ])
        .args([
            "setpriv",
            "--bounding-set=-sys_rawio",
            "--inh-caps=-sys_rawio",
        ])
        .arg("chroot")
        .arg(&root)
        .arg("/init")
        .output();
    let created: Vec<bool> = ["proc", "sys", "dev"]
        .iter()
        .map(|d| root.join(d).is_dir())
        .collect();
    std::fs::remove_dir_all(&root).unwrap();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            common::skip(&format!("cannot run unshare/setpriv/chroot: {e}"));
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") || stderr.contains("setpriv: ") {
        common::skip(&format!("namespaces not available here: {stderr}"));
        return;
    }
    assert_eq!(
        common::markers(&stdout),
        Marker::REQUIRED,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(guest_init::console::HELLO_LINE), "{stdout}");
    assert_eq!(created, [true, true, true], "mount points not created");
    // No mount failed (guest-init warns on stderr when one does).
    assert!(!stderr.contains("guest-init: mount"), "stderr:\n{stderr}");
    // reboot(2) in a PID namespace ends it: its init dies of SIGHUP, which unshare
    // passes on by killing itself with the same signal.
    assert_eq!(
        out.status.signal().or(out.status.code().map(|c| c - 128)),
        Some(libc::SIGHUP),
        "status {:?}, stderr:\n{stderr}",
        out.status
    );
}
