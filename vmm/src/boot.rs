//! Loading what the guest boots: the kernel (ELF vmlinux, entered through its PVH
//! note when it has one and else through the 64-bit Linux boot protocol; or a
//! bzImage through the 64-bit protocol), the initrd, the command line, and the boot
//! structures each protocol reads (PVH `hvm_start_info` + memory map, or the Linux
//! zero page).

use crate::error::{CmdlineError, Error};
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
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use vm_memory::{Address, Bytes, GuestAddress, ReadVolatile};

/// PVH start-info magic (xen/include/public/arch-x86/hvm/start_info.h).
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// Linux boot protocol: "HdrS" signature, boot flag, loader id "undefined".
const LINUX_HDRS_MAGIC: u32 = 0x5372_6448;
const LINUX_BOOT_FLAG: u16 = 0xaa55;
const LINUX_LOADER_UNDEFINED: u8 = 0xff;
/// Default `initrd_addr_max` when a kernel gives none (boot protocol < 2.03).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
/// ELF identification facts checked before handing the file to the loader
/// (System V gABI, "ELF Header"): class and data encoding bytes of `e_ident`, the
/// header and program header sizes of ELF64, and `PT_LOAD`.
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_X86_64: u16 = 62;
const ELF64_EHDR_SIZE: usize = 64;
const ELF64_PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
/// Machine numbers (`e_machine`) named in errors about a kernel for another CPU.
const ELF_MACHINES: [(u16, &str); 10] = [
    (3, "i386"),
    (8, "MIPS"),
    (20, "PowerPC"),
    (21, "PowerPC 64"),
    (22, "s390"),
    (40, "ARM"),
    (50, "IA-64"),
    (183, "AArch64"),
    (243, "RISC-V"),
    (258, "LoongArch"),
];
/// bzImage setup header offsets (Documentation/arch/x86/boot.rst): setup sectors,
/// protocol version, load flags, xloadflags; `LOADED_HIGH` and `XLF_KERNEL_64`.
const BZ_SETUP_SECTS: usize = 0x1f1;
const BZ_VERSION: usize = 0x206;
const BZ_LOADFLAGS: usize = 0x211;
const BZ_XLOADFLAGS: usize = 0x236;
const BZ_HEADER_END: usize = 0x238;
const BZ_LOADED_HIGH: u8 = 0x1;
const BZ_XLF_KERNEL_64: u16 = 0x1;
/// Boot protocol 2.12: the first with xloadflags (and so a declared 64-bit entry).
const BZ_MIN_VERSION: u16 = 0x020c;
/// Bytes read from the start of a kernel file to recognise it (ELF header, bzImage
/// setup header).
const HEAD_BYTES: u64 = 4096;
const SECTOR: u64 = 512;

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

/// Maps a failed guest-memory write of `what` to [`Error::BootData`].
pub(crate) fn boot_data(what: &'static str) -> impl FnOnce(vm_memory::GuestMemoryError) -> Error {
    move |source| Error::BootData { what, source }
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

/// Recognises an x86-64 ELF or a bzImage from the first bytes of the file (at least
/// its first `HEAD_BYTES` when it is that long), or says why they are neither.
pub fn detect(bytes: &[u8]) -> Result<ImageKind, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if b"\x7fELF".starts_with(&bytes[..bytes.len().min(4)]) {
        if bytes.len() < ELF64_EHDR_SIZE {
            return Err(format!(
                "truncated ELF header ({} of {ELF64_EHDR_SIZE} bytes)",
                bytes.len()
            ));
        }
        let machine = if bytes[5] == ELFDATA2LSB {
            u16::from_le_bytes([bytes[18], bytes[19]])
        } else {
            u16::from_be_bytes([bytes[18], bytes[19]])
        };
        let arch = ELF_MACHINES
            .iter()
            .find(|(m, _)| *m == machine)
            .map_or(String::new(), |(_, n)| format!(", {n}"));
        if machine != EM_X86_64 {
            return Err(format!(
                "an ELF for another architecture (e_machine {machine}{arch})"
            ));
        }
        if bytes[4] != ELFCLASS64 {
            return Err("a 32-bit ELF".into());
        }
        if bytes[5] != ELFDATA2LSB {
            return Err("a big-endian ELF".into());
        }
        return Ok(ImageKind::Elf);
    }
    if bytes.len() > 0x206 && bytes[0x202..0x206] == LINUX_HDRS_MAGIC.to_le_bytes() {
        return Ok(ImageKind::BzImage);
    }
    Err("no ELF magic and no Linux \"HdrS\" boot header".into())
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(raw)
}

