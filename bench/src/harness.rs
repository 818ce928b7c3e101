//! The measurement plan: check and prepare each runtime, probe it once (a failing
//! peer is listed with its error, not measured), warm up, then measured rounds in
//! interleaved order (A B C A B C ...) so drift hits every runtime alike, then the
//! concurrency batches. With `--load` every round has a second, loaded pass (the
//! same runtimes beside CPU-bound workers, [`crate::load`]). A stop flag (Ctrl-C) ends the session between runs, keeping
//! everything measured so far.

use crate::exec::execute;
use crate::host::HostFacts;
use crate::load::{Load, LoadSpec};
use crate::results::{
    ConcurrencyBatch, Method, Results, RunRecord, RuntimeInfo, RuntimeStatus, SCHEMA_VERSION,
};
use crate::runners::{RunCtx, Runner};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use timeline::event;
use timeline::{now_ns, Timeline};

/// Batches per concurrency level and runtime.
pub const CONCURRENCY_REPEATS: u32 = 3;

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub runs: u32,
    pub warmup: u32,
    /// Highest number of instances started at once (1 = no concurrency sweep).
    pub concurrency: u32,
    pub workload: String,
    pub images: String,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// CPU-bound workers for a loaded pass after the quiet one in every round.
    pub load: Option<LoadSpec>,
}

/// A runtime taking part, with its status decided before measuring (`Ran` = try it).
pub struct Entry {
    pub runner: Box<dyn Runner>,
    pub status: RuntimeStatus,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("runner", &self.runner.name())
            .field("status", &self.status)
            .finish()
    }
}

impl Entry {
    pub fn new(runner: Box<dyn Runner>) -> Self {
        Entry {
            runner,
            status: RuntimeStatus::Ran,
        }
    }
}

/// The concurrency levels measured for a maximum of `k`: 1, 2, 4, ... and `k`.
pub fn concurrency_levels(k: u32) -> Vec<u32> {
    if k <= 1 {
        return Vec::new();
    }
    let mut v: Vec<u32> = std::iter::successors(Some(1u32), |x| x.checked_mul(2))
        .take_while(|x| *x < k)
        .collect();
    v.push(k);
    v
}

/// The session's scratch folder, removed when the session ends by any way out
/// (an error while starting the load workers included).
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Session<'a> {
    scratch: PathBuf,
    next_id: AtomicU64,
    stop: &'a AtomicBool,
    bar: ProgressBar,
}

