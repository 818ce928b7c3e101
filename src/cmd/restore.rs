//! `bootlab vm restore DIR`: run a microVM saved with `vm run --snapshot-at` from
//! where it was saved, in this fresh process.

use super::vm::{finish, RawStdout, TimelineFormat};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use timeline::RESTORED_VM_MODEL;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot folder (`--snapshot-out` of `vm run`).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// End the VM after this many seconds (exit status 124).
    #[arg(long, value_name = "S")]
    timeout: Option<f64>,
    /// Refuse the snapshot unless its guest has this much memory (MiB).
    #[arg(long, value_name = "MiB")]
    mem: Option<u64>,
    /// Refuse the snapshot unless its guest has this many vCPUs.
    #[arg(long)]
    vcpus: Option<u32>,
    /// Print the run's timeline on stderr at the end.
    #[arg(long, value_enum)]
    timeline: Option<TimelineFormat>,
    /// Write the run's timeline as JSON to this file.
    #[arg(long, value_name = "PATH")]
    timeline_out: Option<PathBuf>,
}

impl RestoreArgs {
    /// These arguments (what follows `restore`) scanned without clap, or `None` to
    /// leave them to clap (see [`crate::fastargs`]): the folder first, then options.
    pub fn fast(args: &[std::ffi::OsString]) -> Option<RestoreArgs> {
        let (dir, rest) = args.split_first()?;
        let dir = dir
            .to_str()
            .filter(|d| !d.is_empty() && !d.starts_with('-'))?;
        let s = crate::fastargs::scan(
            rest,
            &crate::fastargs::Known {
                flags: &[],
                valued: &["timeout", "mem", "vcpus", "timeline", "timeline-out"],
                repeatable: &[],
            },
        )?;
        if !s.rest.is_empty() {
            return None;
        }
        Some(RestoreArgs {
            dir: PathBuf::from(dir),
            timeout: s.parsed("timeout")?,
            mem: s.parsed("mem")?,
            vcpus: s.parsed("vcpus")?,
            timeline: s.parsed_enum("timeline")?,
            timeline_out: s.value("timeline-out").map(PathBuf::from),
        })
    }
}

pub fn run(args: RestoreArgs) -> anyhow::Result<u8> {
    let spawn_ns = timeline::clock::spawn_ns_from_env().unwrap_or_else(timeline::now_ns);
    if let Some(path) = &args.timeline_out {
        super::check_out_file("--timeline-out", path)?;
    }
    let timeout = args
        .timeout
        .map(|s| super::timeout("--timeout", s))
        .transpose()?;
    let opts = vmm::RestoreOptions {
        console: Box::new(RawStdout),
        console_input: Some(0),
        timeout,
        spawn_ns,
        mem_mib: args.mem,
        vcpus: args.vcpus,
    };
    let vm = vmm::Vm::restore(&args.dir, opts).context("cannot restore the microVM")?;
    let outcome = vm.run().context("cannot run the restored microVM")?;
    finish(
        outcome,
        "restore.main",
        &RESTORED_VM_MODEL,
        args.timeline,
        args.timeline_out.as_deref(),
    )
}
