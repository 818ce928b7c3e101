//! Fuzz target: `vmm::boot::initrd_start` (where the initrd goes) for arbitrary guest
//! memory sizes, initrd sizes, kernel limits and kernel ends. When it places the
//! initrd, the initrd is page-aligned, above the kernel and 1 MiB, inside RAM below
//! the MMIO gap and the kernel's limit, and as high as it can be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::boot::{initrd_ceiling, initrd_start};
use vmm::layout::{HIMEM_START, MMIO_GAP_START};

const PAGE_SIZE: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let mut words = [0u64; 4];
    for (i, chunk) in data.chunks(8).take(4).enumerate() {
        let mut raw = [0u8; 8];
        raw[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_le_bytes(raw);
    }
    let [mem_bytes, size, addr_max, kernel_end] = words;
    let ceiling = initrd_ceiling(mem_bytes, addr_max);
    assert!(ceiling <= mem_bytes && ceiling <= MMIO_GAP_START);
    if let Some(start) = initrd_start(mem_bytes, size, addr_max, kernel_end) {
        assert_eq!(start % PAGE_SIZE, 0);
        assert!(start >= HIMEM_START && start >= kernel_end);
        let end = start.checked_add(size).expect("end overflows");
        assert!(end <= ceiling);
        assert!(end + PAGE_SIZE > ceiling, "not placed as high as it fits");
    } else if let Some(room) = ceiling.checked_sub(size) {
        // Refused only when the highest aligned start is below the kernel or 1 MiB.
        assert!(room & !(PAGE_SIZE - 1) < kernel_end.max(HIMEM_START));
    }
});
