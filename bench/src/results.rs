//! The results.json data model: host facts, the runtimes and their status, every
//! measured run with every timestamp, and the concurrency batches. A report is
//! regenerated from this alone.

use crate::host::HostFacts;
use serde::{Deserialize, Serialize};
use timeline::{
    PhaseModel, Timeline, CONTAINER_MODEL, FIRMWARE_VM_MODEL, RESTORED_VM_MODEL, VM_MODEL,
};

/// Version of the results.json layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Which phase model a runtime's runs follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    /// A microVM: no firmware, the monitor's set-up is its POST.
    Vm,
    /// A VM that runs firmware (SeaBIOS, qboot) before its kernel: a `firmware` phase.
    FirmwareVm,
    /// A microVM restored from a snapshot: restore, process, teardown.
    RestoredVm,
    Container,
}

impl RuntimeKind {
    /// The kind's name in reports, as in results.json (`vm`, `firmware-vm`,
    /// `restored-vm`, `container`).
    pub fn label(self) -> &'static str {
        match self {
            RuntimeKind::Vm => "vm",
            RuntimeKind::FirmwareVm => "firmware-vm",
            RuntimeKind::RestoredVm => "restored-vm",
            RuntimeKind::Container => "container",
        }
    }

    pub fn model(self) -> &'static PhaseModel {
        match self {
            RuntimeKind::Vm => &VM_MODEL,
            RuntimeKind::FirmwareVm => &FIRMWARE_VM_MODEL,
            RuntimeKind::RestoredVm => &RESTORED_VM_MODEL,
            RuntimeKind::Container => &CONTAINER_MODEL,
        }
    }
}

/// Whether a runtime was measured, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum RuntimeStatus {
    /// Measured.
    Ran,
    /// Not installed / not configured here.
    Missing(String),
    /// Installed, but its probe run failed on this host.
    Failed(String),
    /// Not selected by default (e.g. too slow on this host); name it to run it.
    Skipped(String),
}

/// A phase a runtime cannot expose on this host, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unobservable {
    pub phase: String,
    pub reason: String,
}

/// One runtime of the comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Short name (`bootlab-vm-lab`, `runc`, ...).
    pub name: String,
    pub kind: RuntimeKind,
    /// One of ours (bootlab) rather than a peer.
    pub ours: bool,
    /// `--version` of the binary, first line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The command line of one run, for the record.
    #[serde(default)]
    pub command: String,
    pub status: RuntimeStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unobservable: Vec<Unobservable>,
    /// Remarks on how this runtime's phases are attributed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Round of the interleaved schedule (0-based).
    pub round: u32,
    /// CPU-bound workers running beside this run (`--load`); 0 on a quiet host.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load: u32,
    pub timeline: Timeline,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RunRecord {
    pub fn failed(&self) -> bool {
        self.timeline.error.is_some()
    }
}

/// One batch of `level` instances of a runtime started at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyBatch {
    pub runtime: String,
    /// Instances started at once.
    pub level: u32,
    /// First spawn to last exit, ns.
    pub wall_ns: u64,
    /// The instances' timelines.
    pub runs: Vec<Timeline>,
}

impl ConcurrencyBatch {
    /// Successful boots per second of wall time.
    pub fn boots_per_second(&self) -> f64 {
        let ok = self.runs.iter().filter(|r| r.error.is_none()).count();
        if self.wall_ns == 0 {
            return 0.0;
        }
        ok as f64 / (self.wall_ns as f64 / 1e9)
    }
}

/// How the measurement was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Method {
    pub runs: u32,
    pub warmup: u32,
    pub concurrency: u32,
    pub interleaved: bool,
    /// The workload every runtime ran.
    pub workload: String,
    /// Where the guest images and rootfs came from.
    pub images: String,
    /// Stopped early by Ctrl-C: what was measured until then is kept.
    #[serde(default)]
    pub interrupted: bool,
    /// CPU-bound workers of the loaded pass of each round (`--load`; 0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load: u32,
    /// CPU time the workers used in all, ms: that the load was there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_cpu_ms: Option<u64>,
    /// The host's 1, 5 and 15 minute load averages (/proc/loadavg) at the start and
    /// at the end of the session: how busy the machine was besides the benchmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadavg_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadavg_end: Option<String>,
}

/// Everything a bench run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    pub name: String,
    /// Seconds since the Unix epoch at the start.
    pub started_unix: u64,
    pub host: HostFacts,
    pub method: Method,
    pub runtimes: Vec<RuntimeInfo>,
    pub runs: Vec<RunRecord>,
    #[serde(default)]
    pub concurrency: Vec<ConcurrencyBatch>,
}

impl Results {
    pub fn runtime(&self, name: &str) -> Option<&RuntimeInfo> {
        self.runtimes.iter().find(|r| r.name == name)
    }

    /// The measured runs of `runtime` on the quiet host (no `--load` workers), in order.
    pub fn runs_of<'a>(&'a self, runtime: &'a str) -> impl Iterator<Item = &'a RunRecord> + 'a {
        self.runs_under(runtime, 0)
    }

    /// The measured runs of `runtime` with `load` workers beside them, in order.
    pub fn runs_under<'a>(
        &'a self,
        runtime: &'a str,
        load: u32,
    ) -> impl Iterator<Item = &'a RunRecord> + 'a {
        self.runs
            .iter()
            .filter(move |r| r.timeline.runtime == runtime && r.load == load)
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeKind;

    #[test]
    fn kind_labels_are_the_json_names() {
        for k in [
            RuntimeKind::Vm,
            RuntimeKind::FirmwareVm,
            RuntimeKind::RestoredVm,
            RuntimeKind::Container,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.label())
            );
        }
    }
}
