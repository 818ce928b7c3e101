//! `bootlab report`: regenerate a report from its results.json.

use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs) -> anyhow::Result<u8> {
    Err(super::not_built("report", 5))
}
