//! The built guest images (guest-images/build.sh; scripts/test.sh builds them
//! before `cargo test`): the static guest-init, the initramfs archives, the rootfs
//! and the kernel. Skips loudly when they are absent, fails instead when
//! BOOTLAB_REQUIRE_KVM=1.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{images_dir, need};

/// `cpio -t` of an archive given on stdin (optionally gunzipped first).
fn cpio_list(archive: &Path, gzipped: bool) -> Vec<String> {
    let data = std::fs::read(archive).unwrap();
    let data = if gzipped {
        let mut gz = Command::new("gzip")
            .args(["-dc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut stdin = gz.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&data).unwrap();
        });
        let out = gz.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "gzip -d {}", archive.display());
        out.stdout
    } else {
        data
    };
    let mut cpio = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cpio (apt-get install cpio)");
    let mut stdin = cpio.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    let out = cpio.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "cpio -t {}", archive.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_initramfs_entries(entries: &[String]) {
    for want in ["init", "dev/console", "proc", "sys", "dev"] {
        assert!(
            entries.iter().any(|e| e == want),
            "{want} missing from {entries:?}"
        );
    }
}

#[test]
fn initramfs_lists_with_cpio_and_has_init() {
    let dir = images_dir();
    let Some(cpio) = need(&dir.join("initramfs.cpio"), "the initramfs") else {
        return;
    };
    assert_initramfs_entries(&cpio_list(&cpio, false));
    let Some(gz) = need(&dir.join("initramfs.cpio.gz"), "the gzip initramfs") else {
        return;
    };
    assert_initramfs_entries(&cpio_list(&gz, true));
    // /init is guest-init itself, byte for byte.
    let init = need(&dir.join("guest-init"), "guest-init").unwrap();
    let size = std::fs::metadata(init).unwrap().len();
    assert!(std::fs::metadata(&cpio).unwrap().len() > size);
}

#[test]
fn initramfs32_has_the_32bit_init_and_a_hello_link() {
    let dir = images_dir();
    let Some(cpio) = need(&dir.join("initramfs32.cpio"), "the 32-bit initramfs") else {
        return;
    };
    let entries = cpio_list(&cpio, false);
    assert_initramfs_entries(&entries);
    assert!(entries.iter().any(|e| e == "bin/hello"), "{entries:?}");
    let init = need(&dir.join("guest-init32"), "guest-init32").unwrap();
    let size = std::fs::metadata(init).unwrap().len();
    assert!(std::fs::metadata(&cpio).unwrap().len() > size);
}

