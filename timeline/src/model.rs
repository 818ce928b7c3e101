//! Events, timelines and the phase models (docs/ARCHITECTURE.md, "The phase model").

use crate::names::event::{
    DONE, EXEC, EXIT, FIRMWARE_HANDOVER, FIRMWARE_START, FIRST_KVM_RUN, INIT_START, KERNEL_CONSOLE,
    KERNEL_RUN_INIT, SPAWN,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who took a timestamp. When the same event is stamped by several sources the most
/// precise one wins, in this order: monitor, runtime, console, harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventSource {
    /// Our monitor, at the VM exit (marker port, first KVM_RUN).
    Monitor,
    /// A runtime process itself (e.g. the sandbox right before execve).
    Runtime,
    /// Arrival of a console line on the runtime's stdout or serial output.
    Console,
    /// The harness (spawn, wait returned).
    Harness,
}

/// One timestamped event of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Event name: `spawn`, `first-kvm-run`, `kernel-run-init`, `init-start`,
    /// `snapshot`, `exec`, `done`, `exit`, or a runtime-specific name (`vmm.*` and
    /// `restore.*` steps of our monitor, `snapshot-saved`).
    pub name: String,
    /// CLOCK_MONOTONIC nanoseconds (absolute, comparable across processes).
    pub t_ns: u64,
    /// Who stamped it.
    pub source: EventSource,
}

/// Every event of one run of one runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Name of the runtime that ran (e.g. `bootlab-vm-lab`, `runc`).
    pub runtime: String,
    /// CLOCK_MONOTONIC ns of the spawn of the runtime process: time zero of the run.
    pub spawn_ns: u64,
    /// The events, in any order.
    pub events: Vec<Event>,
    /// Exit status of the runtime (or guest), when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the run failed, if it did; failed runs are kept and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the workload measured itself and printed (`crate::measure`), as
    /// `NAME.KEY` (`seqread.ns`) -> value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measured: BTreeMap<String, u64>,
}

/// A phase of a run, relative to the spawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Phase name; merged phases are joined with `+` (`vmm+kernel`).
    pub name: String,
    /// Start, ns after spawn.
    pub start_ns: u64,
    /// End, ns after spawn.
    pub end_ns: u64,
}

impl Phase {
    /// Length of the phase in ns.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// A runtime kind's ordered phases and the events that bound them.
#[derive(Debug, Clone, Copy)]
pub struct PhaseModel {
    /// Name of the model (`vm`, `container`).
    pub name: &'static str,
    /// `boundaries[i]` starts `phases[i]` and `boundaries[i+1]` ends it. Each boundary
    /// lists acceptable event names, preferred first. Boundary 0 is always the spawn.
    pub boundaries: &'static [&'static [&'static str]],
    /// Phase names, one fewer than boundaries.
    pub phases: &'static [&'static str],
}

/// The microVM phases: vmm, kernel, init, process, teardown. When init cannot announce
/// itself, the kernel's "Run /init" console line ends the kernel phase.
pub const VM_MODEL: PhaseModel = PhaseModel {
    name: "vm",
    boundaries: &[
        &[SPAWN],
        &[FIRST_KVM_RUN],
        &[INIT_START, KERNEL_RUN_INIT],
        &[EXEC],
        &[DONE],
        &[EXIT],
    ],
    phases: &["vmm", "kernel", "init", "process", "teardown"],
};

/// A VM that runs firmware before its kernel (QEMU `-M pc` with SeaBIOS, microvm
/// with qboot): `vmm` (spawn -> the firmware's first sign of life), `firmware` (->
/// its hand-over, or else the kernel's first console line: the POST), then `kernel`,
/// `init`, `process`, `teardown` as in [`VM_MODEL`]. A microVM has no firmware: it
/// follows [`VM_MODEL`], where the phase is absent (its `vmm` is its POST).
pub const FIRMWARE_VM_MODEL: PhaseModel = PhaseModel {
    name: "firmware-vm",
    boundaries: &[
        &[SPAWN],
        &[FIRMWARE_START],
        &[FIRMWARE_HANDOVER, KERNEL_CONSOLE],
        &[INIT_START, KERNEL_RUN_INIT],
        &[EXEC],
        &[DONE],
        &[EXIT],
    ],
    phases: &["vmm", "firmware", "kernel", "init", "process", "teardown"],
};

/// A microVM restored from a snapshot taken at the `snapshot` marker: `restore`
/// (spawn -> the first KVM_RUN after the saved state is loaded), `process` (-> the
/// workload's `done`), `teardown`. When the first KVM_RUN cannot be seen (a peer),
/// the workload's `exec` line, the guest's first after the load, ends `restore`.
pub const RESTORED_VM_MODEL: PhaseModel = PhaseModel {
    name: "restored-vm",
    boundaries: &[&[SPAWN], &[FIRST_KVM_RUN, EXEC], &[DONE], &[EXIT]],
    phases: &["restore", "process", "teardown"],
};

/// The container phases: sandbox, process, teardown.
pub const CONTAINER_MODEL: PhaseModel = PhaseModel {
    name: "container",
    boundaries: &[&[SPAWN], &[EXEC], &[DONE], &[EXIT]],
    phases: &["sandbox", "process", "teardown"],
};

impl Timeline {
    /// A timeline for `runtime` spawned at `spawn_ns`.
    pub fn new(runtime: impl Into<String>, spawn_ns: u64) -> Self {
        Timeline {
            runtime: runtime.into(),
            spawn_ns,
            ..Default::default()
        }
    }

