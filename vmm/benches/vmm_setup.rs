//! Criterion benches of the monitor's set-up, the work between spawn and the first
//! KVM_RUN (the `vmm` phase): mapping memory and loading the lab guest (no KVM
//! needed), building the whole machine on /dev/kvm (VM, irqchip, memory slot,
//! vCPUs) and dropping it, and a whole run of the lab guest, each with both
//! interrupt-controller models (split, and in-kernel with PIT) side by side; what a
//! virtio-blk disk adds to the build, and its read round trip against a port
//! write's (`vmm/disk`); what a virtio-net card adds to the build, on a new tap and
//! on an existing one (`vmm/net`, as root); what a virtio-vsock device (its Unix
//! socket listening) adds to the build (`vmm/vsock`). The targets
//! (vmm phase <= 2 ms, lab run <= 10 ms) are checked against these numbers and
//! `bootlab vm run --timeline`, not in tests.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use vm_memory::GuestAddress;
use vmm::boot;
use vmm::device_manager::{DeviceManager, DevicePlan};
use vmm::devices::irq::SplitIrqChip;
use vmm::{
    DeviceSpec, DiskConfig, ExitReason, IrqChipKind, KernelSource, NetConfig, QueueNotify, Vm,
    VmConfig, VsockConfig,
};

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
        virtio_notify: vmm::QueueNotify::default(),
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
/// `iters` builds of the lab guest's machine with `devices`, timed without their
/// drops (a VM's teardown is not its build).
fn builds_timed(iters: u64, devices: &[DeviceSpec], notify: QueueNotify) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut config = lab_config(IrqChipKind::Split);
        config.devices = devices.to_vec();
        config.virtio_notify = notify;
        let start = std::time::Instant::now();
        let vm = Vm::build(config).unwrap();
        total += start.elapsed();
        drop(vm);
    }
    total
}

/// `iters` times the device work alone for `spec` on the VM `vmfd`: the plan, its
/// command-line entry, opening the device, the transport, the attach (the split
/// irqchip's line is a pin: no ioctl); timed without the drop, which for a tap
/// or a socket is the VM's teardown (an RCU grace period, an unlink).
fn attaches_timed(
    iters: u64,
    spec: &DeviceSpec,
    vmfd: &std::sync::Arc<kvm_ioctls::VmFd>,
    mem: &vmm::memory::GuestMemory,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = std::time::Instant::now();
        let plan = DevicePlan::new(std::slice::from_ref(spec)).unwrap();
        let cmdline = plan.cmdline("console=ttyS0");
        let chip = std::sync::Arc::new(SplitIrqChip::new(vmfd.clone()));
        let mut devices = DeviceManager::new(vmfd, Some(chip));
        devices.attach_plan(&plan, mem).unwrap();
        let parts = criterion::black_box((cmdline, devices.into_parts()));
        total += start.elapsed();
        drop(parts);
    }
    total
}

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
/// one: the per-trip cost is (run(N) - run(1)) / (N - 1). The disk's rows come
/// with each way of notifying the device (served in the exit, or through an
/// ioeventfd by the event loop).
fn disk_costs(c: &mut Criterion) {
    if !kvm_usable() {
        return;
    }
    let (_dir, disk) = disk_image();
    let mut g = c.benchmark_group("vmm/disk");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (label, devices, notify) in [
        ("no disk", vec![], QueueNotify::Exit),
        (
            "one disk, notify by exit",
            vec![disk.clone()],
            QueueNotify::Exit,
        ),
        (
            "one disk, ioeventfd",
            vec![disk.clone()],
            QueueNotify::Ioeventfd,
        ),
    ] {
        g.bench_function(format!("build (split irqchip, lab, {label})"), |b| {
            b.iter_custom(|iters| builds_timed(iters, &devices, notify))
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
    // The disk's rows with each way of notifying, beside the port's.
    for (cmdline, notify, label) in [
        ("rtdisk 1", QueueNotify::Exit, ", notify by exit"),
        ("rtdisk 10001", QueueNotify::Exit, ", notify by exit"),
        ("rtdisk 1", QueueNotify::Ioeventfd, ", ioeventfd"),
        ("rtdisk 10001", QueueNotify::Ioeventfd, ", ioeventfd"),
        ("rtport 1", QueueNotify::default(), ""),
        ("rtport 10001", QueueNotify::default(), ""),
    ] {
        g.bench_function(
            format!("fuzz guest run ({cmdline}, split irqchip{label})"),
            |b| {
                b.iter(|| {
                    let mut config =
                        guest_config(IrqChipKind::Split, "fuzz", vmm::lab::FUZZ_ELF, cmdline);
                    config.devices = vec![disk.clone()];
                    config.virtio_notify = notify;
                    let out = vmm::run(config).unwrap();
                    assert_eq!(out.reason, ExitReason::GuestExit(42), "{cmdline}");
                })
            },
        );
    }
    g.finish();
}

/// Moves this thread into a network namespace of its own, so that the taps the net
/// benches make are nobody else's business (and go with the thread's namespace);
/// false (with a note) without root or /dev/net/tun.
fn private_netns() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !root || !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("SKIP the net benches: they need root and /dev/net/tun");
        return false;
    }
    // SAFETY: moves only the calling thread into a new network namespace.
    unsafe { libc::unshare(libc::CLONE_NEWNET) == 0 }
}

/// A persistent tap `name` (kept after its descriptor closes), for the benches that
/// attach to an existing tap.
fn persistent_tap(name: &str) {
    use std::os::fd::AsRawFd;
    let tun = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap();
    // SAFETY: ifreq is plain C data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = libc::c_char::from_ne_bytes([s]);
    }
    req.ifr_ifru.ifru_flags = i16::try_from(libc::IFF_TAP | libc::IFF_NO_PI).unwrap();
    // SAFETY: TUNSETIFF reads and writes one ifreq; TUNSETPERSIST takes an int.
    unsafe {
        assert_eq!(libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req), 0);
        assert_eq!(libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1), 0);
    }
}

