//! vCPU set-up (CPUID, MSRs, registers, segments, page tables, FPU, local APIC) for
//! each entry protocol, and the run loop: KVM_RUN, route the exit to the device bus,
//! repeat until the guest ends the VM or the monitor asks the vCPU to stop.

use crate::boot::Entry;
use crate::devices::{Bus, Request};
use crate::error::Error;
use crate::exit::ExitReason;
use crate::layout::*;
use crate::memory::GuestMemory;
use crate::persist::Persist;
use kvm_bindings::{
    kvm_cpuid_entry2, kvm_debugregs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry,
    kvm_regs, kvm_run, kvm_segment, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, CpuId, Msrs,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use vm_memory::{Bytes, GuestAddress};

/// GDT descriptor flags (access byte and granularity nibble).
const GDT_CODE64: u16 = 0xa09b;
const GDT_CODE32: u16 = 0xc09b;
const GDT_DATA: u16 = 0xc093;
const GDT_TSS: u16 = 0x808b;
/// Control register and EFER bits.
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Page-table entry bits: present, writable, 2 MiB page.
const PTE_PRESENT_RW: u64 = 0x3;
const PDE_LARGE: u64 = 0x80;
/// MSR numbers.
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// The TSC and its deadline timer: the deadline is a TSC value, so it is loaded after
/// the TSC (else a restored deadline can fire at once or never).
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;
/// Local APIC register offsets and LVT delivery modes.
/// Segment types of a 64-bit TSS (the TR register): available, and busy (what LTR
/// makes of it).
const TSS64_AVAILABLE: u8 = 9;
const TSS64_BUSY: u8 = 11;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;
/// CPUID leaf 1 ECX bit: running under a hypervisor.
pub(crate) const CPUID_HYPERVISOR: u32 = 1 << 31;
/// CPUID leaves that carry the 12-byte vendor string in EBX, EDX, ECX.
const CPUID_VENDOR_LEAVES: [u32; 2] = [0, 0x8000_0000];
/// The vendor string of Intel CPUs.
const VENDOR_INTEL: &[u8; 12] = b"GenuineIntel";

/// The CPU vendor a guest sees in CPUID (leaf 0 and 0x8000_0000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuVendor {
    /// What KVM reports: the host's vendor.
    #[default]
    Host,
    /// `GenuineIntel`, whatever the host is. For an emulated /dev/kvm (kvm_pvm):
    /// KVM's instruction emulator executes a 32-bit task's `sysenter` (at full
    /// width, switching to 64-bit mode) only for an Intel guest, and on an AMD one
    /// raises #UD as AMD silicon does; the other system-call instructions fail
    /// there for any vendor (guest-images/kernel/EMULATED-USERSPACE.md, A2-A4).
    Intel,
}

/// A GDT descriptor for `flags`, `base`, `limit`.
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (base, limit, flags) = (base as u64, limit as u64, flags as u64);
    ((base & 0xff00_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
        | ((limit & 0xf_0000) << 32)
        | ((flags & 0xf0ff) << 40)
}

/// The KVM segment register for descriptor `entry` at GDT index `index`.
pub fn segment(entry: u64, index: u16) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    #[allow(clippy::cast_possible_truncation)] // a descriptor's limit is 20 bits
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let present = ((entry >> 47) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if present == 1 { 0 } else { 1 },
        padding: 0,
    }
}

/// Adjusts KVM's supported CPUID for vCPU `id` of `count`, presenting `vendor`.
pub fn filter_cpuid(cpuid: &mut CpuId, id: u32, count: u32, vendor: CpuVendor) {
    for e in cpuid.as_mut_slice() {
        if vendor == CpuVendor::Intel && CPUID_VENDOR_LEAVES.contains(&e.function) {
            let word = |i: usize| {
                u32::from_le_bytes([
                    VENDOR_INTEL[i],
                    VENDOR_INTEL[i + 1],
                    VENDOR_INTEL[i + 2],
                    VENDOR_INTEL[i + 3],
                ])
            };
            (e.ebx, e.edx, e.ecx) = (word(0), word(4), word(8));
        }
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | (count.min(255) << 16) | (8 << 8);
                e.ecx |= CPUID_HYPERVISOR;
            }
            // The x2APIC ID in the extended topology leaves.
            0xb | 0x1f => e.edx = id,
            _ => {}
        }
    }
}

