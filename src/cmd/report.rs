//! `bootlab report`: regenerate report.md and report.html from a results.json, or put
//! several hosts' results side by side (`--compare`).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Where `--compare` writes without `--out`.
const COMPARE_OUT: &str = "reports/compare";

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The results.json written by `bootlab bench`.
    #[arg(required_unless_present = "compare", conflicts_with = "compare")]
    results: Option<PathBuf>,
    /// Compare hosts: two or more results.json files, each from `bootlab bench` on one
    /// machine (run there by a CI matrix, a Kubernetes Job, ...), written as one report
    /// with the hosts side by side and ratios to the first.
    #[arg(long, num_args = 2.., value_name = "RESULTS")]
    compare: Vec<PathBuf>,
    /// Output folder (default: the folder of RESULTS; reports/compare with --compare).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    if let Some(out) = &args.out {
        super::check_out_dir("--out", out)?;
    }
    if !args.compare.is_empty() {
        return compare(&args.compare, args.out);
    }
    let Some(path) = args.results else {
        anyhow::bail!("give a results.json, or --compare with two or more");
    };
    super::check_file("results", &path)?;
    let results = bench::report::load(&path).context("reading the results")?;
    let dir = args.out.unwrap_or_else(|| {
        path.parent()
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

fn compare(paths: &[PathBuf], out: Option<PathBuf>) -> anyhow::Result<u8> {
    for p in paths {
        super::check_file("--compare", p)?;
    }
    let all =
        bench::report::compare::load_all(paths, &super::bench::RUNTIMES).context("--compare")?;
    let hosts: Vec<(PathBuf, bench::results::Results)> = paths.iter().cloned().zip(all).collect();
    let dir = out.unwrap_or_else(|| PathBuf::from(COMPARE_OUT));
    let comparison = bench::report::compare::build(&hosts);
    for p in bench::report::compare::write(&comparison, &dir).context("writing the comparison")? {
        println!("wrote {}", p.display());
    }
    Ok(0)
}
