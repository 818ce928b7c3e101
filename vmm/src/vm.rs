//! Putting a microVM together and running it: the build steps a boot and a restore
//! share (VM, memory slots, irqchip, devices, vCPUs), the boot's own (configuration
//! checks, kernel load, vCPU entry state), and the run: vCPU 0 on the calling thread,
//! every other one on a thread of its own, until the end (guest exit, reset, error,
//! timeout) or the snapshot point, where every vCPU is stopped and the machine saved.

use crate::boot;
pub use crate::boot::KernelSource;
use crate::cpuid_cache;
use crate::device_manager::{DeviceManager, DevicePlan, OpenDevices};
pub use crate::device_manager::{DeviceSpec, DiskConfig, NetConfig, QueueNotify, VsockConfig};
use crate::devices::boot_timer::{self, BootTimer};
use crate::devices::console::Console;
pub use crate::devices::irq::IrqChipKind;
use crate::devices::irq::{SplitIrqChip, IOAPIC_WINDOW};
use crate::devices::{ioapic, serial, Bus, Recorder};
use crate::error::{Error, MemoryError};
use crate::event_loop::{self, EventLoop, VcpuEnds};
pub use crate::exit::ExitReason;
use crate::layout::KVM_TSS_ADDR;
use crate::memory;
use crate::mptable;
use crate::snapshot::{self, MachineConfig};
use crate::vcpu;
pub use crate::vcpu::CpuVendor;
use kvm_bindings::{
    kvm_enable_cap, kvm_pit_config, kvm_userspace_memory_region, CpuId, KVM_CAP_SPLIT_IRQCHIP,
};
use kvm_ioctls::{Kvm, VmFd};
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::thread::JoinHandleExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timeline::marker::Marker;
use timeline::{event, step};
use timeline::{EventSource, Timeline};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryRegion};

/// The signal used to kick a vCPU thread out of KVM_RUN.
fn kick_signal() -> i32 {
    libc::SIGRTMIN() + 1
}

/// A microVM to run.
pub struct VmConfig {
    pub kernel: KernelSource,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub mem_mib: u64,
    pub vcpus: u32,
    /// Which interrupt controller model the VM gets.
    pub irqchip: IrqChipKind,
    pub timeout: Option<Duration>,
    /// Where the serial console goes.
    pub console: Box<dyn Write + Send>,
    /// File descriptor whose input is fed to the serial console (e.g. 0 for stdin).
    pub console_input: Option<RawFd>,
    /// Name of the runtime in the timeline.
    pub name: String,
    /// Time zero of the timeline (CLOCK_MONOTONIC ns).
    pub spawn_ns: u64,
    /// The CPU vendor the guest sees (CPUID).
    pub cpu_vendor: vcpu::CpuVendor,
    /// The virtio devices, in order (the first disk is the guest's /dev/vda);
    /// each gets a `virtio_mmio.device=` entry at the end of the command line.
    pub devices: Vec<DeviceSpec>,
    /// How the virtio devices take queue notifications.
    pub virtio_notify: QueueNotify,
}

impl std::fmt::Debug for VmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmConfig")
            .field("kernel", &self.kernel)
            .field("initrd", &self.initrd)
            .field("cmdline", &self.cmdline)
            .field("mem_mib", &self.mem_mib)
            .field("vcpus", &self.vcpus)
            .field("irqchip", &self.irqchip)
            .field("timeout", &self.timeout)
            .field("console_input", &self.console_input)
            .field("name", &self.name)
            .field("spawn_ns", &self.spawn_ns)
            .field("cpu_vendor", &self.cpu_vendor)
            .field("devices", &self.devices)
            .field("virtio_notify", &self.virtio_notify)
            .finish_non_exhaustive()
    }
}

/// The result of a run.
#[derive(Debug)]
pub struct VmOutcome {
    pub reason: ExitReason,
    pub timeline: Timeline,
    pub unhandled_pio: u64,
    pub unhandled_mmio: u64,
    /// What the snapshot save wrote, if one was taken.
    pub snapshot: Option<snapshot::SaveStats>,
}

