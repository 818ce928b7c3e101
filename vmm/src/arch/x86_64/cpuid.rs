//! The CPUID table a vCPU gets: KVM's supported table with the vCPU's APIC IDs and
//! count, the hypervisor bit, and optionally the Intel vendor string.

use kvm_bindings::CpuId;

/// CPUID leaf 1 ECX bit: running under a hypervisor.
pub(crate) const CPUID_HYPERVISOR: u32 = 1 << 31;
/// CPUID leaves that carry the 12-byte vendor string in EBX, EDX, ECX.
const CPUID_VENDOR_LEAVES: [u32; 2] = [0, 0x8000_0000];
/// The vendor string of Intel CPUs.
const VENDOR_INTEL: &[u8; 12] = b"GenuineIntel";
/// The CPUID vendor string of AMD CPUs.
pub(crate) const AMD_VENDOR: &str = "AuthenticAMD";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
