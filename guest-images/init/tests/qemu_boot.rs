//! Boots the built kernel + initramfs under QEMU (`-M microvm`, KVM) and waits for
//! the kernel to hand over to /init. On this project's CI hosts /dev/kvm is
//! emulated and guest user space cannot run (shared/HOST-KVM.md), so the check
//! stops at the kernel's "Run /init as init process" line; on hardware KVM the
//! guest-init markers that follow are checked too when they arrive. Takes 20-120 s
//! under the emulator (host load), well under a second on hardware.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use timeline::marker::{Marker, KERNEL_RUN_INIT_LINE};

/// Kernel command line for the emulated KVM of our hosts (guest-images/README.md):
/// the emulator rejects xsave, smap's clac, popcnt and the BMI/AVX families.
const CMDLINE: &str = "console=ttyS0 noxsave \
     clearcpuid=smap,popcnt,bmi1,bmi2,avx,avx2,fsgsbase,rdpid,rdseed,rdrand \
     reboot=k panic=-1";

/// Generous: the emulated boot took 20-120 s here depending on host load (the
/// gzip initramfs alone costs tens of seconds to unpack under the emulator).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn kernel_boots_to_init_under_qemu_microvm() {
    let dir = common::images_dir();
    let (Some(vmlinux), Some(initrd)) = (
        common::need(&dir.join("vmlinux"), "the kernel"),
        // Uncompressed: gunzip in the emulated kernel costs ~70 s per MB here,
        // copying the plain archive ~10 s per MB (guest-images/README.md).
        common::need(&dir.join("initramfs.cpio"), "the initramfs"),
    ) else {
        return;
    };
    if !Path::new("/dev/kvm").exists() {
        common::skip("/dev/kvm missing");
        return;
    }
    let mut qemu = match Command::new("qemu-system-x86_64")
        .args([
            "-M",
            "microvm",
            "-enable-kvm",
            "-cpu",
            "host,-arch-capabilities",
        ])
        // Same machine as the documented command (guest-images/README.md).
        .args(["-m", "256", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&vmlinux)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", CMDLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            common::skip(&format!("cannot start qemu-system-x86_64: {e}"));
            return;
        }
    };
    let (tx, rx) = mpsc::channel();
    let stdout = qemu.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut console = Vec::new();
    let mut reached_init = None;
    let mut markers = Vec::new();
    while start.elapsed() < BOOT_TIMEOUT {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if line.contains(KERNEL_RUN_INIT_LINE) && reached_init.is_none() {
                    reached_init = Some(start.elapsed());
                }
                if let Some(m) = Marker::parse_line(&line) {
                    markers.push(m);
                }
                console.push(line);
                if markers.last() == Some(&Marker::Done) {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // After "Run /init" give guest-init a moment (hardware KVM runs it
                // in milliseconds); under the emulator nothing more comes.
                if reached_init.is_some_and(|t| start.elapsed() > t + Duration::from_secs(3)) {
                    break;
                }
                if let Ok(Some(_)) = qemu.try_wait() {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = qemu.kill();
    let status = qemu.wait().unwrap();
    let tail = console[console.len().saturating_sub(30)..].join("\n");
    let Some(t) = reached_init else {
        let mut stderr = String::new();
        if let Some(mut e) = qemu.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        panic!(
            "kernel did not reach \"{KERNEL_RUN_INIT_LINE}\" within {BOOT_TIMEOUT:?} \
             (qemu {status}); console tail:\n{tail}\nqemu stderr:\n{stderr}"
        );
    };
    eprintln!(
        "kernel reached init after {:.1} s; guest-init markers seen: {markers:?}",
        t.as_secs_f64()
    );
    // Whatever markers did arrive must be a prefix of the protocol, in order.
    assert_eq!(
        markers,
        Marker::ALL[..markers.len()],
        "console tail:\n{tail}"
    );
}
