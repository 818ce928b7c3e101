//! Shared helpers of the sandbox tests and benches: the root requirement (skip loudly,
//! or fail under `BOOTLAB_REQUIRE_KVM=1`) and a tiny busybox-static rootfs built on
//! the fly (plus the seccomp probe, compiled with `gcc -static`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Applets linked into the test rootfs.
const APPLETS: &[&str] = &[
    "sh", "true", "false", "echo", "cat", "hostname", "ps", "ls", "ip", "grep", "dd", "sleep",
    "touch", "id", "seq", "kill", "head", "wc", "readlink", "tr", "mount",
];

/// True when the test may run as root; otherwise prints SKIP (or panics when CI
/// demands the privileged tests with `BOOTLAB_REQUIRE_KVM=1`).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("BOOTLAB_REQUIRE_KVM").as_deref() == Ok("1") {
        panic!("{test}: needs root, and BOOTLAB_REQUIRE_KVM=1 forbids skipping");
    }
    eprintln!("SKIP: {test}: the sandbox tests need root");
    false
}

/// A busybox rootfs with /bin/sc-probe, built once per test binary under `base`.
pub fn rootfs(base: &Path) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| build_rootfs(base)).clone()
}

fn build_rootfs(base: &Path) -> PathBuf {
    let dir = base.join(format!("sandbox-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["bin", "proc", "dev", "tmp", "etc", "sys"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("busybox-static is installed");
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    let probe_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/probe.c");
    let probe_src = if probe_src.exists() {
        probe_src
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("container/tests/common/probe.c")
    };
    let st = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(dir.join("bin/sc-probe"))
        .arg(&probe_src)
        .status()
        .expect("gcc runs");
    assert!(st.success(), "compiling the seccomp probe failed");
    dir
}

/// Removes leftovers of earlier test runs whose process is gone (best effort).
pub fn sweep_old(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("sandbox-rootfs-")
            .and_then(|p| p.parse::<i32>().ok())
        {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
