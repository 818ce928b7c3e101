//! Decide, then act: `bootlab vm run`'s parsed arguments plus what the host is become
//! a [`VmPlan`] here (which kernel, initrd, command line, CPU vendor and interrupt
//! controller), without touching KVM or any file. The guest presets and the "auto"
//! rules live here, unit-tested per kind of host; src/cmd/vm.rs checks the files the
//! plan names and runs it. Host kinds: docs/HOSTS.md.

use crate::cmd::vm::{Guest, IrqChip, SnapshotAt, VendorArg};
use std::path::{Path, PathBuf};
use vmm::{CpuVendor, IrqChipKind, KernelSource};

/// Kernel command line for the Linux guest on hardware KVM: the serial console, and
/// `reboot=k` and `panic=-1` so that the guest's end (or a panic) resets through the
/// i8042 and ends the VM. The guest keeps kvmclock: on hardware KVM it is how the
/// kernel learns the TSC frequency (without it and without an HPET the calibration
/// against the PIT spins forever in `calibrate_delay` in the nested-SVM lane).
pub const LINUX_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";

/// Kernel command line for the Linux guest on hosts whose /dev/kvm is emulated
/// (PVM): the instruction emulator rejects xsave and the listed CPU features
/// (docs: guest-images/kernel/EMULATED-USERSPACE.md); `no-kvmclock tsc=reliable
/// nowatchdog` make clock reads cheap and drop the clocksource watchdog, without
/// which a busy host can stall the emulated boot in timekeeping for minutes (attempt
/// A1 there); `rodata=off`: write protecting the kernel's read-only data took 11 s
/// of the boot on a quiet host and did not finish within 350 s on a loaded one.
pub const LINUX_CMDLINE_EMULATED_KVM: &str = "console=ttyS0 reboot=k panic=-1 noxsave \
clearcpuid=smap,popcnt,bmi1,bmi2,avx,avx2,fsgsbase,rdpid,rdseed,rdrand \
no-kvmclock tsc=reliable nowatchdog rodata=off";

/// How `--guest linux` runs on a host: which initramfs, which CPU vendor, which
/// kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxGuest {
    /// File name in the images directory.
    pub initrd: &'static str,
    /// The init on the root disk (rootfs.ext4) when the root is a `--disk`.
    pub disk_init: &'static str,
    pub cpu_vendor: CpuVendor,
    pub cmdline: &'static str,
}

/// Hardware KVM: the 64-bit guest-init, the host's CPU vendor, a plain command line.
pub const LINUX_GUEST: LinuxGuest = LinuxGuest {
    initrd: "initramfs.cpio.gz",
    disk_init: "/sbin/guest-init",
    cpu_vendor: CpuVendor::Host,
    cmdline: LINUX_CMDLINE,
};

/// Emulated KVM (kvm_pvm): there only a 32-bit task's `sysenter` reaches the guest
/// kernel, and only when the CPU claims to be Intel, so the init is the 32-bit
/// guest-init32 and the vendor is Intel (guest-images/kernel/EMULATED-USERSPACE.md).
/// Uncompressed: unpacking runs as emulated kernel code. None of this suits
/// hardware KVM: on AMD (SVM) the 32-bit SYSENTER path double-faults at "Run /init".
pub const LINUX_GUEST_EMULATED_KVM: LinuxGuest = LinuxGuest {
    initrd: "initramfs32.cpio",
    disk_init: "/sbin/guest-init32",
    cpu_vendor: CpuVendor::Intel,
    cmdline: LINUX_CMDLINE_EMULATED_KVM,
};

impl LinuxGuest {
    /// The configuration for a host whose /dev/kvm is (or is not) emulated.
    pub fn for_host(emulated_kvm: bool) -> LinuxGuest {
        if emulated_kvm {
            LINUX_GUEST_EMULATED_KVM
        } else {
            LINUX_GUEST
        }
    }
}

/// guest-init's kernel-command-line switch that makes it announce the snapshot
/// point right before the workload (guest-images/init/src/cmdline.rs).
pub const GUEST_INIT_SNAPSHOT: &str = "bootlab.snapshot";

/// guest-init's kernel-command-line parameter that brings eth0 up with an IPv4
/// address: `bootlab.ip=ADDR/PREFIX` (guest-images/init/src/cmdline.rs).
pub const GUEST_INIT_IP: &str = "bootlab.ip";

