//! Guest RAM: its size limits, its regions around the MMIO gap, and the e820 map the
//! guest is told about. The mapping is lazy (anonymous mmap): pages are only backed
//! when the guest or the loader touches them. A booting kernel gets RAM laid out for
//! huge pages ([`create_huge`]).

use crate::error::{Error, MemoryError};
use crate::layout::{EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START};
use std::sync::Arc;
use vm_memory::bitmap::{Bitmap, NewBitmap, WithBitmapSlice};
use vm_memory::mmap::{GuestRegionMmap, MmapRegionBuilder};
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Guest memory type used throughout the monitor.
pub type GuestMemory = GuestMemoryMmap<Backing>;

/// Size of an x86-64 huge page (a 2 MiB PDE / nested-paging entry).
const HUGE_PAGE: usize = 2 << 20;

/// What keeps a guest RAM region mapped. Nothing for the mappings vm-memory owns
/// itself (anonymous ones from [`create`], a snapshot's file); the 2 MiB-aligned
/// mapping of [`create_huge`], which vm-memory cannot make, for the others. It lives
/// in the slot vm-memory keeps per region for a dirty-page bitmap, which vm-memory
/// drops with the region: the mapping goes when the last clone of the memory does.
/// It tracks no dirty pages.
#[derive(Debug, Clone, Default)]
pub struct Backing {
    _mapping: Option<Arc<AlignedMapping>>,
}

/// An anonymous mapping this module made and unmaps.
#[derive(Debug)]
pub struct AlignedMapping {
    start: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory; the pointer is only handed to munmap, once.
unsafe impl Send for AlignedMapping {}
// SAFETY: as for Send: shared references never touch the pointer.
unsafe impl Sync for AlignedMapping {}

impl Drop for AlignedMapping {
    fn drop(&mut self) {
        // SAFETY: `start`/`len` is the mapping `reserve_aligned` made; the regions
        // using it hold this value, so none is left when it drops.
        unsafe { libc::munmap(self.start, self.len) };
    }
}

impl WithBitmapSlice<'_> for Backing {
    type S = ();
}

impl Bitmap for Backing {
    fn mark_dirty(&self, _offset: usize, _len: usize) {}
    fn dirty_at(&self, _offset: usize) -> bool {
        false
    }
    fn slice_at(&self, _offset: usize) {}
}

impl NewBitmap for Backing {
    fn with_len(_len: usize) -> Self {
        Backing { _mapping: None }
    }
}

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

/// Maps guest memory of `bytes` so that every region's host address is 2 MiB-aligned
/// (so KVM can back the guest with huge nested-paging entries: its guest-physical and
/// host addresses agree modulo 2 MiB) and asks for transparent huge pages there.
/// Fewer page faults and nested-paging exits while a kernel boots and fills its
/// memory: in the nested-SVM lane a Linux boot to `done` took 3.30 s instead of 3.82
/// (median of 6 alternating pairs). Not for the tiny built-in guests: each first
/// touch then zeroes 2 MiB.
pub fn create_huge(bytes: u64) -> Result<GuestMemory, Error> {
    let mut regions = Vec::new();
    for (addr, len) in ram_regions(bytes) {
        let mapping = Arc::new(reserve_aligned(len)?);
        let start = mapping.start.cast::<u8>();
        let builder = MmapRegionBuilder::new_with_bitmap(
            len,
            Backing {
                _mapping: Some(mapping),
            },
        )
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE);
        // SAFETY: `start` is `len` readable and writable bytes that stay mapped as
        // long as the region holds their `AlignedMapping` (its bitmap slot).
        let region = unsafe { builder.with_raw_mmap_pointer(start) }
            .build()
            .map_err(|e| Error::GuestMemory(MemoryError::Map(e)))?;
        regions.push(
            GuestRegionMmap::new(region, addr)
                .ok_or(Error::GuestMemory(MemoryError::Overflow(addr.0)))?,
        );
    }
    GuestMemory::from_regions(regions).map_err(|e| Error::GuestMemory(MemoryError::Regions(e)))
}

/// `len` bytes of anonymous memory at a 2 MiB-aligned address, with transparent huge
/// pages asked for: over-reserves by 2 MiB and returns the unaligned ends.
fn reserve_aligned(len: usize) -> Result<AlignedMapping, Error> {
    let failed =
        |len| Error::GuestMemory(MemoryError::Reserve(len, std::io::Error::last_os_error()));
    let whole = len.checked_add(HUGE_PAGE).ok_or_else(|| failed(len))?;
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            whole,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(failed(whole));
    }
    let base = p as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (start - base, whole - (start - base) - len);
    // SAFETY: both ranges lie inside the mapping just made and are not used.
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
        }
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
    }
    let mapping = AlignedMapping {
        start: start as *mut libc::c_void,
        len,
    };
    // A hint: without transparent huge pages (disabled, or `never`) the memory is
    // plain 4 KiB pages and only the alignment is left.
    // SAFETY: advice on the mapping just made.
    unsafe { libc::madvise(mapping.start, len, libc::MADV_HUGEPAGE) };
    Ok(mapping)
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
    fn huge_memory_is_aligned_usable_and_unmapped_with_its_last_clone() {
        use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryRegion};
        let mem = create_huge(128 << 20).unwrap();
        let region = mem.find_region(GuestAddress(0)).unwrap();
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .unwrap();
        assert_eq!(host as usize % HUGE_PAGE, 0);
        mem.write_obj(0xdead_beef_u32, GuestAddress(127 << 20))
            .unwrap();
        let clone = mem.clone();
        drop(mem);
        assert_eq!(
            clone.read_obj::<u32>(GuestAddress(127 << 20)).unwrap(),
            0xdead_beef
        );
        drop(clone);
        // The whole range is gone: mincore refuses unmapped memory.
        let mut vec = vec![0u8; (128 << 20) / 4096];
        // SAFETY: mincore only reads the page table for the range; the vector has a
        // byte per page.
        let r = unsafe { libc::mincore(host.cast(), 128 << 20, vec.as_mut_ptr()) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOMEM)
        );
    }

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
