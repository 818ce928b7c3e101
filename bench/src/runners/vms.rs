//! VM-side peers booting the same guests as our monitor: QEMU `-M microvm` and
//! Firecracker, each with the lab guest ELF (through its PVH note) and, as the
//! `-linux` rows, with the Linux kernel, initramfs and command line `bootlab vm run
//! --guest linux` uses on this host. Their phases come from the guest's console
//! lines; their first KVM_RUN cannot be seen from outside, so `vmm` and `kernel` are
//! reported merged (`vmm+kernel`).

use super::{kvm_present, version_of, which, RunCtx, Runner};
use crate::exec::{ConsoleMap, ExitExpect, RunSpec};
use crate::results::RuntimeKind;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use timeline::event;
use timeline::marker::EXIT_PORT;

/// QEMU pauses (does not exit) on an emulation failure: every run is bounded.
const VM_PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a Linux boot on hardware KVM (~0.2 s natively, ~5-15 s in the
/// nested-SVM lane) and on an emulated host (about a minute, minutes under load).
const LINUX_HARDWARE_TIMEOUT: Duration = Duration::from_secs(120);
const LINUX_EMULATED_TIMEOUT: Duration = Duration::from_secs(600);

/// What the `-linux` rows boot: the files and command line of `bootlab vm run
/// --guest linux` on this host, so that every monitor runs the same guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxBoot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// The guest must see a GenuineIntel CPU (the emulated-KVM configuration).
    pub intel_vendor: bool,
    /// The host's /dev/kvm is emulated: a boot takes about a minute.
    pub emulated: bool,
}

impl LinuxBoot {
    fn check(&self) -> Result<(), String> {
        for (what, f) in [("kernel", &self.kernel), ("initramfs", &self.initrd)] {
            if !f.is_file() {
                return Err(format!("Linux guest {what} {} not built", f.display()));
            }
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        if self.emulated {
            LINUX_EMULATED_TIMEOUT
        } else {
            LINUX_HARDWARE_TIMEOUT
        }
    }
}
/// Guest memory given to every VM peer, MiB (same as our monitor's default).
const GUEST_MEM_MIB: u32 = 128;

const MERGED_NOTE: &str = "first KVM_RUN is not observable from outside: vmm and kernel are \
                           reported merged (vmm+kernel); init-start/exec/done = console line arrival";

fn missing_kernel() -> String {
    "no lab guest ELF to boot (pass --lab-elf PATH or put lab.elf in the images folder)".into()
}

/// `qemu-system-x86_64 -M microvm` booting the lab guest, ended by isa-debug-exit.
/// With `linux` set it is the `qemu-microvm-linux` row.
#[derive(Debug, Clone)]
pub struct QemuMicrovm {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub linux: Option<LinuxBoot>,
}

impl QemuMicrovm {
    pub fn new(kernel: Option<PathBuf>) -> Self {
        QemuMicrovm {
            bin: which("qemu-system-x86_64"),
            kernel,
            linux: None,
        }
    }

