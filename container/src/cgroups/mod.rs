//! cgroups: one sandbox = one cgroup, created only when limits or a timeout are
//! asked for, joined by the child itself (it writes `0` to `cgroup.procs` before its
//! execve, so no parent round trip is needed) and removed when the sandbox ends,
//! also when it was killed (and stale ones of dead runtimes are swept on the next
//! creation).
//!
//! Two backends, picked by what the host mounts at `/sys/fs/cgroup`:
//! - [`v2`]: a cgroup2 filesystem there (unified hierarchy): `memory.max`,
//!   `pids.max`, `cpu.max`, `cgroup.kill`.
//! - [`v1`]: a tmpfs with one hierarchy per controller (`memory`, `pids`, `cpu`).
//!   On hybrid hosts (a controller-less cgroup2 at `/sys/fs/cgroup/unified`) the
//!   sandbox also gets a cgroup there, only for its `cgroup.kill`.
//!
//! Each cgroup is created below the runtime's own cgroup of that hierarchy, so a
//! harness's limits still apply, and named `bootlab-<runtime pid>-<n>`; or where a
//! bundle's `cgroupsPath` says ([`Place::At`], the cgroupfs driver's convention:
//! absolute = below the hierarchy's root, relative = below the runtime's cgroup),
//! missing parents created and left in place for the engine, as runc does.

pub mod devices;
pub mod v1;
pub mod v2;

use crate::spec::Resources;
use crate::sys::cpath;
use crate::{Error, Result};
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Where the cgroup filesystems are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The hybrid layout's controller-less cgroup2 mount.
pub const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
/// Prefix of every cgroup we create.
pub const NAME_PREFIX: &str = "bootlab-";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// How long [`Cgroup::remove`] keeps retrying while the last tasks finish exiting.
const REMOVE_RETRY: Duration = Duration::from_secs(2);

/// The cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One hierarchy per controller; `hybrid` when a cgroup2 is mounted beside.
    V1 {
        /// A controller-less cgroup2 at [`HYBRID_UNIFIED`] is present.
        hybrid: bool,
    },
    /// The unified hierarchy.
    V2,
}

impl Backend {
    /// The backend the host offers.
    pub fn detect() -> Backend {
        if is_cgroup2(Path::new(CGROUP_ROOT)) {
            Backend::V2
        } else {
            Backend::V1 {
                hybrid: is_cgroup2(Path::new(HYBRID_UNIFIED)),
            }
        }
    }

    /// Short name for reports (`v1`, `v1+unified`, `v2`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::V1 { hybrid: false } => "v1",
            Backend::V1 { hybrid: true } => "v1+unified",
            Backend::V2 => "v2",
        }
    }
}

/// Whether `path` is on a cgroup2 filesystem.
pub(crate) fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = cpath(path) else { return false };
    // SAFETY: an all-zero statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` is writable.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// The runtime's own cgroup path in the v1 hierarchy holding `controller`, or in the
/// unified hierarchy for `None` (from /proc/self/cgroup).
pub(crate) fn own_path(controller: Option<&str>) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        if hit {
            return path.to_owned();
        }
    }
    "/".to_owned()
}

fn unique_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "{NAME_PREFIX}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long [`remove_stale`] waits for the killed tasks of a stale cgroup to go.
const STALE_RETRY: Duration = Duration::from_millis(500);

/// Removes `bootlab-<pid>-*` cgroups under `parent` whose runtime `pid` is gone (a
/// runtime killed with SIGKILL cannot remove its own).
fn sweep_stale(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(NAME_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        let gone = unsafe { libc::kill(pid, 0) } < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            remove_stale(&entry.path());
        }
    }
}

/// Sweeps every hierarchy a sandbox cgroup of this host may live in.
fn sweep_all(backend: Backend) {
    match backend {
        Backend::V2 => sweep_stale(&Path::new(CGROUP_ROOT).join(rel(&own_path(None)))),
        Backend::V1 { hybrid } => {
            for ctrl in v1::CONTROLLERS {
                sweep_stale(
                    &Path::new(CGROUP_ROOT)
                        .join(ctrl)
                        .join(rel(&own_path(Some(ctrl)))),
                );
            }
            if hybrid {
                sweep_stale(&Path::new(HYBRID_UNIFIED).join(rel(&own_path(None))));
            }
        }
    }
}

