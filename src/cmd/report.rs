//! `bootlab report`: regenerate report.md and report.html from a results.json.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results.json written by `bootlab bench`.
    results: PathBuf,
    /// Output folder (default: the folder of RESULTS).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    super::check_file("results", &args.results)?;
    if let Some(out) = &args.out {
        super::check_out_dir("--out", out)?;
    }
    let results = bench::report::load(&args.results).context("reading the results")?;
    let dir = args.out.unwrap_or_else(|| {
        args.results
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    for p in bench::report::write_reports(&results, &dir).context("writing the report")? {
        println!("wrote {}", p.display());
    }
    Ok(0)
}
