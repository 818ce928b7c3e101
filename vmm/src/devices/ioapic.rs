//! The monitor's own IO-APIC, used with KVM's split irqchip (local APICs in the
//! kernel, no in-kernel PIC, IO-APIC or PIT). It holds the 24 redirection entries
//! the guest programs through the IOREGSEL/IOWIN window at 0xfec00000 and turns an
//! edge on a pin into the MSI message the entry describes, which the monitor hands
//! to KVM_SIGNAL_MSI.
//!
//! Scope: edge-triggered pins, which is what the ISA devices of this machine (the
//! serial port) use. A level-triggered entry is delivered once per assertion and
//! its remote-IRR bit is never set, since no device here holds a line asserted.
//! An edge on a masked pin is remembered and delivered when the pin is unmasked.

/// Guest-physical base of the IO-APIC register window (the PC convention).
pub const BASE: u64 = crate::layout::IOAPIC_ADDR as u64;
/// Size of the register window.
pub const SIZE: u64 = 0x1000;
/// Number of pins (redirection entries), as on the 82093AA.
pub const PINS: usize = 24;

/// Offset of the register-select register.
const IOREGSEL: u64 = 0x00;
/// Offset of the data window onto the selected register.
const IOWIN: u64 = 0x10;
/// Offset of the EOI register (IO-APIC version 0x20 and later).
const IOEOI: u64 = 0x40;

/// Indirect register indices.
const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARBITRATION: u32 = 0x02;
const REG_REDIR_FIRST: u32 = 0x10;
/// Version register: version 0x20, highest redirection entry index in bits 16-23.
const VERSION: u32 = 0x20 | ((PINS_U32 - 1) << 16);
#[allow(clippy::cast_possible_truncation)] // 24
const PINS_U32: u32 = PINS as u32;

/// Redirection entry fields.
const ENTRY_VECTOR: u64 = 0xff;
const ENTRY_DELIVERY_MODE_SHIFT: u32 = 8;
const ENTRY_DEST_MODE_LOGICAL: u64 = 1 << 11;
const ENTRY_DELIVERY_STATUS: u64 = 1 << 12;
const ENTRY_REMOTE_IRR: u64 = 1 << 14;
const ENTRY_TRIGGER_LEVEL: u64 = 1 << 15;
const ENTRY_MASKED: u64 = 1 << 16;
const ENTRY_DEST_SHIFT: u32 = 56;
/// Bits the guest cannot write (delivery status and remote IRR are read-only).
const ENTRY_READ_ONLY: u64 = ENTRY_DELIVERY_STATUS | ENTRY_REMOTE_IRR;

/// MSI address: the local APIC window, destination id in bits 12-19, logical
/// destination mode in bit 2 (Intel SDM vol. 3, "Message Signalled Interrupts").
const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;
const MSI_ADDRESS_DEST_SHIFT: u32 = 12;
const MSI_ADDRESS_DEST_LOGICAL: u32 = 1 << 2;
/// MSI data: vector, delivery mode in bits 8-10, level-assert bit 14, trigger 15.
const MSI_DATA_LEVEL_ASSERT: u32 = 1 << 14;
const MSI_DATA_TRIGGER_LEVEL: u32 = 1 << 15;

/// An MSI message: what KVM_SIGNAL_MSI takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msi {
    pub address: u32,
    pub data: u32,
}

/// The IO-APIC's state (also what a snapshot saves of it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoApic {
    id: u32,
    select: u32,
    entries: [u64; PINS],
    /// Edges that arrived while their pin was masked.
    pending: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        IoApic {
            id: 0,
            select: 0,
            // Every pin starts masked, as after a hardware reset.
            entries: [ENTRY_MASKED; PINS],
            pending: 0,
        }
    }
}

impl IoApic {
    /// Whether `addr` falls in the register window.
    pub fn claims(addr: u64) -> bool {
        (BASE..BASE + SIZE).contains(&addr)
    }

