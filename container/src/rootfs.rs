//! The child's filesystem set-up inside its new mount namespace:
//! 1. the whole tree is made private (`MS_REC|MS_PRIVATE` on `/`), so nothing
//!    propagates to or from the host even where the host mounts things shared;
//! 2. the rootfs is bind-mounted onto itself (pivot_root needs a mount point);
//! 3. the mounts are made below it: by default a new procfs on /proc, a tmpfs /dev
//!    with the minimal devices, a tmpfs /tmp; or a bundle's `mounts`;
//! 4. `pivot_root(".", ".")` then a lazy unmount of the old root stacked on top
//!    (pivot_root(2)'s documented idiom; no put-old directory, never chroot);
//! 5. masked and read-only paths (OCI), and the root remounted `nodev,nosuid` (a
//!    device node shipped in the rootfs opens nothing) and read-only (default).
//!
//! Everything that can be prepared without touching the filesystem (paths, flags,
//! C strings) is prepared in the parent by [`RootfsPlan::new`]; [`RootfsPlan::apply`]
//! runs in the child.

use crate::spec::{Mount, SandboxSpec};
use crate::sys::{cpath, cvt, mount_attr};
use crate::{Error, Result};
use std::ffi::{CStr, CString};
use std::path::{Component, Path, PathBuf};

/// The minimal /dev: name, major, minor (all mode 0666 character devices).
pub const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Symlinks of the minimal /dev.
pub const DEV_LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Size limit of the default /dev and /tmp tmpfs mounts.
const DEV_TMPFS_DATA: &str = "mode=755,size=64k";
const TMP_TMPFS_DATA: &str = "mode=1777,size=64m";

/// One mount, ready for mount(2).
#[derive(Debug)]
struct MountOp {
    source: Option<CString>,
    /// Host-side path of the target (below the rootfs), before pivot_root.
    target: PathBuf,
    target_c: CString,
    fstype: Option<CString>,
    flags: libc::c_ulong,
    data: Option<CString>,
    propagation: libc::c_ulong,
    /// Bind mount that must be remounted with `flags` (e.g. read-only).
    bind_remount: bool,
    /// The bind source is a file: the target is created as an empty file.
    file_target: bool,
}

/// The prepared filesystem set-up of one sandbox.
#[derive(Debug)]
pub struct RootfsPlan {
    root: PathBuf,
    root_c: CString,
    mounts: Vec<MountOp>,
    /// Populate this (host-side) /dev with the minimal devices.
    dev: Option<PathBuf>,
    /// Devices must be bind-mounted from the host (no mknod in a user namespace).
    bind_devices: bool,
    /// A devpts is mounted on /dev/pts: /dev/ptmx becomes a link to its ptmx.
    ptmx_link: bool,
    /// The bundle's own device nodes (`linux.devices`).
    devices: Vec<crate::devices::Planned>,
    readonly: bool,
    masked: Vec<CString>,
    readonly_paths: Vec<CString>,
}

fn c(s: &str) -> CString {
    // Only called with our own constants and already-validated strings.
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Splits fstab-style options into mount flags, propagation flags and data.
/// Returns (flags, propagation, data, is_bind).
pub fn parse_options(options: &[String]) -> (libc::c_ulong, libc::c_ulong, Vec<String>, bool) {
    let mut flags: libc::c_ulong = 0;
    let mut prop: libc::c_ulong = 0;
    let mut data = Vec::new();
    let mut bind = false;
    for o in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => {
                bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                prop = match o.as_str() {
                    "private" => libc::MS_PRIVATE,
                    "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
                    "shared" => libc::MS_SHARED,
                    "rshared" => libc::MS_SHARED | libc::MS_REC,
                    "slave" => libc::MS_SLAVE,
                    "rslave" => libc::MS_SLAVE | libc::MS_REC,
                    "unbindable" => libc::MS_UNBINDABLE,
                    _ => libc::MS_UNBINDABLE | libc::MS_REC,
                };
                (0, 0)
            }
            other => {
                data.push(other.to_owned());
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data, bind)
}

/// Joins a container path below `root`, refusing `..` components.
fn below(root: &Path, dest: &Path) -> Result<PathBuf> {
    if !dest.is_absolute() {
        return Err(Error::Config(format!(
            "mount destination {} is not absolute",
            dest.display()
        )));
    }
    let mut out = root.to_path_buf();
    for comp in dest.components() {
        match comp {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(Error::Config(format!(
                    "mount destination {} contains `..`",
                    dest.display()
                )))
            }
        }
    }
    Ok(out)
}

