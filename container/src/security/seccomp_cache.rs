//! Compiled seccomp programs kept between runs. libseccomp takes 37 ms for
//! podman's default profile ([`super::oci_seccomp`]), and an engine passes the
//! same profile to every container; a program compiled once is read back in
//! microseconds.
//!
//! One file per profile in a root-only folder (`/run/bootlab/seccomp`, on tmpfs:
//! gone at reboot): named by a hash of the profile's JSON and libseccomp's
//! version, holding that JSON whole, the filter flags and the program. A file is
//! used only when its JSON equals the profile byte for byte, so a hash collision
//! costs a compile, never a wrong filter. The folder must be owned by root and
//! closed to others, the files are opened without following symlinks and written
//! by rename; anything unexpected means compiling as if there were no cache.

use super::oci_seccomp::{compile, ProfileError};
use super::seccomp::Filter;
use oci_spec::runtime::LinuxSeccomp;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where root's runs keep compiled programs.
pub const DEFAULT_DIR: &str = "/run/bootlab/seccomp";

/// First bytes of a cache file (format version 1).
const MAGIC: &[u8; 8] = b"BLSCMP01";

/// Largest cache file read (a profile's JSON and a few thousand instructions).
const MAX_FILE: u64 = 4 << 20;

/// The cache's key text: libseccomp's version and the profile as JSON.
fn key(profile: &LinuxSeccomp) -> Vec<u8> {
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut k = format!("libseccomp {v}\n").into_bytes();
    // Serialising our own parsed struct cannot fail.
    k.extend(serde_json::to_vec(profile).unwrap_or_default());
    k
}

fn file_name(key: &[u8]) -> String {
    // std's SipHash with fixed keys: the same name in every run.
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    format!("{:016x}.bpf", h.finish())
}

/// The folder, if it is safe to use: a directory (not a symlink) owned by root
/// and closed to group and others; created so when missing.
fn usable_dir(dir: &Path) -> Option<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).ok()?;
    }
    let md = std::fs::symlink_metadata(dir).ok()?;
    (md.is_dir() && md.uid() == 0 && md.permissions().mode() & 0o077 == 0).then_some(())
}

fn read(path: &Path, key: &[u8]) -> Option<Filter> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let md = file.metadata().ok()?;
    if !md.is_file() || md.uid() != 0 || md.len() > MAX_FILE {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (flags, rest) = rest.split_first_chunk::<4>()?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let (stored_key, prog) = (rest.get(..len)?, rest.get(len..)?);
    if stored_key != key || prog.len() % 8 != 0 || prog.is_empty() {
        return None;
    }
    let prog = prog
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Filter::from_program(prog, u32::from_le_bytes(*flags)))
}

fn write(dir: &Path, name: &str, key: &[u8], f: &Filter) -> std::io::Result<()> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(f.flags().to_le_bytes());
    let len = u32::try_from(key.len()).map_err(|_| std::io::Error::other("profile too large"))?;
    bytes.extend(len.to_le_bytes());
    bytes.extend(key);
    for i in f.program() {
        bytes.extend(i.code.to_le_bytes());
        bytes.extend([i.jt, i.jf]);
        bytes.extend(i.k.to_le_bytes());
    }
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &bytes))
        .and_then(|()| std::fs::rename(&tmp, dir.join(name)))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// [`compile`], through the cache in `dir` (as root: [`DEFAULT_DIR`]; other users
/// compile every time). A failure to read or write the cache only costs the
/// compile.
pub fn compile_cached(profile: &LinuxSeccomp, dir: Option<&Path>) -> Result<Filter, ProfileError> {
    let Some(dir) = dir else {
        return compile(profile);
    };
    if usable_dir(dir).is_none() {
        return compile(profile);
    }
    let key = key(profile);
    let name = file_name(&key);
    if let Some(f) = read(&dir.join(&name), &key) {
        return Ok(f);
    }
    let f = compile(profile)?;
    let _ = write(dir, &name, &key, &f);
    Ok(f)
}

/// The cache folder for the calling user: [`DEFAULT_DIR`] for root, none otherwise.
pub fn default_dir() -> Option<PathBuf> {
    // SAFETY: geteuid cannot fail.
    (unsafe { libc::geteuid() } == 0).then(|| PathBuf::from(DEFAULT_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn podman() -> LinuxSeccomp {
        let path = format!(
            "{}/tests/fixtures/podman-4.3-default.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        serde_json::from_value(v["linux"]["seccomp"].clone()).unwrap()
    }

    #[test]
    fn a_cached_program_is_the_compiled_one_and_a_foreign_file_is_ignored() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: the cache is root's (its folder must be owned by root)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("bootlab-scmp-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = podman();
        let fresh = compile(&p).unwrap();
        let first = compile_cached(&p, Some(&dir)).unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "one file per profile");
        let second = compile_cached(&p, Some(&dir)).unwrap();
        assert_eq!(first.program(), fresh.program());
        assert_eq!(second.program(), fresh.program(), "read back unchanged");
        // A file whose stored profile differs (here: another errno) is not used.
        let mut other = p.clone();
        other.set_default_errno_ret(Some(1));
        let path = files[0].path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        write(&dir, &name, &key(&other), &compile(&other).unwrap()).unwrap();
        let third = compile_cached(&p, Some(&dir)).unwrap();
        assert_eq!(
            third.program(),
            fresh.program(),
            "the stored profile did not match"
        );
        // A folder open to others is not trusted.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(usable_dir(&dir).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
