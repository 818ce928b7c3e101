//! Loading what the guest boots: the kernel (ELF vmlinux, entered through its PVH
//! note when it has one and else through the 64-bit Linux boot protocol; or a
//! bzImage through the 64-bit protocol), the initrd, the command line, and the boot
//! structures each protocol reads (PVH `hvm_start_info` + memory map, or the Linux
//! zero page).

use crate::error::Error;
use crate::layout::*;
use crate::memory::{e820_map, GuestMemory};
use linux_loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{load_cmdline, KernelLoader, KernelLoaderResult};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use vm_memory::{Address, Bytes, GuestAddress};

/// PVH start-info magic (xen/include/public/arch-x86/hvm/start_info.h).
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// Linux boot protocol: "HdrS" signature, boot flag, loader id "undefined".
const LINUX_HDRS_MAGIC: u32 = 0x5372_6448;
const LINUX_BOOT_FLAG: u16 = 0xaa55;
const LINUX_LOADER_UNDEFINED: u8 = 0xff;
/// Default `initrd_addr_max` when a kernel gives none (boot protocol < 2.03).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
/// ELF identification facts checked before handing the file to the loader.
const ELFCLASS64: u8 = 2;
const EM_X86_64: u16 = 62;
const PAGE_SIZE: u64 = 4096;

/// How the vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// PVH: 32-bit protected mode, paging off, EBX = start info.
    Pvh(GuestAddress),
    /// 64-bit Linux boot protocol: long mode, identity map, RSI = zero page.
    Linux64(GuestAddress),
}

/// What the loader produced.
#[derive(Debug, Clone)]
pub struct BootSetup {
    pub entry: Entry,
    pub kernel_end: u64,
    pub initrd: Option<(GuestAddress, u64)>,
}

/// Where the kernel image comes from.
#[derive(Debug, Clone)]
pub enum KernelSource {
    /// A file: ELF vmlinux or bzImage.
    File(PathBuf),
    /// Bytes in the monitor (the embedded lab guest).
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl KernelSource {
    fn name(&self) -> PathBuf {
        match self {
            KernelSource::File(p) => p.clone(),
            KernelSource::Embedded { name, .. } => PathBuf::from(name),
        }
    }
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::BadKernel {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// The kind of a kernel image, recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Elf,
    BzImage,
}

/// Recognises an x86-64 ELF or a bzImage, or says why the bytes are neither.
pub fn detect(bytes: &[u8]) -> Result<ImageKind, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if bytes.starts_with(b"\x7fELF") {
        if bytes.len() < 64 {
            return Err("truncated ELF header".into());
        }
        if bytes[4] != ELFCLASS64 {
            return Err("a 32-bit ELF".into());
        }
        let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
        if machine != EM_X86_64 {
            return Err(format!(
                "an ELF for another architecture (e_machine {machine})"
            ));
        }
        return Ok(ImageKind::Elf);
    }
    if bytes.len() > 0x206 && bytes[0x202..0x206] == LINUX_HDRS_MAGIC.to_le_bytes() {
        return Ok(ImageKind::BzImage);
    }
    Err("no ELF magic and no Linux \"HdrS\" boot header".into())
}

/// Loads the kernel, the command line, the initrd and the boot structures.
pub fn load(
    mem: &GuestMemory,
    mem_bytes: u64,
    kernel: &KernelSource,
    initrd: Option<&Path>,
    cmdline: &str,
) -> Result<BootSetup, Error> {
    let name = kernel.name();
    let owned;
    let bytes: &[u8] = match kernel {
        KernelSource::File(p) => {
            owned = std::fs::read(p).map_err(|source| Error::ReadFile {
                path: p.to_path_buf(),
                source,
            })?;
            &owned
        }
        KernelSource::Embedded { bytes, .. } => bytes,
    };
    load_image(mem, mem_bytes, &name, bytes, initrd, cmdline)
}

/// [`load`] for a kernel image already in memory; `name` only appears in errors.
pub fn load_image(
    mem: &GuestMemory,
    mem_bytes: u64,
    name: &Path,
    bytes: &[u8],
    initrd: Option<&Path>,
    cmdline: &str,
) -> Result<BootSetup, Error> {
    let name = name.to_path_buf();
    let kind = detect(bytes).map_err(|why| bad(&name, why))?;
    let mut image = Cursor::new(bytes);
    let highmem = Some(GuestAddress(HIMEM_START));
    let result: KernelLoaderResult = match kind {
        ImageKind::Elf => Elf::load(mem, None, &mut image, highmem),
        ImageKind::BzImage => BzImage::load(mem, None, &mut image, highmem),
    }
    .map_err(|e| bad(&name, format!("loading failed: {e}")))?;

    let mut cl = Cmdline::new(CMDLINE_MAX_SIZE).map_err(|e| Error::Cmdline(e.to_string()))?;
    if !cmdline.trim().is_empty() {
        cl.insert_str(cmdline.trim())
            .map_err(|e| Error::Cmdline(e.to_string()))?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cl)
        .map_err(|e| Error::Cmdline(e.to_string()))?;
    let cmdline_len = cl.as_cstring().map(|c| c.as_bytes().len()).unwrap_or(0);

    let pvh = match result.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => Some(addr),
        _ => None,
    };
    let initrd_max = match (&result.setup_header, pvh) {
        (_, Some(_)) => PVH_INITRD_ADDR_MAX,
        (Some(h), None) if h.initrd_addr_max != 0 => h.initrd_addr_max as u64,
        _ => DEFAULT_INITRD_ADDR_MAX,
    };
    // linux-loader's kernel_end is already an address (load address + size).
    let kernel_end = result.kernel_end;
    let initrd = match initrd {
        Some(p) => Some(load_initrd(mem, mem_bytes, p, initrd_max, kernel_end)?),
        None => None,
    };

