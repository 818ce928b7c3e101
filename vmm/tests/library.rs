//! The monitor through its library API (`vmm::run`): the lab guest's markers and exit
//! status, SMP, and the typed error of every bad input. The same cases through the
//! built `bootlab` binary are in the root `tests/vm_cli.rs`.

use std::path::PathBuf;
use std::time::Duration;
use timeline::{event, EventSource, VM_MODEL};
use vmm::{Error, ExitReason, KernelSource, VmConfig};

use test_support::{kvm_or_skip, Captured};

fn config(kernel: KernelSource, console: Captured) -> VmConfig {
    VmConfig {
        kernel,
        initrd: None,
        cmdline: String::new(),
        mem_mib: 32,
        vcpus: 1,
        irqchip: vmm::IrqChipKind::Split,
        timeout: Some(Duration::from_secs(20)),
        console: Box::new(console),
        console_input: None,
        name: "library-test".into(),
        spawn_ns: timeline::now_ns(),
        cpu_vendor: vmm::CpuVendor::Host,
        devices: Vec::new(),
        virtio_notify: vmm::QueueNotify::default(),
    }
}

fn lab() -> KernelSource {
    KernelSource::Embedded {
        name: "lab",
        bytes: vmm::lab::ELF,
    }
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bootlab-vmmlib-{}-{name}", std::process::id()))
}

#[test]
fn lab_guest_markers_arrive_in_order_and_it_exits_0() {
    if !kvm_or_skip("lab_guest_markers_arrive_in_order_and_it_exits_0") {
        return;
    }
    let console = Captured::default();
    let out = vmm::run(config(lab(), console.clone())).expect("the lab guest runs");
    assert_eq!(out.reason, ExitReason::GuestExit(0), "{}", console.text());
    let text = console.text();
    assert!(text.contains(vmm::lab::WORKLOAD_LINE), "console: {text}");

    let t = &out.timeline;
    let first = t
        .event_ns(event::FIRST_KVM_RUN)
        .expect("first-kvm-run stamped");
    let mut last = first;
    for marker in [event::INIT_START, event::EXEC, event::DONE] {
        assert!(
            text.contains(&format!("@@bootlab {marker}")),
            "console lacks {marker}: {text}"
        );
        // Both the console line and the marker-port write are stamped.
        for source in [EventSource::Console, EventSource::Monitor] {
            let e = t
                .events
                .iter()
                .find(|e| e.name == marker && e.source == source)
                .unwrap_or_else(|| panic!("{marker} from {source:?} missing: {t:?}"));
            assert!(e.t_ns > first, "{marker} before first-kvm-run");
        }
        let port = t
            .events
            .iter()
            .find(|e| e.name == marker && e.source == EventSource::Monitor)
            .unwrap()
            .t_ns;
        assert!(port > last, "{marker} at {port} not after {last}");
        last = port;
    }
    assert!(
        t.unobserved(&VM_MODEL).len() <= 1,
        "{:?}",
        t.unobserved(&VM_MODEL)
    );
}

#[test]
fn lab_guest_with_two_vcpus_exits_0() {
    if !kvm_or_skip("lab_guest_with_two_vcpus_exits_0") {
        return;
    }
    let console = Captured::default();
    let mut c = config(lab(), console.clone());
    c.vcpus = 2;
    let out = vmm::run(c).expect("the lab guest runs on 2 vCPUs");
    assert_eq!(out.reason, ExitReason::GuestExit(0), "{}", console.text());
    assert!(console.text().contains("@@bootlab done"));
}

#[test]
fn bad_inputs_get_typed_errors() {
    // These are all rejected before or without running a guest, but the kernel
    // checks need guest memory, not KVM; the vCPU and memory bounds come first.
    let mut c = config(lab(), Captured::default());
    c.vcpus = 0;
    assert!(matches!(vmm::run(c), Err(Error::VcpuCount(0, _))));

    let mut c = config(lab(), Captured::default());
    c.vcpus = 100_000;
    assert!(matches!(vmm::run(c), Err(Error::VcpuCount(100_000, _))));

    let mut c = config(lab(), Captured::default());
    c.mem_mib = 1;
    assert!(matches!(vmm::run(c), Err(Error::MemorySize { mib: 1, .. })));

    let mut c = config(lab(), Captured::default());
    c.mem_mib = 1 << 40;
    let e = vmm::run(c).unwrap_err();
    assert!(matches!(e, Error::MemorySize { .. }), "{e}");

    if !kvm_or_skip("bad_inputs_get_typed_errors (kernel files)") {
        return;
    }
    let missing = tmp("missing-kernel");
    let c = config(KernelSource::File(missing.clone()), Captured::default());
    match vmm::run(c) {
        Err(Error::ReadFile { path, .. }) => assert_eq!(path, missing),
        other => panic!("missing kernel: {other:?}"),
    }

    let garbage = tmp("garbage-kernel");
    std::fs::write(&garbage, b"this is not a kernel, just text\n".repeat(64)).unwrap();
    let c = config(KernelSource::File(garbage.clone()), Captured::default());
    let e = vmm::run(c).unwrap_err();
    std::fs::remove_file(&garbage).ok();
    let msg = e.to_string();
    assert!(matches!(e, Error::BadKernel { .. }), "{msg}");
    assert!(msg.contains(&garbage.display().to_string()), "{msg}");
    assert!(msg.contains("ELF") && msg.contains("bzImage"), "{msg}");
}

/// A machine with a disk is not saved (the snapshot has no place for virtio
/// devices yet): asking for it is an error before the guest runs, not a snapshot
/// that restores without its disk.
#[test]
fn a_machine_with_a_disk_refuses_a_snapshot() {
    if !kvm_or_skip("a_machine_with_a_disk_refuses_a_snapshot") {
        return;
    }
    let image = tmp("disk.img");
    std::fs::write(&image, [0u8; 4096]).unwrap();
    let mut c = config(lab(), Captured::default());
    c.devices = vec![vmm::DeviceSpec::Block(vmm::DiskConfig {
        path: image.clone(),
        read_only: true,
    })];
    let mut vm = vmm::Vm::build(c).unwrap();
    vm.snapshot_at(vmm::SnapshotRequest {
        at: vmm::SnapshotPoint::Marker(timeline::marker::Marker::Snapshot),
        dir: tmp("never-saved"),
        keep_running: false,
    });
    let e = vm.run().unwrap_err();
    assert!(matches!(e, Error::Snapshot(_)), "{e}");
    assert!(!tmp("never-saved").exists());
    std::fs::remove_file(image).unwrap();
}
