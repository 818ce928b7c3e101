//! The benchmark harness (docs/ARCHITECTURE.md): runners for our microVM, our sandbox and
//! the peers behind one trait ([`runners`]), the timing of one run ([`exec`], with [`firmware`] for firmware logs, with
//! [`api`] for a runtime driven through its API socket), the
//! interleaved measurement plan ([`harness`], with [`load`] for a loaded host), a masked
//! mount namespace ([`mountns`]), statistics ([`stats`]), host facts
//! ([`host`]), the results.json model ([`results`]) and the reports ([`report`]).

pub mod api;
pub mod exec;
pub mod firmware;
pub mod harness;
/// Host facts live in their own crate, which `bootlab vm run` uses without the harness.
pub use hostfacts as host;
pub mod interrupt;
pub mod load;
pub mod mountns;
pub mod report;
pub mod results;
pub mod runners;
pub mod stats;

use std::path::{Path, PathBuf};

/// Errors of the harness library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{0}: not a bootlab results.json")]
    Results(PathBuf, #[source] serde_json::Error),
    #[error("{0}: cut short: the JSON ends at line {1}, column {2} before it is complete")]
    Truncated(PathBuf, usize, usize),
    #[error("{0}: results schema version {1}, this bootlab reads version {SCHEMA}", SCHEMA = results::SCHEMA_VERSION)]
    Schema(PathBuf, u64),
    #[error(
        "{first} has results schema version {}, {other} has {}: compare files of one version",
        first_schema.map_or("none".into(), |v| v.to_string()),
        other_schema.map_or("none".into(), |v| v.to_string())
    )]
    MixedSchemas {
        first: PathBuf,
        first_schema: Option<u64>,
        other: PathBuf,
        other_schema: Option<u64>,
    },
    #[error("{0}: unknown runtime {1:?} (not one this bootlab measures)")]
    UnknownRuntime(PathBuf, String),
    #[error("{0}: cannot encode the results")]
    Encode(PathBuf, #[source] serde_json::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        Error::Io(path.to_owned(), e)
    }
}
