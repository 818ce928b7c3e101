//! The local APIC's set-up: LINT0 delivers the legacy PIC's interrupts (ExtINT),
//! LINT1 NMIs, as on a PC.

use crate::error::Error;
use kvm_ioctls::VcpuFd;

/// Local APIC register offsets and LVT delivery modes.
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Sets LINT0 to ExtINT and LINT1 to NMI in `vcpu`'s local APIC.
pub fn set_lint(vcpu: &VcpuFd) -> Result<(), Error> {
    let mut lapic = vcpu.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
    set_lvt_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_lvt_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(Error::kvm("KVM_SET_LAPIC"))
}

fn set_lvt_mode(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let mut raw = [0u8; 4];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = regs[offset + i].to_ne_bytes()[0];
    }
    let v = (u32::from_le_bytes(raw) & !0x700) | (mode << 8);
    for (i, b) in v.to_le_bytes().iter().enumerate() {
        regs[offset + i] = std::os::raw::c_char::from_ne_bytes([*b]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvt_mode_is_set_in_place() {
        let mut regs = [0 as std::os::raw::c_char; 1024];
        regs[APIC_LVT0] = 0x10; // vector bits survive
        set_lvt_mode(&mut regs, APIC_LVT0, APIC_MODE_EXTINT);
        assert_eq!(regs[APIC_LVT0], 0x10);
        assert_eq!(regs[APIC_LVT0 + 1], 0x07);
    }
}
