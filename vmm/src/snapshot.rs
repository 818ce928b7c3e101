//! Snapshots of a whole microVM: a folder with `state` (a versioned, checksummed
//! header, then host facts, machine config, VM, devices and every vCPU) and `memory`
//! (guest RAM as a sparse file of its resident, non-zero pages). [`Vm::restore`] maps
//! the memory copy-on-write (MAP_PRIVATE: the guest never writes into the snapshot)
//! and loads the state in the order KVM needs, after the build steps a boot shares.

use crate::cpuid_cache;
use crate::devices::{DeviceState, Recorder};
use crate::error::{Error, MemoryError};
use crate::memory::{self, GuestMemory};
use crate::persist::Persist;
use crate::vcpu::{self, VcpuState, CPUID_HYPERVISOR};
use crate::vm::{check_vcpu_count, open_kvm, Machine, Vm};
use crate::IrqChipKind;
use kvm_bindings::{
    kvm_clock_data, kvm_irqchip, kvm_pit_state2, CpuId, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use timeline::step;
use timeline::EventSource;
use vm_memory::mmap::{GuestRegionMmap, MmapRegion};
use vm_memory::{FileOffset, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

/// Version of the snapshot layout; a file with a newer one is refused.
pub const FORMAT_VERSION: u32 = 2;
/// First bytes of a state file.
pub const MAGIC: &[u8; 8] = b"BLABSNAP";
/// File names inside a snapshot folder.
pub const STATE_FILE: &str = "state";
pub const MEMORY_FILE: &str = "memory";
/// Magic, version, body length, body CRC-32.
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// Largest state body accepted (a vCPU is about 10 KiB).
const MAX_BODY: u64 = 64 << 20;
/// The page size of guest memory in the memory file.
#[allow(clippy::cast_possible_truncation)] // 4096
const PAGE: usize = crate::layout::PAGE_SIZE as usize;
/// CPUID feature leaves (function, index) whose bits a restored guest may rely on:
/// every bit the snapshot's vCPUs had must be offered by this host's KVM.
const FEATURE_LEAVES: [(u32, u32); 3] = [(1, 0), (7, 0), (0x8000_0001, 0)];

/// The host facts a saved state depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// The host CPU's vendor string (CPUID leaf 0), e.g. `GenuineIntel`.
    pub cpu_vendor: String,
    /// KVM_GET_API_VERSION.
    pub kvm_api: i32,
}

impl HostFacts {
    /// This host's facts.
    pub fn detect(kvm: &Kvm) -> HostFacts {
        HostFacts {
            cpu_vendor: host_cpu_vendor().to_owned(),
            kvm_api: kvm.get_api_version(),
        }
    }
}

/// The host CPU's vendor string, read once per process: a restore asks for it to
/// check the snapshot and again for every vCPU it loads, and a CPUID instruction
/// traps to the hypervisor when the monitor itself runs in a VM.
pub fn host_cpu_vendor() -> &'static str {
    static VENDOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VENDOR.get_or_init(|| {
        let r = std::arch::x86_64::__cpuid(0);
        let bytes: Vec<u8> = [r.ebx, r.edx, r.ecx]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The machine a snapshot was taken of, as `bootlab vm run` configured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineConfig {
    pub mem_mib: u64,
    pub vcpus: u32,
    pub irqchip: IrqChipKind,
    pub cmdline: String,
    /// The runtime's name in timelines (`bootlab-vm-lab`).
    pub name: String,
}

/// Pages `first..first + count` of the memory file (file offset / page size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    pub first: u64,
    pub count: u64,
}

/// What the memory file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Size of the file: all guest RAM, regions back to back.
    pub bytes: u64,
    /// The runs of pages written, in file order (the rest are holes, read as zero).
    pub runs: Vec<PageRun>,
    /// CRC-32 over every run's file offset (u64 LE) and bytes, in order.
    pub crc: u32,
}

impl MemoryInfo {
    /// Pages written.
    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|r| r.count).sum()
    }
}

