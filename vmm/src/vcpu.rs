//! A vCPU's set-up for a boot (through the x86 steps in `arch::x86_64`), its
//! state saved and loaded back, and the run loop: KVM_RUN, route the exit to the
//! device bus, repeat until the guest ends the VM or the monitor asks the vCPU to
//! stop.

use crate::arch::x86_64::{cpuid, interrupts, msr, regs};
use crate::boot::Entry;
use crate::devices::{Bus, Request};
use crate::error::Error;
use crate::exit::ExitReason;
use crate::memory::GuestMemory;
use crate::persist::Persist;
use kvm_bindings::{
    kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_run, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, CpuId, Msrs,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use vm_memory::{Bytes, GuestAddress};

// The x86 steps keep their paths of before `arch::x86_64`.
pub(crate) use crate::arch::x86_64::cpuid::CPUID_HYPERVISOR;
pub use crate::arch::x86_64::cpuid::{filter_cpuid, CpuVendor};
pub use crate::arch::x86_64::gdt::{gdt_entry, segment};
pub use crate::arch::x86_64::msr::restore_order;
pub use crate::arch::x86_64::regs::{sregs_to_load, write_boot_tables};

/// Sets up vCPU `id` of `count` to enter at `entry` (only the boot CPU, id 0, gets
/// entry registers; application processors wait for INIT/SIPI in the irqchip).
/// Returns the CPUID table it gave the vCPU.
pub fn configure(
    vcpu: &VcpuFd,
    supported: &CpuId,
    id: u32,
    count: u32,
    entry: Entry,
    vendor: CpuVendor,
) -> Result<CpuId, Error> {
    let mut cpuid = supported.clone();
    filter_cpuid(&mut cpuid, id, count, vendor);
    vcpu.set_cpuid2(&cpuid)
        .map_err(Error::kvm("KVM_SET_CPUID2"))?;
    msr::set_boot_msrs(vcpu)?;
    regs::set_fpu(vcpu)?;
    interrupts::set_lint(vcpu)?;
    if id != 0 {
        return Ok(cpuid);
    }
    regs::set_entry_regs(vcpu, entry)?;
    Ok(cpuid)
}

/// Everything KVM holds about one vCPU, as its get ioctls return it. The FPU and
/// SSE/AVX registers are in `xsave` (its legacy area is the FXSAVE image).
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// The MSRs of KVM_GET_MSR_INDEX_LIST that this vCPU could read, in restore
    /// order (see [`restore_order`]).
    pub msrs: Vec<kvm_msr_entry>,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub xsave: kvm_xsave,
    pub xcrs: kvm_xcrs,
    pub debugregs: kvm_debugregs,
    pub lapic: kvm_lapic_state,
    pub mp_state: kvm_mp_state,
    pub events: kvm_vcpu_events,
}

