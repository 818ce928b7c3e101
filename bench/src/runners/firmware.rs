//! VM peers that run firmware before the kernel, so that their POST is a phase of its
//! own: QEMU `-M pc` with SeaBIOS (`qemu-pc-seabios`), QEMU `-M microvm` with qboot
//! (`qemu-microvm-qboot`) and QEMU `-M q35` with OVMF (`qemu-q35-ovmf`, UEFI), booting
//! the same Linux kernel configuration, initramfs and command line as
//! `qemu-microvm-linux` (OVMF: that kernel built as a bzImage with the EFI stub), or,
//! for tests, the lab guest. The firmware is seen through its logs, read from FIFOs
//! beside the serial console (`crate::firmware`).

use super::vms::{LinuxBoot, GUEST_MEM_MIB};
use super::{kvm_present, version_of, which, RunCtx, Runner};
use crate::exec::{ConsoleMap, ExitExpect, RunSpec, SideLog};
use crate::firmware::{FirmwareLog, DEBUGCON_PORT};
use crate::results::RuntimeKind;
use std::path::{Path, PathBuf};
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
    /// `-M q35` with OVMF (UEFI, Debian package ovmf) as its BIOS image; boots only
    /// an EFI kernel (a bzImage with the EFI stub).
    Ovmf,
}

impl Firmware {
    fn machine(self) -> &'static str {
        match self {
            Firmware::SeaBios => "pc",
            Firmware::Qboot => "microvm",
            Firmware::Ovmf => "q35",
        }
    }
}

/// The OVMF image's file name, as Debian's QEMU finds it in its firmware folder
/// (/usr/share/qemu/OVMF.fd, a link to /usr/share/ovmf/OVMF.fd).
const OVMF_IMAGE: &str = "OVMF.fd";

/// Why OVMF does not run on an emulated /dev/kvm: tried here (QEMU 7.2, Debian's
/// OVMF 2022.11), its first fw_cfg selection came 1.5 s after the start, then the run
/// stopped with "KVM internal error. Suberror: 1 ... emulation failure" on an `fwait`
/// (opcode 0x9b) in 64-bit firmware code, an instruction KVM's emulator lacks (the
/// guest kernel avoids it with kernel/patches/0002).
const OVMF_EMULATED_KVM: &str = "OVMF cannot run on an emulated /dev/kvm: its firmware code \
     executes `fwait`, which KVM's instruction emulator lacks (KVM internal error, emulation \
     failure); it needs hardware KVM (the nested lane's QEMU 7.2 aborted under it: docs/HOSTS.md)";

/// Where `OVMF.fd` is looked for: QEMU's firmware folder beside its executable
/// (`BIN/../share/qemu`, as in the nested lane's L1), then Debian's folders.
fn ovmf_image(qemu: Option<&Path>) -> Option<PathBuf> {
    let beside = qemu
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|p| p.join("share/qemu"));
    beside
        .into_iter()
        .chain(["/usr/share/qemu".into(), "/usr/share/ovmf".into()])
        .map(|d| d.join(OVMF_IMAGE))
        .find(|f| f.is_file())
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
    /// OVMF's image (`-bios`), for [`Firmware::Ovmf`].
    pub ovmf: Option<PathBuf>,
}