/// Runs the builder's cpio step itself (build.sh initramfs) into a scratch
/// output directory and lists what it wrote.
#[test]
fn builder_cpio_step_writes_a_listable_initramfs() {
    let dir = images_dir();
    let (Some(init), Some(rootfs)) = (
        need(&dir.join("guest-init"), "guest-init"),
        need(&dir.join("rootfs"), "the rootfs"),
    ) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("build.sh initramfs needs root (mknod /dev/console)");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("bootlab-cpio-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::copy(&init, scratch.join("guest-init")).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(&rootfs)
        .arg(scratch.join("rootfs"))
        .status()
        .unwrap();
    assert!(status.success());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("initramfs")
        .env("BOOTLAB_IMAGES", &scratch)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let listed = out
        .status
        .success()
        .then(|| cpio_list(&scratch.join("initramfs.cpio.gz"), true));
    let full = out
        .status
        .success()
        .then(|| cpio_list(&scratch.join("initramfs-full.cpio.gz"), true));
    let listed32 = out
        .status
        .success()
        .then(|| cpio_list(&scratch.join("initramfs32.cpio"), false));
    std::fs::remove_dir_all(&scratch).unwrap();
    assert!(out.status.success(), "build.sh initramfs failed:\n{stderr}");
    assert_initramfs_entries(&listed.unwrap());
    assert_initramfs_entries(&listed32.unwrap());
    let full = full.unwrap();
    for want in ["init", "sbin/guest-init", "bin/busybox", "bin/sh"] {
        assert!(
            full.iter().any(|e| e == want),
            "{want} missing from the full initramfs"
        );
    }
}

#[test]
fn built_guest_init_is_static_and_runs_hello() {
    let Some(bin) = need(&images_dir().join("guest-init"), "the static guest-init") else {
        return;
    };
    let bytes = std::fs::read(&bin).unwrap();
    assert_eq!(
        common::elf_is_static(&bytes),
        Ok(true),
        "{} has a PT_INTERP",
        bin.display()
    );
    let out = Command::new(&bin).arg("hello").output().unwrap();
    common::assert_hello_run(&out);
    eprintln!("guest-init: {} bytes", bytes.len());
}

#[test]
fn static_check_tells_dynamic_from_static() {
    // The test binary itself is dynamically linked: the check must say so.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(common::elf_is_static(&me), Ok(false));
    assert!(common::elf_is_static(b"#!/bin/sh\n").is_err());
}

#[test]
fn rootfs_has_busybox_applets_and_guest_init() {
    let Some(rootfs) = need(&images_dir().join("rootfs"), "the rootfs") else {
        return;
    };
    for applet in ["sh", "true", "echo", "cat", "ls", "mount"] {
        let link = std::fs::read_link(rootfs.join("bin").join(applet))
            .unwrap_or_else(|e| panic!("bin/{applet}: {e}"));
        assert_eq!(link, Path::new("busybox"));
    }
    let busybox = std::fs::read(rootfs.join("bin/busybox")).unwrap();
    assert_eq!(common::elf_is_static(&busybox), Ok(true));
    let init = std::fs::read(rootfs.join("sbin/guest-init")).unwrap();
    assert_eq!(common::elf_is_static(&init), Ok(true));
    assert_eq!(
        std::fs::canonicalize(rootfs.join("init")).unwrap(),
        std::fs::canonicalize(rootfs.join("sbin/guest-init")).unwrap()
    );
    for f in ["etc/passwd", "etc/group", "etc/hostname"] {
        assert!(rootfs.join(f).is_file(), "{f} missing");
    }
    // The rootfs' own busybox runs a workload under the rootfs' guest-init.
    let out = Command::new(rootfs.join("sbin/guest-init"))
        .arg(rootfs.join("bin/echo"))
        .arg("from the rootfs")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("\nfrom the rootfs\n@@bootlab done"),
        "{stdout}"
    );
}

#[test]
fn vmlinux_is_an_elf_with_a_pvh_note() {
    let Some(vmlinux) = need(&images_dir().join("vmlinux"), "the kernel") else {
        return;
    };
    let head = std::fs::read(&vmlinux).unwrap();
    assert_eq!(&head[..4], b"\x7fELF");
    let out = Command::new("readelf")
        .arg("-n")
        .arg(&vmlinux)
        .output()
        .expect("readelf (binutils)");
    let notes = String::from_utf8_lossy(&out.stdout);
    // XEN_ELFNOTE_PHYS32_ENTRY: owner "Xen", type 18.
    let pvh = notes.lines().any(|l| {
        l.trim_start().starts_with("Xen") && (l.contains("0x00000012") || l.contains("PHYS32"))
    });
    assert!(pvh, "no PVH entry note in {}:\n{notes}", vmlinux.display());
    let config = std::fs::read_to_string(images_dir().join("vmlinux.config")).unwrap();
    for opt in [
        "CONFIG_PVH=y",
        "CONFIG_SERIAL_8250_CONSOLE=y",
        "CONFIG_BLK_DEV_INITRD=y",
    ] {
        assert!(
            config.lines().any(|l| l == opt),
            "{opt} not in vmlinux.config"
        );
    }
    assert!(!config.lines().any(|l| l == "CONFIG_MODULES=y"));
}
