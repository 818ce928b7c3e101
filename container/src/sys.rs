//! Thin helpers over libc used by several modules: errno conversion, C strings and
//! small file writes that must not allocate much in the child.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a `-1`-on-error return value into an `io::Result`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for `syscall(2)`'s `c_long`.
pub(crate) fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A path as a C string; paths with interior NUL bytes are rejected.
pub(crate) fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Writes `data` to the existing file `path` in one write(2) (cgroup and proc files
/// need exactly one write per value).
pub(crate) fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    write_cfile(&c, data)
}

/// [`write_file`] for a path already converted to a C string.
pub(crate) fn write_cfile(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string; the returned fd is owned here
    // and closed below.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: `data` is a valid buffer of `data.len()` bytes and `fd` is open.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let err = io::Error::last_os_error();
    // SAFETY: `fd` was opened above and is closed exactly once.
    unsafe { libc::close(fd) };
    if n < 0 {
        Err(err)
    } else if n.unsigned_abs() != data.len() {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
    } else {
        Ok(())
    }
}

/// Mount attributes of `mount_setattr(2)` (linux/mount.h).
pub(crate) mod mount_attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
}

/// `struct mount_attr` of linux/mount.h (MOUNT_ATTR_SIZE_VER0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets the mount attributes `set` (see [`mount_attr`]) on the mount at `path`, and on
/// every mount below it when `recursive`; the attributes not named are kept, so there
/// is no need to learn the locked flags a `MS_REMOUNT` would have to repeat. `Ok(false)`
/// when the kernel has no `mount_setattr` (before Linux 5.12) or a seccomp profile
/// around the runtime refuses it (ENOSYS or EPERM): the caller falls back to
/// `mount(2)`, which fails on its own if the privilege is really missing.
pub(crate) fn mount_setattr(path: &std::ffi::CStr, recursive: bool, set: u64) -> io::Result<bool> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a live struct of the
    // size passed; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags.cast_unsigned(),
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    match cvt_long(r) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => Ok(false),
        Err(e) => Err(e),
    }
}