/// What `vm run` was asked for, as parsed (fast scanner or clap).
#[derive(Debug, Clone, Copy)]
pub struct VmChoice<'a> {
    pub guest: Option<Guest>,
    pub kernel: Option<&'a Path>,
    pub initrd: Option<&'a Path>,
    pub cmdline: Option<&'a str>,
    pub irqchip: IrqChip,
    pub cpu_vendor: Option<VendorArg>,
    pub snapshot_at: Option<SnapshotAt>,
    /// The first `--disk`, if any: whether it is read-only.
    pub first_disk_read_only: Option<bool>,
    /// The guest's address on its network card (`--net ...,ip=ADDR/PREFIX`).
    pub net_ip: Option<&'a str>,
}

/// The kernel parameters that make the first disk (/dev/vda, ext4) the root and
/// `init` on it the init.
pub fn disk_root_params(read_only: bool, init: &str) -> String {
    let mode = if read_only { "ro" } else { "rw" };
    format!("root=/dev/vda rootfstype=ext4 {mode} init={init}")
}

/// What a plan may ask of the host; each is asked only when a rule needs it, so the
/// lab guest's start reads nothing.
pub trait Host {
    /// The guest images folder.
    fn images(&self) -> PathBuf;
    /// Whether /dev/kvm is emulated (PVM) here.
    fn emulated_kvm(&self) -> bool;
}

/// The host bootlab runs on.
#[derive(Debug, Clone, Copy)]
pub struct ThisHost;

impl Host for ThisHost {
    fn images(&self) -> PathBuf {
        crate::cmd::images_dir()
    }

    fn emulated_kvm(&self) -> bool {
        hostfacts::Virtualization::detect() == hostfacts::Virtualization::EmulatedKvm
    }
}

/// The built image files `--guest linux` needs; the CLI checks them first, with a
/// message that says how to build them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxFiles {
    pub vmlinux: PathBuf,
    /// The preset's initramfs, when no `--initrd` replaced it.
    pub default_initrd: Option<PathBuf>,
}

/// The machine to build.
#[derive(Debug, Clone)]
pub struct VmPlan {
    pub kernel: KernelSource,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// The runtime's name in the timeline.
    pub name: &'static str,
    pub irqchip: IrqChipKind,
    pub cpu_vendor: CpuVendor,
    /// Set for `--guest linux`.
    pub linux: Option<LinuxFiles>,
}

/// Neither `--kernel` nor `--guest` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoKernel;

impl std::fmt::Display for NoKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "give a kernel with --kernel PATH or a built-in guest with --guest lab|linux|fuzz",
        )
    }
}

impl std::error::Error for NoKernel {}