/// Whether a guest's RAM is laid out for huge pages ([`memory::create_huge`]): for a
/// kernel from a file, which fills much of its memory while it boots, not for the
/// built-in guests, which touch a few pages and would pay 2 MiB of zeroing for each.
/// `BOOTLAB_HUGE_PAGES=0` turns it off (e.g. where transparent huge pages are not
/// wanted).
pub fn huge_pages_for(kernel: &KernelSource) -> bool {
    matches!(kernel, KernelSource::File(_))
        && std::env::var_os("BOOTLAB_HUGE_PAGES").is_none_or(|v| v != "0")
}

/// Builds and runs a microVM to its end: [`Vm::build`] then [`Vm::run`].
pub fn run(config: VmConfig) -> Result<VmOutcome, Error> {
    Vm::build(config)?.run()
}

/// A microVM that is set up (memory mapped, kernel loaded, VM, irqchip, PIT and
/// vCPUs created and configured) and ready for its first KVM_RUN. Dropping it
/// without running closes every fd and unmaps the memory.
pub struct Vm {
    // Field order is drop order: vCPUs before the VM fd, the VM before its memory.
    vcpus: Vec<kvm_ioctls::VcpuFd>,
    /// The CPUID table each vCPU was given.
    cpuids: Vec<CpuId>,
    bus: Arc<Bus>,
    vm: Arc<VmFd>,
    kvm: Kvm,
    mem: memory::GuestMemory,
    recorder: Arc<Recorder>,
    settings: RunSettings,
    /// What a snapshot records about the machine.
    config: MachineConfig,
    snapshot: Option<SnapshotRequest>,
    /// How many virtio devices the machine has: a snapshot does not save them yet.
    virtio_devices: usize,
    /// The names of the network cards' taps.
    taps: Vec<String>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("vcpus", &self.vcpus.len())
            .field("name", &self.settings.name)
            .field("config", &self.config)
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

/// How a built machine runs: what does not belong to the machine itself.
pub(crate) struct RunSettings {
    pub(crate) timeout: Option<Duration>,
    pub(crate) console_input: Option<RawFd>,
    pub(crate) name: String,
    pub(crate) spawn_ns: u64,
}

/// When to save the machine ([`Vm::snapshot_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPoint {
    /// The guest's port write of this marker (the console line does not count).
    Marker(Marker),
    /// The monitor process receiving [`SNAPSHOT_SIGNAL`], whatever the guest does.
    /// [`Vm::run`] blocks the signal in its own thread, which its threads inherit;
    /// other threads of the caller must block it too, or its default action (end
    /// the process) can hit one of them.
    Signal,
}

/// The signal that asks for a snapshot with [`SnapshotPoint::Signal`].
pub const SNAPSHOT_SIGNAL: i32 = libc::SIGUSR1;

/// Save the machine at a point of the run ([`Vm::snapshot_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub at: SnapshotPoint,
    /// The snapshot folder.
    pub dir: PathBuf,
    /// Resume the guest after the save instead of ending the run.
    pub keep_running: bool,
}

/// What the shared build steps make: the VM on /dev/kvm with its memory slots,
/// irqchip and devices, and its vCPUs created but not yet given any state. A boot
/// ([`Vm::build`]) then loads a kernel and sets the vCPUs up for its entry; a
/// restore loads saved state into the same parts.
pub(crate) struct Machine {
    pub(crate) kvm: Kvm,
    pub(crate) vm: Arc<VmFd>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) vcpus: Vec<kvm_ioctls::VcpuFd>,
}

/// Checks a vCPU count against what the MP table can describe.
pub(crate) fn check_vcpu_count(vcpus: u32) -> Result<(), Error> {
    let max_vcpus = mptable::MAX_CPUS;
    if vcpus == 0 || vcpus > max_vcpus {
        return Err(Error::VcpuCount(vcpus, max_vcpus));
    }
    Ok(())
}

