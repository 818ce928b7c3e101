//! The sandbox tests' fixture: a tiny busybox-static rootfs with the static `probe`
//! helper (compiled from container/tests/probe/probe.rs), built by the tests
//! themselves so they do not depend on the guest-images build, and the checks
//! around it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where a statically linked busybox is expected (Debian package busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// True when the test may run sandboxes: root, and a static busybox to build the
/// rootfs from; otherwise skips or fails per [`crate::required`].
pub fn require_root() -> bool {
    crate::need(
        "sandbox test",
        &[
            crate::Need::Root,
            crate::Need::Path(Path::new(BUSYBOX), "install busybox-static"),
        ],
    )
}

/// Where the probe helper and the rootfs are built: beside the test binaries in the
/// target folder (`target/debug/test-support`), which, unlike a `/tmp` mounted
/// noexec, can hold executables, and is kept between runs so the probe compiles once.
fn tmp_base() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("test-support")))
        .unwrap_or_else(std::env::temp_dir)
}

/// Compiles the probe helper (static, std only) once per source version.
fn probe_binary() -> PathBuf {
    const SRC: &str = include_str!("../../container/tests/probe/probe.rs");
    let hash = SRC.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let out = tmp_base().join(format!("probe-{hash:016x}"));
    if out.exists() {
        return out;
    }
    let partial = tmp_base().join(format!("probe-{hash:016x}.{}", std::process::id()));
    let src = tmp_base().join(format!("probe-{hash:016x}.{}.rs", std::process::id()));
    std::fs::write(&src, SRC).expect("writing the probe source");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let st = Command::new(rustc)
        .args(["--edition", "2021", "--crate-name", "probe", "-O"])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&partial)
        .arg(&src)
        .status()
        .expect("running rustc for the probe helper");
    let _ = std::fs::remove_file(&src);
    assert!(st.success(), "compiling the probe helper failed");
    std::fs::rename(&partial, &out).expect("installing the probe helper");
    out
}

/// A busybox-static rootfs with `/bin/probe`, built once per test process in
/// the target folder (stale ones of dead test processes are removed).
pub fn rootfs() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = tmp_base();
        std::fs::create_dir_all(&base).unwrap();
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("sandbox-rootfs-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let root = base.join(format!("sandbox-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["bin", "proc", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        copy_executable(Path::new(BUSYBOX), &root.join("bin/busybox"));
        let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
        }
        copy_executable(&probe_binary(), &root.join("bin/probe"));
        root
    })
}

/// The cgroup directories named `bootlab-<pid>-*` below `base` (a runtime names its
/// cgroups after its pid).
pub fn cgroup_dirs_of(base: &Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("bootlab-{pid}-");
    let mut out = Vec::new();
    let mut stack = vec![base.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    out.push(e.path());
                } else if e.path().components().count() < 12 {
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

/// Copies the executable `src` to `dst` with cp(1), in a process of its own. Copied
/// here, the destination's write descriptor would be inherited by every child another
/// test thread forks meanwhile, until that child execs; running the copy then fails
/// with ETXTBSY ("Text file busy") now and then.
pub fn copy_executable(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg(src)
        .arg(dst)
        .status()
        .expect("running cp");
    assert!(st.success(), "cp {} {}: {st}", src.display(), dst.display());
}

/// The probe's mount-escape attacks (container/tests/probe: `OP[:ARGS]`), run by
/// tests/sandbox_escape.rs through `sandbox run` and by tests/oci_cli.rs through
/// create + start; each must fail with EPERM.
pub const MOUNT_ESCAPES: [&str; 9] = [
    "mount:tmpfs:/tmp",
    "mount:proc:/mnt",
    "umount:/proc",
    "umount:/",
    "pivot_root",
    "chroot:/tmp",
    "open_by_handle_at",
    "fsopen",
    "open_tree:/",
];