/// What one virtio-net card adds to the build (the `vmm` phase): the lab guest's
/// build with none, with a card on a tap it creates (`--net tap`), and with a card
/// on an existing persistent tap (`--net tap=NAME`), in a network namespace of the
/// bench's own; and the device work alone (plan, tap, transport, attach).
fn net_costs(c: &mut Criterion) {
    if !kvm_usable() || !private_netns() {
        return;
    }
    persistent_tap("blbench0");
    let net = |tap: Option<&str>| {
        DeviceSpec::Net(NetConfig {
            tap: tap.map(str::to_owned),
            mac: NetConfig::mac_for(1),
        })
    };
    let mut g = c.benchmark_group("vmm/net");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for (label, devices) in [
        ("no net", vec![]),
        ("one net, new tap", vec![net(None)]),
        ("one net, existing tap", vec![net(Some("blbench0"))]),
    ] {
        g.bench_function(format!("build (split irqchip, lab, {label})"), |b| {
            b.iter_custom(|iters| builds_timed(iters, &devices, QueueNotify::default()))
        });
    }
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let vmfd = std::sync::Arc::new(kvm.create_vm().unwrap());
    let mem = vmm::memory::create(MEM_MIB << 20).unwrap();
    // The device work alone, without its drop: closing a tap's descriptor waits
    // for an RCU grace period in the kernel (tun_detach), which is the VM's
    // teardown, not its build.
    for (label, spec) in [
        ("a new tap", net(None)),
        ("an existing tap", net(Some("blbench0"))),
    ] {
        g.bench_function(
            format!("plan+open+attach one net on {label} (split irqchip, no VM build)"),
            |b| b.iter_custom(|iters| attaches_timed(iters, &spec, &vmfd, &mem)),
        );
    }
    g.finish();
}

/// What one virtio-vsock device costs the build: its socket bound and listening,
/// its descriptors, the transport with three queues. Each build's socket is
/// removed when the machine is dropped, so one path serves every iteration.
fn vsock_costs(c: &mut Criterion) {
    if !kvm_usable() {
        return;
    }
    let dir = test_support::TempDir::new("bench-vsock").unwrap();
    let vsock = DeviceSpec::Vsock(VsockConfig {
        guest_cid: 3,
        path: dir.path().join("v.sock"),
    });
    let mut g = c.benchmark_group("vmm/vsock");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (label, devices) in [("no device", vec![]), ("one vsock", vec![vsock.clone()])] {
        g.bench_function(format!("build (split irqchip, lab, {label})"), |b| {
            b.iter_custom(|iters| builds_timed(iters, &devices, QueueNotify::default()))
        });
    }
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let vmfd = std::sync::Arc::new(kvm.create_vm().unwrap());
    let mem = vmm::memory::create(MEM_MIB << 20).unwrap();
    g.bench_function(
        "plan+listen+attach one vsock (split irqchip, no VM build)",
        |b| {
            // Timed up to the attach; the teardown (the socket's unlink) is a
            // VM's end, not its build.
            b.iter_custom(|iters| attaches_timed(iters, &vsock, &vmfd, &mem))
        },
    );
    g.finish();
}

criterion_group!(
    benches,
    memory_and_kernel_load,
    machine_build,
    disk_costs,
    net_costs,
    vsock_costs
);
criterion_main!(benches);
