//! From results to numbers: per runtime and phase the statistics of successful runs,
//! pairwise ratios ours/peer, and the concurrency sweep. Everything a report shows
//! is computed here, deterministically, from results.json alone.

use crate::results::{Results, RuntimeKind, RuntimeStatus};
use crate::stats::{self, Ratio, Summary};
use serde::Serialize;
use std::collections::BTreeMap;
use timeline::event;
use timeline::{EventSource, PhaseModel, Timeline};

/// Name of the whole-run row (spawn to the last observed boundary).
pub const TOTAL: &str = "total";
/// Name of the workload's phase in every model: what each runtime is there to start.
pub const PROCESS: &str = "process";

/// Statistics of one runtime.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeSummary {
    pub name: String,
    pub kind: RuntimeKind,
    pub ours: bool,
    pub ok: usize,
    pub failed: usize,
    /// Phases in model order (merged phases under their merged name).
    pub phases: Vec<(String, Summary)>,
    pub total: Option<Summary>,
    #[serde(skip)]
    pub samples: BTreeMap<String, Vec<f64>>,
    /// Who stamped the start and end of each phase (first successful run): phases
    /// are compared across runtimes only when these match.
    pub attribution: BTreeMap<String, (Option<EventSource>, Option<EventSource>)>,
    /// Total times of successful runs, ns (for the CDF).
    #[serde(skip)]
    pub totals: Vec<f64>,
    /// Spawn to the start of the `process` phase of each successful run that has one,
    /// ns: how long the runtime takes to run its workload (the verdict's number).
    #[serde(skip)]
    pub to_process: Vec<f64>,
    /// Distinct errors of failed runs with their counts.
    pub errors: Vec<(String, usize)>,
}

/// `ours / peer` for one phase (or the total).
#[derive(Debug, Clone, Serialize)]
pub struct RatioRow {
    pub ours: String,
    pub peer: String,
    pub phase: String,
    pub ratio: Ratio,
}

/// One concurrency level of one runtime.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencyRow {
    pub runtime: String,
    pub level: u32,
    pub batches: usize,
    /// Median over batches of successful boots per second of wall time.
    pub boots_per_second: f64,
    /// Median total time of one instance at this level, ns.
    pub instance_median_ns: Option<f64>,
    pub failures: usize,
}

/// Position of a (possibly merged) phase name in the model order.
pub fn phase_rank(kind: RuntimeKind, name: &str) -> usize {
    let first = name.split('+').next().unwrap_or(name);
    kind.model()
        .phases
        .iter()
        .position(|p| *p == first)
        .unwrap_or(usize::MAX)
}

/// Who stamped the boundary events that start and end `phase` (a possibly merged
/// name) in `t`, with the same preference as [`Timeline::event_ns`].
pub fn boundary_sources(
    t: &Timeline,
    model: &PhaseModel,
    phase: &str,
) -> (Option<EventSource>, Option<EventSource>) {
    let parts: Vec<&str> = phase.split('+').collect();
    let index = |n: &str| model.phases.iter().position(|p| *p == n);
    let (Some(first), Some(last)) = (index(parts[0]), index(parts[parts.len() - 1])) else {
        return (None, None);
    };
    let source = |b: usize| {
        model.boundaries[b].iter().find_map(|name| {
            t.events
                .iter()
                .filter(|e| e.name == *name)
                .min_by_key(|e| (e.source, e.t_ns))
                .map(|e| e.source)
        })
    };
    (source(first), source(last + 1))
}