/// The plan for `choice` on `host`.
pub fn vm(choice: &VmChoice<'_>, host: &dyn Host) -> Result<VmPlan, NoKernel> {
    let given_initrd = choice.initrd.map(Path::to_path_buf);
    let given_cmdline = choice.cmdline.map(str::to_owned);
    let mut plan = match (choice.guest, choice.kernel) {
        (Some(Guest::Lab), _) => VmPlan {
            kernel: KernelSource::Embedded {
                name: "lab guest",
                bytes: vmm::lab::ELF,
            },
            initrd: given_initrd,
            cmdline: given_cmdline.unwrap_or_default(),
            name: "bootlab-vm-lab",
            irqchip: IrqChipKind::Kernel,
            cpu_vendor: CpuVendor::Host,
            linux: None,
        },
        (Some(Guest::Fuzz), _) => VmPlan {
            kernel: KernelSource::Embedded {
                name: "fuzz guest",
                bytes: vmm::lab::FUZZ_ELF,
            },
            initrd: given_initrd,
            cmdline: given_cmdline.unwrap_or_else(|| "sweep 1".into()),
            name: "bootlab-vm-fuzz",
            irqchip: IrqChipKind::Kernel,
            cpu_vendor: CpuVendor::Host,
            linux: None,
        },
        (Some(Guest::Linux), _) => {
            let dir = host.images();
            let vmlinux = dir.join("vmlinux");
            let preset = LinuxGuest::for_host(host.emulated_kvm());
            // With a disk and no --initrd, the root is the first disk and init
            // comes from it: no initramfs at all.
            let disk_root = choice
                .first_disk_read_only
                .filter(|_| given_initrd.is_none());
            let default_initrd =
                (given_initrd.is_none() && disk_root.is_none()).then(|| dir.join(preset.initrd));
            let cmdline = match disk_root {
                Some(ro) => format!(
                    "{} {}",
                    preset.cmdline,
                    disk_root_params(ro, preset.disk_init)
                ),
                None => preset.cmdline.to_owned(),
            };
            VmPlan {
                kernel: KernelSource::File(vmlinux.clone()),
                initrd: given_initrd.or_else(|| default_initrd.clone()),
                cmdline: given_cmdline.unwrap_or(cmdline),
                name: if disk_root.is_some() {
                    "bootlab-vm-linux-disk"
                } else {
                    "bootlab-vm-linux"
                },
                irqchip: IrqChipKind::Kernel,
                cpu_vendor: preset.cpu_vendor,
                linux: Some(LinuxFiles {
                    vmlinux,
                    default_initrd,
                }),
            }
        }
        (None, Some(k)) => VmPlan {
            kernel: KernelSource::File(k.to_path_buf()),
            initrd: given_initrd,
            cmdline: given_cmdline.unwrap_or_else(|| "console=ttyS0".into()),
            name: "bootlab-vm",
            irqchip: IrqChipKind::Kernel,
            cpu_vendor: CpuVendor::Host,
            linux: None,
        },
        (None, None) => return Err(NoKernel),
    };
    // guest-init announces its snapshot point only when the command line asks.
    if choice.guest == Some(Guest::Linux)
        && choice.snapshot_at == Some(SnapshotAt::Snapshot)
        && !plan
            .cmdline
            .split_whitespace()
            .any(|p| p == GUEST_INIT_SNAPSHOT)
    {
        plan.cmdline = format!("{} {GUEST_INIT_SNAPSHOT}", plan.cmdline);
    }
    // An address given with --net goes to the guest, unless its command line
    // already has one.
    if let Some(ip) = choice.net_ip {
        let prefix = format!("{GUEST_INIT_IP}=");
        if !plan
            .cmdline
            .split_whitespace()
            .any(|p| p.starts_with(&prefix))
        {
            plan.cmdline = format!("{} {prefix}{ip}", plan.cmdline)
                .trim_start()
                .to_owned();
        }
    }
    match choice.cpu_vendor {
        Some(VendorArg::Host) => plan.cpu_vendor = CpuVendor::Host,
        Some(VendorArg::Intel) => plan.cpu_vendor = CpuVendor::Intel,
        None => {}
    }
    // `auto`: the lab guest needs no legacy timer, so it gets the split irqchip,
    // which starts and ends faster; every other kernel may calibrate against the PIT.
    plan.irqchip = match (choice.irqchip, choice.guest) {
        (IrqChip::Kernel, _) => IrqChipKind::Kernel,
        (IrqChip::Split, _) | (IrqChip::Auto, Some(Guest::Lab)) => IrqChipKind::Split,
        (IrqChip::Auto, _) => IrqChipKind::Kernel,
    };
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_kvm_linux_guest_carries_no_emulated_host_workaround() {
        let g = LinuxGuest::for_host(false);
        assert_eq!(g.initrd, "initramfs.cpio.gz");
        assert_eq!(g.cpu_vendor, CpuVendor::Host);
        for banned in [
            "no-kvmclock",
            "noxsave",
            "clearcpuid",
            "rodata=off",
            "nowatchdog",
        ] {
            assert!(!g.cmdline.contains(banned), "{banned} in {}", g.cmdline);
        }
        assert!(g.cmdline.contains("console=ttyS0"));
    }

    #[test]
    fn emulated_kvm_linux_guest_uses_the_32_bit_init_and_the_workarounds() {
        let g = LinuxGuest::for_host(true);
        assert_eq!(g.initrd, "initramfs32.cpio");
        assert_eq!(g.cpu_vendor, CpuVendor::Intel);
        for needed in ["no-kvmclock", "noxsave", "clearcpuid=", "rodata=off"] {
            assert!(g.cmdline.contains(needed), "{needed} missing");
        }
        assert!(g.cmdline.starts_with(LINUX_CMDLINE));
    }

    /// A host for tests: fixed answers, and a count of the questions asked.
    struct FakeHost {
        emulated: bool,
        asked: std::cell::Cell<u32>,
    }

    impl FakeHost {
        fn new(emulated: bool) -> FakeHost {
            FakeHost {
                emulated,
                asked: std::cell::Cell::new(0),
            }
        }
    }

    impl Host for FakeHost {
        fn images(&self) -> PathBuf {
            self.asked.set(self.asked.get() + 1);
            PathBuf::from("/images")
        }
        fn emulated_kvm(&self) -> bool {
            self.asked.set(self.asked.get() + 1);
            self.emulated
        }
    }

    fn choice(guest: Option<Guest>) -> VmChoice<'static> {
        VmChoice {
            guest,
            kernel: None,
            initrd: None,
            cmdline: None,
            irqchip: IrqChip::Auto,
            cpu_vendor: None,
            snapshot_at: None,
            first_disk_read_only: None,
            net_ip: None,
        }
    }

    #[test]
    fn a_linux_guest_with_a_disk_and_no_initrd_boots_from_the_disk() {
        for (emulated, init) in [(false, "/sbin/guest-init"), (true, "/sbin/guest-init32")] {
            for ro in [true, false] {
                let c = VmChoice {
                    first_disk_read_only: Some(ro),
                    ..choice(Some(Guest::Linux))
                };
                let p = vm(&c, &FakeHost::new(emulated)).unwrap();
                let preset = LinuxGuest::for_host(emulated).cmdline;
                let mode = if ro { "ro" } else { "rw" };
                assert_eq!(
                    p.cmdline,
                    format!("{preset} root=/dev/vda rootfstype=ext4 {mode} init={init}")
                );
                assert_eq!((p.initrd, p.name), (None, "bootlab-vm-linux-disk"));
                assert_eq!(p.linux.unwrap().default_initrd, None);
            }
        }
        // An --initrd keeps the initramfs boot; the disk is only a device.
        let c = VmChoice {
            first_disk_read_only: Some(true),
            initrd: Some(Path::new("/my/initrd")),
            ..choice(Some(Guest::Linux))
        };
        let p = vm(&c, &FakeHost::new(false)).unwrap();
        assert_eq!(
            (p.cmdline.as_str(), p.name),
            (LINUX_CMDLINE, "bootlab-vm-linux")
        );
        // Other guests take a disk without any change to their command line.
        let c = VmChoice {
            first_disk_read_only: Some(true),
            ..choice(Some(Guest::Lab))
        };
        assert_eq!(vm(&c, &FakeHost::new(false)).unwrap().cmdline, "");
    }

    #[test]
    fn the_lab_guest_gets_the_split_irqchip_and_asks_nothing_of_the_host() {
        for emulated in [false, true] {
            let host = FakeHost::new(emulated);
            let p = vm(&choice(Some(Guest::Lab)), &host).unwrap();
            assert_eq!(p.irqchip, IrqChipKind::Split);
            assert_eq!((p.name, p.cmdline.as_str()), ("bootlab-vm-lab", ""));
            assert_eq!(p.cpu_vendor, CpuVendor::Host);
            assert!(p.linux.is_none() && p.initrd.is_none());
            assert_eq!(host.asked.get(), 0);
            let c = VmChoice {
                irqchip: IrqChip::Kernel,
                ..choice(Some(Guest::Lab))
            };
            assert_eq!(vm(&c, &host).unwrap().irqchip, IrqChipKind::Kernel);
        }
    }

    #[test]
    fn the_linux_guest_follows_the_host_kind() {
        let hw = vm(&choice(Some(Guest::Linux)), &FakeHost::new(false)).unwrap();
        assert_eq!(hw.cpu_vendor, CpuVendor::Host);
        assert_eq!(hw.cmdline, LINUX_CMDLINE);
        assert_eq!(hw.irqchip, IrqChipKind::Kernel);
        assert_eq!(hw.initrd, Some(PathBuf::from("/images/initramfs.cpio.gz")));
        assert_eq!(
            hw.linux,
            Some(LinuxFiles {
                vmlinux: PathBuf::from("/images/vmlinux"),
                default_initrd: Some(PathBuf::from("/images/initramfs.cpio.gz")),
            })
        );
        let emu = vm(&choice(Some(Guest::Linux)), &FakeHost::new(true)).unwrap();
        assert_eq!(emu.cpu_vendor, CpuVendor::Intel);
        assert_eq!(emu.cmdline, LINUX_CMDLINE_EMULATED_KVM);
        assert_eq!(emu.initrd, Some(PathBuf::from("/images/initramfs32.cpio")));
        // What the user gives wins over the preset.
        let c = VmChoice {
            initrd: Some(Path::new("/my/initrd")),
            cmdline: Some("console=ttyS0 quiet"),
            cpu_vendor: Some(VendorArg::Host),
            irqchip: IrqChip::Split,
            ..choice(Some(Guest::Linux))
        };
        let p = vm(&c, &FakeHost::new(true)).unwrap();
        assert_eq!(p.initrd, Some(PathBuf::from("/my/initrd")));
        assert_eq!(p.linux.unwrap().default_initrd, None);
        assert_eq!(p.cmdline, "console=ttyS0 quiet");
        assert_eq!(p.cpu_vendor, CpuVendor::Host);
        assert_eq!(p.irqchip, IrqChipKind::Split);
    }

    #[test]
    fn a_linux_snapshot_asks_guest_init_for_its_snapshot_point_once() {
        let c = VmChoice {
            snapshot_at: Some(SnapshotAt::Snapshot),
            ..choice(Some(Guest::Linux))
        };
        let p = vm(&c, &FakeHost::new(false)).unwrap();
        assert_eq!(p.cmdline, format!("{LINUX_CMDLINE} {GUEST_INIT_SNAPSHOT}"));
        let given = format!("console=ttyS0 {GUEST_INIT_SNAPSHOT}");
        let c = VmChoice {
            cmdline: Some(&given),
            ..c
        };
        assert_eq!(vm(&c, &FakeHost::new(false)).unwrap().cmdline, given);
        // Other markers, and other guests, leave the command line alone.
        let c = VmChoice {
            snapshot_at: Some(SnapshotAt::Exec),
            ..choice(Some(Guest::Linux))
        };
        assert_eq!(
            vm(&c, &FakeHost::new(false)).unwrap().cmdline,
            LINUX_CMDLINE
        );
        let c = VmChoice {
            snapshot_at: Some(SnapshotAt::Snapshot),
            ..choice(Some(Guest::Lab))
        };
        assert_eq!(vm(&c, &FakeHost::new(false)).unwrap().cmdline, "");
    }

    #[test]
    fn a_net_address_goes_on_the_command_line_once_for_any_guest() {
        let ip = Some("10.0.2.15/24");
        let c = VmChoice {
            net_ip: ip,
            ..choice(Some(Guest::Linux))
        };
        let p = vm(&c, &FakeHost::new(false)).unwrap();
        assert_eq!(
            p.cmdline,
            format!("{LINUX_CMDLINE} bootlab.ip=10.0.2.15/24")
        );
        let lab = VmChoice {
            net_ip: ip,
            ..choice(Some(Guest::Lab))
        };
        assert_eq!(
            vm(&lab, &FakeHost::new(false)).unwrap().cmdline,
            "bootlab.ip=10.0.2.15/24"
        );
        let given = VmChoice {
            cmdline: Some("console=ttyS0 bootlab.ip=10.9.9.9/8"),
            ..c
        };
        assert_eq!(
            vm(&given, &FakeHost::new(false)).unwrap().cmdline,
            "console=ttyS0 bootlab.ip=10.9.9.9/8"
        );
        // Without an address the command line is left alone.
        assert_eq!(
            vm(&choice(Some(Guest::Lab)), &FakeHost::new(false))
                .unwrap()
                .cmdline,
            ""
        );
    }

    #[test]
    fn a_kernel_file_gets_a_serial_console_and_the_kernel_irqchip() {
        let host = FakeHost::new(true);
        let c = VmChoice {
            kernel: Some(Path::new("/k")),
            ..choice(None)
        };
        let p = vm(&c, &host).unwrap();
        assert!(matches!(&p.kernel, KernelSource::File(k) if k == Path::new("/k")));
        assert_eq!(
            (p.name, p.cmdline.as_str()),
            ("bootlab-vm", "console=ttyS0")
        );
        assert_eq!(
            (p.irqchip, p.cpu_vendor),
            (IrqChipKind::Kernel, CpuVendor::Host)
        );
        assert_eq!(host.asked.get(), 0);
        let fuzz = vm(&choice(Some(Guest::Fuzz)), &host).unwrap();
        assert_eq!(fuzz.cmdline, "sweep 1");
        assert_eq!(vm(&choice(None), &host).unwrap_err(), NoKernel);
    }
}