    /// Records an event.
    pub fn push(&mut self, name: impl Into<String>, t_ns: u64, source: EventSource) {
        self.events.push(Event {
            name: name.into(),
            t_ns,
            source,
        });
    }

    /// The time of the event `name` from the most precise source (earliest stamp
    /// among equally precise ones), if present.
    pub fn event_ns(&self, name: &str) -> Option<u64> {
        self.events
            .iter()
            .filter(|e| e.name == name)
            .min_by_key(|e| (e.source, e.t_ns))
            .map(|e| e.t_ns)
    }

    /// Phases of this run under `model`, relative to the spawn. A missing inner
    /// boundary merges its two neighbours (`vmm+kernel`); phases after the last
    /// observed boundary are not returned (see [`Timeline::unobserved`]).
    pub fn phases(&self, model: &PhaseModel) -> Vec<Phase> {
        let mut out = Vec::new();
        let mut start = 0u64;
        let mut pending: Vec<&str> = Vec::new();
        for (i, phase) in model.phases.iter().enumerate() {
            pending.push(phase);
            let boundary = model.boundaries[i + 1];
            let end = boundary.iter().find_map(|name| self.event_ns(name));
            if let Some(end) = end {
                let end = end.saturating_sub(self.spawn_ns);
                out.push(Phase {
                    name: pending.join("+"),
                    start_ns: start,
                    end_ns: end.max(start),
                });
                pending.clear();
                start = end.max(start);
            }
        }
        out
    }

    /// Phases of `model` that this run did not observe at all (after the last
    /// observed boundary).
    pub fn unobserved(&self, model: &PhaseModel) -> Vec<&'static str> {
        let covered: Vec<String> = self
            .phases(model)
            .iter()
            .flat_map(|p| {
                p.name
                    .split('+')
                    .map(str::to_owned)
                    .collect::<Vec<String>>()
            })
            .collect();
        model
            .phases
            .iter()
            .copied()
            .filter(|p| !covered.iter().any(|c| c == p))
            .collect()
    }

    /// Total time from spawn to the last boundary observed, in ns.
    pub fn total_ns(&self, model: &PhaseModel) -> Option<u64> {
        self.phases(model).last().map(|p| p.end_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(events: &[(&str, u64, EventSource)]) -> Timeline {
        let mut t = Timeline::new("test", 1_000);
        for (n, ts, s) in events {
            t.push(*n, *ts, *s);
        }
        t
    }

    #[test]
    fn full_vm_timeline_has_five_phases() {
        use EventSource::*;
        let t = vm(&[
            (FIRST_KVM_RUN, 1_500, Monitor),
            (INIT_START, 3_000, Monitor),
            (EXEC, 3_100, Monitor),
            (DONE, 3_400, Monitor),
            (EXIT, 3_600, Harness),
        ]);
        let p = t.phases(&VM_MODEL);
        let names: Vec<_> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["vmm", "kernel", "init", "process", "teardown"]);
        let d: Vec<_> = p.iter().map(Phase::duration_ns).collect();
        assert_eq!(d, [500, 1_500, 100, 300, 200]);
        assert_eq!(t.total_ns(&VM_MODEL), Some(2_600));
        assert!(t.unobserved(&VM_MODEL).is_empty());
    }

    #[test]
    fn missing_boundary_merges_neighbours() {
        use EventSource::*;
        // No first-kvm-run (a peer like QEMU): vmm and kernel merge.
        let t = vm(&[
            (INIT_START, 3_000, Console),
            (EXEC, 3_100, Console),
            (DONE, 3_400, Console),
            (EXIT, 3_600, Harness),
        ]);
        let names: Vec<_> = t.phases(&VM_MODEL).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["vmm+kernel", "init", "process", "teardown"]);
    }