/// Short text for a phase's attribution: `harness→runtime`.
pub fn attribution_text(a: &(Option<EventSource>, Option<EventSource>)) -> String {
    let name = |s: Option<EventSource>| {
        s.and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    format!("{}→{}", name(a.0), name(a.1))
}

/// Statistics of every runtime that has measured runs on the quiet host, in results
/// order.
pub fn runtimes(results: &Results) -> Vec<RuntimeSummary> {
    runtimes_under(results, 0)
}

/// Statistics of every runtime's runs beside `load` workers (`--load`), in results
/// order.
pub fn runtimes_under(results: &Results, load: u32) -> Vec<RuntimeSummary> {
    results
        .runtimes
        .iter()
        .filter(|r| r.status == RuntimeStatus::Ran)
        .map(|info| {
            let model = info.kind.model();
            let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut totals = Vec::new();
            let mut to_process = Vec::new();
            let mut attribution = BTreeMap::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            let (mut ok, mut failed) = (0, 0);
            for run in results.runs_under(&info.name, load) {
                if let Some(e) = &run.timeline.error {
                    failed += 1;
                    *errors.entry(e.clone()).or_default() += 1;
                    continue;
                }
                ok += 1;
                // Phases up to the first one this runtime cannot observe here: what
                // follows (e.g. a panicking guest's last gasp) is not that phase.
                let phases: Vec<_> = run
                    .timeline
                    .phases(model)
                    .into_iter()
                    .take_while(|p| {
                        !p.name
                            .split('+')
                            .any(|c| info.unobservable.iter().any(|u| u.phase == c))
                    })
                    .collect();
                for p in &phases {
                    samples
                        .entry(p.name.clone())
                        .or_default()
                        .push(p.duration_ns() as f64);
                }
                if let Some(p) = phases.iter().find(|p| p.name == PROCESS) {
                    to_process.push(p.start_ns as f64);
                }
                for p in &phases {
                    attribution
                        .entry(p.name.clone())
                        .or_insert_with(|| boundary_sources(&run.timeline, model, &p.name));
                }
                // Total: spawn to the exit the harness saw, alike for every runtime;
                // when later phases are unobservable, up to the last observed one.
                let unobserved = !info.unobservable.is_empty();
                let harness_exit = run
                    .timeline
                    .events
                    .iter()
                    .filter(|e| e.name == event::EXIT && e.source == EventSource::Harness)
                    .map(|e| e.t_ns.saturating_sub(run.timeline.spawn_ns))
                    .min();
                match (harness_exit, phases.last()) {
                    (Some(t), _) if !unobserved => totals.push(t as f64),
                    (_, Some(last)) => totals.push(last.end_ns as f64),
                    _ => {}
                }
            }
            let mut phases: Vec<(String, Summary)> = samples
                .iter()
                .filter_map(|(n, v)| Some((n.clone(), stats::summarize(v)?)))
                .collect();
            phases.sort_by_key(|(n, _)| (phase_rank(info.kind, n), n.clone()));
            RuntimeSummary {
                name: info.name.clone(),
                kind: info.kind,
                ours: info.ours,
                ok,
                failed,
                phases,
                total: stats::summarize(&totals),
                samples,
                attribution,
                totals,
                to_process,
                errors: errors.into_iter().collect(),
            }
        })
        .collect()
}

/// The engine that drives a row named `engine+runtime` (`podman+bootlab`), if any.
fn engine_of(name: &str) -> Option<&str> {
    name.split_once('+').map(|(engine, _)| engine)
}

/// Whether a ratio of `ours` to `peer` compares like with like: rows driven by an
/// engine only against the same engine's other rows, the others among themselves
/// (podman+bootlab against containerd+runc or bwrap says nothing).
pub fn comparable(ours: &str, peer: &str) -> bool {
    engine_of(ours) == engine_of(peer)
}

/// Ratios ours/peer of the total and of every phase both runtimes have.
pub fn ratios(summaries: &[RuntimeSummary]) -> Vec<RatioRow> {
    let mut out = Vec::new();
    for ours in summaries.iter().filter(|s| s.ours) {
        for peer in summaries
            .iter()
            .filter(|s| !s.ours && comparable(&ours.name, &s.name))
        {
            if let Some(ratio) = stats::ratio_of_medians(&ours.totals, &peer.totals) {
                out.push(RatioRow {
                    ours: ours.name.clone(),
                    peer: peer.name.clone(),
                    phase: TOTAL.into(),
                    ratio,
                });
            }
            let mut phases: Vec<&String> = ours.samples.keys().collect();
            phases.sort_by_key(|p| (phase_rank(ours.kind, p), p.to_string()));
            for phase in phases {
                let a = &ours.samples[phase];
                let Some(b) = peer.samples.get(phase) else {
                    continue;
                };
                // Like for like only: the same kind of clock at both ends.
                if ours.attribution.get(phase) != peer.attribution.get(phase) {
                    continue;
                }
                if let Some(ratio) = stats::ratio_of_medians(a, b) {
                    out.push(RatioRow {
                        ours: ours.name.clone(),
                        peer: peer.name.clone(),
                        phase: phase.clone(),
                        ratio,
                    });
                }
            }
        }
    }
    out
}

/// The concurrency sweep, by runtime then level.
pub fn concurrency(results: &Results) -> Vec<ConcurrencyRow> {
    let mut groups: BTreeMap<(usize, u32), Vec<&crate::results::ConcurrencyBatch>> =
        BTreeMap::new();
    for b in &results.concurrency {
        let idx = results
            .runtimes
            .iter()
            .position(|r| r.name == b.runtime)
            .unwrap_or(usize::MAX);
        groups.entry((idx, b.level)).or_default().push(b);
    }
    groups
        .into_values()
        .map(|batches| {
            let kind = results
                .runtime(&batches[0].runtime)
                .map_or(RuntimeKind::Container, |r| r.kind);
            let bps: Vec<f64> = batches.iter().map(|b| b.boots_per_second()).collect();
            let totals: Vec<f64> = batches
                .iter()
                .flat_map(|b| b.runs.iter())
                .filter(|t| t.error.is_none())
                .filter_map(|t| t.total_ns(kind.model()))
                .map(|t| t as f64)
                .collect();
            let failures = batches
                .iter()
                .flat_map(|b| b.runs.iter())
                .filter(|t| t.error.is_some())
                .count();
            ConcurrencyRow {
                runtime: batches[0].runtime.clone(),
                level: batches[0].level,
                batches: batches.len(),
                boots_per_second: stats::summarize(&bps).map_or(0.0, |s| s.median),
                instance_median_ns: stats::summarize(&totals).map(|s| s.median),
                failures,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::comparable;

    #[test]
    fn engine_rows_pair_only_with_the_same_engine() {
        assert!(comparable("podman+bootlab", "podman+runc"));
        assert!(comparable("containerd+bootlab", "containerd+runc"));
        assert!(!comparable("podman+bootlab", "containerd+runc"));
        assert!(!comparable("podman+bootlab", "runc"));
        assert!(!comparable("bootlab-oci", "podman+runc"));
        assert!(comparable("bootlab-oci", "runc"));
        assert!(comparable("bootlab-vm-lab", "firecracker"));
    }
}