/// Kills whatever still runs in the stale cgroup `dir` (the workload's descendants
/// without a PID namespace) and removes it; best effort.
fn remove_stale(dir: &Path) {
    let start = std::time::Instant::now();
    loop {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            _ => return,
        }
        if start.elapsed() > STALE_RETRY {
            return;
        }
        if crate::sys::write_file(&dir.join("cgroup.kill"), b"1").is_err() {
            let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: sending SIGKILL to a pid has no memory-safety concern.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Creates `parent/name`. Our names are unique within this process, so an existing
/// one was left by an earlier (killed) runtime that had our pid: it is removed first.
pub(crate) fn make_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    let dir = parent.join(name);
    let mut r = std::fs::create_dir(&dir);
    if matches!(&r, Err(e) if e.kind() == io::ErrorKind::AlreadyExists) {
        remove_stale(&dir);
        r = std::fs::create_dir(&dir);
    }
    r.map_err(|e| Error::Cgroup(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

pub(crate) fn write_value(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    crate::sys::write_file(&p, value.as_bytes())
        .map_err(|e| Error::Cgroup(format!("cannot write `{value}` to {}: {e}", p.display())))
}

/// Where a sandbox's cgroup directory goes in each hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `bootlab-<pid>-<n>` below the runtime's own cgroup.
    Own(String),
    /// A bundle's `cgroupsPath`.
    At(PathBuf),
}

impl Place {
    /// Creates the directory in the hierarchy mounted at `mount` (`controller`:
    /// which v1 hierarchy, `None` for cgroup2) and returns it. A `cgroupsPath`
    /// that already exists is an error (another container's).
    pub(crate) fn make(&self, mount: &Path, controller: Option<&str>) -> Result<PathBuf> {
        let own = || mount.join(rel(&own_path(controller)));
        match self {
            Place::Own(name) => make_dir(&own(), name),
            Place::At(p) => {
                let dir = if p.is_absolute() {
                    mount.join(rel(&p.to_string_lossy()))
                } else {
                    own().join(p)
                };
                if p.components().any(|c| {
                    !matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::RootDir
                    )
                }) {
                    return Err(Error::Cgroup(format!(
                        "cgroupsPath {} must not contain `.` or `..`",
                        p.display()
                    )));
                }
                if let Some(parent) = dir.parent() {
                    make_parents(mount, parent, controller == Some("cpuset"))?;
                }
                std::fs::create_dir(&dir)
                    .map_err(|e| Error::Cgroup(format!("cannot create {}: {e}", dir.display())))?;
                if controller == Some("cpuset") {
                    inherit_cpuset(&dir)?;
                }
                Ok(dir)
            }
        }
    }
}

/// Creates the missing directories from `mount` down to `dir`; in the v1 cpuset
/// hierarchy each new one takes its parent's CPUs and memory nodes (an empty
/// cpuset cannot hold tasks).
fn make_parents(mount: &Path, dir: &Path, cpuset: bool) -> Result<()> {
    let mut cur = mount.to_path_buf();
    for c in dir
        .strip_prefix(mount)
        .unwrap_or(Path::new(""))
        .components()
    {
        cur.push(c);
        match std::fs::create_dir(&cur) {
            Ok(()) if cpuset => inherit_cpuset(&cur)?,
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::Cgroup(format!(
                    "cannot create {}: {e}",
                    cur.display()
                )))
            }
        }
    }
    Ok(())
}

/// Copies `cpuset.cpus` and `cpuset.mems` from the parent of a new v1 cpuset.
pub(crate) fn inherit_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if cur.trim().is_empty() {
            let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
            write_value(dir, f, v.trim())?;
        }
    }
    Ok(())
}

/// One sandbox's cgroup (one directory per hierarchy it lives in).
#[derive(Debug)]
pub struct Cgroup {
    backend: Backend,
    dirs: Vec<PathBuf>,
    procs: Vec<CString>,
    kill_file: Option<PathBuf>,
    memory_events: Option<(PathBuf, &'static str)>,
}

impl Cgroup {
    /// Creates the cgroup with `res` applied. `want_kill` (a timeout) makes sure the
    /// cgroup can be killed as a whole even without limits.
    pub fn create(res: &Resources, want_kill: bool) -> Result<Cgroup> {
        Cgroup::create_at(res, want_kill, None)
    }

