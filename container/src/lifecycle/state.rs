//! A container's folder under the runtime's root (`ROOT/ID/`): `state.json` (what
//! `create` recorded, written to a temporary file and renamed into place, so a
//! runtime killed at any point leaves the old file or the new one), the exec FIFO,
//! and the lock that makes runtimes on the same ID take turns.
//!
//! Everything is root-only (mode 0700/0600) and opened without following a symlink
//! in its last component; the root must belong to the caller.

use super::status::{Observed, Status};
use super::LifecycleError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name of the state file in a container's folder.
pub const STATE_FILE: &str = "state.json";
/// Name of the exec FIFO in a container's folder.
pub const FIFO: &str = "exec.fifo";
/// Largest state.json read.
const MAX_STATE_BYTES: u64 = 1 << 20;

/// What `create` records about a container (our own file; `state` prints the
/// runtime-spec view of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct State {
    /// The runtime-spec version of the bundle.
    pub oci_version: String,
    /// The container's ID.
    pub id: String,
    /// Host pid of the init (0 before it exists).
    pub pid: i32,
    /// The init's start time (`/proc/PID/stat` field 22), so a reused pid is not
    /// taken for the init.
    pub start_time: u64,
    /// The bundle folder, absolute.
    pub bundle: PathBuf,
    /// The bundle's annotations.
    pub annotations: BTreeMap<String, String>,
    /// When `create` ran (RFC 3339, UTC).
    pub created: String,
    /// The container's cgroup, one folder per hierarchy.
    pub cgroup_dirs: Vec<PathBuf>,
    /// `create` finished: the init reported that it waits for `start`.
    pub ready: bool,
}

/// The runtime-spec state (`runc state` prints this).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecState {
    /// Runtime-spec version.
    pub oci_version: String,
    /// Container ID.
    pub id: String,
    /// Status.
    pub status: Status,
    /// Init pid (0 once stopped).
    pub pid: i32,
    /// Bundle folder.
    pub bundle: PathBuf,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// When it was created (runc adds this; engines read it).
    pub created: String,
}

/// Checks that `id` is a safe path component: not empty, not `.` or `..`, only
/// letters, digits and `_ + - .` (runc's rule), at most 1024 bytes.
pub fn check_id(id: &str) -> Result<(), LifecycleError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(LifecycleError::BadId(id.to_owned()))
    }
}

/// One container's folder, locked (exclusive `flock`) for as long as this lives.
#[derive(Debug)]
pub struct ContainerDir {
    /// The folder.
    pub path: PathBuf,
    /// The container's ID.
    pub id: String,
    _lock: OwnedFd,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> LifecycleError {
    move |source| LifecycleError::Io { what, source }
}

/// Makes the runtime's root folder (0700) if missing and checks that it is ours.
fn check_root(root: &Path) -> Result<(), LifecycleError> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
    {
        Ok(()) => {}
        Err(e) => return Err(io_err(format!("creating the root {}", root.display()))(e)),
    }
    let md = std::fs::symlink_metadata(root)
        .map_err(io_err(format!("reading the root {}", root.display())))?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !md.is_dir() || md.uid() != euid {
        return Err(LifecycleError::BadRoot {
            root: root.to_path_buf(),
            reason: if md.is_dir() {
                format!("owned by uid {}, not by uid {euid}", md.uid())
            } else {
                "not a directory (or a symlink)".into()
            },
        });
    }
    Ok(())
}

fn lock_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    let fd = OwnedFd::from(f);
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(fd);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

