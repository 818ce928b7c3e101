//! KVM's supported-CPUID table, kept between runs.
//!
//! KVM_GET_SUPPORTED_CPUID executes CPUID for every leaf it reports. Where CPUID traps
//! to a hypervisor (a virtualized host, like our emulated-KVM machines, where each
//! one costs about 4.6 µs) it is the slowest set-up ioctl: 0.25-0.3 ms of a 1.7 ms
//! start. The table depends only on the host's CPU and the loaded KVM module, so the
//! first run stores it in a file and later runs read it back while the key matches:
//! the kernel's release and version and /dev/kvm's device node (device, inode, change
//! time), which is made anew when the host boots or the KVM module is loaded again.
//! (Two calls can differ in the APIC ID of the host CPU that ran the ioctl, in leaf 1
//! EBX and leaves 0xB and 0x1F EDX, which `vcpu::configure` sets per vCPU, and on
//! hybrid CPUs in the cache leaf 4 of that CPU's core type, as they can without the
//! cache. Leaf 0xD also depends on the caller's AMX permission, which bootlab never
//! asks for.)
//! Where /dev/kvm is not the kernel's own devtmpfs node but a copy made once (a
//! container's /dev), reloading the KVM module with other parameters keeps the key:
//! delete the file, or turn the cache off, after such a reload.
//!
//! The folder is /run/bootlab for root, `$XDG_RUNTIME_DIR/bootlab` for other users
//! (both are in memory and emptied at boot); `BOOTLAB_CPUID_CACHE=DIR` names another
//! and `BOOTLAB_CPUID_CACHE=off` turns the cache off. Anything unexpected (no folder,
//! a folder or file not owned by this user or writable by others, a symlink, a short
//! or foreign file, another key) means asking KVM, never an error.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file in the cache folder.
pub const CACHE_FILE: &str = "kvm-supported-cpuid";
/// The environment variable that names the folder, or `off`.
pub const ENV_CACHE_DIR: &str = "BOOTLAB_CPUID_CACHE";
/// First bytes of a cache file (and its format's version).
const MAGIC: &[u8; 8] = b"BLCPUID1";
/// A cache file larger than this is not one of ours.
const MAX_FILE: u64 = 64 * 1024;
/// The u32 fields of one entry in the file: function, index, flags, eax..edx.
const ENTRY_WORDS: usize = 7;

/// The cache folder for this process, if there is one (see the module docs).
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os(ENV_CACHE_DIR) {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => {
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                Some(PathBuf::from("/run/bootlab"))
            } else {
                // The XDG spec: a value that is not an absolute path is ignored.
                std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .filter(|d| d.is_absolute())
                    .map(|d| d.join("bootlab"))
            }
        }
    }
}

/// KVM's supported CPUID table: from the cache in `dir` when its key is this host's,
/// else from KVM (and then stored there).
pub fn supported_cpuid(kvm: &Kvm, dir: Option<&Path>) -> Result<CpuId, kvm_ioctls::Error> {
    let key = dir.and_then(|_| host_key(kvm));
    if let (Some(d), Some(k)) = (dir, &key) {
        if let Some(c) = trusted_dir(d)
            .then(|| load(&d.join(CACHE_FILE), k))
            .flatten()
        {
            return Ok(c);
        }
    }
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)?;
    if let (Some(d), Some(k)) = (dir, &key) {
        if let Err(e) = store(d, k, &cpuid) {
            log::debug!("CPUID cache not written to {}: {e}", d.display());
        }
    }
    Ok(cpuid)
}

/// The cache key of this host's KVM: kernel release and version, /dev/kvm's node.
fn host_key(kvm: &Kvm) -> Option<Vec<u8>> {
    // SAFETY: a zeroed stat is a valid out-parameter; fstat fills it for the open
    // /dev/kvm descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the descriptor is owned by `kvm` and open.
    if unsafe { libc::fstat(kvm.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    // SAFETY: a zeroed utsname is a valid out-parameter for uname.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates both fields within their arrays.
    let (release, version) = unsafe {
        (
            CStr::from_ptr(uts.release.as_ptr()),
            CStr::from_ptr(uts.version.as_ptr()),
        )
    };
    Some(
        format!(
            "{} {} dev={} rdev={} ino={} ctime={}.{:09}",
            release.to_string_lossy(),
            version.to_string_lossy(),
            st.st_dev,
            st.st_rdev,
            st.st_ino,
            st.st_ctime,
            st.st_ctime_nsec
        )
        .into_bytes(),
    )
}

/// The file's bytes: magic, key length and key, entry count, entries (little endian).
fn encode(key: &[u8], cpuid: &CpuId) -> Vec<u8> {
    let entries = cpuid.as_slice();
    let mut out = Vec::with_capacity(16 + key.len() + entries.len() * ENTRY_WORDS * 4);
    out.extend_from_slice(MAGIC);
    // A length that does not fit makes a file that `decode` refuses, never a wrong one.
    let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&count.to_le_bytes());
    for e in entries {
        for w in [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx] {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    out
}

/// The table in `bytes` if they are a cache file for `key`.
fn decode(bytes: &[u8], key: &[u8]) -> Option<CpuId> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (len, rest) = take_u32(rest)?;
    let (stored_key, rest) = rest.split_at_checked(len as usize)?;
    if stored_key != key {
        return None;
    }
    let (n, rest) = take_u32(rest)?;
    let n = n as usize;
    if n == 0 || n > KVM_MAX_CPUID_ENTRIES || rest.len() != n * ENTRY_WORDS * 4 {
        return None;
    }
    let words: Vec<u32> = rest
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let entries: Vec<kvm_cpuid_entry2> = words
        .chunks_exact(ENTRY_WORDS)
        .map(|w| kvm_cpuid_entry2 {
            function: w[0],
            index: w[1],
            flags: w[2],
            eax: w[3],
            ebx: w[4],
            ecx: w[5],
            edx: w[6],
            padding: [0; 3],
        })
        .collect();
    CpuId::from_entries(&entries).ok()
}

fn take_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_at_checked(4)?;
    Some((u32::from_le_bytes(head.try_into().ok()?), rest))
}

/// Whether `md` (of a file or folder) belongs to this user and only it may write.
fn trusted(md: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid cannot fail.
    md.uid() == unsafe { libc::geteuid() } && md.mode() & 0o022 == 0
}

/// Whether `dir` is a folder (not a symlink) of this user's that only it may write.
fn trusted_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|md| md.is_dir() && trusted(&md))
}

