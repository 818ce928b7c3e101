//! Container-side peers that need no set-up: plain fork+exec of the workload (the
//! floor: no isolation at all) and bubblewrap with every namespace.

use super::{version_of, which, RunCtx, Runner, Workload};
use crate::exec::{ConsoleMap, RunSpec};
use std::path::PathBuf;
use timeline::event;

pub(super) const CONSOLE_NOTE: &str =
    "exec = arrival of the workload's `@@bootlab init-start` line \
     (console), so `sandbox` includes the workload's own execve and start-up (fork-exec, \
     the floor, shows that cost); done = its `@@bootlab done` line";

/// The workload started directly from the host: what any runtime adds is above this.
#[derive(Debug, Clone)]
pub struct ForkExec {
    pub workload: Workload,
}

impl Runner for ForkExec {
    fn name(&self) -> &str {
        "fork-exec"
    }

    fn check(&self) -> Result<(), String> {
        self.workload.check()
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let mut spec = RunSpec::new(self.workload.host_program(), ConsoleMap::Container)
            .args(&self.workload.argv[1..]);
        spec.required = vec![event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        Some("host fork+exec (no isolation)".into())
    }

    fn notes(&self) -> Vec<String> {
        vec![CONSOLE_NOTE.into()]
    }
}

/// `bwrap --unshare-all --ro-bind R / --proc /proc --dev /dev WORKLOAD`.
#[derive(Debug, Clone)]
pub struct Bwrap {
    pub bin: Option<PathBuf>,
    pub workload: Workload,
}

impl Bwrap {
    pub fn new(workload: Workload) -> Self {
        Bwrap {
            bin: which("bwrap"),
            workload,
        }
    }
}

impl Runner for Bwrap {
    fn name(&self) -> &str {
        "bwrap"
    }

    fn check(&self) -> Result<(), String> {
        self.bin
            .as_ref()
            .ok_or_else(|| "bwrap not found on PATH (Debian package bubblewrap)".to_string())?;
        self.workload.check()
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| "bwrap".into());
        let mut spec = RunSpec::new(bin, ConsoleMap::Container)
            .args(["--unshare-all", "--ro-bind"])
            .arg(&self.workload.rootfs)
            .args(["/", "--proc", "/proc", "--dev", "/dev"])
            .args(&self.workload.argv);
        spec.required = vec![event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![CONSOLE_NOTE.into()]
    }
}
