//! `bootlab vm restore DIR`: run a microVM saved with `vm run --snapshot-at` from
//! where it was saved, in this fresh process.

use super::vm::{finish, RawStdout, SnapshotAt, TimelineFormat};
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
    /// Print the run's timeline on stderr at the end.
    #[arg(long, value_enum)]
    timeline: Option<TimelineFormat>,
    /// Write the run's timeline as JSON to this file.
    #[arg(long, value_name = "PATH")]
    timeline_out: Option<PathBuf>,
    /// Save the restored machine again when the guest announces this marker, or on
    /// SIGUSR1 (as for `vm run`).
    #[arg(long, value_enum, value_name = "EVENT", requires = "snapshot_out")]
    snapshot_at: Option<SnapshotAt>,
    /// The new snapshot's folder.
    #[arg(long, value_name = "DIR", requires = "snapshot_at")]
    snapshot_out: Option<PathBuf>,
    /// Keep the guest running after the new snapshot is saved.
    #[arg(long, requires = "snapshot_at")]
    snapshot_continue: bool,
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
        let (at, out) = (s.value("snapshot-at"), s.value("snapshot-out"));
        if !s.rest.is_empty()
            || at.is_some() != out.is_some()
            || (s.flag("snapshot-continue") && at.is_none())
        {
            return None;
        }
        Some(RestoreArgs {
            dir: PathBuf::from(dir),
            timeout: s.parsed("timeout")?,
            mem: s.parsed("mem")?,
            vcpus: s.parsed("vcpus")?,
            timeline: s.parsed_enum("timeline")?,
            timeline_out: s.value("timeline-out").map(PathBuf::from),
            snapshot_at: s.parsed_enum("snapshot-at")?,
            snapshot_out: out.map(PathBuf::from),
            snapshot_continue: s.flag("snapshot-continue"),
        })
    }
}

pub fn run(args: RestoreArgs) -> anyhow::Result<u8> {
    let spawn_ns = timeline::clock::spawn_ns_from_env().unwrap_or_else(timeline::now_ns);
    if let Some(path) = &args.timeline_out {
        super::check_out_file("--timeline-out", path)?;
    }
    if let Some(dir) = &args.snapshot_out {
        super::check_out_dir("--snapshot-out", dir)?;
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
    let mut vm = vmm::Vm::restore(&args.dir, opts).context("cannot restore the microVM")?;
    if let (Some(at), Some(dir)) = (args.snapshot_at, &args.snapshot_out) {
        vm.snapshot_at(vmm::SnapshotRequest {
            at: at.point(),
            dir: dir.clone(),
            keep_running: args.snapshot_continue,
        });
    }
    let outcome = vm.run().context("cannot run the restored microVM")?;
    if args.snapshot_at.is_some() && outcome.snapshot.is_none() {
        eprintln!("bootlab: the run ended before its snapshot point; nothing saved");
    }
    finish(
        outcome,
        step::RESTORE_MAIN,
        &RESTORED_VM_MODEL,
        args.timeline,
        args.timeline_out.as_deref(),
    )
}
