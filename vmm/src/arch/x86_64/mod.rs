//! x86-64, laid out as Firecracker's `arch/x86_64`: the PC memory layout, the boot
//! GDT, the registers and page tables a vCPU is entered with, CPUID filtering, MSRs,
//! the local APIC's set-up and the MP table.

pub mod cpuid;
pub mod gdt;
pub mod interrupts;
pub mod layout;
pub mod mptable;
pub mod msr;
pub mod regs;