    /// [`Cgroup::create`] at a bundle's `cgroupsPath` (`None`: our own name).
    pub fn create_at(res: &Resources, want_kill: bool, path: Option<&Path>) -> Result<Cgroup> {
        let backend = Backend::detect();
        sweep_all(backend);
        let name = match path {
            Some(p) => Place::At(p.to_path_buf()),
            None => Place::Own(unique_name()),
        };
        Cgroup::create_in(backend, res, want_kill, &name)
    }

    /// Creates the cgroup `name` below the runtime's own (a container's:
    /// `bootlab-oci-<id>`, which outlives the runtime process, so the sweep of dead
    /// runtimes' cgroups must not take it; its name has no runtime pid). Always
    /// killable as a whole.
    pub fn create_named(res: &Resources, name: &str) -> Result<Cgroup> {
        Cgroup::create_in(Backend::detect(), res, true, &Place::Own(name.to_owned()))
    }

    /// The folders a [`Cgroup::create_named`] cgroup `name` of this host has, as
    /// seen from the calling process's own cgroups: for a runtime that was killed
    /// before it recorded them.
    pub fn find_named(name: &str) -> Vec<PathBuf> {
        let mut candidates = Vec::new();
        match Backend::detect() {
            Backend::V2 => {
                candidates.push(Path::new(CGROUP_ROOT).join(rel(&own_path(None))).join(name))
            }
            Backend::V1 { hybrid } => {
                for ctrl in v1::CONTROLLERS {
                    candidates.push(
                        Path::new(CGROUP_ROOT)
                            .join(ctrl)
                            .join(rel(&own_path(Some(ctrl))))
                            .join(name),
                    );
                }
                if hybrid {
                    candidates.push(
                        Path::new(HYBRID_UNIFIED)
                            .join(rel(&own_path(None)))
                            .join(name),
                    );
                }
            }
        }
        candidates.retain(|d| d.join("cgroup.procs").exists());
        candidates
    }

    /// The cgroup made earlier with these directories (by [`Cgroup::into_dirs`]), to
    /// list, kill and remove its processes from another runtime process.
    pub fn reopen(dirs: Vec<PathBuf>) -> Result<Cgroup> {
        let mut cg = Cgroup {
            backend: Backend::detect(),
            dirs: Vec::new(),
            procs: Vec::new(),
            kill_file: None,
            memory_events: None,
        };
        for d in dirs {
            if is_cgroup2(&d) && d.join("cgroup.kill").exists() {
                cg.kill_file = Some(d.join("cgroup.kill"));
            }
            cg.add_dir(d)?;
        }
        Ok(cg)
    }

    /// Gives the directories up to the caller, who keeps the cgroup after this value
    /// is gone (it is not removed on drop).
    pub fn into_dirs(mut self) -> Vec<PathBuf> {
        self.procs.clear();
        std::mem::take(&mut self.dirs)
    }

    /// The processes in the cgroup (host pids, from `cgroup.procs` of every
    /// directory, without repeats).
    pub fn pids(&self) -> Vec<i32> {
        pids_in(&self.dirs)
    }

    fn create_in(
        backend: Backend,
        res: &Resources,
        want_kill: bool,
        name: &Place,
    ) -> Result<Cgroup> {
        let mut cg = Cgroup {
            backend,
            dirs: Vec::new(),
            procs: Vec::new(),
            kill_file: None,
            memory_events: None,
        };
        // On error, `cg` is dropped and removes what was created so far.
        match backend {
            Backend::V2 => v2::create(&mut cg, Path::new(CGROUP_ROOT), name, res)?,
            Backend::V1 { hybrid } => {
                v1::create(&mut cg, name, res, want_kill && !hybrid)?;
                if hybrid {
                    let dir = name.make(Path::new(HYBRID_UNIFIED), None)?;
                    cg.add_dir(dir.clone())?;
                    cg.kill_file = Some(dir.join("cgroup.kill"));
                }
            }
        }
        Ok(cg)
    }

