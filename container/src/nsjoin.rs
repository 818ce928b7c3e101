//! Namespaces an engine made and names by path (`linux.namespaces[].path`): podman
//! and containerd create the network namespace themselves (`/run/netns/...`), a pod
//! shares its IPC and UTS namespaces, and the sandbox must join those instead of
//! making new ones.
//!
//! The files are opened in the parent (a missing path is an error before the clone)
//! and joined with `setns(2)` by the child as its first step, before anything is
//! mounted or written: a sysfs then shows the joined network namespace, a sysctl
//! lands in it. `setns` checks the file is a namespace of the right type.
//! Joining a PID, mount, user or time namespace is refused: the PID one only
//! applies to children (it needs one more fork), and the other three would replace
//! the rootfs set-up or the id mappings the sandbox makes.

use crate::namespaces::Namespace;
use crate::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The namespaces that can be joined by path.
pub const JOINABLE: [Namespace; 4] = [
    Namespace::Net,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Cgroup,
];

/// Checks that `ns` may be joined by path.
pub fn check(ns: Namespace, path: &Path) -> std::result::Result<(), String> {
    if JOINABLE.contains(&ns) {
        Ok(())
    } else {
        Err(format!(
            "linux.namespaces: joining an existing {} namespace by path ({}) is not supported (only {})",
            ns.name(),
            path.display(),
            JOINABLE.map(Namespace::name).join(", ")
        ))
    }
}

/// The opened namespace files, held by the parent until the child has joined them.
#[derive(Debug, Default)]
pub struct Joins {
    fds: Vec<(OwnedFd, libc::c_int)>,
}

impl Joins {
    /// Opens every `(namespace, path)`.
    pub fn open(paths: &[(Namespace, PathBuf)]) -> Result<Joins> {
        let mut fds = Vec::with_capacity(paths.len());
        for (ns, path) in paths {
            check(*ns, path).map_err(Error::Config)?;
            let file = std::fs::File::open(path).map_err(|e| {
                Error::sys(
                    format!("opening the {} namespace {}", ns.name(), path.display()),
                    e,
                )
            })?;
            fds.push((OwnedFd::from(file), ns.clone_flag()));
        }
        Ok(Joins { fds })
    }

    /// Whether there is nothing to join.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The descriptors the child must keep open until [`Joins::enter`].
    pub fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.fds.iter().map(|(fd, _)| fd.as_raw_fd())
    }

    /// Joins every namespace (in the child) and closes its copies of the files.
    pub fn enter(&self) -> std::result::Result<(), String> {
        for (fd, flag) in &self.fds {
            // SAFETY: setns on a descriptor we opened; the kernel checks its type.
            if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
                return Err(format!(
                    "setns into the given namespace (flag {flag:#x}): {}",
                    std::io::Error::last_os_error()
                ));
            }
            // SAFETY: the child's own copy of the descriptor (no CLONE_FILES); the
            // parent keeps its own.
            unsafe { libc::close(fd.as_raw_fd()) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_joinable_kinds_pass() {
        let p = Path::new("/run/netns/x");
        assert!(check(Namespace::Net, p).is_ok());
        assert!(check(Namespace::Ipc, p).is_ok());
        let e = check(Namespace::Pid, p).unwrap_err();
        assert!(
            e.contains("pid namespace by path (/run/netns/x) is not supported"),
            "{e}"
        );
        assert!(check(Namespace::User, p).is_err() && check(Namespace::Mount, p).is_err());
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let e = Joins::open(&[(Namespace::Net, PathBuf::from("/nonexistent/netns"))]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/netns"), "{e}");
    }
}
