//! Container-side peers: plain fork+exec of the workload (the floor: no isolation at
//! all), a minimal C sandbox built for the session (the floor with isolation), and
//! bubblewrap with every namespace.

use super::{version_of, which, RunCtx, Runner, Workload};
use crate::exec::{ConsoleMap, RunSpec};
use std::path::{Path, PathBuf};
use std::process::Command;

const CONSOLE_NOTE: &str = "exec = arrival of the workload's `@@bootlab init-start` line \
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
        spec.required = vec!["exec", "done"];
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
        spec.required = vec!["exec", "done"];
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![CONSOLE_NOTE.into()]
    }
}

/// The C source of the sandbox floor, compiled at `prepare` time.
const FLOOR_SOURCE: &str = include_str!("../../floor/sandbox-floor.c");

/// `sandbox-floor ROOTFS WORKLOAD`: a minimal static C program with the same six
/// namespaces, pivot_root, a new procfs and a read-only root, and nothing else
/// (bench/floor/sandbox-floor.c). Compiled with the host's C compiler for the
/// session: what any namespace sandbox costs on this host, the yardstick for ours.
#[derive(Debug, Clone)]
pub struct SandboxFloor {
    pub cc: Option<PathBuf>,
    pub workload: Workload,
    bin: Option<PathBuf>,
}

impl SandboxFloor {
    pub fn new(workload: Workload) -> Self {
        SandboxFloor {
            cc: which("cc").or_else(|| which("gcc")),
            workload,
            bin: None,
        }
    }
}

impl Runner for SandboxFloor {
    fn name(&self) -> &str {
        "sandbox-floor"
    }

    fn check(&self) -> Result<(), String> {
        self.cc
            .as_ref()
            .ok_or_else(|| "no C compiler (cc or gcc) on PATH to build it".to_string())?;
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root (it makes its namespaces without a user namespace)".into());
        }
        self.workload.check()
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let cc = self.cc.clone().unwrap_or_else(|| "cc".into());
        let src = scratch.join("sandbox-floor.c");
        let bin = scratch.join("sandbox-floor");
        std::fs::write(&src, FLOOR_SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
        let out = Command::new(&cc)
            .args(["-O2", "-static", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .map_err(|e| format!("{}: {e}", cc.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "{} -static failed (static libc missing?): {}",
                cc.display(),
                err.lines().next().unwrap_or("")
            ));
        }
        self.bin = Some(bin);
        Ok(())
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| "sandbox-floor".into());
        let mut spec = RunSpec::new(bin, ConsoleMap::Container)
            .arg(&self.workload.rootfs)
            .args(&self.workload.argv);
        spec.required = vec!["exec", "done"];
        spec
    }

    fn version(&self) -> Option<String> {
        let cc = version_of(self.cc.as_ref()?, &["--version"])?;
        Some(format!(
            "bench/floor/sandbox-floor.c, static, built with {cc}"
        ))
    }

    fn notes(&self) -> Vec<String> {
        vec![
            CONSOLE_NOTE.into(),
            "sandbox-floor does less than bwrap or bootlab-sandbox: no /dev, /tmp, \
             loopback, cgroup, capabilities or seccomp"
                .into(),
        ]
    }
}
