//! The built-in guests, embedded: a few hundred bytes of 32-bit code each in an ELF
//! with a PVH entry note (sources in `vmm/lab-guest/`, built by `vmm/build.rs`). The
//! `lab` guest runs every phase of the marker protocol with a handful of
//! instructions and then ends the VM through the exit port, so it works even under an
//! emulated /dev/kvm. The `fuzz` guest is hostile: it attacks the monitor from
//! inside (every I/O port, random MMIO, hypercalls, triple fault, spinning, serial
//! flood), its mode and seed taken from the kernel command line `MODE [SEED]`.

/// The lab guest's ELF image.
pub const ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lab.elf"));

/// The console line the lab guest prints as its workload.
pub const WORKLOAD_LINE: &str = "hello from the lab guest";

/// First on the lab guest's command line, this switch makes it wait at its
/// snapshot point until a byte arrives on COM1 (for monitors that cannot save a
/// machine at a port write: Firecracker, paused through its API).
pub const HOLD_SWITCH: &str = "bootlab.hold";

/// The fuzz guest's ELF image.
pub const FUZZ_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fuzz.elf"));

/// Modes of the fuzz guest (the first word of its command line).
pub const FUZZ_MODES: [&str; 12] = [
    "sweep",
    "hypercall",
    "triple",
    "spin",
    "flood",
    "echo",
    "markers",
    "virtio",
    "virtio-vsock",
    "virtio-net",
    "rtdisk",
    "rtport",
];

/// Exit-port status of the fuzz guest when a finite mode (`sweep`, `hypercall`) ran
/// to its end (and `echo` once it echoed): the monitor survived everything the
/// guest did.
pub const FUZZ_STATUS_SURVIVED: u8 = 42;

/// Exit-port status of the fuzz guest for an unknown mode.
pub const FUZZ_STATUS_BAD_MODE: u8 = 2;

/// The line the fuzz guest prints right before it exits with
/// [`FUZZ_STATUS_SURVIVED`].
pub const FUZZ_SURVIVED_LINE: &str = "fuzz: survived";

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
        // The guest compares its command line with the switch four bytes at a time.
        for word in HOLD_SWITCH.as_bytes().chunks(4) {
            assert!(
                ELF.windows(4).any(|w| w == word),
                "{word:?} not in the guest"
            );
        }
    }

    #[test]
    fn fuzz_elf_is_small_and_names_its_modes() {
        assert_eq!(&FUZZ_ELF[..4], b"\x7fELF");
        // Its page tables are page-aligned, which puts the code at 4 KiB in the
        // file: 12 KiB leaves 8 KiB for code and data.
        assert!(
            FUZZ_ELF.len() < 12288,
            "fuzz guest grew to {} bytes",
            FUZZ_ELF.len()
        );
        let text = String::from_utf8_lossy(FUZZ_ELF);
        for mode in FUZZ_MODES {
            assert!(
                text.contains(mode),
                "mode {mode} not in the guest's usage line"
            );
        }
        assert!(text.contains(FUZZ_SURVIVED_LINE));
    }
}