/// Checks that an x86-64 ELF (`head` = its first bytes, `len` = its size) is whole
/// and fits: the program headers and every segment's bytes are inside the file, the
/// section headers too (they come last, so a cut file loses them first), and every
/// `PT_LOAD` segment lands in the guest's low RAM.
pub fn check_elf(
    head: &[u8],
    image: &mut (impl Read + Seek),
    len: u64,
    mem_bytes: u64,
) -> Result<(), String> {
    let (phoff, shoff) = (le64(head, 32), le64(head, 40));
    let (phentsize, phnum) = (le16(head, 54) as u64, le16(head, 56) as u64);
    let (shentsize, shnum) = (le16(head, 58) as u64, le16(head, 60) as u64);
    if phnum == 0 {
        return Err("an ELF without program headers (nothing to load)".into());
    }
    if phentsize != ELF64_PHDR_SIZE as u64 {
        return Err(format!(
            "program header size {phentsize} (ELF64 has {ELF64_PHDR_SIZE})"
        ));
    }
    let truncated = |what: &str, end: Option<u64>| match end {
        Some(end) if end <= len => Ok(()),
        Some(end) => Err(format!(
            "truncated: {what} end at byte {end} but the file has {len} bytes"
        )),
        None => Err(format!("{what} lie beyond any file (offset overflow)")),
    };
    truncated(
        "the program headers",
        phnum
            .checked_mul(phentsize)
            .and_then(|n| n.checked_add(phoff)),
    )?;
    if shnum > 0 {
        truncated(
            "the section headers",
            shnum
                .checked_mul(shentsize)
                .and_then(|n| n.checked_add(shoff)),
        )?;
    }
    let table_len = usize::try_from(phnum * phentsize)
        .map_err(|_| "the program headers do not fit in memory".to_owned())?;
    let mut table = vec![0u8; table_len];
    image
        .seek(SeekFrom::Start(phoff))
        .and_then(|_| image.read_exact(&mut table))
        .map_err(|e| format!("reading the program headers: {e}"))?;
    let low_ram = mem_bytes.min(MMIO_GAP_START);
    for (i, ph) in table.chunks_exact(ELF64_PHDR_SIZE).enumerate() {
        let (kind, offset, paddr) = (le32(ph, 0), le64(ph, 8), le64(ph, 24));
        let (filesz, memsz) = (le64(ph, 32), le64(ph, 40));
        if filesz > 0 {
            truncated(&format!("segment {i}'s bytes"), offset.checked_add(filesz))?;
        }
        if kind == PT_LOAD && filesz > 0 {
            match paddr.checked_add(memsz.max(filesz)) {
                Some(end) if end <= low_ram => {}
                end => {
                    return Err(format!(
                    "segment {i} is loaded at {paddr:#x}..{:#x}, beyond the guest's {} MiB of RAM",
                    end.unwrap_or(u64::MAX),
                    mem_bytes >> 20
                ))
                }
            }
        }
    }
    Ok(())
}

