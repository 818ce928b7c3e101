//! `bootlab vm restore DIR`: run a microVM saved with `vm run --snapshot-at` from
//! where it was saved, in this fresh process.

use super::vm::{finish, RawStdout, SnapshotArgs};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use timeline::step;
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
    #[command(flatten)]
    report: super::TimelineArgs,
    /// Saving the restored machine again.
    #[command(flatten)]
    snapshot: SnapshotArgs,
}

impl RestoreArgs {
    /// The options the scanner takes (what clap knows for this command: a test
    /// in src/main.rs checks that none is missing).
    pub const FAST: crate::fastargs::Known<'static> = crate::fastargs::Known {
        flags: &["snapshot-continue"],
        valued: &[
            "timeout",
            "mem",
            "vcpus",
            "timeline",
            "timeline-out",
            "snapshot-at",
            "snapshot-out",
        ],
        repeatable: &[],
    };

    /// These arguments (what follows `restore`) scanned without clap, or `None` to
    /// leave them to clap (see [`crate::fastargs`]): the folder first, then options.
    pub fn fast(args: &[std::ffi::OsString]) -> Option<RestoreArgs> {
        let (dir, rest) = args.split_first()?;
        let dir = dir
            .to_str()
            .filter(|d| !d.is_empty() && !d.starts_with('-'))?;
        let s = crate::fastargs::scan(rest, &Self::FAST)?;
        if !s.rest.is_empty() {
            return None;
        }
        Some(RestoreArgs {
            dir: PathBuf::from(dir),
            timeout: s.parsed("timeout")?,
            mem: s.parsed("mem")?,
            vcpus: s.parsed("vcpus")?,
            report: super::TimelineArgs::fast(&s)?,
            snapshot: SnapshotArgs::fast(&s)?,
        })
    }
}

pub fn run(args: RestoreArgs) -> anyhow::Result<u8> {
    let spawn_ns = timeline::clock::spawn_ns_from_env().unwrap_or_else(timeline::now_ns);
    args.report.check()?;
    args.snapshot.check()?;
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
    let mut vm = vmm::Vm::restore(&args.dir, opts).context("cannot restore the microVM")?;
    if let Some(r) = args.snapshot.request() {
        vm.snapshot_at(r);
    }
    let outcome = vm.run().context("cannot run the restored microVM")?;
    if args.snapshot.asked() && outcome.snapshot.is_none() {
        eprintln!("bootlab: the run ended before its snapshot point; nothing saved");
    }
    finish(
        outcome,
        step::RESTORE_MAIN,
        &RESTORED_VM_MODEL,
        &args.report,
    )
}
