//! The `lab` guest, embedded: a few hundred bytes of 32-bit code in an ELF with a PVH
//! entry note (source: `vmm/lab-guest/lab.rs`, built by `vmm/build.rs`). It runs every
//! phase of the marker protocol with a handful of instructions and then ends the VM
//! through the exit port, so it works even under an emulated /dev/kvm.

/// The lab guest's ELF image.
pub const ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lab.elf"));

/// The console line the lab guest prints as its workload.
pub const WORKLOAD_LINE: &str = "hello from the lab guest";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_elf_is_small_and_has_a_pvh_note() {
        assert_eq!(&ELF[..4], b"\x7fELF");
        assert!(ELF.len() < 8192, "lab guest grew to {} bytes", ELF.len());
        // The note's name "Xen\0" and type 18 (XEN_ELFNOTE_PHYS32_ENTRY).
        let pos = ELF
            .windows(4)
            .position(|w| w == b"Xen\0")
            .expect("Xen note");
        let ty = u32::from_le_bytes(ELF[pos - 4..pos].try_into().unwrap());
        assert_eq!(ty, 18);
    }
}