/// Checks a bzImage's setup header (`head` = its first bytes, `len` = its size): a
/// 64-bit kernel of boot protocol 2.12 or later, loaded high, with a protected-mode
/// part after its setup sectors that fits in the guest's low RAM.
pub fn check_bzimage(head: &[u8], len: u64, mem_bytes: u64) -> Result<(), String> {
    if head.len() < BZ_HEADER_END {
        return Err(format!(
            "truncated bzImage: {} bytes, the setup header alone takes {BZ_HEADER_END}",
            head.len()
        ));
    }
    let version = le16(head, BZ_VERSION);
    if version < BZ_MIN_VERSION {
        return Err(format!(
            "boot protocol {}.{:02} is too old (2.12 or later has the 64-bit entry)",
            version >> 8,
            version & 0xff
        ));
    }
    if head[BZ_LOADFLAGS] & BZ_LOADED_HIGH == 0 {
        return Err("a zImage (not loaded high); only bzImage is supported".into());
    }
    if le16(head, BZ_XLOADFLAGS) & BZ_XLF_KERNEL_64 == 0 {
        return Err("not a 64-bit kernel (XLF_KERNEL_64 is clear)".into());
    }
    // setup_sects 0 means 4 (boot.rst); the boot sector itself is one more.
    let setup = match head[BZ_SETUP_SECTS] {
        0 => 4,
        n => n as u64,
    };
    let kernel_at = (setup + 1) * SECTOR;
    if len <= kernel_at {
        return Err(format!(
            "truncated bzImage: {len} bytes, but its protected-mode kernel starts at byte {kernel_at} (header only?)"
        ));
    }
    let need = HIMEM_START + (len - kernel_at);
    if need > mem_bytes.min(MMIO_GAP_START) {
        return Err(format!(
            "the kernel ({} bytes) does not fit in the guest's {} MiB of RAM",
            len - kernel_at,
            mem_bytes >> 20
        ));
    }
    Ok(())
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
    match kernel {
        KernelSource::File(p) => {
            let read_err = |source| Error::ReadFile {
                path: p.to_path_buf(),
                source,
            };
            let mut file = std::fs::File::open(p).map_err(read_err)?;
            let len = file.metadata().map_err(read_err)?.len();
            let loaded =
                load_kernel(mem, mem_bytes, &mut file, len).map_err(|why| bad(&name, why))?;
            finish_load(mem, mem_bytes, loaded, initrd, cmdline)
        }
        KernelSource::Embedded { bytes, .. } => {
            load_image(mem, mem_bytes, &name, bytes, initrd, cmdline)
        }
    }
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
    let len = bytes.len() as u64;
    let loaded =
        load_kernel(mem, mem_bytes, &mut Cursor::new(bytes), len).map_err(|why| bad(name, why))?;
    finish_load(mem, mem_bytes, loaded, initrd, cmdline)
}

/// The rest of [`load`] once the kernel is in guest memory: command line, initrd
/// and the boot structures of the entry the image asks for.
fn finish_load(
    mem: &GuestMemory,
    mem_bytes: u64,
    (result, kind, head): (KernelLoaderResult, ImageKind, Vec<u8>),
    initrd: Option<&Path>,
    cmdline: &str,
) -> Result<BootSetup, Error> {
    if cmdline.trim().len() >= CMDLINE_MAX_SIZE {
        return Err(Error::Cmdline(CmdlineError::TooLong {
            len: cmdline.trim().len(),
            max: CMDLINE_MAX_SIZE - 1,
        }));
    }
    if let Some(c) = cmdline.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(Error::Cmdline(CmdlineError::NotPrintable(c)));
    }
    let builder = |e| Error::Cmdline(CmdlineError::Builder(e));
    let mut cl = Cmdline::new(CMDLINE_MAX_SIZE).map_err(builder)?;
    if !cmdline.trim().is_empty() {
        cl.insert_str(cmdline.trim()).map_err(builder)?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cl)
        .map_err(|e| Error::Cmdline(CmdlineError::Load(e)))?;
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
            ImageKind::Elf => GuestAddress(elf_entry(&head)),
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

/// Recognises, checks and loads a kernel image of `len` bytes into guest memory;
/// returns the loader's result, the kind, and the image's first bytes. Only the
/// headers are read up front: a huge file is never read whole.
fn load_kernel<F: Read + ReadVolatile + Seek>(
    mem: &GuestMemory,
    mem_bytes: u64,
    image: &mut F,
    len: u64,
) -> Result<(KernelLoaderResult, ImageKind, Vec<u8>), String> {
    let mut head = Vec::new();
    image
        .by_ref()
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| format!("reading: {e}"))?;
    let kind = detect(&head)?;
    match kind {
        ImageKind::Elf => check_elf(&head, image, len, mem_bytes)?,
        ImageKind::BzImage => check_bzimage(&head, len, mem_bytes)?,
    }
    image.rewind().map_err(|e| format!("seeking: {e}"))?;
    let highmem = Some(GuestAddress(HIMEM_START));
    let result = match kind {
        ImageKind::Elf => Elf::load(mem, None, image, highmem),
        ImageKind::BzImage => BzImage::load(mem, None, image, highmem),
    }
    .map_err(|e| format!("loading failed: {e}"))?;
    Ok((result, kind, head))
}