/// Reads the MSRs `indices` of `vcpu`. KVM_GET_MSRS stops at the first MSR it cannot
/// read and returns how many it read; such an MSR is left out and the rest read again.
fn read_msrs(vcpu: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, Error> {
    let mut wanted: Vec<kvm_msr_entry> = indices
        .iter()
        .map(|&index| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    loop {
        let mut msrs = Msrs::from_entries(&wanted)
            .map_err(|_| Error::Snapshot(format!("{} MSRs is too many", wanted.len())))?;
        let n = vcpu
            .get_msrs(&mut msrs)
            .map_err(Error::kvm("KVM_GET_MSRS"))?;
        if n >= wanted.len() {
            let mut got = msrs.as_slice().to_vec();
            restore_order(&mut got);
            return Ok(got);
        }
        log::debug!("MSR {:#x} cannot be read; not saved", wanted[n].index);
        wanted.remove(n);
    }
}

/// What saving a vCPU needs besides the vCPU.
#[derive(Debug)]
pub struct SaveContext<'a> {
    /// The MSR numbers to save (KVM_GET_MSR_INDEX_LIST).
    pub msr_index: &'a [u32],
    /// The CPUID table the monitor gave the vCPU. Saved instead of what
    /// KVM_GET_CPUID2 returns: on the emulated KVM of our hosts (kvm_pvm) that is
    /// not the table that was set but one with more of the host's features (AVX,
    /// AES, XSAVE...), which that same KVM does not offer in
    /// KVM_GET_SUPPORTED_CPUID.
    pub cpuid: &'a [kvm_cpuid_entry2],
}

impl Persist for VcpuFd {
    type State = VcpuState;
    type Context<'a> = SaveContext<'a>;

    fn save(&self, ctx: SaveContext<'_>) -> Result<VcpuState, Error> {
        Ok(VcpuState {
            cpuid: ctx.cpuid.to_vec(),
            msrs: read_msrs(self, ctx.msr_index)?,
            regs: self.get_regs().map_err(Error::kvm("KVM_GET_REGS"))?,
            sregs: self.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?,
            xsave: self.get_xsave().map_err(Error::kvm("KVM_GET_XSAVE"))?,
            xcrs: self.get_xcrs().map_err(Error::kvm("KVM_GET_XCRS"))?,
            debugregs: self
                .get_debug_regs()
                .map_err(Error::kvm("KVM_GET_DEBUGREGS"))?,
            lapic: self.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?,
            mp_state: self
                .get_mp_state()
                .map_err(Error::kvm("KVM_GET_MP_STATE"))?,
            events: self
                .get_vcpu_events()
                .map_err(Error::kvm("KVM_GET_VCPU_EVENTS"))?,
        })
    }

    /// Loads the state in the order KVM needs: CPUID before anything that depends on
    /// the features it enables, special registers (APIC base, EFER) before the local
    /// APIC and the MSRs, the TSC before its deadline, pending events last.
    fn restore(&self, s: &VcpuState) -> Result<(), Error> {
        let cpuid = CpuId::from_entries(&s.cpuid)
            .map_err(|_| Error::Snapshot(format!("{} CPUID entries is too many", s.cpuid.len())))?;
        self.set_cpuid2(&cpuid)
            .map_err(Error::kvm("KVM_SET_CPUID2"))?;
        self.set_mp_state(s.mp_state)
            .map_err(Error::kvm("KVM_SET_MP_STATE"))?;
        self.set_regs(&s.regs).map_err(Error::kvm("KVM_SET_REGS"))?;
        let sregs = sregs_to_load(
            s.sregs,
            crate::snapshot::host_cpu_vendor() == cpuid::AMD_VENDOR,
        );
        self.set_sregs(&sregs)
            .map_err(Error::kvm("KVM_SET_SREGS"))?;
        // SAFETY: this process never asks for dynamically enabled XSTATE features
        // (arch_prctl ARCH_REQ_XCOMP_GUEST_PERM), so KVM reads no more than the 4096
        // bytes of `kvm_xsave`, which `s.xsave` is.
        unsafe { self.set_xsave(&s.xsave) }.map_err(Error::kvm("KVM_SET_XSAVE"))?;
        self.set_xcrs(&s.xcrs).map_err(Error::kvm("KVM_SET_XCRS"))?;
        self.set_debug_regs(&s.debugregs)
            .map_err(Error::kvm("KVM_SET_DEBUGREGS"))?;
        self.set_lapic(&s.lapic)
            .map_err(Error::kvm("KVM_SET_LAPIC"))?;
        let mut entries = s.msrs.clone();
        restore_order(&mut entries);
        let msrs = Msrs::from_entries(&entries)
            .map_err(|_| Error::Snapshot(format!("{} MSRs is too many", entries.len())))?;
        let n = self.set_msrs(&msrs).map_err(Error::kvm("KVM_SET_MSRS"))?;
        if n < entries.len() {
            return Err(Error::Snapshot(format!(
                "KVM_SET_MSRS refused MSR {:#x}",
                entries[n].index
            )));
        }
        self.set_vcpu_events(&s.events)
            .map_err(Error::kvm("KVM_SET_VCPU_EVENTS"))?;
        Ok(())
    }
}

/// Re-enters `vcpu` once with `immediate_exit` set, so that KVM completes an I/O
/// or MMIO access the last exit left pending (an `in` gets its value, a string
/// access moves on) and the saved registers are those after it.
pub fn complete_pending_io(vcpu: &mut VcpuFd) -> Result<(), Error> {
    vcpu.set_kvm_immediate_exit(1);
    let r = vcpu.run().map(|_| ()).map_err(|e| e.errno());
    vcpu.set_kvm_immediate_exit(0);
    match r {
        Ok(()) | Err(libc::EINTR) | Err(libc::EAGAIN) => Ok(()),
        Err(e) => Err(Error::Kvm {
            op: "KVM_RUN (immediate exit)",
            source: kvm_ioctls::Error::new(e),
        }),
    }
}

/// What the monitor asks of a vCPU's run loop (Firecracker's `VcpuEvent`). The
/// loop looks for events before every KVM_RUN, so the sender kicks the vCPU's
/// thread out of KVM_RUN after sending, until the event is served.
#[derive(Debug)]
pub enum VcpuEvent {
    /// Leave KVM_RUN and wait for the next event; answered with `Paused`.
    Pause,
    /// Run on after a pause; answered with `Resumed`.
    Resume,
    /// While paused: complete the pending I/O, then save the vCPU's state; answered
    /// with `Saved`, or `Refused` while the vCPU runs.
    SaveState {
        /// The MSR numbers to save (KVM_GET_MSR_INDEX_LIST).
        msr_index: Vec<u32>,
        /// The CPUID table the monitor gave the vCPU.
        cpuid: Vec<kvm_cpuid_entry2>,
    },
    /// Leave the loop, paused or not: [`run_loop`] returns `None` and the thread
    /// gives its vCPU back. Not answered.
    Stop,
}

/// A vCPU loop's answer to a [`VcpuEvent`] (Firecracker's `VcpuResponse`).
#[derive(Debug)]
pub enum VcpuResponse {
    Paused,
    Resumed,
    Saved(Box<VcpuState>),
    /// The event cannot be served now (a save while running), or the save failed.
    Refused(String),
}

/// The monitor's end of a vCPU's control channel.
#[derive(Debug)]
pub struct VcpuControl {
    pub events: mpsc::Sender<VcpuEvent>,
    pub responses: mpsc::Receiver<VcpuResponse>,
}

/// The run loop's end of its control channel.
#[derive(Debug)]
pub struct VcpuChannel {
    events: mpsc::Receiver<VcpuEvent>,
    responses: mpsc::Sender<VcpuResponse>,
}

/// A control channel for one vCPU: the monitor's end and the run loop's.
pub fn control_channel() -> (VcpuControl, VcpuChannel) {
    let (events, events_rx) = mpsc::channel();
    let (responses_tx, responses) = mpsc::channel();
    (
        VcpuControl { events, responses },
        VcpuChannel {
            events: events_rx,
            responses: responses_tx,
        },
    )
}

impl VcpuChannel {
    /// Serves the events waiting for `vcpu` (all of them, and while it is paused
    /// every one until `Resume`). `false` when the loop must end: `Stop`, or the
    /// monitor's end is gone.
    fn serve(&self, vcpu: &mut VcpuFd) -> bool {
        let mut paused = false;
        loop {
            let event = if paused {
                match self.events.recv() {
                    Ok(e) => e,
                    Err(_) => return false,
                }
            } else {
                match self.events.try_recv() {
                    Ok(e) => e,
                    Err(mpsc::TryRecvError::Empty) => return true,
                    Err(mpsc::TryRecvError::Disconnected) => return false,
                }
            };
            let answer = match event {
                VcpuEvent::Stop => return false,
                VcpuEvent::Pause => {
                    paused = true;
                    VcpuResponse::Paused
                }
                VcpuEvent::Resume => {
                    paused = false;
                    VcpuResponse::Resumed
                }
                VcpuEvent::SaveState { .. } if !paused => {
                    VcpuResponse::Refused("the vCPU is running: pause it first".into())
                }
                VcpuEvent::SaveState { msr_index, cpuid } => {
                    let saved = complete_pending_io(vcpu).and_then(|()| {
                        vcpu.save(SaveContext {
                            msr_index: &msr_index,
                            cpuid: &cpuid,
                        })
                    });
                    match saved {
                        Ok(state) => VcpuResponse::Saved(Box::new(state)),
                        Err(e) => VcpuResponse::Refused(e.to_string()),
                    }
                }
            };
            // The monitor may have stopped listening; the loop goes on regardless.
            let _ = self.responses.send(answer);
        }
    }
}

/// Runs `vcpu` until the guest ends the VM or an error stops it (`Some(reason)`), or
/// its control channel says `Stop` (`None`), serving the channel's other events
/// between two KVM_RUNs. `on_first_run` is called right before the first KVM_RUN.
pub fn run_loop(
    vcpu: &mut VcpuFd,
    bus: &Bus,
    mem: &GuestMemory,
    control: &VcpuChannel,
    mut on_first_run: impl FnMut(),
) -> Option<ExitReason> {
    let view = match RunView::map(vcpu) {
        Ok(v) => v,
        Err(e) => return Some(ExitReason::RunError(format!("mapping kvm_run: {e}"))),
    };
    on_first_run();
    loop {
        if !control.serve(vcpu) {
            return None;
        }
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                vcpu.set_kvm_immediate_exit(0);
                continue;
            }
            Err(e) => return Some(ExitReason::RunError(e.to_string())),
        };
        match exit {
            VcpuExit::IoOut(port, data) => {
                // SAFETY: the exit being handled is KVM_EXIT_IO.
                let size = unsafe { view.io_size() };
                for element in data.chunks(size) {
                    match bus.pio_write(port, element) {
                        Request::None => {}
                        Request::Reset => return Some(ExitReason::Reset),
                        Request::Exit(status) => return Some(ExitReason::GuestExit(status)),
                        Request::Snapshot => return Some(ExitReason::Snapshotted),
                    }
                }
            }
            VcpuExit::IoIn(port, data) => {
                // SAFETY: as for IoOut.
                let size = unsafe { view.io_size() };
                for element in data.chunks_mut(size) {
                    bus.pio_read(port, element);
                }
            }
            VcpuExit::MmioWrite(addr, data) => bus.mmio_write(addr, data),
            VcpuExit::MmioRead(addr, data) => bus.mmio_read(addr, data),
            VcpuExit::Hlt => return Some(ExitReason::Halted),
            VcpuExit::Shutdown => return Some(ExitReason::TripleFault),
            VcpuExit::SystemEvent(..) => return Some(ExitReason::Reset),
            VcpuExit::FailEntry(reason, _cpu) => return Some(ExitReason::FailEntry(reason)),
            VcpuExit::InternalError => return Some(internal_error(vcpu, mem)),
            VcpuExit::Intr | VcpuExit::IrqWindowOpen => {}
            other => log::debug!("ignored vCPU exit {other:?}"),
        }
    }
}

