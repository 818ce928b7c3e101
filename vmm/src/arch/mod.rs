//! What is particular to the guest's architecture (only x86-64 today): the memory
//! layout, the descriptor and page tables a guest is entered with, CPUID, MSRs and
//! the local APIC's set-up, the MP table. The rest of the monitor calls in here.

pub mod x86_64;
