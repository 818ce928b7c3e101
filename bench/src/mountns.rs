//! A private mount namespace in which one host file is masked by /dev/null, held open
//! by a descriptor so that runs can enter it (setns) without changing the host. Made
//! for crun on hybrid-cgroup hosts (see `runners::oci`): the namespace is built once
//! per session on a short-lived thread; each run is made from a thread that entered
//! it first (`exec::execute`), so the entry is outside the measured time.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors making the namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot make a private mount namespace")]
    Unshare(#[source] std::io::Error),
    #[error("cannot make the namespace's mounts private")]
    Private(#[source] std::io::Error),
    #[error("cannot mask {0} with /dev/null")]
    Mask(PathBuf, #[source] std::io::Error),
    #[error("cannot open the namespace")]
    Open(#[source] std::io::Error),
    #[error("{0} is not a path mount(2) takes")]
    Path(PathBuf),
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Builds the namespace on the calling thread, which must be one that ends right after.
fn build(masked: &Path) -> Result<OwnedFd, Error> {
    let target = std::ffi::CString::new(masked.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Path(masked.to_owned()))?;
    // SAFETY: unshare(2) with a flag only; it affects this thread's own mount
    // namespace (and fs struct), which no other thread shares afterwards.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_FS) }).map_err(Error::Unshare)?;
    // SAFETY: mount(2) with a static NUL-terminated path and null source, type and
    // data: only the propagation of this namespace's tree changes, so the mask below
    // does not reach the host's namespace.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map_err(Error::Private)?;
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call: a bind
    // mount of /dev/null over `masked`, inside the private namespace made above.
    check(unsafe {
        libc::mount(
            c"/dev/null".as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
    .map_err(|e| Error::Mask(masked.to_owned(), e))?;
    File::open("/proc/thread-self/ns/mnt")
        .map(OwnedFd::from)
        .map_err(Error::Open)
}

/// A private mount namespace where `masked` reads as /dev/null (empty), as a
/// descriptor for [`enter`]. The host's namespace is not touched; the namespace goes
/// away when the last descriptor is closed.
pub fn with_masked_file(masked: &Path) -> Result<OwnedFd, Error> {
    let masked = masked.to_owned();
    std::thread::spawn(move || build(&masked))
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Open(std::io::Error::other(
                "builder thread panicked",
            )))
        })
}

/// Moves the calling thread, which must be one made for it, into the mount namespace
/// `ns`: it stops sharing its fs struct (setns refuses a shared one), then enters.
/// Processes it spawns afterwards start in `ns`; other threads are not affected.
pub fn enter_on_this_thread(ns: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: unshare(2) with a flag only: this thread gets its own copy of the fs
    // struct (root, cwd, umask), the same values as before.
    check(unsafe { libc::unshare(libc::CLONE_FS) })?;
    // SAFETY: setns(2) on a descriptor borrowed for the call; it changes only the
    // calling thread's mount namespace.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_file_reads_empty_inside_and_unchanged_outside() {
        use test_support::Need;
        if !test_support::need("masked_mount_namespace", &[Need::Root, Need::Tool("cat")]) {
            return;
        }
        let dir = test_support::TempDir::new("mountns").unwrap();
        let file = dir.path().join("controllers");
        std::fs::write(&file, "hugetlb\n").unwrap();
        let ns = with_masked_file(&file).unwrap();
        let inside = std::thread::scope(|s| {
            s.spawn(|| {
                enter_on_this_thread(&ns).unwrap();
                let read = std::process::Command::new("cat").arg(&file).output();
                (read.unwrap(), std::fs::read(&file).unwrap())
            })
            .join()
            .unwrap()
        });
        // A program started from the thread and the thread itself see it empty.
        assert!(inside.0.status.success());
        assert_eq!(inside.0.stdout, b"");
        assert_eq!(inside.1, b"");
        // The host still sees the file as it is.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hugetlb\n");
        // A path mount(2) cannot take is a clear error, not a panic.
        assert!(matches!(
            with_masked_file(Path::new("/no/such/file")),
            Err(Error::Mask(..))
        ));
    }
}
