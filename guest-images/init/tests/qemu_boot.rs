//! Boots the built kernel + initramfs under QEMU (`-M microvm`, KVM) and waits for
//! the kernel to hand over to /init and for the init's markers. On this project's
//! CI hosts /dev/kvm is emulated: there a 64-bit init cannot make system calls, so
//! the test boots the emulated-KVM configuration (guest-images/README.md: the
//! 32-bit guest-init32, CPUID vendor GenuineIntel, `no-kvmclock tsc=reliable
//! nowatchdog rodata=off`) and requires all three markers; on hardware KVM it boots
//! the 64-bit guest-init and checks whatever markers arrive. Takes 30-120 s under
//! the emulator (host load), well under a second on hardware.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use guest_init::console::HELLO_LINE;
use timeline::marker::{Marker, KERNEL_RUN_INIT_LINE};

/// Kernel command line for the emulated KVM of our hosts (guest-images/README.md):
/// the emulator rejects xsave, smap's clac, popcnt and the BMI/AVX families.
const CMDLINE: &str = "console=ttyS0 noxsave \
     clearcpuid=smap,popcnt,bmi1,bmi2,avx,avx2,fsgsbase,rdpid,rdseed,rdrand \
     reboot=k panic=-1";

/// Added on an emulated /dev/kvm (see `bootlab vm run --guest linux` there).
const EMULATED_CMDLINE: &str = "no-kvmclock tsc=reliable nowatchdog rodata=off";

/// /dev/kvm without the vmx/svm CPU flags is emulated (as bench's host facts say).
fn kvm_is_emulated() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    !cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Generous: the emulated boot took 20-120 s here depending on host load (the
/// gzip initramfs alone costs tens of seconds to unpack under the emulator).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn kernel_boots_to_init_under_qemu_microvm() {
    let dir = common::images_dir();
    let emulated = kvm_is_emulated();
    let (initramfs, cpu, cmdline) = if emulated {
        (
            "initramfs32.cpio",
            "host,-arch-capabilities,vendor=GenuineIntel",
            format!("{CMDLINE} {EMULATED_CMDLINE}"),
        )
    } else {
        (
            "initramfs.cpio",
            "host,-arch-capabilities",
            CMDLINE.to_owned(),
        )
    };
    let (Some(vmlinux), Some(initrd)) = (
        common::need(&dir.join("vmlinux"), "the kernel"),
        // Uncompressed: gunzip in the emulated kernel costs ~70 s per MB here,
        // copying the plain archive ~10 s per MB (guest-images/README.md).
        common::need(&dir.join(initramfs), "the initramfs"),
    ) else {
        return;
    };
    if !Path::new("/dev/kvm").exists() {
        common::skip("/dev/kvm missing");
        return;
    }
    let mut qemu = match Command::new("qemu-system-x86_64")
        .args(["-M", "microvm", "-enable-kvm", "-cpu", cpu])
        // Same machine as the documented command (guest-images/README.md), plus
        // the exit port guest-init writes its status to (QEMU then exits).
        .args(["-m", "256", "-nographic", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0x501,iosize=1"])
        .arg("-kernel")
        .arg(&vmlinux)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", &cmdline])
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
                // After "Run /init" give a 64-bit guest-init a moment (hardware KVM
                // runs it in milliseconds); the emulated one runs until `done`.
                if !emulated
                    && reached_init.is_some_and(|t| start.elapsed() > t + Duration::from_secs(3))
                {
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
    // Every marker of the protocol, in order, and the workload's line: on the
    // emulated KVM the 32-bit configuration runs user space, on hardware KVM the
    // normal one does.
    assert_eq!(markers, &Marker::REQUIRED[..], "console tail:\n{tail}");
    assert!(
        console.iter().any(|l| l.ends_with(HELLO_LINE.trim_end())),
        "no hello line; console tail:\n{tail}"
    );
}
