//! VM-side peers booting the same lab guest ELF (through its PVH note) as our
//! monitor: QEMU `-M microvm` and Firecracker. Their phases come from the guest's
//! console lines; their first KVM_RUN cannot be seen from outside, so `vmm` and
//! `kernel` are reported merged (`vmm+kernel`).

use super::{kvm_present, version_of, which, RunCtx, Runner};
use crate::exec::{ConsoleMap, ExitExpect, RunSpec};
use crate::results::RuntimeKind;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use timeline::marker::EXIT_PORT;

/// QEMU pauses (does not exit) on an emulation failure: every run is bounded.
const VM_PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// Guest memory given to every VM peer, MiB (same as our monitor's default).
const GUEST_MEM_MIB: u32 = 128;

const MERGED_NOTE: &str = "first KVM_RUN is not observable from outside: vmm and kernel are \
                           reported merged (vmm+kernel); init-start/exec/done = console line arrival";

fn missing_kernel() -> String {
    "no lab guest ELF to boot (pass --lab-elf PATH or put lab.elf in the images folder)".into()
}

/// `qemu-system-x86_64 -M microvm` booting the lab guest, ended by isa-debug-exit.
#[derive(Debug, Clone)]
pub struct QemuMicrovm {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
}

impl QemuMicrovm {
    pub fn new(kernel: Option<PathBuf>) -> Self {
        QemuMicrovm {
            bin: which("qemu-system-x86_64"),
            kernel,
        }
    }
}

impl Runner for QemuMicrovm {
    fn name(&self) -> &str {
        "qemu-microvm"
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn check(&self) -> Result<(), String> {
        self.bin.as_ref().ok_or_else(|| {
            "qemu-system-x86_64 not found on PATH (Debian package qemu-system-x86)".to_string()
        })?;
        kvm_present()?;
        match &self.kernel {
            Some(k) if k.is_file() => Ok(()),
            Some(k) => Err(format!("lab guest ELF {} not found", k.display())),
            None => Err(missing_kernel()),
        }
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let bin = self
            .bin
            .clone()
            .unwrap_or_else(|| "qemu-system-x86_64".into());
        let mut spec = RunSpec::new(bin, ConsoleMap::Vm)
            .args([
                "-M",
                "microvm",
                "-enable-kvm",
                "-cpu",
                "host,-arch-capabilities",
                "-m",
            ])
            .arg(GUEST_MEM_MIB.to_string())
            .args([
                "-nographic",
                "-no-reboot",
                "-nodefaults",
                "-serial",
                "stdio",
                "-kernel",
            ])
            .arg(self.kernel.clone().unwrap_or_default())
            .args(["-device"])
            .arg(format!("isa-debug-exit,iobase={EXIT_PORT:#x}"));
        // isa-debug-exit ends QEMU with (status << 1) | 1; the lab guest writes 0.
        spec.expect = ExitExpect::Code(1);
        spec.required = vec!["init-start", "exec", "done"];
        spec.timeout = VM_PEER_TIMEOUT;
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![
            MERGED_NOTE.into(),
            "-cpu host,-arch-capabilities (else QEMU fails to set MSR 0x10a on PVM hosts)".into(),
        ]
    }
}

/// Firecracker in config-file mode (`--no-api --config-file`, boot timer on).
#[derive(Debug, Clone)]
pub struct Firecracker {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    config: Option<PathBuf>,
}

impl Firecracker {
    /// `bin` given explicitly (`--firecracker PATH`) or looked up on PATH.
    pub fn new(bin: Option<PathBuf>, kernel: Option<PathBuf>) -> Self {
        Firecracker {
            bin: bin.or_else(|| which("firecracker")),
            kernel,
            config: None,
        }
    }
}

/// The Firecracker VM config: the lab guest, one vCPU, no drives, no network.
pub fn firecracker_config(kernel: &Path) -> serde_json::Value {
    json!({
        "boot-source": {
            "kernel_image_path": kernel,
            "boot_args": "console=ttyS0 reboot=k panic=1"
        },
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": GUEST_MEM_MIB }
    })
}

impl Runner for Firecracker {
    fn name(&self) -> &str {
        "firecracker"
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn check(&self) -> Result<(), String> {
        self.bin.as_ref().ok_or_else(|| {
            "firecracker not found on PATH (pass --firecracker PATH); not packaged in Debian"
                .to_string()
        })?;
        kvm_present()?;
        match &self.kernel {
            Some(k) if k.is_file() => Ok(()),
            _ => Err(missing_kernel()),
        }
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let kernel = self.kernel.clone().ok_or_else(missing_kernel)?;
        let kernel =
            std::fs::canonicalize(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
        let path = scratch.join("firecracker.json");
        std::fs::write(&path, firecracker_config(&kernel).to_string())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.config = Some(path);
        Ok(())
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| "firecracker".into());
        let mut spec = RunSpec::new(bin, ConsoleMap::Vm)
            .args(["--no-api", "--boot-timer", "--config-file"])
            .arg(self.config.clone().unwrap_or_default());
        // Firecracker has no exit port: the run ends at the guest's `done` line.
        spec.kill_on = Some("done");
        spec.expect = ExitExpect::Any;
        spec.required = vec!["init-start", "exec", "done"];
        spec.timeout = VM_PEER_TIMEOUT;
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![
            MERGED_NOTE.into(),
            "no exit port: killed at the guest's `done` line, so teardown is the kill".into(),
        ]
    }
}
