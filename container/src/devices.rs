//! Device nodes a bundle lists (`linux.devices`: a GPU, /dev/fuse, /dev/kvm given
//! with `podman --device`), made in the sandbox's /dev after its mounts, before the
//! pivot: `mknod` with the given mode and owner, or, inside a user namespace (where
//! mknod of a device is refused), a bind mount of the host's node at the same path,
//! as runc does. Access to them is granted by the devices cgroup rules the engine
//! writes beside (`linux.resources.devices`).

use crate::sys::cpath;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The kind of a device node (`type` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `c` or `u`: a character device.
    Char,
    /// `b`: a block device.
    Block,
    /// `p`: a FIFO.
    Fifo,
}

impl Kind {
    /// Parses `c`, `u`, `b` or `p`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "c" | "u" => Some(Kind::Char),
            "b" => Some(Kind::Block),
            "p" => Some(Kind::Fifo),
            _ => None,
        }
    }

    fn mode_bits(self) -> libc::mode_t {
        match self {
            Kind::Char => libc::S_IFCHR,
            Kind::Block => libc::S_IFBLK,
            Kind::Fifo => libc::S_IFIFO,
        }
    }
}

/// One device node of `linux.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute path inside the container (below /dev).
    pub path: PathBuf,
    /// Character, block or FIFO.
    pub kind: Kind,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits (`fileMode`; [`Device::DEFAULT_MODE`] when absent).
    pub mode: Option<u32>,
    /// Owner inside the container.
    pub uid: Option<u32>,
    /// Group inside the container.
    pub gid: Option<u32>,
}

impl Device {
    /// Mode of a node whose `fileMode` is absent (as in runc).
    pub const DEFAULT_MODE: u32 = 0o666;
}

/// A device ready to be made: host-side target below the rootfs.
#[derive(Debug)]
pub struct Planned {
    target: CString,
    host: CString,
    mode: libc::mode_t,
    dev: libc::dev_t,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// Prepares `devices` below `root`; paths must be absolute and below /dev.
pub fn plan(root: &Path, devices: &[Device]) -> std::result::Result<Vec<Planned>, String> {
    devices
        .iter()
        .map(|d| {
            let rel = d
                .path
                .strip_prefix("/dev")
                .ok()
                .filter(|r| {
                    r.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                        && !r.as_os_str().is_empty()
                })
                .ok_or_else(|| {
                    format!(
                        "linux.devices: {} is not a path below /dev",
                        d.path.display()
                    )
                })?;
            let err = |e: std::io::Error| format!("linux.devices: {}: {e}", d.path.display());
            Ok(Planned {
                target: cpath(&root.join("dev").join(rel)).map_err(err)?,
                host: cpath(&d.path).map_err(err)?,
                mode: d.kind.mode_bits() | (d.mode.unwrap_or(Device::DEFAULT_MODE) & 0o7777),
                dev: libc::makedev(
                    u32::try_from(d.major)
                        .map_err(|_| format!("linux.devices: major {} is too large", d.major))?,
                    u32::try_from(d.minor)
                        .map_err(|_| format!("linux.devices: minor {} is too large", d.minor))?,
                ),
                uid: d.uid,
                gid: d.gid,
            })
        })
        .collect()
}

/// Makes the planned nodes (in the child, before the pivot). `bind`: bind-mount the
/// host's nodes instead of mknod (user namespace).
pub fn create(planned: &[Planned], bind: bool) -> std::io::Result<()> {
    for d in planned {
        let target = {
            use std::os::unix::ffi::OsStrExt;
            Path::new(std::ffi::OsStr::from_bytes(d.target.to_bytes()))
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A node already there (one of the default devices, listed again by a
        // privileged engine config) is kept.
        if std::fs::symlink_metadata(target).is_ok() {
            continue;
        }
        if bind {
            // SAFETY: valid C strings; the empty file is the bind target.
            let fd = unsafe {
                libc::open(
                    d.target.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o600,
                )
            };
            crate::sys::cvt(fd)?;
            // SAFETY: our own fresh descriptor.
            unsafe { libc::close(fd) };
            // SAFETY: valid C strings, no data.
            crate::sys::cvt(unsafe {
                libc::mount(
                    d.host.as_ptr(),
                    d.target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            })?;
            continue;
        }
        // SAFETY: a valid C string; the mode and device number were checked above.
        crate::sys::cvt(unsafe { libc::mknod(d.target.as_ptr(), d.mode, d.dev) })?;
        // mknod applies the umask: set the exact mode.
        // SAFETY: as above.
        crate::sys::cvt(unsafe { libc::chmod(d.target.as_ptr(), d.mode & 0o7777) })?;
        if d.uid.is_some() || d.gid.is_some() {
            let keep = u32::MAX;
            // SAFETY: as above; -1 (u32::MAX) leaves an id unchanged.
            crate::sys::cvt(unsafe {
                libc::chown(
                    d.target.as_ptr(),
                    d.uid.unwrap_or(keep),
                    d.gid.unwrap_or(keep),
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(path: &str) -> Device {
        Device {
            path: path.into(),
            kind: Kind::Char,
            major: 10,
            minor: 229,
            mode: None,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn nodes_stay_below_dev() {
        let p = plan(Path::new("/r"), &[dev("/dev/fuse"), dev("/dev/dri/card0")]).unwrap();
        assert_eq!(p[0].target.to_str().unwrap(), "/r/dev/fuse");
        assert_eq!(p[1].target.to_str().unwrap(), "/r/dev/dri/card0");
        assert_eq!(p[0].mode, libc::S_IFCHR | 0o666);
        for bad in ["/etc/passwd", "/dev/../etc/x", "/dev", "dev/fuse"] {
            assert!(plan(Path::new("/r"), &[dev(bad)]).is_err(), "{bad}");
        }
    }
}
