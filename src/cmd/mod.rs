//! One module per subcommand. Each returns the process exit code on success and an
//! `anyhow::Error` (printed by `main` as one line with its context chain) on failure.

pub mod bench;
pub mod images;
pub mod oci;
pub mod report;
pub mod restore;
pub mod sandbox;
pub mod vm;

/// Exit code for a usage or set-up error (bad input, missing file, missing /dev/kvm).
pub const EXIT_ERROR: u8 = 1;

/// The guest images folder: `$BOOTLAB_IMAGES`, else `guest-images/out` of the checkout.
pub fn images_dir() -> std::path::PathBuf {
    std::env::var_os("BOOTLAB_IMAGES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out")
        })
}

/// Checks that `path` (given for `what`, e.g. "kernel" or "--lab-elf") is an
/// existing regular file, with an error that says which of the three it is not.
pub fn check_file(what: &str, path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() => Ok(()),
        Ok(md) if md.is_dir() => {
            anyhow::bail!("{what} {} is a directory, not a file", path.display())
        }
        Ok(_) => anyhow::bail!("{what} {} is not a regular file", path.display()),
        Err(e) => anyhow::bail!("{what} {}: {e}", path.display()),
    }
}

/// Checks, before any work is done, that an output file can be created at `path`
/// (given with `flag`): it is not a directory and its parent folder exists.
pub fn check_out_file(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!("{flag} {} is a directory, not a file", path.display());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "{flag} {}: folder {} does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

/// Checks that an output folder given with `flag` is a folder or can be created
/// (nothing that is not a folder is in its way).
pub fn check_out_dir(flag: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let mut p = Some(path);
    while let Some(d) = p {
        if let Ok(md) = std::fs::metadata(d) {
            if md.is_dir() {
                return Ok(());
            }
            anyhow::bail!(
                "{flag} {}: {} exists and is not a folder",
                path.display(),
                d.display()
            );
        }
        p = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    Ok(())
}

/// Longest `--timeout` accepted: far beyond any run, and small enough that adding
/// it to a clock reading cannot overflow.
pub const MAX_TIMEOUT_S: f64 = 365.0 * 24.0 * 3600.0;

/// A `--timeout` value in seconds: positive, finite, at most [`MAX_TIMEOUT_S`].
pub fn timeout(flag: &str, s: f64) -> anyhow::Result<std::time::Duration> {
    if !(s > 0.0 && s <= MAX_TIMEOUT_S) {
        anyhow::bail!(
            "{flag} {} is not a number of seconds in (0, {MAX_TIMEOUT_S}] (one year)",
            short(s)
        );
    }
    std::time::Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow::anyhow!("{flag} {} is too short to be a timeout", short(s)))
}

/// A number as a user would write it: plain when moderate, else in e-notation (so
/// that 1e300 is not printed with 300 digits).
pub fn short(x: f64) -> String {
    if x.is_finite() && (x == 0.0 || (1e-6..1e9).contains(&x.abs())) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Adds the instant the runtime's `main` began as step `name`, when the spawn instant
/// came from a harness: the gap between the two is the runtime's own process start
/// (execve, loading, libc and Rust start-up), which no other event shows.
pub fn push_main_entry(tl: &mut timeline::Timeline, name: &str) {
    if timeline::clock::spawn_ns_from_env().is_none() {
        return;
    }
    if let Some(t) = timeline::clock::main_entry_ns() {
        tl.push(name, t, timeline::EventSource::Runtime);
    }
}

/// Output format of `--timeline` (`vm run`, `vm restore`, `sandbox run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimelineFormat {
    /// One line of JSON (a serialized `timeline::Timeline`).
    Json,
    /// The events, the phases and what was not observed, one per line.
    Text,
}

/// `--timeline` and `--timeline-out`, which `vm run`, `vm restore` and `sandbox run`
/// take alike.
#[derive(Debug, Default, clap::Args)]
pub struct TimelineArgs {
    /// Print the run's timeline on stderr at the end.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub timeline: Option<TimelineFormat>,
    /// Write the run's timeline as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub timeline_out: Option<std::path::PathBuf>,
}

impl TimelineArgs {
    /// The two options from the scanner (their names are in each command's
    /// `FAST` list); `None` for a format value clap must refuse.
    pub fn fast(s: &crate::fastargs::Scan<'_>) -> Option<TimelineArgs> {
        Some(TimelineArgs {
            timeline: s.parsed_enum("timeline")?,
            timeline_out: s.value("timeline-out").map(std::path::PathBuf::from),
        })
    }

    /// Refuses, before the run, a `--timeline-out` that could not be written.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.timeline_out {
            Some(path) => check_out_file("--timeline-out", path),
            None => Ok(()),
        }
    }

    /// [`report_timeline`] with these options.
    pub fn report(
        &self,
        tl: &timeline::Timeline,
        model: &timeline::PhaseModel,
    ) -> anyhow::Result<()> {
        report_timeline(tl, model, self.timeline, self.timeline_out.as_deref())
    }
}