    pub(crate) fn add_dir(&mut self, dir: PathBuf) -> Result<()> {
        let procs = cpath(&dir.join("cgroup.procs"))
            .map_err(|e| Error::Cgroup(format!("{}: {e}", dir.display())))?;
        self.procs.push(procs);
        self.dirs.push(dir);
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The directories of this cgroup (one per hierarchy).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `cgroup.procs` of every directory, for [`join`] in the child.
    pub fn procs_files(&self) -> &[CString] {
        &self.procs
    }

    /// Kills every process in the cgroup (`cgroup.kill`, or SIGKILL to each listed
    /// task until none is left).
    pub fn kill_all(&self) {
        if let Some(k) = &self.kill_file {
            if crate::sys::write_file(k, b"1").is_ok() {
                return;
            }
        }
        for _ in 0..100 {
            let mut any = false;
            for dir in &self.dirs {
                let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    any = true;
                    // SAFETY: sending SIGKILL to a pid has no memory-safety concern.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if !any {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// How many tasks the kernel OOM-killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let Some((dir, file)) = &self.memory_events else {
            return 0;
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Removes the cgroup directories, retrying while exiting tasks are still
    /// accounted, and killing leftovers if they do not go.
    pub fn remove(&mut self) -> Result<()> {
        let start = std::time::Instant::now();
        let mut killed = false;
        while let Some(dir) = self.dirs.last() {
            match std::fs::remove_dir(dir) {
                Ok(()) => {
                    self.dirs.pop();
                    self.procs.pop();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.dirs.pop();
                    self.procs.pop();
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    if start.elapsed() > REMOVE_RETRY {
                        return Err(Error::Cgroup(format!(
                            "cannot remove {}: {e}",
                            dir.display()
                        )));
                    }
                    if !killed && start.elapsed() > Duration::from_millis(50) {
                        self.kill_all();
                        killed = true;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => {
                    return Err(Error::Cgroup(format!(
                        "cannot remove {}: {e}",
                        dir.display()
                    )))
                }
            }
        }
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// The processes in the cgroup directories `dirs` (every hierarchy's
/// `cgroup.procs`, sorted, without repeats); an unreadable directory adds none.
pub fn pids_in(dirs: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Moves the calling process into every `cgroup.procs` in `procs` (writes `0`).
/// Runs in the child, before its execve.
pub fn join(procs: &[CString]) -> io::Result<()> {
    for p in procs {
        crate::sys::write_cfile(p, b"0")?;
    }
    Ok(())
}

/// `/a/b` -> `a/b`, for joining below a mount point.
pub(crate) fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v2 backend's create/join/kill/remove on whatever cgroup2 this host mounts
    /// (the unified hierarchy on hybrid hosts; it has no controllers there, so no
    /// limits are written). Needs root; skipped loudly otherwise.
    #[test]
    fn v2_backend_create_kill_remove() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            if std::env::var("BOOTLAB_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("the cgroup test needs root and BOOTLAB_REQUIRE_KVM=1 forbids skipping");
            }
            eprintln!("SKIP: the cgroup test needs root");
            return;
        }
        let root = match Backend::detect() {
            Backend::V2 => Path::new(CGROUP_ROOT),
            Backend::V1 { hybrid: true } => Path::new(HYBRID_UNIFIED),
            Backend::V1 { hybrid: false } => {
                eprintln!("SKIP: no cgroup2 mounted");
                return;
            }
        };
        let mut cg = Cgroup {
            backend: Backend::V2,
            dirs: Vec::new(),
            procs: Vec::new(),
            kill_file: None,
            memory_events: None,
        };
        v2::create(
            &mut cg,
            root,
            &Place::Own(unique_name()),
            &Resources::default(),
        )
        .unwrap();
        let dir = cg.dirs()[0].clone();
        assert!(dir.join("cgroup.procs").exists());
        // SAFETY: fork in a test; the child only joins the cgroup and sleeps.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = join(cg.procs_files()).is_ok();
            // SAFETY: pause/_exit are async-signal-safe.
            unsafe {
                if ok {
                    libc::pause();
                }
                libc::_exit(1)
            }
        }
        let t = std::time::Instant::now();
        while std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap()
            .trim()
            .is_empty()
        {
            assert!(t.elapsed() < Duration::from_secs(5), "child never joined");
            std::thread::sleep(Duration::from_millis(1));
        }
        cg.kill_all();
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
        cg.remove().unwrap();
        assert!(!dir.exists());
    }
}