/// Opens /dev/kvm and checks its API version and vCPU limit.
pub(crate) fn open_kvm(vcpus: u32, recorder: &Recorder) -> Result<Kvm, Error> {
    let kvm = Kvm::new().map_err(Error::KvmOpen)?;
    recorder.stamp(step::VMM_KVM_OPEN, EventSource::Monitor);
    let api = kvm.get_api_version();
    if api != KVM_API_VERSION {
        return Err(Error::KvmApiVersion(api));
    }
    let kvm_max = u32::try_from(kvm.get_max_vcpus()).unwrap_or(u32::MAX);
    if vcpus > kvm_max {
        return Err(Error::VcpuCount(vcpus, kvm_max.min(mptable::MAX_CPUS)));
    }
    Ok(kvm)
}

/// The only KVM API version there has ever been in a released kernel.
pub const KVM_API_VERSION: i32 = 12;

impl Machine {
    /// The shared steps: creates the VM, registers `mem` as its memory, gives it
    /// `irqchip`, wires the devices with `console`, and creates `vcpus` vCPUs.
    pub(crate) fn create(
        kvm: Kvm,
        mem: &memory::GuestMemory,
        irqchip: IrqChipKind,
        vcpus: u32,
        devices: OpenDevices,
        console: Box<dyn Write + Send>,
        recorder: &Arc<Recorder>,
    ) -> Result<Machine, Error> {
        let vm = Arc::new(kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?);
        recorder.stamp(step::VMM_VM_CREATED, EventSource::Monitor);
        // Memory slots first: on a VM without irqchip/PIT devices yet, the slot
        // ioctl's SRCU synchronisation returns at once; after them it waits for a
        // grace period (measured here: ~0.1 ms vs 4-8 ms).
        for (slot, region) in mem.iter().enumerate() {
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .map_err(|e| Error::GuestMemory(MemoryError::HostAddress(e)))?;
            let r = kvm_userspace_memory_region {
                #[allow(clippy::cast_possible_truncation)] // two RAM regions at most
                slot: slot as u32,
                guest_phys_addr: region.start_addr().raw_value(),
                memory_size: region.len(),
                userspace_addr: host as u64,
                flags: 0,
            };
            // SAFETY: the region is a live mapping owned by `mem`, which the `Vm` keeps
            // until its VM fd and vCPUs are closed, and slots do not overlap.
            unsafe { vm.set_user_memory_region(r) }
                .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }
        recorder.stamp(step::VMM_MEMORY_REGISTERED, EventSource::Monitor);
        vm.set_tss_address(KVM_TSS_ADDR)
            .map_err(Error::kvm("KVM_SET_TSS_ADDR"))?;
        let split = match irqchip {
            IrqChipKind::Kernel => {
                vm.create_irq_chip()
                    .map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
                recorder.stamp(step::VMM_IRQCHIP, EventSource::Monitor);
                vm.create_pit2(kvm_pit_config::default())
                    .map_err(Error::kvm("KVM_CREATE_PIT2"))?;
                recorder.stamp(step::VMM_PIT, EventSource::Monitor);
                None
            }
            IrqChipKind::Split => {
                let mut cap = kvm_enable_cap {
                    cap: KVM_CAP_SPLIT_IRQCHIP,
                    ..Default::default()
                };
                // Routes KVM reserves for the user-space IO-APIC's pins.
                cap.args[0] = ioapic::PINS as u64;
                vm.enable_cap(&cap)
                    .map_err(Error::kvm("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)"))?;
                recorder.stamp(step::VMM_IRQCHIP, EventSource::Monitor);
                Some(Arc::new(SplitIrqChip::new(vm.clone())))
            }
        };
        let mut manager = DeviceManager::new(&vm, split.clone());
        let line = manager.irq_line(serial::COM1_IRQ)?;
        manager.attach(boot_timer::WINDOW, Arc::new(BootTimer(recorder.clone())))?;
        if let Some(chip) = &split {
            manager.attach(IOAPIC_WINDOW, chip.clone())?;
        }
        manager.attach_devices(devices, mem)?;
        let console = Console::new(console, recorder.clone());
        let (mmio, device_io) = manager.into_parts();
        let bus = Arc::new(Bus::new(console, line, mmio, split, device_io)?);
        let mut fds = Vec::with_capacity(vcpus as usize);
        for id in 0..vcpus {
            fds.push(
                vm.create_vcpu(id as u64)
                    .map_err(Error::kvm("KVM_CREATE_VCPU"))?,
            );
        }
        Ok(Machine {
            kvm,
            vm,
            bus,
            vcpus: fds,
        })
    }
}

