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
    } else if n as usize != data.len() {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
    } else {
        Ok(())
    }
}
