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
fn the_lab_guest_reads_sector_zero_of_its_disk_under_both_irqchips() {
    if !kvm_or_skip("the_lab_guest_reads_sector_zero_of_its_disk_under_both_irqchips") {
        return;
    }
    let dir = TempDir::new("vmdev-read").unwrap();
    let line = format!("bootlab disk test {}", std::process::id());
    let img = image(dir.path(), "a.img", &line);
    let img = img.to_str().unwrap();
    for chip in ["split", "kernel"] {
        for disk in [img.to_owned(), format!("{img},ro"), format!("{img},rw")] {
            let out = run_lab(&["--irqchip", chip, "--disk", &disk]);
            let text = stdout(&out);
            assert_eq!(out.status.code(), Some(0), "{chip} {disk}: {text}");
            let want = format!("lab: disk sector 0: {line}\n");
            assert!(text.contains(&want), "{chip} {disk}: {text}");
            // The read comes inside the workload, before its end.
            let read = text.find(&want).unwrap();
            assert!(read < text.find("@@bootlab done").unwrap(), "{text}");
        }
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