/// Writes a finished run's timeline to `--timeline-out` and prints it on stderr for
/// `--timeline`: how every runtime of ours reports its timeline.
pub fn report_timeline(
    tl: &timeline::Timeline,
    model: &timeline::PhaseModel,
    format: Option<TimelineFormat>,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let Some(path) = out {
        let json = serde_json::to_string(tl)?;
        std::fs::write(path, json)
            .map_err(|e| anyhow::anyhow!("cannot write the timeline to {}: {e}", path.display()))?;
    }
    match format {
        Some(TimelineFormat::Json) => eprintln!("{}", serde_json::to_string(tl)?),
        Some(TimelineFormat::Text) => eprint!("{}", timeline_text(tl, model)),
        None => {}
    }
    Ok(())
}

/// The text form of a timeline: every event in time order (ms after the spawn),
/// then the phases of `model`, the total and the phases not observed.
pub fn timeline_text(t: &timeline::Timeline, model: &timeline::PhaseModel) -> String {
    use std::fmt::Write;
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut events: Vec<&timeline::Event> = t.events.iter().collect();
    events.sort_by_key(|e| e.t_ns);
    let mut out = format!("timeline of {} (ms after spawn):\n", t.runtime);
    for e in events {
        let at = ms(e.t_ns.saturating_sub(t.spawn_ns));
        let _ = writeln!(out, "  {at:>10.3}  {:<16} {:?}", e.name, e.source);
    }
    for p in t.phases(model) {
        let _ = writeln!(
            out,
            "  phase {:<14} {:>10.3} ms",
            p.name,
            ms(p.duration_ns())
        );
    }
    if let Some(total) = t.total_ns(model) {
        let _ = writeln!(out, "  total {:<14} {:>10.3} ms", "", ms(total));
    }
    let missing = t.unobserved(model);
    if !missing.is_empty() {
        let _ = writeln!(out, "  not observed: {}", missing.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use timeline::{event, step, EventSource, Timeline, CONTAINER_MODEL, VM_MODEL};

    #[test]
    fn timeline_text_lists_events_in_time_order_then_phases_and_gaps() {
        let mut t = Timeline::new("bootlab-sandbox", 1_000_000);
        t.push(event::EXIT, 4_000_000, EventSource::Runtime);
        t.push(event::EXEC, 2_500_000, EventSource::Runtime);
        t.push(step::SANDBOX_CLONE, 1_500_000, EventSource::Runtime);
        t.push(event::DONE, 3_000_000, EventSource::Runtime);
        let text = timeline_text(&t, &CONTAINER_MODEL);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "timeline of bootlab-sandbox (ms after spawn):");
        assert!(lines[1].contains("0.500") && lines[1].contains("sandbox-clone"));
        assert!(lines[2].contains("1.500") && lines[2].contains("exec"));
        assert!(lines[5].starts_with("  phase sandbox") && lines[5].ends_with("1.500 ms"));
        assert!(lines[8].starts_with("  total") && lines[8].ends_with("3.000 ms"));
        assert_eq!(lines.len(), 9, "{text}");
        // A VM run that stopped after its kernel phase says what it did not see.
        let mut t = Timeline::new("vm", 0);
        t.push(event::FIRST_KVM_RUN, 1_000_000, EventSource::Monitor);
        t.push(event::KERNEL_RUN_INIT, 9_000_000, EventSource::Console);
        let text = timeline_text(&t, &VM_MODEL);
        assert!(
            text.ends_with("  not observed: init, process, teardown\n"),
            "{text}"
        );
    }
}