/// KVM's in-kernel devices and clock.
#[derive(Debug, Serialize, Deserialize)]
pub struct VmState {
    /// PIC master, PIC slave, IO-APIC (in-kernel irqchip only).
    pub irqchip: Option<[kvm_irqchip; 3]>,
    /// The PIT (in-kernel irqchip only).
    pub pit: Option<kvm_pit_state2>,
    pub clock: kvm_clock_data,
}

/// A whole saved machine but its memory.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub host: HostFacts,
    pub config: MachineConfig,
    pub memory: MemoryInfo,
    pub vm: VmState,
    pub devices: DeviceState,
    pub vcpus: Vec<VcpuState>,
}

impl Persist for VmFd {
    type State = VmState;
    /// Which irqchip the VM has.
    type Context<'a> = IrqChipKind;

    fn save(&self, irqchip: IrqChipKind) -> Result<VmState, Error> {
        let (chips, pit) = match irqchip {
            IrqChipKind::Kernel => {
                let mut chips = [
                    KVM_IRQCHIP_PIC_MASTER,
                    KVM_IRQCHIP_PIC_SLAVE,
                    KVM_IRQCHIP_IOAPIC,
                ]
                .map(|chip_id| kvm_irqchip {
                    chip_id,
                    ..Default::default()
                });
                for c in &mut chips {
                    self.get_irqchip(c).map_err(Error::kvm("KVM_GET_IRQCHIP"))?;
                }
                let pit = self.get_pit2().map_err(Error::kvm("KVM_GET_PIT2"))?;
                (Some(chips), Some(pit))
            }
            IrqChipKind::Split => (None, None),
        };
        let mut clock = self.get_clock().map_err(Error::kvm("KVM_GET_CLOCK"))?;
        // Only the clock value is restored: no realtime or host TSC pairing.
        clock.flags = 0;
        Ok(VmState {
            irqchip: chips,
            pit,
            clock,
        })
    }

    fn restore(&self, s: &VmState) -> Result<(), Error> {
        if let Some(pit) = &s.pit {
            self.set_pit2(pit).map_err(Error::kvm("KVM_SET_PIT2"))?;
        }
        self.set_clock(&s.clock)
            .map_err(Error::kvm("KVM_SET_CLOCK"))?;
        if let Some(chips) = &s.irqchip {
            for c in chips {
                self.set_irqchip(c).map_err(Error::kvm("KVM_SET_IRQCHIP"))?;
            }
        }
        Ok(())
    }
}

/// What a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveStats {
    /// Pages of guest memory written.
    pub pages: u64,
    /// Bytes of the state file.
    pub state_bytes: u64,
}

/// The parts of a stopped machine a save reads, besides its vCPUs.
#[derive(Clone, Copy)]
pub(crate) struct SaveSource<'a> {
    pub(crate) kvm: &'a Kvm,
    pub(crate) vm: &'a VmFd,
    pub(crate) bus: &'a crate::devices::Bus,
    /// The CPUID table each vCPU was given.
    pub(crate) cpuids: &'a [CpuId],
    pub(crate) mem: &'a GuestMemory,
    pub(crate) config: &'a MachineConfig,
}

