//! The boot GDT's descriptors, as the CPU reads them from guest memory and as the
//! segment registers KVM takes (`kvm_segment`) describe them.

use kvm_bindings::kvm_segment;

/// GDT descriptor flags (access byte and granularity nibble).
pub(crate) const GDT_CODE64: u16 = 0xa09b;
pub(crate) const GDT_CODE32: u16 = 0xc09b;
pub(crate) const GDT_DATA: u16 = 0xc093;
pub(crate) const GDT_TSS: u16 = 0x808b;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