    #[test]
    fn kernel_line_ends_kernel_phase_when_init_is_silent() {
        use EventSource::*;
        let t = vm(&[
            (FIRST_KVM_RUN, 1_500, Monitor),
            (KERNEL_RUN_INIT, 9_000, Console),
        ]);
        let p = t.phases(&VM_MODEL);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].name, "kernel");
        assert_eq!(p[1].duration_ns(), 7_500);
        assert_eq!(
            t.unobserved(&VM_MODEL),
            ["init", "process", "teardown"].to_vec()
        );
    }

    #[test]
    fn monitor_stamp_beats_console_stamp() {
        use EventSource::*;
        let t = vm(&[(EXEC, 2_000, Console), (EXEC, 1_900, Monitor)]);
        assert_eq!(t.event_ns(EXEC), Some(1_900));
        let t = vm(&[(EXEC, 1_800, Console), (EXEC, 1_900, Monitor)]);
        assert_eq!(t.event_ns(EXEC), Some(1_900));
    }

    #[test]
    fn timeline_round_trips_through_json() {
        let t = vm(&[(EXEC, 2_000, EventSource::Runtime)]);
        let s = serde_json::to_string(&t).unwrap();
        assert!(s.contains("\"source\":\"runtime\""));
        let back: Timeline = serde_json::from_str(&s).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn firmware_vm_model_puts_the_post_between_vmm_and_kernel() {
        use EventSource::*;
        let t = vm(&[
            (FIRMWARE_START, 1_400, Console),
            (FIRMWARE_HANDOVER, 11_000, Console),
            (KERNEL_CONSOLE, 40_000, Console),
            (INIT_START, 50_000, Console),
            (EXEC, 50_100, Console),
            (DONE, 50_300, Console),
            (EXIT, 51_000, Harness),
        ]);
        let p: Vec<_> = t
            .phases(&FIRMWARE_VM_MODEL)
            .iter()
            .map(|p| (p.name.clone(), p.duration_ns()))
            .collect();
        let want = [
            ("vmm", 400),
            ("firmware", 9_600),
            ("kernel", 39_000),
            ("init", 100),
            ("process", 200),
            ("teardown", 700),
        ];
        assert_eq!(p, want.map(|(n, d)| (n.to_string(), d)));
        // Without a hand-over line the kernel's first console line ends the POST.
        let t = vm(&[
            (FIRMWARE_START, 1_400, Console),
            (KERNEL_CONSOLE, 40_000, Console),
        ]);
        let p = t.phases(&FIRMWARE_VM_MODEL);
        assert_eq!(p[1].name, "firmware");
        assert_eq!(p[1].duration_ns(), 38_600);
        // A firmware that says nothing merges into its neighbours, named so.
        let t = vm(&[(KERNEL_CONSOLE, 40_000, Console)]);
        assert_eq!(t.phases(&FIRMWARE_VM_MODEL)[0].name, "vmm+firmware");
        // The microVM model has no firmware phase at all.
        assert!(!VM_MODEL.phases.contains(&"firmware"));
    }

    #[test]
    fn restored_vm_model() {
        use EventSource::*;
        let t = vm(&[
            (FIRST_KVM_RUN, 1_800, Monitor),
            (EXEC, 1_900, Monitor),
            (DONE, 2_300, Monitor),
            (EXIT, 2_500, Runtime),
        ]);
        let p = t.phases(&RESTORED_VM_MODEL);
        let names: Vec<_> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["restore", "process", "teardown"]);
        let d: Vec<_> = p.iter().map(Phase::duration_ns).collect();
        assert_eq!(d, [800, 500, 200]);
        // Seen from outside (a peer): the exec line ends restore.
        let peer = vm(&[
            (EXEC, 1_900, Console),
            (DONE, 2_300, Console),
            (EXIT, 2_500, Harness),
        ]);
        let d: Vec<_> = peer
            .phases(&RESTORED_VM_MODEL)
            .iter()
            .map(|p| (p.name.clone(), p.duration_ns()))
            .collect();
        assert_eq!(
            d,
            [
                ("restore".to_string(), 900),
                ("process".to_string(), 400),
                ("teardown".to_string(), 200)
            ]
        );
    }

    #[test]
    fn container_model() {
        use EventSource::*;
        let mut t = Timeline::new("sandbox", 0);
        t.push(EXEC, 900_000, Runtime);
        t.push(DONE, 1_000_000, Harness);
        t.push(EXIT, 1_100_000, Harness);
        let names: Vec<_> = t
            .phases(&CONTAINER_MODEL)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["sandbox", "process", "teardown"]);
    }
}
