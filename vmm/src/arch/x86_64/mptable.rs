//! The Intel MultiProcessor table (MP spec 1.4) that tells a guest without ACPI how
//! many CPUs it has, where the IO-APIC is and how ISA IRQs are wired. Written into
//! the EBDA, where Linux scans for the floating pointer.

use crate::layout::{APIC_ADDR, EBDA_START, IOAPIC_ADDR};
use crate::memory::GuestMemory;
use vm_memory::{Bytes, GuestAddress};

/// Most vCPUs the table (which must fit in the 1 KiB EBDA) describes.
pub const MAX_CPUS: u32 = 32;
/// Number of ISA interrupts routed through the IO-APIC.
const ISA_IRQS: u8 = 16;
/// Pins of the IO-APIC (in-kernel and ours alike).
const IOAPIC_PINS: u32 = 24;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const MP_SPEC_REV: u8 = 4;
const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;
/// Entry types.
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IOINT: u8 = 3;
const ENTRY_LINTSRC: u8 = 4;
/// Interrupt types.
const INT_VECTORED: u8 = 0;
const INT_NMI: u8 = 1;
const INT_EXTINT: u8 = 3;

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// The MP floating pointer (16 bytes) followed by the configuration table, for
/// `cpus` CPUs, as it lies at `base`. The IO-APIC's pins are described up to
/// `highest_irq` (the device manager's last line), at least the 16 ISA ones.
// Callers pass at most MAX_CPUS (checked with the vCPU count), so every id fits a
// byte and the table is a few hundred bytes; `base` is below 1 MiB.
#[allow(clippy::cast_possible_truncation)]
pub fn build(cpus: u32, base: u64, highest_irq: Option<u32>) -> Vec<u8> {
    let table_addr = base + 16;
    let ioapic_id = cpus as u8;
    let mut entries = Vec::new();
    let mut count = 0u16;
    for id in 0..cpus {
        let flags = CPU_ENABLED | if id == 0 { CPU_BSP } else { 0 };
        entries.extend_from_slice(&[ENTRY_PROCESSOR, id as u8, APIC_VERSION, flags]);
        entries.extend_from_slice(&0x600u32.to_le_bytes()); // family 6 signature
        entries.extend_from_slice(&0x201u32.to_le_bytes()); // FPU + APIC features
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    entries.extend_from_slice(&[ENTRY_BUS, 0]);
    entries.extend_from_slice(b"ISA   ");
    count += 1;
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    count += 1;
    let lines = highest_irq
        .map_or(ISA_IRQS, |i| (i.min(IOAPIC_PINS - 1) + 1) as u8)
        .max(ISA_IRQS);
    for irq in 0..lines {
        entries.extend_from_slice(&[ENTRY_IOINT, INT_VECTORED, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    entries.extend_from_slice(&[ENTRY_LINTSRC, INT_EXTINT, 0, 0, 0, 0, 0, 0]);
    entries.extend_from_slice(&[ENTRY_LINTSRC, INT_NMI, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.push(MP_SPEC_REV);
    table.push(0); // checksum, below
    table.extend_from_slice(b"BOOTLAB ");
    table.extend_from_slice(b"MICROVM     ");
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table
    table.extend_from_slice(&0u16.to_le_bytes());
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&APIC_ADDR.to_le_bytes());
    table.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(table_addr as u32).to_le_bytes());
    fp.extend_from_slice(&[1, MP_SPEC_REV, 0, 0, 0, 0, 0, 0]);
    fp[10] = checksum(&fp);
    fp.extend_from_slice(&table);
    fp
}

/// Writes the MP table for `cpus` CPUs and interrupt lines up to `highest_irq`
/// into guest memory at the EBDA.
pub fn write(
    mem: &GuestMemory,
    cpus: u32,
    highest_irq: Option<u32>,
) -> Result<(), vm_memory::GuestMemoryError> {
    mem.write_slice(
        &build(cpus, EBDA_START, highest_irq),
        GuestAddress(EBDA_START),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_sizes() {
        for (cpus, irq, lines) in [
            (1, None, 16),
            (2, Some(5), 16),
            (MAX_CPUS, Some(23), 24),
            (1, Some(99), 24),
        ] {
            let t = build(cpus, EBDA_START, irq);
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(t[..16].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let len = u16::from_le_bytes([t[20], t[21]]) as usize;
            assert_eq!(&t[16..20], b"PCMP");
            assert_eq!(t.len(), 16 + len);
            assert_eq!(t[16..].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let count = u16::from_le_bytes([t[16 + 34], t[16 + 35]]) as u32;
            assert_eq!(count, cpus + 1 + 1 + lines + 2);
            assert!(t.len() <= 1024, "MP table must fit in the EBDA");
        }
    }
}