/// The cached table at `path` for `key`, if the file is a trustworthy one. Opened
/// without blocking (a FIFO put there must not stall the start) and not through a
/// symlink; checked on the open file.
fn load(path: &Path, key: &[u8]) -> Option<CpuId> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let md = f.metadata().ok()?;
    if !md.is_file() || !trusted(&md) || md.len() > MAX_FILE {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(md.len()).ok()?);
    f.take(MAX_FILE + 1).read_to_end(&mut bytes).ok()?;
    decode(&bytes, key)
}

/// Writes the table for `key` into `dir` (made if missing, mode 0700): a new file
/// renamed over the old one, so a reader sees one whole file or the other.
fn store(dir: &Path, key: &[u8], cpuid: &CpuId) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !trusted_dir(dir) {
        return Err(std::io::Error::other(
            "not a folder of this user's that only it may write",
        ));
    }
    // Unique among this folder's writers: process, thread and a count.
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: gettid cannot fail.
    let tid = unsafe { libc::gettid() };
    let tmp = dir.join(format!(".{CACHE_FILE}.{}.{tid}.{n}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    // From here on the temporary file is ours to remove.
    match f
        .write_all(&encode(key, cpuid))
        .and_then(|()| std::fs::rename(&tmp, dir.join(CACHE_FILE)))
    {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn table() -> CpuId {
        let e = |function, index, eax| kvm_cpuid_entry2 {
            function,
            index,
            flags: 1,
            eax,
            ebx: 2,
            ecx: 3,
            edx: 4,
            padding: [0; 3],
        };
        CpuId::from_entries(&[e(0, 0, 0xd), e(7, 0, 0), e(0x8000_0001, 0, 9)]).unwrap()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cpuid-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_file_reads_back_only_under_its_own_key() {
        let bytes = encode(b"key-1", &table());
        assert_eq!(
            decode(&bytes, b"key-1").unwrap().as_slice(),
            table().as_slice()
        );
        assert!(decode(&bytes, b"key-2").is_none());
        for cut in [0, 7, 8, 12, 17, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], b"key-1").is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, b"key-1").is_none());
        let mut foreign = bytes.clone();
        foreign[0] = b'X';
        assert!(decode(&foreign, b"key-1").is_none());
        // An entry count beyond KVM's limit, with as many bytes as it claims.
        let mut many = encode(b"k", &table());
        let n_at = MAGIC.len() + 4 + 1;
        let n = u32::try_from(KVM_MAX_CPUID_ENTRIES).unwrap() + 1;
        many[n_at..n_at + 4].copy_from_slice(&n.to_le_bytes());
        many.resize(n_at + 4 + n as usize * ENTRY_WORDS * 4, 0);
        assert!(decode(&many, b"k").is_none());
    }

    #[test]
    fn store_then_load_and_untrusted_files_are_ignored() {
        let dir = temp_dir("store");
        store(&dir, b"k", &table()).unwrap();
        let path = dir.join(CACHE_FILE);
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(load(&path, b"k").unwrap().as_slice(), table().as_slice());
        assert!(load(&path, b"other").is_none());
        // Stored again (another key): replaced whole, no temporary file left.
        store(&dir, b"k2", &table()).unwrap();
        assert!(load(&path, b"k").is_none());
        assert!(load(&path, b"k2").is_some());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // Writable by others: not trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(load(&path, b"k2").is_none());
        // A symlink to a good file: not followed.
        let good = dir.join("good");
        std::fs::write(&good, encode(b"k3", &table())).unwrap();
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&good, b"k3").is_some());
        let link = dir.join("link");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(load(&link, b"k3").is_none());
        // A FIFO in its place: skipped at once, not waited on.
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; the result is checked.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(load(&fifo, b"k3").is_none());
        // A folder others may write to is neither read from nor written into.
        assert!(trusted_dir(&dir));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted_dir(&dir));
        assert!(store(&dir, b"k", &table()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_environment_names_or_disables_the_folder() {
        // Only this test touches the variable in this test binary.
        std::env::set_var(ENV_CACHE_DIR, "off");
        assert_eq!(default_dir(), None);
        std::env::set_var(ENV_CACHE_DIR, "/some/where");
        assert_eq!(default_dir(), Some(PathBuf::from("/some/where")));
        std::env::remove_var(ENV_CACHE_DIR);
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(default_dir(), Some(PathBuf::from("/run/bootlab")));
        }
    }
}
