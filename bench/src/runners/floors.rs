//! The two yardsticks: minimal static C programs, compiled with the host's C compiler
//! for the session (bench/floor/), that do the least a namespace sandbox
//! (`sandbox-floor`) or a KVM monitor (`kvm-floor`) must do before its workload
//! runs. They are written against glibc like bootlab itself, so the gap between
//! them and ours is what ours does on top, not how a process starts.

use super::peers::CONSOLE_NOTE;
use super::{kvm_present, version_of, which, RunCtx, Runner, Workload};
use crate::exec::{ConsoleMap, RunSpec};
use crate::results::RuntimeKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use timeline::event;

const SANDBOX_FLOOR_SOURCE: &str = include_str!("../../floor/sandbox-floor.c");
const KVM_FLOOR_SOURCE: &str = include_str!("../../floor/kvm-floor.c");

/// A floor program: the host's C compiler, and the binary once built for the session.
#[derive(Debug, Clone)]
pub struct Built {
    pub cc: Option<PathBuf>,
    bin: Option<PathBuf>,
}

impl Built {
    fn new() -> Self {
        Built {
            cc: which("cc").or_else(|| which("gcc")),
            bin: None,
        }
    }

    fn check(&self) -> Result<(), String> {
        self.cc
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| "no C compiler (cc or gcc) on PATH to build it".into())
    }

    /// Compiles `source` with `cc -O2 -static` into `scratch/name`.
    fn build(&mut self, source: &str, name: &str, scratch: &Path) -> Result<(), String> {
        let cc = self.cc.clone().unwrap_or_else(|| "cc".into());
        let src = scratch.join(format!("{name}.c"));
        let bin = scratch.join(name);
        std::fs::write(&src, source).map_err(|e| format!("{}: {e}", src.display()))?;
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

    /// The built binary (its bare name before `build`, which a run then fails on).
    fn program(&self, name: &str) -> PathBuf {
        self.bin.clone().unwrap_or_else(|| name.into())
    }

    fn version(&self, name: &str) -> Option<String> {
        let v = version_of(self.cc.as_ref()?, &["--version"])?;
        Some(format!("bench/floor/{name}.c, static, built with {v}"))
    }
}

/// `sandbox-floor ROOTFS WORKLOAD`: the same six namespaces as ours, a private tree,
/// bind + pivot_root, a new procfs, a read-only root, a hostname, and nothing else.
#[derive(Debug, Clone)]
pub struct SandboxFloor {
    pub built: Built,
    pub workload: Workload,
}

impl SandboxFloor {
    pub fn new(workload: Workload) -> Self {
        SandboxFloor {
            built: Built::new(),
            workload,
        }
    }
}

impl Runner for SandboxFloor {
    fn name(&self) -> &str {
        "sandbox-floor"
    }

    fn check(&self) -> Result<(), String> {
        self.built.check()?;
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root (it makes its namespaces without a user namespace)".into());
        }
        self.workload.check()
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        self.built
            .build(SANDBOX_FLOOR_SOURCE, "sandbox-floor", scratch)
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let mut spec = RunSpec::new(self.built.program(self.name()), ConsoleMap::Container)
            .arg(&self.workload.rootfs)
            .args(&self.workload.argv);
        spec.required = vec![event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        self.built.version(self.name())
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

/// `kvm-floor`: a VM with 128 MiB and one vCPU in real mode running five guest
/// instructions (three port writes, each printed as the next marker line, and hlt).
#[derive(Debug, Clone)]
pub struct KvmFloor {
    pub built: Built,
}

impl KvmFloor {
    pub fn new() -> Self {
        KvmFloor {
            built: Built::new(),
        }
    }
}

impl Default for KvmFloor {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner for KvmFloor {
    fn name(&self) -> &str {
        "kvm-floor"
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn check(&self) -> Result<(), String> {
        self.built.check()?;
        kvm_present()
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        self.built.build(KVM_FLOOR_SOURCE, "kvm-floor", scratch)
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let mut spec = RunSpec::new(self.built.program(self.name()), ConsoleMap::Vm);
        spec.required = vec![event::INIT_START, event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        self.built.version(self.name())
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "first KVM_RUN is not observable from outside: vmm and kernel are reported \
             merged (vmm+kernel), where kernel is the guest's first instruction; \
             init-start/exec/done = console line arrival"
                .into(),
            "kvm-floor does less than any monitor that boots Linux: no CPUID table, \
             irqchip, devices or kernel to load"
                .into(),
        ]
    }
}
