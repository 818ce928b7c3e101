//! The guest-physical memory layout, in one place. Values follow the x86 PC
//! conventions the Linux boot protocol and PVH expect (and that Firecracker uses).

/// The x86 base page size.
pub const PAGE_SIZE: u64 = 4096;
/// GDT used to enter the guest.
pub const BOOT_GDT_START: u64 = 0x500;
/// IDT (empty) used to enter the guest.
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH `hvm_start_info` structure.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (the initrd), right after the start info.
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map entries.
pub const PVH_MEMMAP_START: u64 = 0x6100;
/// Linux zero page (`boot_params`) for the 64-bit boot protocol.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer for the 64-bit boot protocol.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapping page tables for the 64-bit boot protocol: PML4, PDPT, PD.
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// Kernel command line, and its maximum size (including the NUL).
pub const CMDLINE_START: u64 = 0x20000;
pub const CMDLINE_MAX_SIZE: usize = 4096;
/// Start of the extended BIOS data area; the MP table goes here, and RAM below it
/// is the first e820 entry.
pub const EBDA_START: u64 = 0x9fc00;
/// First byte past the legacy "low memory" (640 KiB .. 1 MiB is the VGA/BIOS hole).
pub const HIMEM_START: u64 = 0x10_0000;
/// Start and size of the 32-bit MMIO gap below 4 GiB (no RAM there).
pub const MMIO_GAP_START: u64 = 0xd000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Firecracker's boot-timer device: the guest writes 123 here (first MMIO slot).
pub const BOOT_TIMER_ADDR: u64 = MMIO_GAP_START;
/// The windows the device manager hands out to MMIO devices (virtio-mmio), one
/// page each, from the page after the boot timer up to the IO-APIC.
pub const MMIO_DEVICES_START: u64 = MMIO_GAP_START + PAGE_SIZE;
pub const MMIO_DEVICE_SIZE: u64 = PAGE_SIZE;
pub const MMIO_DEVICES_END: u64 = IOAPIC_ADDR as u64;
/// The IO-APIC and local APIC MMIO bases (fixed by the in-kernel irqchip).
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const APIC_ADDR: u32 = 0xfee0_0000;
/// KVM's TSS (three pages) and identity map page, placed inside the MMIO gap.
pub const KVM_TSS_ADDR: usize = 0xfffb_d000;
/// Highest address the initrd may end at with the PVH entry (Linux maps the first
/// 1 GiB early; keep the initrd there).
pub const PVH_INITRD_ADDR_MAX: u64 = 0x3fff_ffff;