/// Checks a rootfs given by the user or a bundle and returns its canonical path: it
/// must be a directory (symlinks are followed) and must not be the host's own root.
/// A rootfs that resolves to `/` (a symlink to it, `/` itself, or a bind mount of it,
/// recognised by device and inode) is refused: pivoting onto the host's root hides
/// nothing, and with a writable root the workload would write to the host's files.
/// Running in the host's root on purpose is done without a mount namespace.
pub fn check_root(given: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let err = |reason: String| Error::Rootfs {
        path: given.to_path_buf(),
        reason,
    };
    let md = std::fs::metadata(given).map_err(|e| err(e.to_string()))?;
    if !md.is_dir() {
        return Err(err("not a directory".into()));
    }
    let canon = std::fs::canonicalize(given).map_err(|e| err(e.to_string()))?;
    let host = std::fs::metadata("/").map_err(|e| err(format!("reading /: {e}")))?;
    if (md.dev(), md.ino()) == (host.dev(), host.ino()) {
        return Err(err(format!(
            "resolves to the host's root directory{}; a sandbox needs its own root \
             filesystem (to run in the host's root, turn the mount namespace off)",
            if canon == Path::new("/") {
                String::new()
            } else {
                format!(" (via {})", canon.display())
            }
        )));
    }
    Ok(canon)
}

impl RootfsPlan {
    /// Prepares the set-up of `spec.rootfs` (canonicalized) in the parent.
    /// `bundle_dir` resolves relative bind sources; `userns` selects bind-mounted
    /// devices instead of mknod.
    pub fn new(
        spec: &SandboxSpec,
        root: &Path,
        bundle_dir: Option<&Path>,
        userns: bool,
    ) -> Result<Self> {
        let cerr = |e: std::io::Error| Error::Config(e.to_string());
        let mut mounts = Vec::new();
        let mut dev = None;
        let mut push = |m: &Mount, mounts: &mut Vec<MountOp>| -> Result<()> {
            let target = below(root, &m.destination)?;
            let (mut flags, propagation, data, bind_opt) = parse_options(&m.options);
            let fstype = m.fstype.as_deref().filter(|t| *t != "none");
            let bind = bind_opt || fstype == Some("bind");
            let mut source = m.source.clone();
            if bind {
                flags |= libc::MS_BIND;
                if let (Some(src), Some(b)) = (&source, bundle_dir) {
                    if src.is_relative() {
                        source = Some(b.join(src));
                    }
                }
                match &source {
                    None => {
                        return Err(Error::Config(format!(
                            "bind mount on {} has no source",
                            m.destination.display()
                        )))
                    }
                    Some(src) => {
                        if let Err(e) = std::fs::metadata(src) {
                            return Err(Error::Config(format!(
                                "bind mount source {} for {}: {e}",
                                src.display(),
                                m.destination.display()
                            )));
                        }
                    }
                }
            }
            let fstype = match fstype {
                // A v1 `cgroup` mount: the namespace-aware cgroup2 is mounted instead.
                Some("cgroup") => Some("cgroup2"),
                Some("bind") => None,
                t => t,
            };
            let file_target = bind && source.as_deref().map(|s| s.is_file()).unwrap_or(false);
            let bind_remount = bind && flags & !(libc::MS_BIND | libc::MS_REC) != 0;
            if m.destination == Path::new("/dev") && fstype == Some("tmpfs") {
                dev = Some(target.clone());
            }
            mounts.push(MountOp {
                source: source.as_deref().map(cpath).transpose().map_err(cerr)?,
                target_c: cpath(&target).map_err(cerr)?,
                target,
                fstype: fstype.map(c),
                flags,
                data: (!data.is_empty()).then(|| c(&data.join(","))),
                propagation,
                bind_remount,
                file_target,
            });
            Ok(())
        };
        if spec.default_mounts {
            let defaults = [
                ("/proc", "proc", vec!["nosuid", "nodev", "noexec"], None),
                (
                    "/dev",
                    "tmpfs",
                    vec!["nosuid", "noexec"],
                    Some(DEV_TMPFS_DATA),
                ),
                (
                    "/tmp",
                    "tmpfs",
                    vec!["nosuid", "nodev"],
                    Some(TMP_TMPFS_DATA),
                ),
            ];
            for (dest, fstype, opts, data) in defaults {
                let mut options: Vec<String> = opts.into_iter().map(String::from).collect();
                options.extend(
                    data.map(|d| d.split(',').map(String::from))
                        .into_iter()
                        .flatten(),
                );
                push(
                    &Mount {
                        destination: dest.into(),
                        fstype: Some(fstype.into()),
                        source: Some(fstype.into()),
                        options,
                    },
                    &mut mounts,
                )?;
            }
        }
        for m in &spec.mounts {
            push(m, &mut mounts)?;
        }
        let cs = |v: &[PathBuf]| -> Result<Vec<CString>> {
            v.iter().map(|p| cpath(p).map_err(cerr)).collect()
        };
        let ptmx_link = spec.mounts.iter().any(|m| {
            m.fstype.as_deref() == Some("devpts") && m.destination == Path::new("/dev/pts")
        });
        Ok(RootfsPlan {
            ptmx_link,
            devices: crate::devices::plan(root, &spec.devices).map_err(Error::Config)?,
            root: root.to_path_buf(),
            root_c: cpath(root).map_err(cerr)?,
            mounts,
            dev,
            bind_devices: userns,
            readonly: spec.readonly_root,
            masked: cs(&spec.masked_paths)?,
            readonly_paths: cs(&spec.readonly_paths)?,
        })
    }