/// Writes boot GDT (and an empty IDT) and, for the 64-bit protocol, the identity page
/// tables covering the first GiB.
pub fn write_boot_tables(mem: &GuestMemory, entry: Entry) -> Result<(), Error> {
    let code = match entry {
        Entry::Pvh(_) => GDT_CODE32,
        Entry::Linux64(_) => GDT_CODE64,
    };
    let gdt = [
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(GDT_DATA, 0, 0xfffff),
        gdt_entry(GDT_TSS, 0, 0xfffff),
    ];
    let w = |v: u64, at: u64| {
        mem.write_obj(v, GuestAddress(at))
            .map_err(crate::boot::boot_data("the GDT and page tables"))
    };
    for (i, d) in gdt.iter().enumerate() {
        w(*d, BOOT_GDT_START + 8 * i as u64)?;
    }
    w(0, BOOT_IDT_START)?;
    if let Entry::Linux64(_) = entry {
        w(PDPTE_START | PTE_PRESENT_RW, PML4_START)?;
        w(PDE_START | PTE_PRESENT_RW, PDPTE_START)?;
        for i in 0..512u64 {
            w((i << 21) | PDE_LARGE | PTE_PRESENT_RW, PDE_START + i * 8)?;
        }
    }
    Ok(())
}

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

    let msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_IA32_MISC_ENABLE,
        data: MISC_ENABLE_FAST_STRING,
        ..Default::default()
    }])
    .map_err(|source| Error::KvmList {
        what: "MSR",
        source,
    })?;
    vcpu.set_msrs(&msrs).map_err(Error::kvm("KVM_SET_MSRS"))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(Error::kvm("KVM_SET_FPU"))?;

    let mut lapic = vcpu.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
    set_lvt_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_lvt_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic)
        .map_err(Error::kvm("KVM_SET_LAPIC"))?;

    if id != 0 {
        return Ok(cpuid);
    }
    let mut sregs = vcpu.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
    let code_flags = match entry {
        Entry::Pvh(_) => GDT_CODE32,
        Entry::Linux64(_) => GDT_CODE64,
    };
    let code = segment(gdt_entry(code_flags, 0, 0xfffff), 1);
    let data = segment(gdt_entry(GDT_DATA, 0, 0xfffff), 2);
    let tss = segment(gdt_entry(GDT_TSS, 0, 0xfffff), 3);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    let mut regs = kvm_regs {
        rflags: 0x2,
        ..Default::default()
    };
    match entry {
        Entry::Pvh(addr) => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rip = addr.0;
            regs.rbx = PVH_INFO_START;
        }
        Entry::Linux64(addr) => {
            sregs.cr3 = PML4_START;
            sregs.cr4 = CR4_PAE;
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.efer = EFER_LME | EFER_LMA;
            regs.rip = addr.0;
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
            regs.rsi = ZERO_PAGE_START;
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(Error::kvm("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs).map_err(Error::kvm("KVM_SET_REGS"))?;
    Ok(cpuid)
}

fn set_lvt_mode(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let mut raw = [0u8; 4];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = regs[offset + i].to_ne_bytes()[0];
    }
    let v = (u32::from_le_bytes(raw) & !0x700) | (mode << 8);
    for (i, b) in v.to_le_bytes().iter().enumerate() {
        regs[offset + i] = std::os::raw::c_char::from_ne_bytes([*b]);
    }
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

/// Sorts MSRs into the order KVM_SET_MSRS must see them: IA32_TSC first,
/// IA32_TSC_DEADLINE last, the rest in between as listed.
pub fn restore_order(msrs: &mut [kvm_msr_entry]) {
    msrs.sort_by_key(|m| match m.index {
        MSR_IA32_TSC => 0,
        MSR_IA32_TSC_DEADLINE => 2,
        _ => 1,
    });
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
        let sregs = sregs_to_load(s.sregs, crate::snapshot::host_cpu_vendor() == AMD_VENDOR);
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

/// The CPUID vendor string of AMD CPUs.
const AMD_VENDOR: &str = "AuthenticAMD";

/// The saved special registers as they are loaded on a host whose CPU is AMD or not.
/// On AMD, KVM reports TR as a busy TSS (type 11) although SVM itself keeps the type
/// LTR found (9, available): KVM adds the busy bit when it reads the segment. Loaded
/// back as busy, TR makes QEMU's software CPU (the nested-SVM lane) refuse every
/// I/O-bitmap check, which accepts only type 9, so a restored guest's first `out` from
/// user space (guest-init's marker) took a #GP and init died. AMD hardware does not
/// look at the type there, so on AMD TR is loaded as the available TSS SVM had; Intel
/// (VMX) enters a guest only with a busy TR, so it is left as saved.
pub fn sregs_to_load(mut sregs: kvm_sregs, host_amd: bool) -> kvm_sregs {
    if host_amd && sregs.tr.type_ == TSS64_BUSY {
        sregs.tr.type_ = TSS64_AVAILABLE;
    }
    sregs
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

/// Runs `vcpu` until the guest ends the VM or an error stops it (`Some(reason)`), or
/// `stop` is set (`None`). `on_first_run` is called right before the first KVM_RUN.
pub fn run_loop(
    vcpu: &mut VcpuFd,
    bus: &Bus,
    mem: &GuestMemory,
    stop: &AtomicBool,
    mut on_first_run: impl FnMut(),
) -> Option<ExitReason> {
    let view = match RunView::map(vcpu) {
        Ok(v) => v,
        Err(e) => return Some(ExitReason::RunError(format!("mapping kvm_run: {e}"))),
    };
    on_first_run();
    loop {
        if stop.load(Ordering::Acquire) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tr_is_loaded_as_an_available_tss_only_on_amd() {
        let mut saved = kvm_sregs::default();
        saved.tr.type_ = TSS64_BUSY;
        saved.cs.type_ = 11;
        let amd = sregs_to_load(saved, true);
        assert_eq!(amd.tr.type_, TSS64_AVAILABLE);
        assert_eq!(amd.cs.type_, 11, "only TR changes");
        assert_eq!(sregs_to_load(saved, false).tr.type_, TSS64_BUSY);
        saved.tr.type_ = 3; // a 16-bit busy TSS is not ours to change
        assert_eq!(sregs_to_load(saved, true).tr.type_, 3);
    }

    #[test]
    fn gdt_entries_decode_to_flat_segments() {
        let code = segment(gdt_entry(GDT_CODE64, 0, 0xfffff), 1);
        assert_eq!((code.base, code.limit, code.selector), (0, 0xffff_ffff, 8));
        assert_eq!(
            (code.l, code.db, code.type_, code.present, code.s),
            (1, 0, 0xb, 1, 1)
        );
        let code32 = segment(gdt_entry(GDT_CODE32, 0, 0xfffff), 1);
        assert_eq!((code32.l, code32.db), (0, 1));
        let data = segment(gdt_entry(GDT_DATA, 0, 0xfffff), 2);
        assert_eq!((data.type_, data.selector, data.db), (3, 16, 1));
        assert_eq!(gdt_entry(GDT_CODE64, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(GDT_DATA, 0, 0xfffff), 0x00cf_9300_0000_ffff);
    }

    fn vendor_of(cpuid: &CpuId, function: u32) -> Vec<u8> {
        let e = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function)
            .unwrap();
        [e.ebx, e.edx, e.ecx]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn intel_vendor_is_presented_only_when_asked() {
        let leaf = |function, eax| kvm_bindings::kvm_cpuid_entry2 {
            function,
            eax,
            ebx: u32::from_le_bytes(*b"Auth"),
            edx: u32::from_le_bytes(*b"enti"),
            ecx: u32::from_le_bytes(*b"cAMD"),
            ..Default::default()
        };
        let host = CpuId::from_entries(&[leaf(0, 0x10), leaf(0x8000_0000, 0x8000_0020)]).unwrap();
        let mut cpuid = host.clone();
        filter_cpuid(&mut cpuid, 0, 1, CpuVendor::Host);
        assert_eq!(vendor_of(&cpuid, 0), b"AuthenticAMD");
        filter_cpuid(&mut cpuid, 0, 1, CpuVendor::Intel);
        for function in CPUID_VENDOR_LEAVES {
            assert_eq!(vendor_of(&cpuid, function), b"GenuineIntel");
        }
        // The highest leaf numbers (EAX) are the host's.
        assert_eq!(cpuid.as_slice()[0].eax, 0x10);
        assert_eq!(cpuid.as_slice()[1].eax, 0x8000_0020);
    }

    #[test]
    fn lvt_mode_is_set_in_place() {
        let mut regs = [0 as std::os::raw::c_char; 1024];
        regs[APIC_LVT0] = 0x10; // vector bits survive
        set_lvt_mode(&mut regs, APIC_LVT0, APIC_MODE_EXTINT);
        assert_eq!(regs[APIC_LVT0], 0x10);
        assert_eq!(regs[APIC_LVT0 + 1], 0x07);
    }
}