    /// A guest read of `data.len()` bytes at `addr` in the window.
    pub fn read(&self, addr: u64, data: &mut [u8]) {
        let value = match addr - BASE {
            IOREGSEL => self.select,
            IOWIN => self.read_register(self.select),
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    /// A guest write at `addr` in the window. Returns the interrupts that became
    /// deliverable (an edge held back by a mask that the write cleared).
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Vec<Msi> {
        let mut bytes = [0u8; 4];
        for (dst, src) in bytes.iter_mut().zip(data) {
            *dst = *src;
        }
        let value = u32::from_le_bytes(bytes);
        match addr - BASE {
            IOREGSEL => self.select = value & 0xff,
            IOWIN => return self.write_register(self.select, value),
            // No remote-IRR is ever set (see the module doc), so EOI has nothing to clear.
            IOEOI => {}
            _ => {}
        }
        Vec::new()
    }

    /// An edge on `pin`: the message to deliver now, or None when the pin is
    /// masked (then it is delivered on unmask) or does not exist.
    pub fn edge(&mut self, pin: usize) -> Option<Msi> {
        let entry = *self.entries.get(pin)?;
        if entry & ENTRY_MASKED != 0 {
            self.pending |= 1 << pin;
            return None;
        }
        Some(msi_for(entry))
    }

    fn read_register(&self, index: u32) -> u32 {
        match index {
            REG_ID => self.id << 24,
            REG_VERSION => VERSION,
            REG_ARBITRATION => self.id << 24,
            i if i >= REG_REDIR_FIRST => {
                match self.entries.get(((i - REG_REDIR_FIRST) / 2) as usize) {
                    Some(e) if i % 2 == 0 => (*e & 0xffff_ffff) as u32,
                    Some(e) => (*e >> 32) as u32,
                    None => 0,
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, index: u32, value: u32) -> Vec<Msi> {
        match index {
            REG_ID => self.id = (value >> 24) & 0xf,
            i if i >= REG_REDIR_FIRST => {
                let pin = ((i - REG_REDIR_FIRST) / 2) as usize;
                let Some(entry) = self.entries.get_mut(pin) else {
                    return Vec::new();
                };
                let new = if i % 2 == 0 {
                    (*entry & !0xffff_ffff) | value as u64
                } else {
                    (*entry & 0xffff_ffff) | ((value as u64) << 32)
                };
                *entry = (new & !ENTRY_READ_ONLY) | (*entry & ENTRY_READ_ONLY);
                if *entry & ENTRY_MASKED == 0 && self.pending & (1 << pin) != 0 {
                    self.pending &= !(1 << pin);
                    return vec![msi_for(*entry)];
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

/// The MSI message equivalent to a redirection entry.
fn msi_for(entry: u64) -> Msi {
    let dest = ((entry >> ENTRY_DEST_SHIFT) & 0xff) as u32;
    let mut address = MSI_ADDRESS_BASE | (dest << MSI_ADDRESS_DEST_SHIFT);
    if entry & ENTRY_DEST_MODE_LOGICAL != 0 {
        address |= MSI_ADDRESS_DEST_LOGICAL;
    }
    let mode = ((entry >> ENTRY_DELIVERY_MODE_SHIFT) & 0x7) as u32;
    let mut data = (entry & ENTRY_VECTOR) as u32 | (mode << 8) | MSI_DATA_LEVEL_ASSERT;
    if entry & ENTRY_TRIGGER_LEVEL != 0 {
        data |= MSI_DATA_TRIGGER_LEVEL;
    }
    Msi { address, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_reg(io: &mut IoApic, index: u32, value: u32) -> Vec<Msi> {
        io.write(BASE + IOREGSEL, &index.to_le_bytes());
        io.write(BASE + IOWIN, &value.to_le_bytes())
    }

    fn read_reg(io: &mut IoApic, index: u32) -> u32 {
        io.write(BASE + IOREGSEL, &index.to_le_bytes());
        let mut b = [0u8; 4];
        io.read(BASE + IOWIN, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn version_reports_24_pins() {
        let mut io = IoApic::default();
        let v = read_reg(&mut io, REG_VERSION);
        assert_eq!((v >> 16) & 0xff, 23);
        assert_eq!(v & 0xff, 0x20);
    }

    #[test]
    fn pins_start_masked_and_hold_an_edge_until_unmasked() {
        let mut io = IoApic::default();
        assert_eq!(read_reg(&mut io, 0x10 + 2 * 4) & (1 << 16), 1 << 16);
        assert_eq!(io.edge(4), None);
        // Destination APIC 1 (high half), then vector 0x24, fixed, physical, edge, unmasked.
        assert!(write_reg(&mut io, 0x10 + 2 * 4 + 1, 1 << 24).is_empty());
        let delivered = write_reg(&mut io, 0x10 + 2 * 4, 0x24);
        let want = Msi {
            address: 0xfee0_1000,
            data: 0x24 | MSI_DATA_LEVEL_ASSERT,
        };
        assert_eq!(delivered, vec![want]);
        // The held edge was delivered once; the next edge goes straight through.
        assert_eq!(io.edge(4), Some(want));
        assert_eq!(read_reg(&mut io, 0x10 + 2 * 4), 0x24);
        assert_eq!(read_reg(&mut io, 0x10 + 2 * 4 + 1), 1 << 24);
    }

    #[test]
    fn logical_level_entry_sets_the_msi_bits_and_read_only_bits_stay() {
        let mut io = IoApic::default();
        let low = 0x31 | (1 << 8) | (1 << 11) | (1 << 15) | (1 << 12) | (1 << 14);
        write_reg(&mut io, 0x10 + 2 * 9, low);
        // Delivery status and remote IRR are not writable.
        assert_eq!(
            read_reg(&mut io, 0x10 + 2 * 9),
            low & !((1 << 12) | (1 << 14))
        );
        let m = io.edge(9).expect("unmasked pin delivers");
        assert_eq!(m.address, 0xfee0_0000 | MSI_ADDRESS_DEST_LOGICAL);
        assert_eq!(
            m.data,
            0x31 | (1 << 8) | MSI_DATA_LEVEL_ASSERT | MSI_DATA_TRIGGER_LEVEL
        );
    }

    #[test]
    fn out_of_range_pins_and_registers_are_ignored() {
        let mut io = IoApic::default();
        assert_eq!(io.edge(PINS), None);
        assert!(write_reg(&mut io, 0x10 + 2 * PINS_U32, 0).is_empty());
        assert_eq!(read_reg(&mut io, 0x10 + 2 * PINS_U32), 0);
        assert_eq!(read_reg(&mut io, 0x05), 0);
        let mut b = [0u8; 8];
        io.read(BASE + 0x20, &mut b);
        assert_eq!(b, [0; 8]);
    }
}