impl Vm {
    /// Checks the configuration and sets the machine up for a boot, stopping right
    /// before the first KVM_RUN: the shared steps (`Machine::create`), with a
    /// kernel loaded first and every vCPU set up for its entry.
    pub fn build(config: VmConfig) -> Result<Vm, Error> {
        check_vcpu_count(config.vcpus)?;
        let mem_bytes = memory::check_size(config.mem_mib, memory::host_mem_bytes())?;
        let recorder = Arc::new(Recorder::default());
        // The devices are placed first (their entries end the command line) and
        // their host sides opened before KVM: a tap or disk the host refuses ends
        // the run before any VM work.
        let plan = DevicePlan::new(&config.devices)
            .map_err(Error::DevicePlan)?
            .with_notify(config.virtio_notify);
        let devices = plan.open()?;
        let taps = devices.taps().to_vec();
        let kvm = open_kvm(config.vcpus, &recorder)?;
        // KVM_GET_SUPPORTED_CPUID is one of the slowest set-up ioctls (0.25-0.3 ms on
        // our emulated-KVM hosts: each CPUID traps), so its table is kept between runs
        // (see crate::cpuid_cache). Asked for on a second thread, beside the kernel
        // load and KVM_CREATE_VM, it made the run slower, not faster: the memory slot's
        // SRCU grace period then waited for that CPU (0.4 ms instead of 0.13), and the
        // kernel load's page faults waited for KVM_CREATE_VM's mmap lock.
        let supported = cpuid_cache::supported_cpuid(&kvm, cpuid_cache::default_dir().as_deref())
            .map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        recorder.stamp(step::VMM_CPUID, EventSource::Monitor);
        let mem = if huge_pages_for(&config.kernel) {
            memory::create_huge(mem_bytes)?
        } else {
            memory::create(mem_bytes)?
        };
        let cmdline = plan.cmdline(&config.cmdline);
        let setup = boot::load(
            &mem,
            mem_bytes,
            &config.kernel,
            config.initrd.as_deref(),
            &cmdline,
        )?;
        vcpu::write_boot_tables(&mem, setup.entry)?;
        recorder.stamp(step::VMM_KERNEL_LOADED, EventSource::Monitor);
        // Without the in-kernel PIC (split irqchip) the guest must find the IO-APIC,
        // so it gets the MP table even with one vCPU; so does a guest with devices,
        // whose lines may lie beyond the PIC's.
        if config.vcpus > 1 || config.irqchip == IrqChipKind::Split || !plan.is_empty() {
            mptable::write(&mem, config.vcpus, plan.highest_irq())
                .map_err(crate::boot::boot_data("the MP table"))?;
        }

        let machine = Machine::create(
            kvm,
            &mem,
            config.irqchip,
            config.vcpus,
            devices,
            config.console,
            &recorder,
        )?;
        // The boot ending: every vCPU set up for the kernel's entry.
        let mut cpuids = Vec::with_capacity(machine.vcpus.len());
        for (id, fd) in (0..).zip(&machine.vcpus) {
            cpuids.push(vcpu::configure(
                fd,
                &supported,
                id,
                config.vcpus,
                setup.entry,
                config.cpu_vendor,
            )?);
        }
        recorder.stamp(step::VMM_VCPUS_CONFIGURED, EventSource::Monitor);
        let record = MachineConfig {
            mem_mib: config.mem_mib,
            vcpus: config.vcpus,
            irqchip: config.irqchip,
            cmdline,
            name: config.name.clone(),
        };
        let settings = RunSettings {
            timeout: config.timeout,
            console_input: config.console_input,
            name: config.name,
            spawn_ns: config.spawn_ns,
        };
        let mut vm = Vm::assemble(machine, cpuids, mem, recorder, settings, record);
        vm.virtio_devices = plan.slots().len();
        vm.taps = taps;
        Ok(vm)
    }

