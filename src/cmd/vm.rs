//! `bootlab vm ...`: boot a microVM with our monitor.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Boot a kernel (or a built-in guest) and run it to completion.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {}

pub fn run(cmd: VmCommand) -> anyhow::Result<u8> {
    match cmd {
        VmCommand::Run(_) => Err(super::not_built("vm run", 3)),
    }
}