impl Session<'_> {
    fn run_one(&self, runner: &dyn Runner) -> Timeline {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let spec = runner.spec(RunCtx {
            scratch: &self.scratch,
            id,
        });
        self.bar.set_message(runner.name().to_owned());
        let t = execute(runner.name(), &spec);
        self.bar.inc(1);
        t
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// `level` instances of `runner` started at once, each from its own thread.
    fn batch(&self, runner: &dyn Runner, level: u32) -> ConcurrencyBatch {
        let runs: Vec<Timeline> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..level)
                .map(|_| s.spawn(|| self.run_one(runner)))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let first = runs.iter().map(|t| t.spawn_ns).min().unwrap_or(0);
        let last = runs
            .iter()
            .filter_map(|t| t.event_ns(event::EXIT))
            .max()
            .unwrap_or(first);
        ConcurrencyBatch {
            runtime: runner.name().to_owned(),
            level,
            wall_ns: last.saturating_sub(first),
            runs,
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the plan over `entries` and returns everything measured.
pub fn run(mut entries: Vec<Entry>, plan: &Plan, stop: &AtomicBool) -> std::io::Result<Results> {
    let host = HostFacts::detect();
    let loadavg_start = crate::load::loadavg();
    let scratch_guard = ScratchDir(crate::runners::scratch_dir(&format!("bench-{}", now_ns()))?);
    let scratch = scratch_guard.0.clone();
    let started_unix = unix_now();

    for e in entries
        .iter_mut()
        .filter(|e| e.status == RuntimeStatus::Ran)
    {
        if let Err(reason) = e.runner.check() {
            e.status = RuntimeStatus::Missing(reason);
        } else if let Err(reason) = e.runner.prepare(&scratch) {
            e.status = RuntimeStatus::Failed(reason);
        }
    }
    let active = |entries: &[Entry]| {
        entries
            .iter()
            .filter(|e| e.status == RuntimeStatus::Ran)
            .count() as u64
    };
    let levels = concurrency_levels(plan.concurrency);
    let workers = plan.load.as_ref().map_or(0, |l| l.workers);
    let passes = if workers > 0 { 2 } else { 1 };
    let per_runtime = u64::from(plan.warmup.max(1) + passes * plan.runs)
        + u64::from(CONCURRENCY_REPEATS) * levels.iter().map(|l| u64::from(*l)).sum::<u64>();
    let bar = if plan.progress {
        ProgressBar::with_draw_target(
            Some(active(&entries) * per_runtime),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    let session = Session {
        scratch: scratch.clone(),
        next_id: AtomicU64::new(0),
        stop,
        bar,
    };

    // Probe: the first warm-up run decides whether a runtime works here at all.
    for e in entries
        .iter_mut()
        .filter(|e| e.status == RuntimeStatus::Ran)
    {
        if session.stopped() {
            break;
        }
        let t = session.run_one(e.runner.as_ref());
        if let Some(err) = t.error {
            e.status = RuntimeStatus::Failed(err);
            session.bar.inc(per_runtime.saturating_sub(1));
        }
    }
    let running: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.status == RuntimeStatus::Ran)
        .collect();
    for _ in 1..plan.warmup {
        for e in &running {
            if !session.stopped() {
                session.run_one(e.runner.as_ref());
            }
        }
    }
    let mut runs = Vec::new();
    // Killed and reaped when dropped: at the end of the rounds, or on any way out.
    let load = match &plan.load {
        Some(spec) if spec.workers > 0 => Some(Load::start(spec)?),
        _ => None,
    };
    'rounds: for round in 0..plan.runs {
        // The quiet pass, then (with --load) the same runtimes again beside the workers.
        for pass_load in [0, workers].into_iter().take(passes as usize) {
            if let Some(l) = &load {
                if pass_load > 0 {
                    l.run();
                } else {
                    l.pause();
                }
            }
            for e in &running {
                if session.stopped() {
                    break 'rounds;
                }
                let timeline = session.run_one(e.runner.as_ref());
                runs.push(RunRecord {
                    round,
                    load: pass_load,
                    timeline,
                });
            }
        }
    }
    let load_cpu_ms = load.as_ref().map(Load::cpu_ms);
    drop(load);
    let mut concurrency = Vec::new();
    'conc: for _ in 0..CONCURRENCY_REPEATS {
        for level in &levels {
            for e in &running {
                if session.stopped() {
                    break 'conc;
                }
                concurrency.push(session.batch(e.runner.as_ref(), *level));
            }
        }
    }
    session.bar.finish_and_clear();
    for e in &mut entries {
        e.runner.teardown();
    }
    drop(scratch_guard);

    let runtimes = entries
        .iter()
        .map(|e| {
            let r = &e.runner;
            RuntimeInfo {
                name: r.name().to_owned(),
                kind: r.kind(),
                ours: r.ours(),
                version: r.version(),
                command: r
                    .spec(RunCtx {
                        scratch: &scratch,
                        id: 0,
                    })
                    .command_line(),
                status: e.status.clone(),
                unobservable: r.unobservable(),
                notes: r.notes(),
            }
        })
        .collect();
    Ok(Results {
        schema: SCHEMA_VERSION,
        name: plan.name.clone(),
        started_unix,
        host,
        method: Method {
            runs: plan.runs,
            warmup: plan.warmup,
            concurrency: plan.concurrency,
            interleaved: true,
            workload: plan.workload.clone(),
            images: plan.images.clone(),
            interrupted: stop.load(Ordering::SeqCst),
            load: workers,
            load_cpu_ms,
            loadavg_start,
            loadavg_end: crate::load::loadavg(),
        },
        runtimes,
        runs,
        concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert!(concurrency_levels(1).is_empty());
        assert_eq!(concurrency_levels(2), [1, 2]);
        assert_eq!(concurrency_levels(4), [1, 2, 4]);
        assert_eq!(concurrency_levels(6), [1, 2, 4, 6]);
    }
}
