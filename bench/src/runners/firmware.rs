//! VM peers that run firmware before the kernel, so that their POST is a phase of its
//! own: QEMU `-M pc` with SeaBIOS (`qemu-pc-seabios`) and QEMU `-M microvm` with
//! qboot (`qemu-microvm-qboot`), booting the same Linux kernel, initramfs and command
//! line as `qemu-microvm-linux` (or, for tests, the lab guest). The firmware is seen
//! through its logs, read from FIFOs beside the serial console (`crate::firmware`).

use super::vms::{LinuxBoot, GUEST_MEM_MIB};
use super::{kvm_present, version_of, which, RunCtx, Runner};
use crate::exec::{ConsoleMap, ExitExpect, RunSpec, SideLog};
use crate::firmware::{FirmwareLog, DEBUGCON_PORT};
use crate::results::RuntimeKind;
use std::path::PathBuf;
use std::time::Duration;
use timeline::event;
use timeline::marker::EXIT_PORT;

/// Bound on a lab-guest boot through firmware: SeaBIOS alone took 9 s under this
/// host's emulated KVM (real-mode code runs in KVM's instruction emulator).
const LAB_FIRMWARE_TIMEOUT: Duration = Duration::from_secs(120);

/// Which firmware, on which QEMU machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// `-M pc` with its default BIOS, SeaBIOS (Debian package seabios).
    SeaBios,
    /// `-M microvm` with its default BIOS, qboot (`bios-microvm.bin`).
    Qboot,
}

impl Firmware {
    fn machine(self) -> &'static str {
        match self {
            Firmware::SeaBios => "pc",
            Firmware::Qboot => "microvm",
        }
    }
}

/// What the firmware boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareGuest {
    /// The Linux guest of the `-linux` rows.
    Linux(LinuxBoot),
    /// The lab guest ELF (tests: a whole boot in seconds rather than minutes).
    Lab(PathBuf),
}

/// QEMU booting `guest` through `firmware`.
#[derive(Debug, Clone)]
pub struct QemuFirmware {
    pub firmware: Firmware,
    pub bin: Option<PathBuf>,
    pub guest: FirmwareGuest,
}

impl QemuFirmware {
    pub fn new(firmware: Firmware, guest: FirmwareGuest) -> Self {
        QemuFirmware {
            firmware,
            bin: which("qemu-system-x86_64"),
            guest,
        }
    }

    fn fifo(&self, ctx: RunCtx<'_>, what: &str) -> PathBuf {
        ctx.scratch
            .join(format!("{}-{}.{what}", self.name(), ctx.id))
    }
}