/// Saves the stopped machine into `dir` (created if missing, mode 0700). Each
/// vCPU is first re-entered once with immediate_exit, so an I/O access its last
/// exit left pending completes before its registers are read.
pub(crate) fn save(
    dir: &Path,
    machine: &SaveSource<'_>,
    vcpus: &mut [VcpuFd],
) -> Result<SaveStats, Error> {
    let SaveSource {
        kvm,
        vm,
        bus,
        cpuids,
        mem,
        config,
    } = *machine;
    let file_err = |path: &Path, source: std::io::Error| Error::SnapshotIo {
        path: path.to_owned(),
        source,
    };
    if vcpus.len() != config.vcpus as usize || cpuids.len() != vcpus.len() {
        return Err(Error::Snapshot(format!(
            "{} of {} vCPUs came back from their threads",
            vcpus.len(),
            config.vcpus
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_err(dir, e))?;
    let msr_list = kvm
        .get_msr_index_list()
        .map_err(Error::kvm("KVM_GET_MSR_INDEX_LIST"))?;
    let mut states = Vec::with_capacity(vcpus.len());
    for (fd, cpuid) in vcpus.iter_mut().zip(cpuids) {
        vcpu::complete_pending_io(fd)?;
        states.push(fd.save(vcpu::SaveContext {
            msr_index: msr_list.as_slice(),
            cpuid: cpuid.as_slice(),
        })?);
    }
    let vm_state = vm.save(config.irqchip)?;
    let devices = bus.save(())?;
    let memory = save_memory(dir, mem)?;
    let snap = Snapshot {
        host: HostFacts::detect(kvm),
        config: config.clone(),
        memory,
        vm: vm_state,
        devices,
        vcpus: states,
    };
    let bytes = encode(&snap)?;
    let path = dir.join(STATE_FILE);
    write_new(&path, &bytes).map_err(|e| file_err(&path, e))?;
    Ok(SaveStats {
        pages: snap.memory.pages(),
        state_bytes: bytes.len() as u64,
    })
}

/// Writes `bytes` to `path` through a temporary file renamed over it.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The state file's bytes for `snap`. The body is postcard, serde's compact
/// binary format: decoding it took 25 µs in a fresh process here, CBOR 95 µs (first
/// touches of more decoder code).
pub fn encode(snap: &Snapshot) -> Result<Vec<u8>, Error> {
    let body = postcard::to_stdvec(snap).map_err(Error::SnapshotEncode)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Parses a state file's bytes: magic, version, length, checksum, then the body.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("not a bootlab snapshot state file".into());
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let version = word(8);
    if version > FORMAT_VERSION {
        return Err(format!(
            "format version {version} is newer than this bootlab's ({FORMAT_VERSION})"
        ));
    }
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version} is not this bootlab's ({FORMAT_VERSION})"
        ));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let body = &bytes[HEADER_LEN..];
    if len != body.len() as u64 {
        return Err(format!(
            "truncated or extended: the header says {len} bytes of state, the file has {}",
            body.len()
        ));
    }
    if crc32fast::hash(body) != word(20) {
        return Err("checksum mismatch: the state is corrupted".into());
    }
    postcard::from_bytes(body).map_err(|e| format!("cannot decode the state: {e}"))
}

/// Reads and checks `dir/state`.
pub fn read_state(dir: &Path) -> Result<Snapshot, Error> {
    let path = dir.join(STATE_FILE);
    let err = |why: String| Error::SnapshotFile {
        path: path.clone(),
        why,
    };
    let io_err = |source| Error::SnapshotIo {
        path: path.clone(),
        source,
    };
    let mut f = File::open(&path).map_err(io_err)?;
    let md = f.metadata().map_err(io_err)?;
    check_file(&md).map_err(err)?;
    if md.len() > MAX_BODY {
        return Err(err(format!("{} bytes is too large", md.len())));
    }
    let len = usize::try_from(md.len()).map_err(|_| err("too large".into()))?;
    let mut bytes = Vec::with_capacity(len);
    f.read_to_end(&mut bytes).map_err(io_err)?;
    decode(&bytes).map_err(err)
}

