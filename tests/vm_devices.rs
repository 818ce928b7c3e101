//! `bootlab vm run --disk` end to end with the lab guest, which drives the disk
//! through its own minimal virtio-mmio driver (one queue, one read of sector 0)
//! and prints the sector's first line: the device manager's placement, the
//! command-line entry, the transport and virtio-blk, under both irqchip models.
//! Hostile drivers are in `vm_hostile.rs`, bad `--disk` values in `bad_input.rs`.

mod common;
use common::{bootlab, kvm_or_skip};

use std::path::{Path, PathBuf};
use std::process::Output;
use test_support::TempDir;

/// A 1 MiB raw image whose sector 0 starts with `line` and a newline.
fn image(dir: &Path, name: &str, line: &str) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..line.len()].copy_from_slice(line.as_bytes());
    bytes[line.len()] = b'\n';
    std::fs::write(&path, bytes).unwrap();
    path
}

fn run_lab(extra: &[&str]) -> Output {
    bootlab()
        .args(["vm", "run", "--guest", "lab", "--timeout", "20"])
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_lab_guest_reads_sector_zero_of_its_disk_under_both_irqchips_and_notify_modes() {
    if !kvm_or_skip(
        "the_lab_guest_reads_sector_zero_of_its_disk_under_both_irqchips_and_notify_modes",
    ) {
        return;
    }
    let dir = TempDir::new("vmdev-read").unwrap();
    let line = format!("bootlab disk test {}", std::process::id());
    let img = image(dir.path(), "a.img", &line);
    let img = img.to_str().unwrap();
    let disks = [img.to_owned(), format!("{img},ro"), format!("{img},rw")];
    let runs = ["split", "kernel"]
        .into_iter()
        .flat_map(|chip| disks.iter().map(move |d| (chip, d.as_str(), "exit")))
        .chain(["split", "kernel"].map(|chip| (chip, img, "ioeventfd")));
    for (chip, disk, notify) in runs {
        let out = run_lab(&["--irqchip", chip, "--disk", disk, "--virtio-notify", notify]);
        let chip = format!("{chip}, {notify}");
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{chip} {disk}: {text}");
        let want = format!("lab: disk sector 0: {line}\n");
        assert!(text.contains(&want), "{chip} {disk}: {text}");
        // The read comes inside the workload, before its end.
        let read = text.find(&want).unwrap();
        assert!(read < text.find("@@bootlab done").unwrap(), "{text}");
    }
}

#[test]
fn the_first_disk_is_the_first_device_and_no_disk_means_no_read() {
    if !kvm_or_skip("the_first_disk_is_the_first_device_and_no_disk_means_no_read") {
        return;
    }
    let dir = TempDir::new("vmdev-two").unwrap();
    let a = image(dir.path(), "a.img", "first disk");
    let b = image(dir.path(), "b.img", "second disk");
    let out = run_lab(&["--disk", b.to_str().unwrap(), "--disk", a.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("lab: disk sector 0: second disk\n"), "{text}");
    assert!(!text.contains("first disk"), "{text}");

    let out = run_lab(&[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("lab: disk"), "{text}");
}

/// The slow one: the Linux guest with its root on the images' rootfs.ext4
/// (`--guest linux --disk`, no initramfs): the kernel finds the disk through the
/// monitor's `virtio_mmio.device=` entry, mounts the ext4 root read-only and runs
/// guest-init from it (guest-init32 on an emulated /dev/kvm), which runs the
/// workload to its end. Minutes on an emulated-KVM host (178 s measured on a busy
/// one), seconds on hardware KVM (the nested lane runs it too: tests/hw_lane.rs).
#[test]
fn linux_guest_boots_from_its_root_disk_slow() {
    let test = "linux_guest_boots_from_its_root_disk_slow";
    if !kvm_or_skip(test) {
        return;
    }
    let images = std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"));
    let (vmlinux, disk) = (images.join("vmlinux"), images.join("rootfs.ext4"));
    let needs = [
        test_support::Need::Path(&vmlinux, "run guest-images/build.sh"),
        test_support::Need::Path(&disk, "run guest-images/build.sh disk"),
    ];
    if !test_support::need(test, &needs) {
        return;
    }
    let out = bootlab()
        .env("BOOTLAB_IMAGES", &images)
        .args([
            "vm",
            "run",
            "--guest",
            "linux",
            "--timeout",
            "600",
            "--disk",
        ])
        .arg(&disk)
        .output()
        .unwrap();
    let text = stdout(&out);
    let tail = &text[text.len().saturating_sub(4000)..];
    let mut lines = test_support::LINUX_RUN_LINES;
    lines[0] = " as init process";
    if let Some(want) = test_support::missing_in_order(&text, &lines) {
        panic!("{want:?} missing or out of order:\n{tail}");
    }
    for line in [
        "virtio-mmio: Registering device virtio-mmio.0 at 0xd0001000-0xd0001fff, IRQ 5.",
        "VFS: Mounted root (ext4 filesystem) readonly",
        "Run /sbin/guest-init",
    ] {
        assert!(text.contains(line), "no {line:?}:\n{tail}");
    }
    assert!(!text.contains("Freeing initrd memory"), "{tail}");
    assert_eq!(out.status.code(), Some(0), "{tail}");
}
