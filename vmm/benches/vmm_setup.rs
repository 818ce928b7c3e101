//! Criterion benches of the monitor's set-up, the work between spawn and the first
//! KVM_RUN (the `vmm` phase): mapping memory and loading the lab guest (no KVM
//! needed), building the whole machine on /dev/kvm (VM, irqchip, memory slot,
//! vCPUs) and dropping it, and a whole run of the lab guest, each with both
//! interrupt-controller models (split, and in-kernel with PIT) side by side. The targets
//! (vmm phase <= 2 ms, lab run <= 10 ms) are checked against these numbers and
//! `bootlab vm run --timeline`, not in tests.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use vm_memory::GuestAddress;
use vmm::boot;
use vmm::{ExitReason, IrqChipKind, KernelSource, Vm, VmConfig};

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
    VmConfig {
        kernel: KernelSource::Embedded {
            name: "lab",
            bytes: vmm::lab::ELF,
        },
        initrd: None,
        cmdline: String::new(),
        mem_mib: MEM_MIB,
        vcpus: 1,
        irqchip,
        timeout: Some(Duration::from_secs(10)),
        console: Box::new(std::io::sink()),
        console_input: None,
        name: "bench".into(),
        spawn_ns: timeline::now_ns(),
        cpu_vendor: vmm::CpuVendor::Host,
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

criterion_group!(benches, memory_and_kernel_load, machine_build);
criterion_main!(benches);