    /// Runs the set-up. Only for a child inside its own new mount namespace (it
    /// pivots the caller's root); public for the benchmarks.
    pub fn apply(&self) -> std::result::Result<(), String> {
        self.apply_with(None)
    }

    /// [`RootfsPlan::apply`], calling `before_pivot` once everything is mounted and
    /// before the pivot (the `createContainer` hooks).
    pub fn apply_with(
        &self,
        before_pivot: Option<&dyn Fn() -> std::result::Result<(), String>>,
    ) -> std::result::Result<(), String> {
        mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
            .map_err(|e| format!("making / private: {e}"))?;
        mount(
            Some(&self.root_c),
            &self.root_c,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|e| format!("bind-mounting the rootfs: {e}"))?;
        for m in &self.mounts {
            self.mount_one(m).map_err(|e| {
                let kind = m
                    .fstype
                    .as_deref()
                    .map_or("bind".into(), |t| t.to_string_lossy());
                format!("mounting {} ({kind}): {e}", m.target.display())
            })?;
        }
        if let Some(dev) = &self.dev {
            self.populate_dev(dev)
                .map_err(|e| format!("populating /dev: {e}"))?;
        }
        if !self.devices.is_empty() {
            crate::devices::create(&self.devices, self.bind_devices)
                .map_err(|e| format!("creating linux.devices: {e}"))?;
        }
        if let Some(f) = before_pivot {
            f()?;
        }
        nix::unistd::chdir(&self.root).map_err(|e| format!("chdir to the rootfs: {e}"))?;
        nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("detaching the old root: {e}"))?;
        nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
        for p in &self.masked {
            mask(p).map_err(|e| format!("masking {p:?}: {e}"))?;
        }
        for p in &self.readonly_paths {
            readonly_bind(p).map_err(|e| format!("read-only {p:?}: {e}"))?;
        }
        // Always `nodev,nosuid`: a device node shipped in the rootfs (the host's disk,
        // /dev/kvm, /dev/kmsg) must not open the device, and set-id bits there grant
        // nothing. The devices the sandbox has live on its own /dev mount.
        let ro = if self.readonly { mount_attr::RDONLY } else { 0 };
        remount_root(mount_attr::NODEV | mount_attr::NOSUID | ro).map_err(|e| {
            format!(
                "remounting / nodev,nosuid{}: {e}",
                if self.readonly { ",ro" } else { "" }
            )
        })?;
        Ok(())
    }

    fn mount_one(&self, m: &MountOp) -> std::io::Result<()> {
        let symlink = ensure_target(&m.target, m.file_target)?;
        // A target right below the (canonical) root that is not a symlink cannot
        // resolve elsewhere: the default /proc, /dev, /tmp skip the realpath walk.
        let direct = !symlink && m.target.parent() == Some(self.root.as_path());
        if !direct {
            let real = std::fs::canonicalize(&m.target)?;
            if !real.starts_with(&self.root) {
                return Err(std::io::Error::other("target resolves outside the rootfs"));
            }
        }
        let base = if m.bind_remount {
            m.flags & (libc::MS_BIND | libc::MS_REC)
        } else {
            m.flags
        };
        mount(
            m.source.as_deref(),
            &m.target_c,
            m.fstype.as_deref(),
            base,
            m.data.as_deref(),
        )?;
        if m.bind_remount {
            let keep = locked_flags(&m.target_c);
            mount(
                None,
                &m.target_c,
                None,
                m.flags | libc::MS_REMOUNT | libc::MS_BIND | keep,
                None,
            )?;
        }
        if m.propagation != 0 {
            mount(None, &m.target_c, None, m.propagation, None)?;
        }
        Ok(())
    }

    fn populate_dev(&self, dev: &Path) -> std::io::Result<()> {
        for (name, major, minor) in DEVICES {
            let path = dev.join(name);
            if self.bind_devices {
                std::fs::File::create(&path)?;
                let host = cpath(&Path::new("/dev").join(name))?;
                mount(Some(&host), &cpath(&path)?, None, libc::MS_BIND, None)?;
            } else {
                nix::sys::stat::mknod(
                    &path,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o666),
                    nix::sys::stat::makedev(major.into(), minor.into()),
                )?;
            }
        }
        for (name, target) in DEV_LINKS {
            std::os::unix::fs::symlink(target, dev.join(name))?;
        }
        if self.ptmx_link {
            // The devpts instance's own multiplexer (mounted with newinstance).
            std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))?;
        }
        Ok(())
    }
}

