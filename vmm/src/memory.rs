//! Guest RAM: its size limits, its regions around the MMIO gap, and the e820 map the
//! guest is told about. The mapping is lazy (anonymous mmap): pages are only backed
//! when the guest or the loader touches them.

use crate::error::{Error, MemoryError};
use crate::layout::{EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START};
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Guest memory type used throughout the monitor.
pub type GuestMemory = GuestMemoryMmap<()>;

/// Smallest guest memory accepted: room for the boot structures, a small kernel and
/// its initrd.
pub const MIN_MEM_MIB: u64 = 8;

/// e820 entry types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// One entry of the e820 map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// Checks a requested size against the minimum and the host's physical memory.
pub fn check_size(mib: u64, host_mem_bytes: Option<u64>) -> Result<u64, Error> {
    if mib < MIN_MEM_MIB {
        return Err(Error::MemorySize {
            mib,
            why: format!("at least {MIN_MEM_MIB} MiB is needed"),
        });
    }
    let bytes = mib.checked_mul(1 << 20).ok_or_else(|| Error::MemorySize {
        mib,
        why: "too large".into(),
    })?;
    if let Some(host) = host_mem_bytes {
        if bytes > host {
            return Err(Error::MemorySize {
                mib,
                why: format!("the host has only {} MiB of RAM", host >> 20),
            });
        }
    }
    Ok(bytes)
}

/// Total RAM of the host (sysinfo(2), the MemTotal of /proc/meminfo).
pub fn host_mem_bytes() -> Option<u64> {
    // sysinfo(2) is one system call; reading /proc/meminfo is three and formats every
    // counter the kernel has.
    // SAFETY: an all-zero sysinfo is a valid out-parameter.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable sysinfo.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    (info.totalram as u64).checked_mul(info.mem_unit.max(1) as u64)
}

/// The RAM regions for `bytes` of memory: below the MMIO gap, and the rest above 4 GiB.
#[allow(clippy::cast_possible_truncation)] // KVM x86-64 hosts only: usize is 64 bits
pub fn ram_regions(bytes: u64) -> Vec<(GuestAddress, usize)> {
    if bytes <= MMIO_GAP_START {
        vec![(GuestAddress(0), bytes as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (
                GuestAddress(MMIO_GAP_END),
                (bytes - MMIO_GAP_START) as usize,
            ),
        ]
    }
}

/// Maps guest memory of `bytes` (already checked by [`check_size`]).
pub fn create(bytes: u64) -> Result<GuestMemory, Error> {
    GuestMemoryMmap::from_ranges(&ram_regions(bytes))
        .map_err(|e| Error::GuestMemory(MemoryError::Ranges(e)))
}

/// The e820 map for `bytes` of RAM: low memory up to the EBDA, then RAM from 1 MiB
/// up to the MMIO gap, then RAM above 4 GiB.
pub fn e820_map(bytes: u64) -> Vec<E820Entry> {
    let mut map = vec![E820Entry {
        addr: 0,
        size: EBDA_START,
        kind: E820_RAM,
    }];
    let low_end = bytes.min(MMIO_GAP_START);
    map.push(E820Entry {
        addr: HIMEM_START,
        size: low_end - HIMEM_START,
        kind: E820_RAM,
    });
    if bytes > MMIO_GAP_START {
        map.push(E820Entry {
            addr: MMIO_GAP_END,
            size: bytes - MMIO_GAP_START,
            kind: E820_RAM,
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bounds() {
        assert!(check_size(0, None).is_err());
        assert!(check_size(MIN_MEM_MIB - 1, None).is_err());
        assert_eq!(check_size(128, None).unwrap(), 128 << 20);
        let e = check_size(4096, Some(1 << 30)).unwrap_err().to_string();
        assert!(e.contains("only 1024 MiB"), "{e}");
        assert!(check_size(u64::MAX, None).is_err());
    }

    #[test]
    fn small_memory_is_one_region_and_two_e820_entries() {
        let bytes = 128 << 20;
        assert_eq!(
            ram_regions(bytes),
            vec![(GuestAddress(0), usize::try_from(bytes).unwrap())]
        );
        let map = e820_map(bytes);
        assert_eq!(map.len(), 2);
        assert_eq!(
            map[0],
            E820Entry {
                addr: 0,
                size: 0x9fc00,
                kind: E820_RAM
            }
        );
        assert_eq!(map[1].addr, 0x10_0000);
        assert_eq!(map[1].addr + map[1].size, bytes);
    }

    #[test]
    fn large_memory_skips_the_mmio_gap() {
        let bytes = 4u64 << 30;
        let regions = ram_regions(bytes);
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].1 as u64, MMIO_GAP_START);
        assert_eq!(regions[1].0, GuestAddress(MMIO_GAP_END));
        let total: u64 = regions.iter().map(|r| r.1 as u64).sum();
        assert_eq!(total, bytes);
        let map = e820_map(bytes);
        assert_eq!(map.len(), 3);
        assert_eq!(map[1].addr + map[1].size, MMIO_GAP_START);
        assert_eq!(map[2].addr, MMIO_GAP_END);
        assert_eq!(map[2].size, bytes - MMIO_GAP_START);
        // No RAM entry overlaps the gap.
        for e in &map {
            assert!(e.addr + e.size <= MMIO_GAP_START || e.addr >= MMIO_GAP_END);
        }
    }
}