    let entry = if let Some(addr) = pvh {
        write_pvh_start_info(mem, mem_bytes, initrd)?;
        Entry::Pvh(addr)
    } else {
        let entry = match kind {
            // The 64-bit entry of a bzImage is 0x200 past the protected-mode code.
            ImageKind::BzImage => result.kernel_load.unchecked_add(0x200),
            ImageKind::Elf => GuestAddress(elf_entry(bytes)),
        };
        write_zero_page(mem, mem_bytes, &result, cmdline_len, initrd)?;
        Entry::Linux64(entry)
    };
    Ok(BootSetup {
        entry,
        kernel_end,
        initrd,
    })
}

fn elf_entry(bytes: &[u8]) -> u64 {
    // e_entry of an ELF64 header, at offset 24; `detect` checked the length.
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[24..32]);
    // vmlinux's entry is a virtual address in the kernel map; the 64-bit boot
    // protocol enters at its physical alias (identity map of the first GiB).
    u64::from_le_bytes(raw) & 0x3fff_ffff
}

/// Top address (exclusive) the initrd can end at: end of low RAM, capped by the
/// kernel's limit.
pub fn initrd_ceiling(mem_bytes: u64, initrd_addr_max: u64) -> u64 {
    mem_bytes
        .min(MMIO_GAP_START)
        .min(initrd_addr_max.saturating_add(1))
}

/// Where an initrd of `size` bytes starts: as high as it fits below
/// [`initrd_ceiling`], page-aligned, and not below the kernel's end or 1 MiB; `None`
/// when there is no such room.
pub fn initrd_start(
    mem_bytes: u64,
    size: u64,
    initrd_addr_max: u64,
    kernel_end: u64,
) -> Option<u64> {
    let ceiling = initrd_ceiling(mem_bytes, initrd_addr_max);
    let start = ceiling.checked_sub(size)? & !(PAGE_SIZE - 1);
    (start >= kernel_end.max(HIMEM_START)).then_some(start)
}

