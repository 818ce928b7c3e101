//! The state a booting vCPU is entered with: the boot GDT, an empty IDT and (for
//! the 64-bit entry) identity page tables in guest memory, then the FPU, segment,
//! control and general registers for the entry protocol; and the special registers
//! as a restore loads them back.

use super::gdt::{gdt_entry, segment, GDT_CODE32, GDT_CODE64, GDT_DATA, GDT_TSS};
use super::layout::*;
use crate::boot::Entry;
use crate::error::Error;
use crate::memory::GuestMemory;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

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
/// Segment types of a 64-bit TSS (the TR register): available, and busy (what LTR
/// makes of it).
const TSS64_AVAILABLE: u8 = 9;
const TSS64_BUSY: u8 = 11;

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

/// Sets the FPU's power-on control and SSE status words.
pub fn set_fpu(vcpu: &VcpuFd) -> Result<(), Error> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(Error::kvm("KVM_SET_FPU"))
}

/// Sets the boot vCPU's segment, control and general registers for `entry`: flat
/// segments from the boot GDT, protected mode without paging and `rbx` at the PVH
/// start info, or long mode on the identity page tables with `rsi` at the zero page.
pub fn set_entry_regs(vcpu: &VcpuFd, entry: Entry) -> Result<(), Error> {
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
    Ok(())
}

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
}
