//! The OCI runtime lifecycle (runc's command line drives it): `create` sets a
//! container up and leaves its init waiting before the workload's execve, `start`
//! releases it, `state`, `kill`, `delete`, `list`, `ps`, `exec`. No runtime process stays
//! between commands: what a later command needs is in the container's folder under
//! the runtime's root ([`state`]), and its status is observed, not remembered
//! ([`status`]). One file per operation.

mod create;
mod delete;
mod exec;
mod kill;
mod query;
mod start;
pub mod state;
pub mod status;

pub use create::{create, write_pid_file, CreateOptions};
pub use delete::delete;
pub use exec::{exec, ExecOptions};
pub use kill::kill;
pub use query::{list, ps, state};
pub use start::start;
pub use state::{ContainerDir, SpecState, State};
pub use status::Status;

use std::path::PathBuf;

/// The default root of the runtime's state (`--root`).
pub const DEFAULT_ROOT: &str = "/run/bootlab-oci";

/// The OCI runtime-spec version we implement (what `features` and `state` report).
pub const OCI_VERSION: &str = "1.0.2";

/// What can go wrong in a lifecycle operation.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Not a safe container ID.
    #[error("invalid container ID `{0}`: use letters, digits and _ + - . (not `.` or `..`)")]
    BadId(String),
    /// `create` of an ID that exists.
    #[error("container `{0}` already exists")]
    Exists(String),
    /// An operation on an ID that does not exist.
    #[error("container `{0}` does not exist")]
    NotFound(String),
    /// The operation is not allowed in the container's status.
    #[error("cannot {op} container `{id}`: it is {status}")]
    WrongStatus {
        /// The operation.
        op: &'static str,
        /// The container's ID.
        id: String,
        /// Its status.
        status: Status,
    },
    /// The runtime's root folder is unusable.
    #[error("root {root}: {reason}")]
    BadRoot {
        /// The root folder.
        root: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A container's state.json is unreadable or malformed.
    #[error("state {path}: {reason}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A bad argument of an operation (a console socket that is not one, ...).
    #[error("{0}")]
    Invalid(String),
    /// A file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The sandbox (bundle, set-up, cgroup) failed.
    #[error(transparent)]
    Sandbox(#[from] crate::Error),
}
