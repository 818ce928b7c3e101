//! Criterion benches of the monitor's set-up, the work between spawn and the first
//! KVM_RUN (the `vmm` phase): mapping memory and loading the lab guest (no KVM
//! needed), building the whole machine on /dev/kvm (VM, irqchip, memory slot,
//! vCPUs) and dropping it, and a whole run of the lab guest, each with both
//! interrupt-controller models (split, and in-kernel with PIT) side by side; what a
//! virtio-blk disk adds to the build, and its read round trip against a port
//! write's (`vmm/disk`). The targets
//! (vmm phase <= 2 ms, lab run <= 10 ms) are checked against these numbers and
//! `bootlab vm run --timeline`, not in tests.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use vm_memory::GuestAddress;
use vmm::boot;
use vmm::device_manager::{DeviceManager, DevicePlan};
use vmm::devices::irq::SplitIrqChip;
use vmm::{DeviceSpec, DiskConfig, ExitReason, IrqChipKind, KernelSource, Vm, VmConfig};

const MEM_MIB: u64 = 128;

fn kvm_usable() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        eprintln!("SKIP the KVM benches: /dev/kvm is not usable here");
    }
    ok
}

fn lab_config(irqchip: IrqChipKind) -> VmConfig {
    guest_config(irqchip, "lab", vmm::lab::ELF, "")
}

fn guest_config(
    irqchip: IrqChipKind,
    name: &'static str,
    bytes: &'static [u8],
    cmdline: &str,
) -> VmConfig {
    VmConfig {
        kernel: KernelSource::Embedded { name, bytes },
        initrd: None,
        cmdline: cmdline.into(),
        mem_mib: MEM_MIB,
        vcpus: 1,
        irqchip,
        timeout: Some(Duration::from_secs(10)),
        console: Box::new(std::io::sink()),
        console_input: None,
        name: "bench".into(),
        spawn_ns: timeline::now_ns(),
        cpu_vendor: vmm::CpuVendor::Host,
        devices: Vec::new(),
    }
}

fn memory_and_kernel_load(c: &mut Criterion) {
    let bytes = MEM_MIB << 20;
    let image = KernelSource::Embedded {
        name: "lab",
        bytes: vmm::lab::ELF,
    };
    c.bench_function("vmm/memory+load-lab (128 MiB)", |b| {
        b.iter(|| {
            let mem = vmm::memory::create(bytes).unwrap();
            let setup = boot::load(&mem, bytes, &image, None, "").unwrap();
            vmm::vcpu::write_boot_tables(&mem, setup.entry).unwrap();
            criterion::black_box(GuestAddress(setup.kernel_end));
        })
    });
}

fn machine_build(c: &mut Criterion) {
    if !kvm_usable() {
        return;
    }
    let mut g = c.benchmark_group("vmm/kvm");
    // Each iteration creates and destroys a whole VM: few samples keep this short.
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (chip, label) in [
        (IrqChipKind::Split, "split irqchip"),
        (IrqChipKind::Kernel, "kernel irqchip+PIT"),
    ] {
        // Only the build is timed; dropping the VM (kvm_destroy_vm) is not part of it.
        g.bench_function(format!("build ({label}, 128 MiB, 1 vCPU, lab)"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = std::time::Instant::now();
                    let vm = Vm::build(lab_config(chip)).unwrap();
                    total += start.elapsed();
                    drop(vm);
                }
                total
            })
        });
        g.bench_function(
            format!("lab guest run ({label}: build+run+teardown)"),
            |b| {
                b.iter(|| {
                    let out = vmm::run(lab_config(chip)).unwrap();
                    assert_eq!(out.reason, ExitReason::GuestExit(0));
                })
            },
        );
    }
    g.finish();
}

/// A 1 MiB raw image in a temporary folder, as the one disk of the disk benches.
fn disk_image() -> (test_support::TempDir, DeviceSpec) {
    let dir = test_support::TempDir::new("bench-disk").unwrap();
    let path = dir.path().join("disk.img");
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    let disk = DeviceSpec::Block(DiskConfig {
        path,
        read_only: true,
    });
    (dir, disk)
}

/// What one virtio-blk disk costs: the build (the `vmm` phase) with and without
/// it, and a disk read's round trip against a port write's, each as a run of the
/// fuzz guest doing N of them (`rtdisk N`, `rtport N`) beside the same run doing
/// one: the per-trip cost is (run(N) - run(1)) / (N - 1).
fn disk_costs(c: &mut Criterion) {
    if !kvm_usable() {
        return;
    }
    let (_dir, disk) = disk_image();
    let mut g = c.benchmark_group("vmm/disk");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (label, devices) in [("no disk", vec![]), ("one disk", vec![disk.clone()])] {
        g.bench_function(format!("build (split irqchip, lab, {label})"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut config = lab_config(IrqChipKind::Split);
                    config.devices = devices.clone();
                    let start = std::time::Instant::now();
                    let vm = Vm::build(config).unwrap();
                    total += start.elapsed();
                    drop(vm);
                }
                total
            })
        });
    }
    // The device work alone, on a VM made once: the plan, the command-line entry,
    // opening the image, the transport and its queue, the attach (the split
    // irqchip's line is a pin: no ioctl).
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let vmfd = std::sync::Arc::new(kvm.create_vm().unwrap());
    let mem = vmm::memory::create(MEM_MIB << 20).unwrap();
    g.bench_function(
        "plan+open+attach one disk (split irqchip, no VM build)",
        |b| {
            b.iter(|| {
                let plan = DevicePlan::new(std::slice::from_ref(&disk)).unwrap();
                let cmdline = plan.cmdline("console=ttyS0");
                let chip = std::sync::Arc::new(SplitIrqChip::new(vmfd.clone()));
                let mut devices = DeviceManager::new(&vmfd, Some(chip));
                devices.attach_plan(&plan, &mem).unwrap();
                criterion::black_box((cmdline, devices.into_parts()));
            })
        },
    );
    for cmdline in ["rtdisk 1", "rtdisk 10001", "rtport 1", "rtport 10001"] {
        g.bench_function(format!("fuzz guest run ({cmdline}, split irqchip)"), |b| {
            b.iter(|| {
                let mut config =
                    guest_config(IrqChipKind::Split, "fuzz", vmm::lab::FUZZ_ELF, cmdline);
                config.devices = vec![disk.clone()];
                let out = vmm::run(config).unwrap();
                assert_eq!(out.reason, ExitReason::GuestExit(42), "{cmdline}");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, memory_and_kernel_load, machine_build, disk_costs);
criterion_main!(benches);
