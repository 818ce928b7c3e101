//! The MSRs a vCPU is entered with, and the order saved MSRs are loaded back in.

use crate::error::Error;
use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;

/// MSR numbers.
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// The TSC and its deadline timer: the deadline is a TSC value, so it is loaded after
/// the TSC (else a restored deadline can fire at once or never).
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;

/// Sets the MSRs a booting vCPU starts with (fast string operations enabled).
pub fn set_boot_msrs(vcpu: &VcpuFd) -> Result<(), Error> {
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
    Ok(())
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