/// Whether every byte of `page` is zero.
fn is_zero(page: &[u8]) -> bool {
    // SAFETY: u64 has no invalid bit patterns; align_to splits off unaligned ends.
    let (head, words, tail) = unsafe { page.align_to::<u64>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

/// Writes guest memory to `dir/memory`: a file of the guest's size in which only
/// resident (mincore) non-zero pages are written, the rest left as holes.
fn save_memory(dir: &Path, mem: &GuestMemory) -> Result<MemoryInfo, Error> {
    let path = dir.join(MEMORY_FILE);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = (|| -> Result<MemoryInfo, std::io::Error> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let total: u64 = mem.iter().map(|r| r.len()).sum();
        f.set_len(total)?;
        let mut crc = crc32fast::Hasher::new();
        let mut runs = Vec::new();
        let mut file_off = 0u64;
        for region in mem.iter() {
            let len = usize::try_from(region.len()).map_err(|_| {
                std::io::Error::other("a memory region larger than the address space")
            })?;
            let host = region
                .get_host_address(MemoryRegionAddress(0))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut resident = vec![0u8; len.div_ceil(PAGE)];
            // SAFETY: `host..host+len` is the region's live, page-aligned mapping;
            // `resident` has one byte per page of it.
            if unsafe { libc::mincore(host.cast(), len, resident.as_mut_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: the page lies inside the region's mapping, and nothing writes
            // guest memory now: every vCPU is out of KVM_RUN and the devices do no
            // DMA.
            let page = |i: usize| unsafe { std::slice::from_raw_parts(host.add(i * PAGE), PAGE) };
            let mut i = 0;
            while i < resident.len() {
                if resident[i] & 1 == 0 || is_zero(page(i)) {
                    i += 1;
                    continue;
                }
                let first = i;
                while i < resident.len() && resident[i] & 1 != 0 && !is_zero(page(i)) {
                    i += 1;
                }
                // SAFETY: as for `page`: pages first..i of the region's mapping.
                let bytes = unsafe {
                    std::slice::from_raw_parts(host.add(first * PAGE), (i - first) * PAGE)
                };
                let at = file_off + (first * PAGE) as u64;
                f.write_all_at(bytes, at)?;
                crc.update(&at.to_le_bytes());
                crc.update(bytes);
                runs.push(PageRun {
                    first: at / PAGE as u64,
                    count: (i - first) as u64,
                });
            }
            file_off += len as u64;
        }
        std::fs::rename(&tmp, &path)?;
        Ok(MemoryInfo {
            bytes: total,
            runs,
            crc: crc.finalize(),
        })
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::SnapshotIo {
            path: path.clone(),
            source: e,
        }
    })
}

/// Pages read at once when checking the memory file: 64 KiB stays in the L2 cache
/// between the read and the CRC (a restore of the Linux guest's 8 MiB had read and
/// checked its snapshot 1.2 ms after its start this way, 4.0 ms with 256 KiB reads).
const VERIFY_CHUNK_PAGES: usize = 16;

/// Checks the memory file's written pages against the saved CRC, through read(2)
/// with a small buffer, so the check faults nothing into this process. Holes are
/// not read: they hold no data to damage, and the folder is only writable by its
/// owner (see `check_dir`).
fn verify_memory(f: &File, info: &MemoryInfo) -> Result<(), String> {
    let mut crc = crc32fast::Hasher::new();
    let longest = info.runs.iter().map(|r| r.count).max().unwrap_or(0);
    let longest = usize::try_from(longest).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; longest.min(VERIFY_CHUNK_PAGES) * PAGE];
    for run in &info.runs {
        let (start, len) = (run.first * PAGE as u64, run.count * PAGE as u64);
        if start.checked_add(len).is_none_or(|end| end > info.bytes) {
            return Err(format!("a saved page run ends past {} bytes", info.bytes));
        }
        crc.update(&start.to_le_bytes());
        let mut at = start;
        while at < start + len {
            let n = buf
                .len()
                .min(usize::try_from(start + len - at).unwrap_or(usize::MAX));
            f.read_exact_at(&mut buf[..n], at)
                .map_err(|e| format!("reading at {at}: {e}"))?;
            crc.update(&buf[..n]);
            at += n as u64;
        }
    }
    if crc.finalize() != info.crc {
        return Err(format!(
            "checksum mismatch: the memory is corrupted ({} saved pages)",
            info.pages()
        ));
    }
    Ok(())
}

/// Maps the memory file as guest RAM, copy-on-write: MAP_PRIVATE, so the guest's
/// writes go to private pages and the file is never changed; untouched pages are
/// read from the page cache on first access.
fn map_memory(file: File, bytes: u64) -> Result<GuestMemory, Error> {
    let file = Arc::new(file);
    let mut regions = Vec::new();
    let mut off = 0u64;
    for (addr, len) in memory::ram_regions(bytes) {
        let region = MmapRegion::build(
            Some(FileOffset::from_arc(file.clone(), off)),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|e| Error::GuestMemory(MemoryError::Map(e)))?;
        regions.push(
            GuestRegionMmap::new(region, addr)
                .ok_or(Error::GuestMemory(MemoryError::Overflow(addr.0)))?,
        );
        off += len as u64;
    }
    GuestMemory::from_regions(regions).map_err(|e| Error::GuestMemory(MemoryError::Regions(e)))
}

/// The CPUID bits of `saved` (a vCPU's table) in the feature leaves (1, 7,
/// 0x8000_0001) that `host` (KVM's
/// supported table) lacks, as "leaf:register bits" text; empty when it offers all.
pub fn missing_cpuid(saved: &[kvm_bindings::kvm_cpuid_entry2], host: &CpuId) -> Vec<String> {
    let mut out = Vec::new();
    for (function, index) in FEATURE_LEAVES {
        let Some(s) = saved
            .iter()
            .find(|e| e.function == function && e.index == index)
        else {
            continue;
        };
        let h = host
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .copied()
            .unwrap_or_default();
        let mut ecx = s.ecx & !h.ecx;
        if function == 1 {
            // The monitor sets it itself.
            ecx &= !CPUID_HYPERVISOR;
        }
        for (reg, bits) in [
            ("ebx", if function == 7 { s.ebx & !h.ebx } else { 0 }),
            ("ecx", ecx),
            ("edx", s.edx & !h.edx),
        ] {
            if bits != 0 {
                out.push(format!("leaf {function:#x} {reg} bits {bits:#x}"));
            }
        }
    }
    out
}

/// How to run a restored machine.
pub struct RestoreOptions {
    /// Where the serial console goes.
    pub console: Box<dyn Write + Send>,
    /// File descriptor whose input is fed to the serial console.
    pub console_input: Option<std::os::fd::RawFd>,
    pub timeout: Option<Duration>,
    /// Time zero of the timeline (CLOCK_MONOTONIC ns).
    pub spawn_ns: u64,
    /// Memory and vCPU count the caller expects, if it gave them: a snapshot of
    /// another size is refused.
    pub mem_mib: Option<u64>,
    pub vcpus: Option<u32>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("console_input", &self.console_input)
            .field("timeout", &self.timeout)
            .field("spawn_ns", &self.spawn_ns)
            .field("mem_mib", &self.mem_mib)
            .field("vcpus", &self.vcpus)
            .finish_non_exhaustive()
    }
}

/// Refuses a snapshot folder that others could have changed: writable by group or
/// others, or not a folder (its files are checked as they are opened).
fn check_dir(dir: &Path) -> Result<(), Error> {
    let err = |why: String| Error::SnapshotFile {
        path: dir.to_owned(),
        why,
    };
    let md = std::fs::metadata(dir).map_err(|source| Error::SnapshotIo {
        path: dir.to_owned(),
        source,
    })?;
    if !md.is_dir() {
        return Err(err("not a folder".into()));
    }
    if md.mode() & 0o022 != 0 {
        return Err(err(format!(
            "the folder is writable by others (mode {:o}); make it 0700 or 0755",
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Refuses a snapshot file that is not a regular file or that others could have
/// changed (writable by group or others).
fn check_file(md: &std::fs::Metadata) -> Result<(), String> {
    if !md.is_file() {
        return Err("not a regular file".into());
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "the file is writable by others (mode {:o})",
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

impl Vm {
    /// Restores the machine saved in `dir` in this process, stopping right before
    /// its first KVM_RUN: checks the snapshot against this host, maps its memory,
    /// runs the shared build steps (memory slots before the irqchip), then loads
    /// the VM's, the devices' and every vCPU's state.
    pub fn restore(dir: &Path, opts: RestoreOptions) -> Result<Vm, Error> {
        let recorder = Arc::new(Recorder::default());
        check_dir(dir)?;
        let snap = read_state(dir)?;
        let cfg = &snap.config;
        let file_err = |path: PathBuf, why: String| Error::SnapshotFile { path, why };
        if let Some(m) = opts.mem_mib.filter(|m| *m != cfg.mem_mib) {
            return Err(Error::Snapshot(format!(
                "--mem {m} differs from the snapshot's {} MiB",
                cfg.mem_mib
            )));
        }
        if let Some(v) = opts.vcpus.filter(|v| *v != cfg.vcpus) {
            return Err(Error::Snapshot(format!(
                "--vcpus {v} differs from the snapshot's {} vCPUs",
                cfg.vcpus
            )));
        }
        check_vcpu_count(cfg.vcpus)?;
        if snap.vcpus.len() != cfg.vcpus as usize {
            return Err(file_err(
                dir.join(STATE_FILE),
                format!("{} vCPU states for {} vCPUs", snap.vcpus.len(), cfg.vcpus),
            ));
        }
        let mem_bytes = memory::check_size(cfg.mem_mib, memory::host_mem_bytes())?;
        let vendor = host_cpu_vendor();
        if snap.host.cpu_vendor != vendor {
            return Err(Error::Snapshot(format!(
                "taken on a {} CPU; this host's is {vendor}",
                snap.host.cpu_vendor
            )));
        }
        let mem_path = dir.join(MEMORY_FILE);
        let mem_io = |source| Error::SnapshotIo {
            path: mem_path.clone(),
            source,
        };
        let mem_file = File::open(&mem_path).map_err(mem_io)?;
        let md = mem_file.metadata().map_err(mem_io)?;
        check_file(&md).map_err(|why| file_err(mem_path.clone(), why))?;
        let size = md.len();
        if size != mem_bytes || snap.memory.bytes != mem_bytes {
            return Err(file_err(
                mem_path,
                format!("{size} bytes, but the snapshot's guest has {mem_bytes} bytes of memory"),
            ));
        }
        verify_memory(&mem_file, &snap.memory).map_err(|why| file_err(mem_path.clone(), why))?;
        recorder.stamp(step::RESTORE_STATE_READ, EventSource::Monitor);

        let kvm = open_kvm(cfg.vcpus, &recorder)?;
        if snap.host.kvm_api != kvm.get_api_version() {
            return Err(Error::Snapshot(format!(
                "taken with KVM API {}; this host's is {}",
                snap.host.kvm_api,
                kvm.get_api_version()
            )));
        }
        let supported = cpuid_cache::supported_cpuid(&kvm, cpuid_cache::default_dir().as_deref())
            .map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        for (id, v) in snap.vcpus.iter().enumerate() {
            let missing = missing_cpuid(&v.cpuid, &supported);
            if !missing.is_empty() {
                return Err(Error::Snapshot(format!(
                    "vCPU {id} ran with CPUID features this host's KVM does not offer: {}",
                    missing.join(", ")
                )));
            }
        }
        let mem = map_memory(mem_file, mem_bytes)?;
        recorder.stamp(step::RESTORE_MEMORY_MAPPED, EventSource::Monitor);
        let machine = Machine::create(
            kvm,
            &mem,
            cfg.irqchip,
            cfg.vcpus,
            crate::device_manager::OpenDevices::default(),
            opts.console,
            &recorder,
        )?;
        // The restore ending: the VM's devices and clock, our devices, the vCPUs.
        machine.vm.restore(&snap.vm)?;
        machine.bus.restore(&snap.devices)?;
        recorder.stamp(step::RESTORE_DEVICES, EventSource::Monitor);
        let mut cpuids = Vec::with_capacity(snap.vcpus.len());
        for (fd, state) in machine.vcpus.iter().zip(&snap.vcpus) {
            fd.restore(state)?;
            cpuids.push(
                CpuId::from_entries(&state.cpuid)
                    .map_err(|_| Error::Snapshot("too many CPUID entries".into()))?,
            );
        }
        recorder.stamp(step::RESTORE_VCPUS, EventSource::Monitor);
        Ok(Vm::assemble(
            machine,
            cpuids,
            mem,
            recorder,
            crate::vm::RunSettings {
                timeout: opts.timeout,
                console_input: opts.console_input,
                name: format!("{}-restore", cfg.name),
                spawn_ns: opts.spawn_ns,
            },
            cfg.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            host: HostFacts {
                cpu_vendor: "GenuineIntel".into(),
                kvm_api: 12,
            },
            config: MachineConfig {
                mem_mib: 128,
                vcpus: 1,
                irqchip: IrqChipKind::Split,
                cmdline: String::new(),
                name: "t".into(),
            },
            memory: MemoryInfo {
                bytes: 128 << 20,
                runs: vec![PageRun { first: 1, count: 2 }],
                crc: 7,
            },
            vm: VmState {
                irqchip: None,
                pit: None,
                clock: kvm_clock_data::default(),
            },
            devices: DeviceState {
                serial: crate::devices::serial::SerialState {
                    baud_divisor_low: 12,
                    baud_divisor_high: 0,
                    interrupt_enable: 0,
                    interrupt_identification: 1,
                    line_control: 3,
                    line_status: 0x60,
                    modem_control: 8,
                    modem_status: 0xb0,
                    scratch: 0,
                    in_buffer: vec![1, 2],
                },
                ioapic: Some(crate::devices::ioapic::IoApic::default()),
            },
            vcpus: Vec::new(),
        }
    }

    #[test]
    fn state_round_trips_and_every_damage_is_named() {
        let bytes = encode(&snap()).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.config, snap().config);
        assert_eq!(back.devices, snap().devices);
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
        assert!(decode(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("truncated"));
        assert!(decode(b"\x7fELF....")
            .unwrap_err()
            .contains("not a bootlab"));
        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert!(decode(&newer).unwrap_err().contains("newer"));
    }

    #[test]
    fn msrs_are_ordered_tsc_first_and_its_deadline_last() {
        let m = |index| kvm_bindings::kvm_msr_entry {
            index,
            ..Default::default()
        };
        let mut list = vec![m(0x6e0), m(0x174), m(0x10), m(0xc000_0080)];
        vcpu::restore_order(&mut list);
        let order: Vec<u32> = list.iter().map(|e| e.index).collect();
        assert_eq!(order, [0x10, 0x174, 0xc000_0080, 0x6e0]);
    }

    #[test]
    fn cpuid_features_the_host_lacks_are_listed() {
        let e = |function, ecx, edx| kvm_bindings::kvm_cpuid_entry2 {
            function,
            ecx,
            edx,
            ..Default::default()
        };
        let host = CpuId::from_entries(&[e(1, 0b0110, 0xff)]).unwrap();
        assert!(missing_cpuid(&[e(1, 0b0110 | CPUID_HYPERVISOR, 0x0f)], &host).is_empty());
        let m = missing_cpuid(&[e(1, 0b1110, 0x1ff)], &host);
        assert_eq!(m, ["leaf 0x1 ecx bits 0x8", "leaf 0x1 edx bits 0x100"]);
    }
}