fn load_initrd(
    mem: &GuestMemory,
    mem_bytes: u64,
    path: &Path,
    initrd_addr_max: u64,
    kernel_end: u64,
) -> Result<(GuestAddress, u64), Error> {
    let data = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let size = data.len() as u64;
    let ceiling = initrd_ceiling(mem_bytes, initrd_addr_max);
    let too_large = || Error::InitrdTooLarge {
        path: path.to_path_buf(),
        size,
        limit: ceiling,
    };
    let start = initrd_start(mem_bytes, size, initrd_addr_max, kernel_end).ok_or_else(too_large)?;
    mem.write_slice(&data, GuestAddress(start))
        .map_err(|e| Error::BootData(format!("initrd: {e}")))?;
    Ok((GuestAddress(start), size))
}

fn write_pvh_start_info(
    mem: &GuestMemory,
    mem_bytes: u64,
    initrd: Option<(GuestAddress, u64)>,
) -> Result<(), Error> {
    let map = e820_map(mem_bytes);
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    if let Some((addr, size)) = initrd {
        let module = hvm_modlist_entry {
            paddr: addr.raw_value(),
            size,
            ..Default::default()
        };
        mem.write_obj(module, GuestAddress(PVH_MODLIST_START))
            .map_err(|e| Error::BootData(e.to_string()))?;
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_START;
    }
    for (i, e) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        };
        let at = PVH_MEMMAP_START + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
        mem.write_obj(entry, GuestAddress(at))
            .map_err(|e| Error::BootData(e.to_string()))?;
    }
    mem.write_obj(info, GuestAddress(PVH_INFO_START))
        .map_err(|e| Error::BootData(e.to_string()))
}

/// Builds the zero page (`boot_params`) for the 64-bit boot protocol.
pub fn zero_page(
    mem_bytes: u64,
    result: &KernelLoaderResult,
    cmdline_len: usize,
    initrd: Option<(GuestAddress, u64)>,
) -> boot_params {
    let mut params = boot_params::default();
    if let Some(hdr) = result.setup_header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = LINUX_LOADER_UNDEFINED;
    params.hdr.boot_flag = LINUX_BOOT_FLAG;
    params.hdr.header = LINUX_HDRS_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if params.hdr.kernel_alignment == 0 {
        params.hdr.kernel_alignment = 0x100_0000;
    }
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr.raw_value() as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    let map = e820_map(mem_bytes);
    for (i, e) in map.iter().enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    params
}

