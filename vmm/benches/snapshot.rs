//! Criterion benches of snapshots: saving and loading one vCPU's state (every
//! state ioctl and the MSRs of KVM_GET_MSR_INDEX_LIST), the VM's in-kernel devices
//! and clock, encoding and decoding the state file, and a whole restore of the lab
//! guest (`Vm::restore`, up to the first KVM_RUN) beside `Vm::build` of the same
//! guest. The targets are checked against these numbers and `bootlab
//! bench`, not in tests.

use criterion::{criterion_group, criterion_main, Criterion};
use kvm_ioctls::Kvm;
use std::path::PathBuf;
use std::time::Duration;
use vmm::persist::Persist;
use vmm::vcpu::SaveContext;
use vmm::{IrqChipKind, KernelSource, RestoreOptions, SnapshotRequest, Vm, VmConfig};

fn kvm_usable() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        eprintln!("SKIP the snapshot benches: /dev/kvm is not usable here");
    }
    ok
}

fn lab_config() -> VmConfig {
    VmConfig {
        kernel: KernelSource::Embedded {
            name: "lab",
            bytes: vmm::lab::ELF,
        },
        initrd: None,
        cmdline: String::new(),
        mem_mib: 128,
        vcpus: 1,
        irqchip: IrqChipKind::Split,
        timeout: Some(Duration::from_secs(10)),
        console: Box::new(std::io::sink()),
        console_input: None,
        name: "bench".into(),
        spawn_ns: timeline::now_ns(),
        cpu_vendor: vmm::CpuVendor::Host,
        devices: Vec::new(),
        virtio_notify: vmm::QueueNotify::default(),
    }
}

fn state_ioctls(c: &mut Criterion) {
    if !kvm_usable() {
        return;
    }
    let kvm = Kvm::new().unwrap();
    let vm = kvm.create_vm().unwrap();
    vm.create_irq_chip().unwrap();
    vm.create_pit2(kvm_bindings::kvm_pit_config::default())
        .unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    vcpu.set_cpuid2(&cpuid).unwrap();
    let msrs = kvm.get_msr_index_list().unwrap();
    let ctx = || SaveContext {
        msr_index: msrs.as_slice(),
        cpuid: cpuid.as_slice(),
    };
    let mut g = c.benchmark_group("snapshot");
    g.bench_function(
        format!("vCPU state save ({} MSRs)", msrs.as_slice().len()),
        |b| b.iter(|| vcpu.save(ctx()).unwrap()),
    );
    let state = vcpu.save(ctx()).unwrap();
    g.bench_function("vCPU state restore", |b| {
        b.iter(|| vcpu.restore(&state).unwrap())
    });
    g.bench_function("VM state save (in-kernel PIC, IO-APIC, PIT, clock)", |b| {
        b.iter(|| vm.save(IrqChipKind::Kernel).unwrap())
    });
    let vm_state = vm.save(IrqChipKind::Kernel).unwrap();
    g.bench_function(
        "VM state restore (in-kernel PIC, IO-APIC, PIT, clock)",
        |b| b.iter(|| vm.restore(&vm_state).unwrap()),
    );
    g.finish();
}

/// A lab snapshot in a fresh folder.
fn lab_snapshot() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bootlab-bench-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut vm = Vm::build(lab_config()).unwrap();
    vm.snapshot_at(SnapshotRequest {
        at: vmm::SnapshotPoint::Marker(timeline::marker::Marker::Snapshot),
        dir: dir.clone(),
        keep_running: false,
    });
    let out = vm.run().unwrap();
    assert_eq!(out.reason, vmm::ExitReason::Snapshotted);
    dir
}

fn whole_restore(c: &mut Criterion) {
    if !kvm_usable() {
        return;
    }
    let dir = lab_snapshot();
    let bytes = std::fs::read(dir.join(vmm::snapshot::STATE_FILE)).unwrap();
    let mut g = c.benchmark_group("snapshot");
    g.bench_function(format!("state file decode ({} bytes)", bytes.len()), |b| {
        b.iter(|| vmm::snapshot::decode(&bytes).unwrap())
    });
    let snap = vmm::snapshot::decode(&bytes).unwrap();
    g.bench_function("state file encode", |b| {
        b.iter(|| vmm::snapshot::encode(&snap).unwrap())
    });
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    // Only the restore or the build is timed, not the VM's teardown.
    for (label, restore) in [
        ("restore (lab snapshot, split)", true),
        ("build (lab, split)", false),
    ] {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = std::time::Instant::now();
                    let vm = if restore {
                        let opts = RestoreOptions {
                            console: Box::new(std::io::sink()),
                            console_input: None,
                            timeout: None,
                            spawn_ns: timeline::now_ns(),
                            mem_mib: None,
                            vcpus: None,
                        };
                        Vm::restore(&dir, opts).unwrap()
                    } else {
                        Vm::build(lab_config()).unwrap()
                    };
                    total += start.elapsed();
                    drop(vm);
                }
                total
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, state_ioctls, whole_restore);
criterion_main!(benches);
