//! `bootlab bench`: run the comparison and write a report.

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> anyhow::Result<u8> {
    Err(super::not_built("bench", 5))
}