fn elf_entry(head: &[u8]) -> u64 {
    // e_entry of an ELF64 header, at offset 24; `detect` checked the length.
    // vmlinux's entry is a virtual address in the kernel map; the 64-bit boot
    // protocol enters at its physical alias (identity map of the first GiB).
    le64(head, 24) & 0x3fff_ffff
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
    let read_err = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    // The size is checked before anything is read: a huge (or sparse) file is
    // refused without being read into memory.
    let size = file.metadata().map_err(read_err)?.len();
    let ceiling = initrd_ceiling(mem_bytes, initrd_addr_max);
    let too_large = || Error::InitrdTooLarge {
        path: path.to_path_buf(),
        size,
        limit: ceiling,
    };
    let start = initrd_start(mem_bytes, size, initrd_addr_max, kernel_end).ok_or_else(too_large)?;
    let len = usize::try_from(size).map_err(|_| too_large())?;
    mem.read_exact_volatile_from(GuestAddress(start), &mut file, len)
        .map_err(|source| Error::InitrdLoad {
            path: path.to_path_buf(),
            source,
        })?;
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
        memmap_entries: u32::try_from(map.len()).map_err(|_| Error::E820Entries(map.len()))?,
        ..Default::default()
    };
    if let Some((addr, size)) = initrd {
        let module = hvm_modlist_entry {
            paddr: addr.raw_value(),
            size,
            ..Default::default()
        };
        mem.write_obj(module, GuestAddress(PVH_MODLIST_START))
            .map_err(boot_data("the PVH module list"))?;
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
            .map_err(boot_data("the PVH memory map"))?;
    }
    mem.write_obj(info, GuestAddress(PVH_INFO_START))
        .map_err(boot_data("the PVH start info"))
}

/// Builds the zero page (`boot_params`) for the 64-bit boot protocol.
// Every narrowed value is bounded: the command line sits at CMDLINE_START (below
// 1 MiB) and is checked against the kernel's size limit, the initrd is placed below
// initrd_addr_max (a 32-bit header field), and the e820 map has at most 4 entries.
#[allow(clippy::cast_possible_truncation)]
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
        .map_err(boot_data("the zero page"))
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

    fn load_bytes(bytes: &'static [u8], mib: u64) -> Result<BootSetup, Error> {
        let mem = memory::create(mib << 20).unwrap();
        let image = KernelSource::Embedded {
            name: "test",
            bytes,
        };
        load(&mem, mib << 20, &image, None, "")
    }

    #[test]
    fn cut_or_misfit_images_are_refused_before_loading() {
        let lab = crate::lab::ELF;
        for at in [1, 40, 64, 100, 400, lab.len() / 2, lab.len() - 1] {
            let e = load_bytes(&lab[..at], 64).unwrap_err().to_string();
            assert!(e.contains("truncated"), "cut at {at}: {e}");
        }
        // The lab guest loads at 1 MiB: its segment does not fit below 1 MiB + a bit.
        let mut low = lab.to_vec();
        // p_paddr of the first program header (at e_phoff 64, offset 24 in it).
        low[64 + 24..64 + 32].copy_from_slice(&(200u64 << 20).to_le_bytes());
        let e = load_bytes(low.leak(), 64).unwrap_err().to_string();
        assert!(e.contains("beyond the guest's 64 MiB"), "{e}");
        let mut bz = vec![0u8; 1024];
        bz[0x1f1] = 1;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        bz[0x211] = BZ_LOADED_HIGH;
        bz[0x236..0x238].copy_from_slice(&BZ_XLF_KERNEL_64.to_le_bytes());
        assert!(check_bzimage(&bz, 1024, 64 << 20)
            .unwrap_err()
            .contains("header only"));
        assert_eq!(check_bzimage(&bz, 1 << 20, 64 << 20), Ok(()));
        assert!(check_bzimage(&bz, 80 << 20, 64 << 20)
            .unwrap_err()
            .contains("does not fit"));
        bz[0x236] = 0;
        assert!(check_bzimage(&bz, 1 << 20, 64 << 20)
            .unwrap_err()
            .contains("64-bit"));
        let mem = memory::create(64 << 20).unwrap();
        let lab = KernelSource::Embedded {
            name: "lab",
            bytes: crate::lab::ELF,
        };
        let e = load(&mem, 64 << 20, &lab, None, &"x".repeat(CMDLINE_MAX_SIZE));
        assert!(
            matches!(
                e,
                Err(Error::Cmdline(CmdlineError::TooLong {
                    len: 4096,
                    max: 4095
                }))
            ),
            "{e:?}"
        );
        let e = load(&mem, 64 << 20, &lab, None, "console=ttyS0\n");
        assert!(
            matches!(e, Err(Error::Cmdline(CmdlineError::NotPrintable('\n')))),
            "{e:?}"
        );
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
        assert!(
            matches!(&e, Error::InitrdTooLarge { path, size, .. } if *path == dir && *size == 70 << 20),
            "{e}"
        );
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
        assert_eq!(u64::from(p.hdr.cmd_line_ptr), CMDLINE_START);
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