/// A second, read-only mapping of a vCPU's `kvm_run` structure. The loop reads the
/// I/O element width through it while the exit that `VcpuFd::run` returned still
/// borrows the vCPU (and the first mapping) mutably: a pointer into that mapping,
/// taken before the run, would be a stale borrow.
struct RunView(*const kvm_run);

impl RunView {
    fn map(vcpu: &VcpuFd) -> std::io::Result<RunView> {
        use std::os::fd::AsRawFd;
        // SAFETY: a shared read-only mapping of the vCPU fd at offset 0, where KVM
        // keeps `kvm_run`; checked for MAP_FAILED and unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<kvm_run>(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                vcpu.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RunView(p as *const kvm_run))
    }

    /// The width in bytes of one element of the port access KVM_EXIT_IO reports. The
    /// data of a string instruction (`rep insb`, `rep outsw`...) holds `count` such
    /// elements back to back, each its own access to the port.
    ///
    /// # Safety
    /// The vCPU's current exit must be KVM_EXIT_IO.
    unsafe fn io_size(&self) -> usize {
        // SAFETY: the mapping is live (self) and, per the contract, `io` is the live
        // member of the exit union; volatile because KVM writes the page.
        let size = unsafe {
            std::ptr::read_volatile(std::ptr::addr_of!((*self.0).__bindgen_anon_1.io.size))
        };
        usize::from(size).max(1)
    }
}

impl Drop for RunView {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, std::mem::size_of::<kvm_run>()) };
    }
}

fn internal_error(vcpu: &mut VcpuFd, mem: &GuestMemory) -> ExitReason {
    // SAFETY: KVM filled the `internal` member of the exit union for
    // KVM_EXIT_INTERNAL_ERROR, which is the exit being handled.
    let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
    let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
    let phys = vcpu
        .translate_gva(rip)
        .ok()
        .filter(|t| t.valid != 0)
        .map(|t| t.physical_address)
        .unwrap_or(rip);
    let mut code = vec![0u8; 16];
    if mem.read_slice(&mut code, GuestAddress(phys)).is_err() {
        code.clear();
    }
    ExitReason::InternalError {
        suberror,
        rip,
        code,
    }
}
