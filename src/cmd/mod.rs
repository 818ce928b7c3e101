//! One module per subcommand. Each returns the process exit code on success and an
//! `anyhow::Error` (printed by `main` as one line with its context chain) on failure.

pub mod bench;
pub mod images;
pub mod report;
pub mod sandbox;
pub mod vm;

/// Exit code for a usage or set-up error (bad input, missing file, missing /dev/kvm).
pub const EXIT_ERROR: u8 = 1;

/// Error for a subcommand whose implementation has not landed yet.
pub fn not_built(what: &str, issue: u32) -> anyhow::Error {
    anyhow::anyhow!("`bootlab {what}` is not built yet (tracked in issue {issue})")
}