impl Runner for QemuFirmware {
    fn name(&self) -> &str {
        match (self.firmware, &self.guest) {
            (Firmware::SeaBios, FirmwareGuest::Linux(_)) => "qemu-pc-seabios",
            (Firmware::Qboot, FirmwareGuest::Linux(_)) => "qemu-microvm-qboot",
            (Firmware::SeaBios, FirmwareGuest::Lab(_)) => "qemu-pc-seabios-lab",
            (Firmware::Qboot, FirmwareGuest::Lab(_)) => "qemu-microvm-qboot-lab",
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::FirmwareVm
    }

    fn check(&self) -> Result<(), String> {
        self.bin.as_ref().ok_or_else(|| {
            "qemu-system-x86_64 not found on PATH (Debian package qemu-system-x86)".to_string()
        })?;
        kvm_present()?;
        match &self.guest {
            FirmwareGuest::Linux(l) => l.check(),
            FirmwareGuest::Lab(k) if k.is_file() => Ok(()),
            FirmwareGuest::Lab(k) => Err(format!("lab guest ELF {} not found", k.display())),
        }
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let bin = self
            .bin
            .clone()
            .unwrap_or_else(|| "qemu-system-x86_64".into());
        let cpu = match &self.guest {
            FirmwareGuest::Linux(l) if l.intel_vendor => {
                "host,-arch-capabilities,vendor=GenuineIntel"
            }
            _ => "host,-arch-capabilities",
        };
        let trace = self.fifo(ctx, "fw_cfg-trace");
        let mut spec = RunSpec::new(bin, ConsoleMap::FirmwareVm)
            .args(["-M", self.firmware.machine(), "-enable-kvm", "-cpu", cpu])
            .arg("-m")
            .arg(GUEST_MEM_MIB.to_string())
            .args([
                "-nographic",
                "-no-reboot",
                "-nodefaults",
                "-serial",
                "stdio",
                "-kernel",
            ]);
        spec = match &self.guest {
            FirmwareGuest::Linux(l) => spec
                .arg(&l.kernel)
                .arg("-initrd")
                .arg(&l.initrd)
                .arg("-append")
                .arg(&l.cmdline),
            FirmwareGuest::Lab(k) => spec.arg(k),
        };
        spec = spec
            .arg("-device")
            .arg(format!("isa-debug-exit,iobase={EXIT_PORT:#x}"))
            .args(["-trace", "fw_cfg_select", "-D"])
            .arg(&trace);
        spec.side_logs.push(SideLog {
            fifo: trace,
            log: FirmwareLog::FwCfgTrace,
        });
        if self.firmware == Firmware::SeaBios {
            // `-M pc`'s TPR-patching option ROM (kvmvapic, for old 32-bit Windows) made
            // the 64-bit guest-init's first port write fault (#GP) on hardware KVM.
            spec = spec.args(["-global", "kvm-apic.vapic=false"]);
            let debugcon = self.fifo(ctx, "debugcon");
            let mut chardev = std::ffi::OsString::from("file,id=fwlog,path=");
            chardev.push(&debugcon);
            spec = spec
                .arg("-chardev")
                .arg(chardev)
                .arg("-device")
                .arg(format!(
                    "isa-debugcon,chardev=fwlog,iobase={DEBUGCON_PORT:#x}"
                ));
            spec.side_logs.push(SideLog {
                fifo: debugcon,
                log: FirmwareLog::SeaBiosDebugcon,
            });
        }
        // isa-debug-exit ends QEMU with (status << 1) | 1; both guests write 0.
        spec.expect = ExitExpect::Code(1);
        spec.required = vec![
            event::FIRMWARE_START,
            event::FIRMWARE_HANDOVER,
            event::INIT_START,
            event::EXEC,
            event::DONE,
        ];
        spec.timeout = match &self.guest {
            FirmwareGuest::Linux(l) => l.timeout(),
            FirmwareGuest::Lab(_) => LAB_FIRMWARE_TIMEOUT,
        };
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        let start = match self.firmware {
            Firmware::SeaBios => {
                "vmm = spawn -> SeaBIOS's first debug-console line (`SeaBIOS (version ...)`, \
                 its first act; isa-debugcon at port 0x402 written to a FIFO, stamped on \
                 arrival)"
            }
            Firmware::Qboot => {
                "vmm = spawn -> qboot's first fw_cfg selection (the signature probe, after its \
                 hardware, PCI and IDT set-up) in QEMU's trace (`-trace fw_cfg_select -D \
                 FIFO`, stamped on arrival): qboot writes no log"
            }
        };
        let mut notes = vec![
            start.to_string(),
            "firmware = -> the guest's fw_cfg selection of `kernel_entry` in QEMU's trace, \
             read right before the jump into the loaded kernel, so the kernel's loading is \
             firmware time; the kernel's first printk line (kernel-console) would end it if \
             that selection were missing"
                .to_string(),
            "kernel = -> init-start; init-start/exec/done = console line arrival; QEMU's \
             first KVM_RUN is not observable"
                .to_string(),
        ];
        if self.firmware == Firmware::SeaBios {
            notes.push(
                "SeaBIOS's `Booting from ROM...` (step firmware.boot-entry) is its jump to \
                 QEMU's option ROM for `-kernel` (pvh.bin), which then loads the kernel; with \
                 -nographic SeaBIOS also prints on the serial console (sercon)"
                    .into(),
            );
            notes.push(
                "-global kvm-apic.vapic=false: with `-M pc`'s TPR-patching option ROM \
                 (kvmvapic, made for 32-bit Windows) the 64-bit guest-init's first port write \
                 took a general protection fault on hardware KVM (nested-SVM lane)"
                    .into(),
            );
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn linux() -> LinuxBoot {
        LinuxBoot {
            kernel: "/img/vmlinux".into(),
            initrd: "/img/initramfs32.cpio".into(),
            cmdline: "console=ttyS0 reboot=k panic=-1".into(),
            intel_vendor: true,
            emulated: true,
        }
    }

    fn ctx() -> RunCtx<'static> {
        RunCtx {
            scratch: Path::new("/scratch"),
            id: 7,
        }
    }

    #[test]
    fn seabios_row_boots_the_linux_guest_and_reads_both_firmware_logs() {
        let mut q = QemuFirmware::new(Firmware::SeaBios, FirmwareGuest::Linux(linux()));
        q.bin = Some("/usr/bin/qemu-system-x86_64".into());
        assert_eq!(q.name(), "qemu-pc-seabios");
        assert_eq!(q.kind(), RuntimeKind::FirmwareVm);
        let s = q.spec(ctx());
        let cl = s.command_line();
        assert!(cl.starts_with("/usr/bin/qemu-system-x86_64 -M pc -enable-kvm"));
        assert!(cl.contains(" -kernel /img/vmlinux -initrd /img/initramfs32.cpio "));
        assert!(cl.contains("-cpu host,-arch-capabilities,vendor=GenuineIntel"));
        assert!(cl.contains(" -trace fw_cfg_select -D /scratch/qemu-pc-seabios-7.fw_cfg-trace "));
        assert!(cl.contains(
            " -global kvm-apic.vapic=false -chardev file,id=fwlog,\
             path=/scratch/qemu-pc-seabios-7.debugcon \
             -device isa-debugcon,chardev=fwlog,iobase=0x402"
        ));
        assert_eq!(
            s.side_logs.iter().map(|l| l.log).collect::<Vec<_>>(),
            [FirmwareLog::FwCfgTrace, FirmwareLog::SeaBiosDebugcon]
        );
        assert_eq!(s.console, ConsoleMap::FirmwareVm);
        assert!(s.required.contains(&event::FIRMWARE_START));
        assert!(s.required.contains(&event::FIRMWARE_HANDOVER));
        assert_eq!(s.timeout, linux().timeout());
    }

    #[test]
    fn qboot_row_is_microvm_with_the_trace_only() {
        let q = QemuFirmware::new(Firmware::Qboot, FirmwareGuest::Linux(linux()));
        assert_eq!(q.name(), "qemu-microvm-qboot");
        let s = q.spec(ctx());
        assert!(s.command_line().contains(" -M microvm "));
        assert!(!s.command_line().contains("debugcon"));
        assert_eq!(s.side_logs.len(), 1);
        assert_eq!(s.side_logs[0].log, FirmwareLog::FwCfgTrace);
        // The lab guest: no initrd, the lab bound.
        let lab = QemuFirmware::new(Firmware::Qboot, FirmwareGuest::Lab("/r/lab.elf".into()));
        assert_eq!(lab.name(), "qemu-microvm-qboot-lab");
        let s = lab.spec(ctx());
        assert!(!s.command_line().contains("-initrd"));
        assert_eq!(s.timeout, LAB_FIRMWARE_TIMEOUT);
        assert!(lab.check().is_err());
    }
}