    /// The `qemu-microvm-linux` row.
    pub fn linux(linux: LinuxBoot) -> Self {
        QemuMicrovm {
            linux: Some(linux),
            ..QemuMicrovm::new(None)
        }
    }
}

impl Runner for QemuMicrovm {
    fn name(&self) -> &str {
        if self.linux.is_some() {
            "qemu-microvm-linux"
        } else {
            "qemu-microvm"
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn check(&self) -> Result<(), String> {
        self.bin.as_ref().ok_or_else(|| {
            "qemu-system-x86_64 not found on PATH (Debian package qemu-system-x86)".to_string()
        })?;
        kvm_present()?;
        if let Some(linux) = &self.linux {
            return linux.check();
        }
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
        let cpu = match &self.linux {
            Some(l) if l.intel_vendor => "host,-arch-capabilities,vendor=GenuineIntel",
            _ => "host,-arch-capabilities",
        };
        let mut spec = RunSpec::new(bin, ConsoleMap::Vm)
            .args(["-M", "microvm", "-enable-kvm", "-cpu", cpu, "-m"])
            .arg(GUEST_MEM_MIB.to_string())
            .args([
                "-nographic",
                "-no-reboot",
                "-nodefaults",
                "-serial",
                "stdio",
                "-kernel",
            ]);
        spec = match &self.linux {
            Some(l) => spec
                .arg(&l.kernel)
                .arg("-initrd")
                .arg(&l.initrd)
                .arg("-append")
                .arg(&l.cmdline),
            None => spec.arg(self.kernel.clone().unwrap_or_default()),
        };
        spec = spec
            .args(["-device"])
            .arg(format!("isa-debug-exit,iobase={EXIT_PORT:#x}"));
        // isa-debug-exit ends QEMU with (status << 1) | 1; both guests write 0.
        spec.expect = ExitExpect::Code(1);
        spec.required = vec![event::INIT_START, event::EXEC, event::DONE];
        spec.timeout = self
            .linux
            .as_ref()
            .map_or(VM_PEER_TIMEOUT, LinuxBoot::timeout);
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

/// Firecracker in config-file mode (`--no-api --config-file`, boot timer on). With
/// `linux` set it is the `firecracker-linux` row.
#[derive(Debug, Clone)]
pub struct Firecracker {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub linux: Option<LinuxBoot>,
    config: Option<PathBuf>,
}

impl Firecracker {
    /// `bin` given explicitly (`--firecracker PATH`) or looked up on PATH.
    pub fn new(bin: Option<PathBuf>, kernel: Option<PathBuf>) -> Self {
        Firecracker {
            bin: bin.or_else(|| which("firecracker")),
            kernel,
            linux: None,
            config: None,
        }
    }

    /// The `firecracker-linux` row.
    pub fn linux(bin: Option<PathBuf>, linux: LinuxBoot) -> Self {
        Firecracker {
            linux: Some(linux),
            ..Firecracker::new(bin, None)
        }
    }
}

/// The Firecracker VM config for the Linux guest: its kernel, initramfs and command
/// line, one vCPU, no drives, no network.
pub fn firecracker_linux_config(linux: &LinuxBoot) -> serde_json::Value {
    json!({
        "boot-source": {
            "kernel_image_path": linux.kernel,
            "initrd_path": linux.initrd,
            "boot_args": linux.cmdline
        },
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": GUEST_MEM_MIB }
    })
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
        if self.linux.is_some() {
            "firecracker-linux"
        } else {
            "firecracker"
        }
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
        if let Some(linux) = &self.linux {
            return linux.check();
        }
        match &self.kernel {
            Some(k) if k.is_file() => Ok(()),
            _ => Err(missing_kernel()),
        }
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let canonical =
            |p: &Path| std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()));
        let (path, config) = match &self.linux {
            Some(l) => {
                let l = LinuxBoot {
                    kernel: canonical(&l.kernel)?,
                    initrd: canonical(&l.initrd)?,
                    ..l.clone()
                };
                (
                    scratch.join("firecracker-linux.json"),
                    firecracker_linux_config(&l),
                )
            }
            None => {
                let kernel = self.kernel.clone().ok_or_else(missing_kernel)?;
                (
                    scratch.join("firecracker.json"),
                    firecracker_config(&canonical(&kernel)?),
                )
            }
        };
        std::fs::write(&path, config.to_string())
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
        spec.kill_on = Some(event::DONE);
        spec.expect = ExitExpect::Any;
        spec.required = vec![event::INIT_START, event::EXEC, event::DONE];
        spec.timeout = self
            .linux
            .as_ref()
            .map_or(VM_PEER_TIMEOUT, LinuxBoot::timeout);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RunCtx<'static> {
        RunCtx {
            scratch: Path::new("/scratch"),
            id: 3,
        }
    }

    fn linux(emulated: bool) -> LinuxBoot {
        LinuxBoot {
            kernel: "/img/vmlinux".into(),
            initrd: "/img/initramfs.cpio.gz".into(),
            cmdline: "console=ttyS0 reboot=k panic=-1".into(),
            intel_vendor: emulated,
            emulated,
        }
    }

    #[test]
    fn qemu_linux_row_boots_the_same_kernel_initramfs_and_cmdline() {
        let mut q = QemuMicrovm::linux(linux(false));
        q.bin = Some("/usr/bin/qemu-system-x86_64".into());
        assert_eq!(q.name(), "qemu-microvm-linux");
        let s = q.spec(ctx());
        let args: Vec<String> = s
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-kernel"), "/img/vmlinux");
        assert_eq!(after("-initrd"), "/img/initramfs.cpio.gz");
        assert_eq!(after("-append"), "console=ttyS0 reboot=k panic=-1");
        assert_eq!(after("-cpu"), "host,-arch-capabilities");
        assert_eq!(after("-device"), "isa-debug-exit,iobase=0x501");
        assert_eq!(s.expect, ExitExpect::Code(1));
        assert_eq!(s.timeout, LINUX_HARDWARE_TIMEOUT);
        // On an emulated host: the Intel vendor and the long bound.
        let e = QemuMicrovm::linux(linux(true)).spec(ctx());
        assert!(e
            .command_line()
            .contains("-cpu host,-arch-capabilities,vendor=GenuineIntel"));
        assert_eq!(e.timeout, LINUX_EMULATED_TIMEOUT);
        // The lab row is unchanged.
        let lab = QemuMicrovm::new(Some("/r/lab.elf".into()));
        assert_eq!(lab.name(), "qemu-microvm");
        assert!(!lab.spec(ctx()).command_line().contains("-initrd"));
    }

    #[test]
    fn firecracker_linux_row_writes_a_config_with_the_initramfs() {
        let dir = std::env::temp_dir().join(format!("bootlab-fc-linux-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (k, i) = (dir.join("vmlinux"), dir.join("initramfs.cpio.gz"));
        std::fs::write(&k, b"k").unwrap();
        std::fs::write(&i, b"i").unwrap();
        let mut fc = Firecracker::linux(
            Some("/fc".into()),
            LinuxBoot {
                kernel: k.clone(),
                initrd: i.clone(),
                ..linux(false)
            },
        );
        assert_eq!(fc.name(), "firecracker-linux");
        fc.prepare(&dir).unwrap();
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("firecracker-linux.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["boot-source"]["kernel_image_path"], json!(k));
        assert_eq!(cfg["boot-source"]["initrd_path"], json!(i));
        assert_eq!(
            cfg["boot-source"]["boot_args"],
            "console=ttyS0 reboot=k panic=-1"
        );
        assert_eq!(cfg["machine-config"]["mem_size_mib"], GUEST_MEM_MIB);
        let s = fc.spec(ctx());
        assert_eq!(s.kill_on, Some("done"));
        assert_eq!(s.timeout, LINUX_HARDWARE_TIMEOUT);
        std::fs::remove_dir_all(&dir).ok();
    }
}