    /// A machine made of built parts, ready to run.
    pub(crate) fn assemble(
        machine: Machine,
        cpuids: Vec<CpuId>,
        mem: memory::GuestMemory,
        recorder: Arc<Recorder>,
        settings: RunSettings,
        config: MachineConfig,
    ) -> Vm {
        Vm {
            vcpus: machine.vcpus,
            cpuids,
            bus: machine.bus,
            vm: machine.vm,
            kvm: machine.kvm,
            mem,
            recorder,
            settings,
            config,
            snapshot: None,
            virtio_devices: 0,
            taps: Vec::new(),
        }
    }

    /// The names of the taps its network cards use, in device order (the
    /// kernel's choice for a card asked for without a name).
    pub fn taps(&self) -> &[String] {
        &self.taps
    }

    /// Saves the machine into `request.dir` when the guest writes the marker
    /// `request.at` to the marker port, or when the process gets
    /// [`SNAPSHOT_SIGNAL`]: every vCPU is stopped first (and re-entered once so
    /// pending I/O completes), then the run ends with [`ExitReason::Snapshotted`],
    /// or goes on with `keep_running`. Once per run.
    pub fn snapshot_at(&mut self, request: SnapshotRequest) {
        if let SnapshotPoint::Marker(m) = request.at {
            self.bus.snapshot_at(m.code());
        }
        self.snapshot = Some(request);
    }

    /// Runs the machine to its end (guest exit, reset, error or timeout), then stops
    /// every vCPU and joins its thread; at the snapshot point (if asked for) saves
    /// the machine between two such runs of the vCPUs.
    pub fn run(self) -> Result<VmOutcome, Error> {
        let Vm {
            vcpus,
            cpuids,
            bus,
            vm,
            kvm,
            mem,
            recorder,
            settings,
            config,
            mut snapshot,
            virtio_devices,
            taps: _,
        } = self;
        if snapshot.is_some() && virtio_devices > 0 {
            return Err(Error::Snapshot(
                "a machine with virtio devices cannot be saved yet".into(),
            ));
        }
        install_kick_handler();
        // Blocked here, before any other thread exists, so that every thread
        // inherits the mask and only the signal thread's signalfd sees it.
        let signal = match snapshot.as_ref().map(|r| r.at) {
            Some(SnapshotPoint::Signal) => Some(SnapshotSignal::new()?),
            _ => None,
        };
        let mem = Arc::new(mem);
        let deadline = settings.timeout.map(|d| Instant::now() + d);
        let mut vcpus = vcpus;
        let mut saved = None;
        let reason = loop {
            let watch = signal.as_ref().filter(|_| snapshot.is_some());
            let (reason, back) = run_vcpus(
                vcpus,
                &bus,
                &mem,
                &recorder,
                deadline,
                settings.console_input,
                watch,
            )?;
            vcpus = back;
            if reason == ExitReason::Snapshotted {
                if let Some(req) = snapshot.take() {
                    let source = snapshot::SaveSource {
                        kvm: &kvm,
                        vm: &vm,
                        bus: &bus,
                        cpuids: &cpuids,
                        mem: &mem,
                        config: &config,
                    };
                    let stats = snapshot::save(&req.dir, &source, &mut vcpus)?;
                    recorder.stamp(event::SNAPSHOT_SAVED, EventSource::Monitor);
                    saved = Some(stats);
                    if req.keep_running {
                        continue;
                    }
                }
            }
            break reason;
        };
        drop(vcpus);

        let (unhandled_pio, unhandled_mmio) = (
            bus.unhandled_pio.load(Ordering::Relaxed),
            bus.unhandled_mmio.load(Ordering::Relaxed),
        );
        // Close the VM before unmapping its memory (every vCPU fd is closed already;
        // the bus holds the last other reference to the VM fd).
        drop(bus);
        drop(vm);
        drop(kvm);
        drop(mem);
        let mut timeline = Timeline::new(settings.name, settings.spawn_ns);
        if recorder.repeats() > 0 {
            log::debug!("{} repeated events not recorded", recorder.repeats());
        }
        recorder.drain_into(&mut timeline);
        Ok(VmOutcome {
            reason,
            timeline,
            unhandled_pio,
            unhandled_mmio,
            snapshot: saved,
        })
    }
}

