//! `create`: the container's folder and state, its cgroup, the exec FIFO, then the
//! sandbox set-up ([`crate::process::create`]) up to the init waiting for `start`.
//! The state is written before anything is made that a later `delete` must undo
//! (the cgroup), and again once the init waits; a failure undoes what was made.

use super::state::{proc_stat, rfc3339_now, ContainerDir, State};
use super::LifecycleError;
use crate::cgroups::Cgroup;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What `create` is asked for.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The runtime's root (state folders).
    pub root: PathBuf,
    /// The container's ID.
    pub id: String,
    /// The bundle folder (config.json, rootfs).
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Where to send the terminal's master (with `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Descriptors 3 .. 3+N passed on to the workload.
    pub preserve_fds: u32,
}

/// Name of a container's cgroup: no runtime pid in it, so the sweep of dead
/// runtimes' cgroups leaves it alone (see [`crate::cgroups`]).
pub(super) fn cgroup_name(id: &str) -> String {
    format!("{}oci-{id}", crate::cgroups::NAME_PREFIX)
}

/// Creates the container: returns its state, with the init waiting for `start`.
pub fn create(opts: &CreateOptions) -> Result<State, LifecycleError> {
    super::state::check_id(&opts.id)?;
    if let Some(s) = &opts.console_socket {
        check_socket(s)?;
    }
    let bundle = std::path::absolute(&opts.bundle).map_err(|e| LifecycleError::Io {
        what: format!("bundle {}", opts.bundle.display()),
        source: e,
    })?;
    // Read before the folder is made: a bad bundle leaves nothing behind.
    let mut config = crate::oci::load(&bundle)?;
    // The hooks' state names the container by its ID.
    config.sandbox.container_id = Some(opts.id.clone());
    match (config.sandbox.terminal, opts.console_socket.is_some()) {
        (true, false) => {
            return Err(LifecycleError::Invalid(
                "process.terminal=true needs --console-socket (where to send the terminal)".into(),
            ))
        }
        (false, true) => {
            return Err(LifecycleError::Invalid(
                "--console-socket is for process.terminal=true, which this bundle does not ask for"
                    .into(),
            ))
        }
        _ => {}
    }
    let dir = ContainerDir::make(&opts.root, &opts.id)?;
    match create_in(&dir, opts, &bundle, &config) {
        Ok(state) => Ok(state),
        Err(e) => {
            let _ = dir.remove();
            Err(e)
        }
    }
}

fn create_in(
    dir: &ContainerDir,
    opts: &CreateOptions,
    bundle: &Path,
    config: &crate::oci::Bundle,
) -> Result<State, LifecycleError> {
    let mut state = State {
        oci_version: config.config.version().clone(),
        id: opts.id.clone(),
        pid: 0,
        start_time: 0,
        bundle: bundle.to_path_buf(),
        annotations: config
            .config
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created: rfc3339_now(),
        cgroup_dirs: Vec::new(),
        ready: false,
    };
    // Written before the cgroup exists: a runtime killed from here on leaves a
    // state that `delete --force` cleans up (it also looks for the cgroup by name).
    dir.write(&state)?;
    let res = &config.sandbox.resources;
    let cgroup = match &config.sandbox.cgroups_path {
        Some(p) => Cgroup::create_at(res, true, Some(p))?,
        None => Cgroup::create_named(res, &cgroup_name(&opts.id))?,
    };
    state.cgroup_dirs = cgroup.dirs().to_vec();
    dir.write(&state)?;
    let fifo_path = dir.fifo();
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
        |e| LifecycleError::Io {
            what: format!("mkfifo {}", fifo_path.display()),
            source: e.into(),
        },
    )?;
    // Read-write: the open does not wait for a writer, and the init's read blocks
    // until `start` writes (it holds a writer itself, so it never sees end-of-file).
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&fifo_path)
        .map_err(|e| LifecycleError::Io {
            what: format!("opening {}", fifo_path.display()),
            source: e,
        })?;
    let console = match &opts.console_socket {
        Some(socket) => Some(
            crate::console::connect(socket).map_err(|e| LifecycleError::Io {
                what: format!("connecting to --console-socket {}", socket.display()),
                source: e,
            })?,
        ),
        None => None,
    };
    let pid = crate::process::create(
        &config.sandbox,
        Some(bundle),
        &cgroup,
        fifo.as_raw_fd(),
        opts.preserve_fds,
        console.as_ref().map(AsRawFd::as_raw_fd),
    )?;
    drop(fifo);
    drop(console);
    state.pid = pid;
    state.start_time = proc_stat(pid).map_or(0, |(_, t)| t);
    state.ready = true;
    // From here the cgroup belongs to the state (delete removes it).
    state.cgroup_dirs = cgroup.into_dirs();
    dir.write(&state)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    Ok(state)
}

/// Writes `pid` to `path` atomically (temporary file in the same folder, rename).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), LifecycleError> {
    let err = |e: std::io::Error| LifecycleError::Io {
        what: format!("writing the pid file {}", path.display()),
        source: e,
    };
    let name = path
        .file_name()
        .ok_or_else(|| err(std::io::ErrorKind::InvalidInput.into()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(pid.to_string().as_bytes()).map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}

/// Checks that `path` is a Unix socket.
fn check_socket(path: &Path) -> Result<(), LifecycleError> {
    match std::fs::metadata(path) {
        Ok(md) if md.file_type().is_socket() => Ok(()),
        Ok(_) => Err(LifecycleError::Invalid(format!(
            "--console-socket {}: not a socket",
            path.display()
        ))),
        Err(e) => Err(LifecycleError::Io {
            what: format!("--console-socket {}", path.display()),
            source: e,
        }),
    }
}