impl QemuFirmware {
    pub fn new(firmware: Firmware, guest: FirmwareGuest) -> Self {
        let bin = which("qemu-system-x86_64");
        let ovmf = (firmware == Firmware::Ovmf)
            .then(|| ovmf_image(bin.as_deref()))
            .flatten();
        QemuFirmware {
            firmware,
            bin,
            guest,
            ovmf,
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
            (Firmware::Ovmf, FirmwareGuest::Linux(_)) => "qemu-q35-ovmf",
            (Firmware::SeaBios, FirmwareGuest::Lab(_)) => "qemu-pc-seabios-lab",
            (Firmware::Qboot, FirmwareGuest::Lab(_)) => "qemu-microvm-qboot-lab",
            (Firmware::Ovmf, FirmwareGuest::Lab(_)) => "qemu-q35-ovmf-lab",
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::FirmwareVm
    }

    fn check(&self) -> Result<(), String> {
        super::qemu_found(self.bin.as_deref())?;
        if self.firmware == Firmware::Ovmf && self.ovmf.is_none() {
            return Err(format!(
                "{OVMF_IMAGE} not found in QEMU's firmware folder, /usr/share/qemu or \
                 /usr/share/ovmf (Debian package ovmf)"
            ));
        }
        kvm_present()?;
        if let (Firmware::Ovmf, FirmwareGuest::Linux(l)) = (self.firmware, &self.guest) {
            if l.emulated {
                return Err(OVMF_EMULATED_KVM.into());
            }
        }
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
        let mut spec = RunSpec::new(bin, ConsoleMap::FirmwareVm).args([
            "-M",
            self.firmware.machine(),
            "-enable-kvm",
            "-cpu",
            cpu,
        ]);
        if self.firmware == Firmware::Ovmf {
            spec = spec
                .arg("-bios")
                .arg(self.ovmf.as_deref().unwrap_or(Path::new(OVMF_IMAGE)));
        }
        spec = spec.arg("-m").arg(GUEST_MEM_MIB.to_string()).args([
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
        if self.firmware != Firmware::Qboot {
            // `-M pc`'s and q35's TPR-patching option ROM (kvmvapic, for old 32-bit
            // Windows) made the 64-bit guest-init's first port write fault (#GP) on
            // hardware KVM.
            spec = spec.args(["-global", "kvm-apic.vapic=false"]);
        }
        if self.firmware == Firmware::SeaBios {
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
            Firmware::Ovmf => {
                "vmm = spawn -> OVMF's first fw_cfg selection in QEMU's trace (`-trace \
                 fw_cfg_select -D FIFO`, stamped on arrival; its PEI phase probing fw_cfg, \
                 after SEC has decompressed the firmware volumes): Debian's OVMF.fd is a \
                 RELEASE build and writes nothing on the debug console (port 0x402)"
            }
        };
        let handover = match self.firmware {
            Firmware::Ovmf => {
                "firmware = -> the kernel's EFI stub's first serial line (`EFI stub: Loaded \
                 initrd from LINUX_EFI_INITRD_MEDIA_GUID device path`, stamped on arrival), \
                 the first output of the kernel's own code: OVMF starts the kernel as an \
                 EFI application and selects no `kernel_entry` (it read the kernel through \
                 fw_cfg earlier, at DXE, so the loading is firmware time; the stub's own \
                 work up to that line is too); the kernel's first printk line \
                 (kernel-console) would end it if that line were missing"
            }
            _ => {
                "firmware = -> the guest's fw_cfg selection of `kernel_entry` in QEMU's \
                 trace, read right before the jump into the loaded kernel, so the kernel's \
                 loading is firmware time; the kernel's first printk line (kernel-console) \
                 would end it if that selection were missing"
            }
        };
        let mut notes = vec![
            start.to_string(),
            handover.to_string(),
            "kernel = -> init-start; init-start/exec/done = console line arrival; QEMU's \
             first KVM_RUN is not observable"
                .to_string(),
        ];
        if self.firmware == Firmware::Ovmf {
            notes.push(
                "kernel = the same configuration as the other rows plus CONFIG_EFI and \
                 CONFIG_EFI_STUB (guest-images/build.sh kernel-efi: bzImage-efi); the EFI \
                 stub's work after its first line (ExitBootServices, the kernel's \
                 decompression) is kernel time"
                    .into(),
            );
        }
        if self.firmware != Firmware::Qboot {
            notes.push(
                "-global kvm-apic.vapic=false: with the TPR-patching option ROM (kvmvapic, \
                 made for 32-bit Windows) the 64-bit guest-init's first port write took a \
                 general protection fault on hardware KVM (nested-SVM lane; -M pc and q35)"
                    .into(),
            );
        }
        if self.firmware == Firmware::SeaBios {
            notes.push(
                "SeaBIOS's `Booting from ROM...` (step firmware.boot-entry) is its jump to \
                 QEMU's option ROM for `-kernel` (pvh.bin), which then loads the kernel; with \
                 -nographic SeaBIOS also prints on the serial console (sercon)"
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
            root_disk: None,
            measures: Vec::new(),
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
    fn ovmf_row_is_q35_with_the_ovmf_image_and_the_trace() {
        let mut q = QemuFirmware::new(Firmware::Ovmf, FirmwareGuest::Linux(linux()));
        q.bin = Some("/usr/bin/qemu-system-x86_64".into());
        q.ovmf = Some("/usr/share/qemu/OVMF.fd".into());
        assert_eq!(q.name(), "qemu-q35-ovmf");
        let s = q.spec(ctx());
        let cl = s.command_line();
        assert!(cl.starts_with(
            "/usr/bin/qemu-system-x86_64 -M q35 -enable-kvm \
             -cpu host,-arch-capabilities,vendor=GenuineIntel -bios /usr/share/qemu/OVMF.fd -m "
        ));
        assert!(cl.contains(" -trace fw_cfg_select -D /scratch/qemu-q35-ovmf-7.fw_cfg-trace "));
        assert!(cl.contains(" -global kvm-apic.vapic=false"));
        // Debian's OVMF writes nothing on the debug console: no FIFO for it.
        assert!(!cl.contains("debugcon"));
        assert_eq!(s.side_logs.len(), 1);
        assert_eq!(s.side_logs[0].log, FirmwareLog::FwCfgTrace);
        assert!(s.required.contains(&event::FIRMWARE_HANDOVER));
        assert!(q
            .notes()
            .iter()
            .any(|n| n.contains("`EFI stub: Loaded initrd")));
        // On an emulated /dev/kvm it is refused with the reason (when /dev/kvm exists).
        if std::path::Path::new("/dev/kvm").exists() {
            let mut emu = linux();
            emu.emulated = true;
            let mut e = QemuFirmware::new(Firmware::Ovmf, FirmwareGuest::Linux(emu));
            e.ovmf = Some("/usr/share/qemu/OVMF.fd".into());
            assert_eq!(e.check().unwrap_err(), OVMF_EMULATED_KVM);
        }
        // Without the image the row says which package brings it.
        q.ovmf = None;
        let err = q.check().unwrap_err();
        assert!(err.contains("(Debian package ovmf)"), "{err}");
    }

    #[test]
    fn ovmf_image_is_found_beside_qemu_first() {
        let dir = std::env::temp_dir().join(format!("bootlab-ovmf-{}", std::process::id()));
        let share = dir.join("share/qemu");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        assert_ne!(
            ovmf_image(Some(&dir.join("bin/qemu-system-x86_64"))),
            Some(share.join(OVMF_IMAGE))
        );
        std::fs::write(share.join(OVMF_IMAGE), b"").unwrap();
        assert_eq!(
            ovmf_image(Some(&dir.join("bin/qemu-system-x86_64"))),
            Some(share.join(OVMF_IMAGE))
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
