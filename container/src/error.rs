//! The library's error type. Nothing here prints or exits; the CLI turns these into
//! one-line messages.

use std::path::PathBuf;

/// Everything that can go wrong while preparing, starting or tearing down a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root filesystem is missing or unusable.
    #[error("rootfs {path}: {reason}")]
    Rootfs {
        /// The rootfs path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace name that is not one of ours.
    #[error("unknown namespace `{0}` (known: pid, mount, uts, ipc, net, cgroup, user, all, none)")]
    UnknownNamespace(String),
    /// An inconsistent or unsupported sandbox description.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// A bundle's config.json is malformed or uses something we do not support.
    #[error("{path}: {reason}")]
    Oci {
        /// The config.json path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The command does not exist (or is not executable) inside the root filesystem.
    #[error("command `{0}` not found in the sandbox's root filesystem")]
    CommandNotFound(String),
    /// The child failed while setting the sandbox up, before the workload's execve.
    #[error("sandbox set-up failed: {0}")]
    Setup(String),
    /// A cgroup operation failed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// The workload turned out to be the runtime's own binary (CVE-2019-5736 guard).
    #[error("the workload resolved to the runtime's own binary; refusing to run it inside the sandbox (CVE-2019-5736 guard)")]
    RuntimeExe,
    /// A system call in the parent failed.
    #[error("{context}")]
    Sys {
        /// What the parent was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn sys(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            context: context.into(),
            source: source.into(),
        }
    }
}