/// Runs every vCPU until the run ends (guest exit, reset, error, timeout at
/// `deadline`, or the snapshot point), stops them all and hands their fds back.
///
/// vCPU 0 runs on the calling thread: its first KVM_RUN then follows the set-up
/// at once, instead of after a new thread has been scheduled on another CPU
/// (0.05-0.1 ms on our hosts). Other vCPUs get a thread each. When there is
/// something to wait for besides vCPU 0 (a timeout, other vCPUs, console input,
/// the snapshot signal, virtio devices), the event loop's thread waits for it and
/// stops vCPU 0 when it ends the run.
fn run_vcpus(
    vcpus: Vec<kvm_ioctls::VcpuFd>,
    bus: &Arc<Bus>,
    mem: &Arc<memory::GuestMemory>,
    recorder: &Arc<Recorder>,
    deadline: Option<Instant>,
    console_input: Option<RawFd>,
    signal: Option<&SnapshotSignal>,
) -> Result<(ExitReason, Vec<kvm_ioctls::VcpuFd>), Error> {
    let mut vcpus = vcpus.into_iter();
    let mut boot_vcpu = vcpus.next().ok_or(Error::VcpuCount(0, mptable::MAX_CPUS))?;
    let vcpu_ends = match vcpus.len() {
        0 => None,
        _ => Some(Arc::new(VcpuEnds::new()?)),
    };
    // Stops and joins the threads started so far when dropped, also on an early
    // return below.
    let mut others = VcpuThreads(Vec::with_capacity(vcpus.len()));
    for ((id, mut fd), ends) in (1..).zip(vcpus).zip(std::iter::repeat(vcpu_ends.clone())) {
        let (bus, mem) = (bus.clone(), mem.clone());
        let (control, channel) = vcpu::control_channel();
        let t = std::thread::Builder::new()
            .name(format!("vcpu{id}"))
            .spawn(move || {
                let end = vcpu::run_loop(&mut fd, &bus, &mem, &channel, || {});
                if let Some(ends) = ends {
                    ends.report(end);
                }
                fd
            })
            .map_err(Error::Thread)?;
        others.0.push((t, control));
    }
    let (boot_control, boot_channel) = vcpu::control_channel();
    let boot_done = Arc::new(AtomicBool::new(false));
    let needs_loop = deadline.is_some()
        || vcpu_ends.is_some()
        || console_input.is_some()
        || signal.is_some()
        || bus.device_io.wake.is_some();
    let event_loop = if needs_loop {
        let sources = event_loop::Sources {
            bus: bus.clone(),
            deadline,
            console_input,
            snapshot_signal: signal.map(|s| s.0),
            vcpu_ends,
        };
        let stop_boot = StopBoot {
            control: boot_control.events.clone(),
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
            done: boot_done.clone(),
        };
        Some(EventLoop::spawn(sources, move || stop_boot.stop())?)
    } else {
        None
    };

    let rec = recorder.clone();
    let boot_end = vcpu::run_loop(&mut boot_vcpu, bus, mem, &boot_channel, || {
        rec.stamp(event::FIRST_KVM_RUN, EventSource::Monitor)
    });
    boot_done.store(true, Ordering::Release);
    // What ended the run: vCPU 0's own exit, else what the event loop saw first
    // (another vCPU's exit, the timeout, the snapshot signal).
    let loop_end = event_loop.and_then(EventLoop::finish);
    let reason = boot_end.or(loop_end).unwrap_or(ExitReason::Halted);
    let mut fds = vec![boot_vcpu];
    fds.extend(others.stop_and_join());
    Ok((reason, fds))
}