impl ContainerDir {
    /// Makes the folder of a new container `id` under `root` and locks it.
    pub fn make(root: &Path, id: &str) -> Result<ContainerDir, LifecycleError> {
        check_id(id)?;
        check_root(root)?;
        let path = root.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LifecycleError::Exists(id.to_owned()))
            }
            Err(e) => return Err(io_err(format!("creating {}", path.display()))(e)),
        }
        let lock = lock_dir(&path).map_err(io_err(format!("locking {}", path.display())))?;
        Ok(ContainerDir {
            path,
            id: id.to_owned(),
            _lock: lock,
        })
    }

    /// Opens and locks the folder of the existing container `id` (waits while
    /// another runtime holds it).
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir, LifecycleError> {
        check_id(id)?;
        let path = root.join(id);
        let lock = lock_dir(&path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => LifecycleError::NotFound(id.to_owned()),
            _ => LifecycleError::Io {
                what: format!("opening {}", path.display()),
                source: e,
            },
        })?;
        // Deleted by the runtime that held the lock before us.
        if !path.exists() {
            return Err(LifecycleError::NotFound(id.to_owned()));
        }
        Ok(ContainerDir {
            path,
            id: id.to_owned(),
            _lock: lock,
        })
    }

    /// The exec FIFO's path.
    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    /// Reads state.json.
    pub fn read(&self) -> Result<State, LifecycleError> {
        let path = self.path.join(STATE_FILE);
        let bad = |reason: String| LifecycleError::BadState {
            path: path.clone(),
            reason,
        };
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        let md = f.metadata().map_err(|e| bad(format!("cannot read: {e}")))?;
        if !md.is_file() || md.len() > MAX_STATE_BYTES {
            return Err(bad("not a regular file of at most 1 MiB".into()));
        }
        // Read whole, then parsed: serde_json reading from the file itself would
        // make one read(2) per byte.
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_STATE_BYTES), &mut text)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        serde_json::from_str(&text).map_err(|e| bad(format!("malformed: {e}")))
    }

    /// Writes state.json atomically (temporary file, then rename).
    pub fn write(&self, state: &State) -> Result<(), LifecycleError> {
        let tmp = self.path.join(".state.json.tmp");
        let what = || format!("writing {}", tmp.display());
        let text = serde_json::to_vec(state).map_err(|e| LifecycleError::Io {
            what: what(),
            source: e.into(),
        })?;
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io_err(what()))?;
        f.write_all(&text).map_err(io_err(what()))?;
        drop(f);
        std::fs::rename(&tmp, self.path.join(STATE_FILE)).map_err(io_err(what()))
    }

    /// The status of the container `state` describes, as observed now.
    pub fn status(&self, state: &State) -> Status {
        Status::observe(Observed {
            created: state.ready,
            init_alive: init_alive(state.pid, state.start_time),
            fifo: std::fs::symlink_metadata(self.fifo()).is_ok(),
        })
    }

    /// Removes the folder (the lock goes with this value).
    pub fn remove(self) -> Result<(), LifecycleError> {
        std::fs::remove_dir_all(&self.path)
            .map_err(io_err(format!("removing {}", self.path.display())))
    }
}

/// The runtime-spec view of `state` with `status`.
pub fn spec_state(state: &State, status: Status) -> SpecState {
    SpecState {
        oci_version: state.oci_version.clone(),
        id: state.id.clone(),
        status,
        pid: if status == Status::Stopped {
            0
        } else {
            state.pid
        },
        bundle: state.bundle.clone(),
        annotations: state.annotations.clone(),
        created: state.created.clone(),
    }
}

/// `(state letter, start time)` of `pid` from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold anything, parentheses too: fields follow the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 overall; the state is field 3, so 18 more after it.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` is still the init recorded with `start_time`, and not a zombie.
pub fn init_alive(pid: i32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start_time && s != 'Z' && s != 'X')
}

/// Now as RFC 3339 in UTC with nanoseconds (`2026-12-06T09:00:00.123456789Z`).
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_nanos())
}

/// `secs` since the epoch as RFC 3339 in UTC (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_path_components() {
        for ok in ["a", "web-1", "x_y.z+1", &"a".repeat(1024)] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a b",
            "a\0b",
            &"a".repeat(1025),
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_796_547_600, 0), "2026-12-06T09:00:00.000000000Z");
    }

    #[test]
    fn our_own_process_is_alive_and_a_reused_pid_is_not() {
        let me = i32::try_from(std::process::id()).unwrap();
        let (state, start) = proc_stat(me).unwrap();
        assert_ne!(state, 'Z');
        assert!(init_alive(me, start));
        assert!(!init_alive(me, start + 1));
        assert!(!init_alive(0, 0));
    }
}
