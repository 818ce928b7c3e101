//! `bootlab sandbox ...`: run a workload in a namespace sandbox.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run a command in a fresh sandbox over a root filesystem.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {}

pub fn run(cmd: SandboxCommand) -> anyhow::Result<u8> {
    match cmd {
        SandboxCommand::Run(_) => Err(super::not_built("sandbox run", 4)),
    }
}