/// How the event loop stops vCPU 0, which runs on the monitor's calling thread:
/// `Stop` on its control channel, then kicks until its loop has ended.
struct StopBoot {
    control: mpsc::Sender<vcpu::VcpuEvent>,
    thread: libc::pthread_t,
    done: Arc<AtomicBool>,
}

impl StopBoot {
    fn stop(self) {
        let _ = self.control.send(vcpu::VcpuEvent::Stop);
        while !self.done.load(Ordering::Acquire) {
            kick(self.thread);
        }
    }
}

/// [`SNAPSHOT_SIGNAL`], blocked in every thread of the run and read from a signalfd
/// by the event loop.
struct SnapshotSignal(RawFd);

impl SnapshotSignal {
    /// Blocks the signal on the calling thread (the threads it starts inherit the
    /// mask) and opens a signalfd for it.
    fn new() -> Result<SnapshotSignal, Error> {
        // SAFETY: the sigset lives on this stack for the three calls, which only
        // fill it, change this thread's mask and create a descriptor.
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, SNAPSHOT_SIGNAL);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(Error::EventLoop(std::io::Error::last_os_error()));
        }
        Ok(SnapshotSignal(fd))
    }
}

impl Drop for SnapshotSignal {
    fn drop(&mut self) {
        // SAFETY: the descriptor opened in `new`, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The threads of vCPUs 1..N, each with its control channel. Dropping it stops
/// them: sends each vCPU `Stop`, kicks each thread out of KVM_RUN until it has
/// left its loop, and joins it.
struct VcpuThreads(
    Vec<(
        std::thread::JoinHandle<kvm_ioctls::VcpuFd>,
        vcpu::VcpuControl,
    )>,
);

impl VcpuThreads {
    /// Stops every thread and returns the vCPUs of those that did not panic.
    fn stop_and_join(&mut self) -> Vec<kvm_ioctls::VcpuFd> {
        for (_, control) in &self.0 {
            let _ = control.events.send(vcpu::VcpuEvent::Stop);
        }
        let mut fds = Vec::with_capacity(self.0.len());
        for (t, _) in self.0.drain(..) {
            while !t.is_finished() {
                kick(t.as_pthread_t());
            }
            fds.extend(t.join().ok());
        }
        fds
    }
}

impl Drop for VcpuThreads {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Sends the kick signal to a vCPU thread, then gives it 200 µs to leave KVM_RUN.
/// Callers repeat it until the thread is out of its loop: a kick that lands just
/// before the thread enters KVM_RUN interrupts nothing.
fn kick(thread: libc::pthread_t) {
    // SAFETY: the pthread id belongs to a thread that has not been joined yet; the
    // signal has a no-op handler installed, so delivery only interrupts a blocking
    // call (KVM_RUN) with EINTR.
    unsafe { libc::pthread_kill(thread, kick_signal()) };
    std::thread::sleep(Duration::from_micros(200));
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the kick signal's no-op handler (once per process) and unblocks the
/// signal on the calling thread, which runs vCPU 0 and whose mask the other vCPU
/// threads inherit: a kick must interrupt KVM_RUN even when the caller had it blocked.
fn install_kick_handler() {
    // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which
    // initialises it; the set lives on this stack for both calls, and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler) {
            log::debug!("cannot install the vCPU kick handler: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::{VcpuEvent, VcpuResponse};
    use test_support::Captured;

    /// Sends `event` to the vCPU on `thread` and kicks it until it answers.
    fn ask(
        control: &vcpu::VcpuControl,
        thread: &std::thread::JoinHandle<(Option<ExitReason>, kvm_ioctls::VcpuFd)>,
        event: VcpuEvent,
    ) -> VcpuResponse {
        control.events.send(event).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            kick(thread.as_pthread_t());
            if let Ok(r) = control.responses.try_recv() {
                return r;
            }
            assert!(Instant::now() < deadline, "the vCPU did not answer");
        }
    }

    /// The lab guest held at its snapshot point (it reads COM1's status until a
    /// byte arrives) is paused, saved twice while paused, resumed, released and
    /// runs to its exit; another is stopped while paused.
    #[test]
    fn a_vcpu_pauses_saves_resumes_and_stops_through_its_channel() {
        if !test_support::kvm_or_skip("a_vcpu_pauses_saves_resumes_and_stops_through_its_channel") {
            return;
        }
        install_kick_handler();
        for stop_while_paused in [false, true] {
            let console = Captured::default();
            let vm = Vm::build(VmConfig {
                kernel: KernelSource::Embedded {
                    name: "lab",
                    bytes: crate::lab::ELF,
                },
                initrd: None,
                cmdline: crate::lab::HOLD_SWITCH.into(),
                mem_mib: 32,
                vcpus: 1,
                irqchip: IrqChipKind::Split,
                timeout: None,
                console: Box::new(console.clone()),
                console_input: None,
                name: "control-test".into(),
                spawn_ns: timeline::now_ns(),
                cpu_vendor: CpuVendor::Host,
                devices: Vec::new(),
                virtio_notify: QueueNotify::default(),
            })
            .unwrap();
            let msr_index = vm.kvm.get_msr_index_list().unwrap().as_slice().to_vec();
            let cpuid = vm.cpuids[0].as_slice().to_vec();
            let Vm {
                mut vcpus,
                bus,
                mem,
                ..
            } = vm;
            let mut fd = vcpus.remove(0);
            let (control, channel) = vcpu::control_channel();
            let thread = {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    let end = vcpu::run_loop(&mut fd, &bus, &mem, &channel, || {});
                    (end, fd)
                })
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !console.text().contains("@@bootlab snapshot") {
                assert!(Instant::now() < deadline, "{}", console.text());
                std::thread::sleep(Duration::from_millis(5));
            }
            let save = || VcpuEvent::SaveState {
                msr_index: msr_index.clone(),
                cpuid: cpuid.clone(),
            };
            assert!(matches!(
                ask(&control, &thread, save()),
                VcpuResponse::Refused(_)
            ));
            assert!(matches!(
                ask(&control, &thread, VcpuEvent::Pause),
                VcpuResponse::Paused
            ));
            let rip = |r: VcpuResponse| match r {
                VcpuResponse::Saved(s) => s.regs.rip,
                other => panic!("{other:?}"),
            };
            let first = rip(ask(&control, &thread, save()));
            assert!((0x10_0000..0x10_1000).contains(&first), "{first:#x}");
            assert_eq!(rip(ask(&control, &thread, save())), first, "paused");
            if stop_while_paused {
                control.events.send(VcpuEvent::Stop).unwrap();
                let (end, _fd) = thread.join().unwrap();
                assert_eq!(end, None);
                assert!(!console.text().contains("@@bootlab exec"));
                continue;
            }
            assert!(matches!(
                ask(&control, &thread, VcpuEvent::Resume),
                VcpuResponse::Resumed
            ));
            let _ = bus.serial.lock().map(|mut s| s.input(b"\n"));
            let (end, _fd) = thread.join().unwrap();
            assert_eq!(end, Some(ExitReason::GuestExit(0)));
            assert!(
                console.text().ends_with("@@bootlab done\n"),
                "{}",
                console.text()
            );
        }
    }
}