fn write_zero_page(
    mem: &GuestMemory,
    mem_bytes: u64,
    result: &KernelLoaderResult,
    cmdline_len: usize,
    initrd: Option<(GuestAddress, u64)>,
) -> Result<(), Error> {
    let params = zero_page(mem_bytes, result, cmdline_len, initrd);
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(|e| Error::BootData(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory;

    #[test]
    fn detect_rejects_what_is_not_a_kernel() {
        assert!(detect(b"").unwrap_err().contains("empty"));
        assert!(detect(b"#!/bin/sh\necho hi\n")
            .unwrap_err()
            .contains("no ELF"));
        let mut arm = crate::lab::ELF.to_vec();
        arm[18] = 183; // EM_AARCH64
        assert!(detect(&arm).unwrap_err().contains("another architecture"));
        let mut elf32 = crate::lab::ELF.to_vec();
        elf32[4] = 1;
        assert!(detect(&elf32).unwrap_err().contains("32-bit"));
        assert_eq!(detect(crate::lab::ELF), Ok(ImageKind::Elf));
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(detect(&bz), Ok(ImageKind::BzImage));
    }

    #[test]
    fn lab_guest_loads_with_pvh_start_info() {
        let bytes = 64u64 << 20;
        let mem = memory::create(bytes).unwrap();
        let image = KernelSource::Embedded {
            name: "lab",
            bytes: crate::lab::ELF,
        };
        let setup = load(&mem, bytes, &image, None, "console=ttyS0").unwrap();
        assert_eq!(setup.entry, Entry::Pvh(GuestAddress(0x10_0000)));
        // The end of the loaded image, a few KiB past its load address (not the load
        // address added twice).
        assert!(
            setup.kernel_end > 0x10_0000 && setup.kernel_end < 0x11_0000,
            "{:#x}",
            setup.kernel_end
        );
        let info: hvm_start_info = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(info.magic, XEN_HVM_START_MAGIC);
        assert_eq!(info.memmap_entries, 2);
        assert_eq!(info.nr_modules, 0);
        let second: hvm_memmap_table_entry = mem
            .read_obj(GuestAddress(
                info.memmap_paddr + std::mem::size_of::<hvm_memmap_table_entry>() as u64,
            ))
            .unwrap();
        assert_eq!(second.addr, HIMEM_START);
        assert_eq!(second.addr + second.size, bytes);
        let mut cmd = [0u8; 14];
        mem.read_slice(&mut cmd, GuestAddress(CMDLINE_START))
            .unwrap();
        assert_eq!(&cmd, b"console=ttyS0\0");
    }

    #[test]
    fn initrd_goes_high_and_page_aligned() {
        let bytes = 64u64 << 20;
        let mem = memory::create(bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("vmm-initrd-{}", std::process::id()));
        std::fs::write(&dir, vec![7u8; 10_000]).unwrap();
        let image = KernelSource::Embedded {
            name: "lab",
            bytes: crate::lab::ELF,
        };
        let setup = load(&mem, bytes, &image, Some(&dir), "").unwrap();
        let (addr, size) = setup.initrd.unwrap();
        assert_eq!(size, 10_000);
        assert_eq!(addr.raw_value() % PAGE_SIZE, 0);
        assert!(addr.raw_value() + size <= bytes);
        assert!(addr.raw_value() + size + PAGE_SIZE > bytes);
        let info: hvm_start_info = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(info.nr_modules, 1);
        let m: hvm_modlist_entry = mem.read_obj(GuestAddress(info.modlist_paddr)).unwrap();
        assert_eq!((m.paddr, m.size), (addr.raw_value(), size));
        // A too-large initrd is refused with the file named.
        std::fs::write(&dir, vec![0u8; 70 << 20]).unwrap();
        let e = load(&mem, bytes, &image, Some(&dir), "").unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        std::fs::remove_file(&dir).ok();
    }

    #[test]
    fn initrd_start_is_the_highest_aligned_room_above_the_kernel() {
        let mib = 1u64 << 20;
        // 64 MiB of RAM, a 10 000-byte initrd: the last page(s) of RAM.
        assert_eq!(
            initrd_start(64 * mib, 10_000, u64::from(u32::MAX), 2 * mib),
            Some((64 * mib - 10_000) & !(PAGE_SIZE - 1))
        );
        // The kernel's limit wins over RAM; no room above the kernel is None.
        assert_eq!(
            initrd_start(64 * mib, 4096, 16 * mib - 1, 0),
            Some(16 * mib - 4096)
        );
        assert_eq!(initrd_start(64 * mib, 8 * mib, u64::MAX, 60 * mib), None);
        assert_eq!(initrd_start(64 * mib, 65 * mib, u64::MAX, 0), None);
        // Extreme limits neither overflow nor panic.
        assert_eq!(initrd_ceiling(u64::MAX, u64::MAX), MMIO_GAP_START);
    }

    #[test]
    fn zero_page_has_protocol_fields_and_e820() {
        let result = KernelLoaderResult::default();
        let p = zero_page(
            256 << 20,
            &result,
            20,
            Some((GuestAddress(0x800_0000), 4096)),
        );
        assert_eq!({ p.hdr.boot_flag }, LINUX_BOOT_FLAG);
        assert_eq!({ p.hdr.header }, LINUX_HDRS_MAGIC);
        assert_eq!({ p.hdr.type_of_loader }, LINUX_LOADER_UNDEFINED);
        assert_eq!({ p.hdr.cmd_line_ptr }, CMDLINE_START as u32);
        assert_eq!({ p.hdr.ramdisk_image }, 0x800_0000);
        assert_eq!({ p.hdr.ramdisk_size }, 4096);
        assert_eq!(p.e820_entries, 2);
        let e1 = p.e820_table[1];
        assert_eq!(
            ({ e1.addr }, { e1.size }),
            (HIMEM_START, (256 << 20) - HIMEM_START)
        );
    }
}