/// Creates a missing mount target; returns whether the existing target is a symlink.
fn ensure_target(target: &Path, file: bool) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(target) {
        Ok(md) => Ok(md.file_type().is_symlink()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if file {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::File::create(target).map(|_| false)
            } else {
                std::fs::create_dir_all(target).map(|_| false)
            }
        }
        Err(e) => Err(e),
    }
}

/// mount(2) with optional C-string arguments.
fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> std::io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string that
    // outlives the call.
    cvt(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) })
        .map(drop)
}

/// Adds the attributes `set` to the root mount alone (not the mounts on it), with
/// mount_setattr where the kernel has it, else with a bind remount.
fn remount_root(set: u64) -> std::io::Result<()> {
    if crate::sys::mount_setattr(c"/", false, set)? {
        return Ok(());
    }
    let map = [
        (mount_attr::RDONLY, libc::MS_RDONLY),
        (mount_attr::NODEV, libc::MS_NODEV),
        (mount_attr::NOSUID, libc::MS_NOSUID),
    ];
    let flags = map
        .iter()
        .filter(|(a, _)| set & a != 0)
        .fold(0, |acc, (_, ms)| acc | ms);
    let keep = locked_flags(c"/");
    mount(
        None,
        c"/",
        None,
        libc::MS_REMOUNT | libc::MS_BIND | flags | keep,
        None,
    )
}

/// Mount flags a bind remount must keep (they may be locked in a user namespace).
fn locked_flags(path: &CStr) -> libc::c_ulong {
    // SAFETY: an all-zero statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` is writable.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let map = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    map.iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

/// Hides `path`: an empty read-only tmpfs over a directory, /dev/null over a file.
fn mask(path: &CStr) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(md) if md.is_dir() => mount(Some(c"tmpfs"), path, Some(c"tmpfs"), libc::MS_RDONLY, None),
        Ok(_) => mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None),
    }
}

/// Makes `path` read-only with a bind mount onto itself.
fn readonly_bind(path: &CStr) -> std::io::Result<()> {
    match mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    }
    if crate::sys::mount_setattr(path, true, mount_attr::RDONLY)? {
        return Ok(());
    }
    let keep = locked_flags(path);
    mount(
        None,
        path,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_REC | keep,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split() {
        let o: Vec<String> = ["nosuid", "rbind", "ro", "rprivate", "mode=755", "size=1k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (f, p, d, bind) = parse_options(&o);
        assert!(bind);
        assert_eq!(
            f,
            libc::MS_NOSUID | libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY
        );
        assert_eq!(p, libc::MS_PRIVATE | libc::MS_REC);
        assert_eq!(d, vec!["mode=755".to_string(), "size=1k".to_string()]);
    }

    #[test]
    fn destinations_stay_below_root() {
        let r = Path::new("/r");
        assert_eq!(below(r, Path::new("/a/b")).unwrap(), Path::new("/r/a/b"));
        assert!(below(r, Path::new("/a/../../etc")).is_err());
        assert!(below(r, Path::new("rel")).is_err());
    }
}
