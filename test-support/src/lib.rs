//! What every bootlab test shares, so that the policy is written once: a test
//! whose prerequisite (/dev/kvm, root, a tool, a built image) is missing skips
//! loudly with `SKIP <test>: <why>`, or fails when CI sets `BOOTLAB_REQUIRE_KVM=1`
//! (or `BOOTLAB_REQUIRE_ROOT=1`); temporary directories are removed when dropped.
//! A dev-dependency only. How the tests are laid out: docs/ARCHITECTURE.md.

pub mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Turns every skip into a failure (CI sets it).
pub const REQUIRE_ENV: &str = "BOOTLAB_REQUIRE_KVM";
/// The same, named for the sandbox tests that need root rather than KVM.
pub const REQUIRE_ROOT_ENV: &str = "BOOTLAB_REQUIRE_ROOT";

/// Whether a missing prerequisite must fail the test instead of skipping it.
pub fn required() -> bool {
    [REQUIRE_ENV, REQUIRE_ROOT_ENV]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| s == "1"))
}

/// Skips `test` loudly because of `why`, or panics when [`required`]. Returns
/// false, so a test can `return` on `!skip(..)`-style checks.
pub fn skip(test: &str, why: &str) -> bool {
    if required() {
        panic!("{test}: {why}, and {REQUIRE_ENV}=1 or {REQUIRE_ROOT_ENV}=1");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// Whether /dev/kvm can be opened for reading and writing.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The effective uid of this process (owner of `/proc/self`), `u32::MAX` if unknown.
pub fn euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    euid() == 0
}

/// `name` found on $PATH (or `name` itself when it holds a `/` and is a file).
pub fn tool(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One prerequisite of a test.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// A usable /dev/kvm.
    Kvm,
    /// Running as root.
    Root,
    /// A program on $PATH.
    Tool(&'a str),
    /// A file or folder, with what builds it (e.g. "run guest-images/build.sh").
    Path(&'a Path, &'a str),
}

impl Need<'_> {
    /// Why this prerequisite is not met here, if it is not.
    pub fn missing(&self) -> Option<String> {
        match *self {
            Need::Kvm => (!kvm_usable()).then(|| "/dev/kvm is not usable here".to_owned()),
            Need::Root => (!is_root()).then(|| "not running as root".to_owned()),
            Need::Tool(t) => tool(t).is_none().then(|| format!("{t} is not on PATH")),
            Need::Path(p, hint) => {
                (!p.exists()).then(|| format!("{} is missing ({hint})", p.display()))
            }
        }
    }
}

/// True when every prerequisite of `test` is met; otherwise skips (false) or fails
/// per [`required`], naming everything missing.
pub fn need(test: &str, needs: &[Need<'_>]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(Need::missing).collect();
    missing.is_empty() || skip(test, &missing.join("; "))
}

/// [`need`] of /dev/kvm alone.
pub fn kvm_or_skip(test: &str) -> bool {
    need(test, &[Need::Kvm])
}

/// A fresh directory, removed with everything in it when dropped (also when the
/// test panics).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory `bootlab-<tag>-<pid>-<n>` under `base`, or under the
    /// system temp dir when `base` is `None` or not writable.
    pub fn new_in(base: Option<&Path>, tag: &str) -> std::io::Result<TempDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("bootlab-{tag}-{}-{n}", std::process::id());
        let mut last = None;
        for base in base
            .into_iter()
            .map(Path::to_path_buf)
            .chain([std::env::temp_dir()])
        {
            let path = base.join(&name);
            let _ = std::fs::remove_dir_all(&path);
            match std::fs::create_dir_all(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary folder")))
    }

    /// A new empty directory under the system temp dir.
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        TempDir::new_in(None, tag)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A `TempDir` is used where a path is: `&dir` coerces to `&Path`.
impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `Command` for the `bootlab` binary under test, without a harness spawn time in
/// its environment. Use it through [`bootlab!`], which names the binary Cargo built
/// for the calling test.
pub fn bootlab_command(bin: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.env_remove("BOOTLAB_SPAWN_NS");
    c
}

/// `bootlab!()`: a `Command` for the bootlab binary of the calling integration test.
#[macro_export]
macro_rules! bootlab {
    () => {
        $crate::bootlab_command(env!("CARGO_BIN_EXE_bootlab"))
    };
}

/// The Linux guest's console lines of one whole run, in protocol order.
pub const LINUX_RUN_LINES: [&str; 5] = [
    "Run /init as init process",
    "@@bootlab init-start",
    "@@bootlab exec",
    "hello from bootlab guest-init",
    "@@bootlab done",
];

/// The first of `wanted` that does not end a line of `out` after the line that
/// ended the one before it (a guest's tty ends lines with \r\n), or `None` when
/// all of them do, in this order.
pub fn missing_in_order<'a>(out: &str, wanted: &[&'a str]) -> Option<&'a str> {
    let mut lines = out.lines().map(|l| l.trim_end_matches('\r'));
    wanted
        .iter()
        .copied()
        .find(|want| !lines.any(|l| l.ends_with(want)))
}

/// A console sink that keeps what a guest printed, shared between the VM that
/// writes it and the test that reads it.
#[derive(Debug, Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_only_in_order() {
        let out = "a\r\nx @@bootlab exec\r\nb\n";
        assert_eq!(missing_in_order(out, &["a", "@@bootlab exec", "b"]), None);
        assert_eq!(missing_in_order(out, &["b", "a"]), Some("a"));
        assert_eq!(missing_in_order(out, &["a", "z"]), Some("z"));
    }

    #[test]
    fn temp_dir_is_removed_on_drop_even_with_content() {
        let d = TempDir::new("support-test").unwrap();
        let p = d.path().to_path_buf();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), b"x").unwrap();
        let other = TempDir::new("support-test").unwrap();
        assert_ne!(other.path(), d.path());
        drop(d);
        assert!(!p.exists());
        assert!(other.path().is_dir());
    }

    #[test]
    fn needs_name_what_is_missing() {
        assert_eq!(
            Need::Tool("no-such-tool-here").missing().as_deref(),
            Some("no-such-tool-here is not on PATH")
        );
        assert!(Need::Tool("sh").missing().is_none());
        let p = Path::new("/no/such/path");
        assert!(Need::Path(p, "build it")
            .missing()
            .unwrap()
            .contains("build it"));
        assert_eq!(Need::Root.missing().is_none(), is_root());
    }
}
