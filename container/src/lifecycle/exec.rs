//! `exec`: runs one more process in a created or running container, from a
//! process JSON (`--process`, what podman and containerd send) or from the
//! container's own process with other arguments. The process is described like
//! the container's init (the bundle's config with its `process` replaced) and
//! joins the init's namespaces and cgroup ([`crate::process::exec`]).

use super::state::ContainerDir;
use super::LifecycleError;
use crate::process::ExecTarget;
use std::path::{Path, PathBuf};

/// What `exec` is asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A process JSON (runtime-spec `process`) to run.
    pub process: Option<PathBuf>,
    /// Otherwise: the command and its arguments (the container's process as base).
    pub args: Vec<String>,
    /// Extra environment (`KEY=VALUE`), with `args`.
    pub env: Vec<String>,
    /// Working directory, with `args`.
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`, with `args`.
    pub user: Option<(u32, u32)>,
    /// A terminal for the process, its master sent to this console socket.
    pub console_socket: Option<PathBuf>,
}

/// Starts the process in the container `id`; returns its pid (a child of the
/// caller, which has exec'd). The container's lock is released on return.
pub fn exec(root: &Path, id: &str, opts: &ExecOptions) -> Result<i32, LifecycleError> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.read()?;
    let status = dir.status(&state);
    if !status.can_kill() {
        return Err(LifecycleError::WrongStatus {
            op: "exec in",
            id: id.to_owned(),
            status,
        });
    }
    let bundle = crate::oci::load(&state.bundle)?;
    let mut config = bundle.config;
    let process = match &opts.process {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| LifecycleError::Io {
                what: format!("--process {}", path.display()),
                source: e,
            })?;
            crate::oci::parse_process(&text).map_err(|e| {
                LifecycleError::Invalid(format!("--process {}: {e}", path.display()))
            })?
        }
        None => {
            if opts.args.is_empty() {
                return Err(LifecycleError::Invalid(
                    "no command given: exec ID COMMAND [ARGS...] or exec --process FILE ID".into(),
                ));
            }
            let mut p = config.process().clone().unwrap_or_default();
            p.set_args(Some(opts.args.clone()));
            if !opts.env.is_empty() {
                let mut env = p.env().clone().unwrap_or_default();
                env.extend(opts.env.iter().cloned());
                p.set_env(Some(env));
            }
            if let Some(cwd) = &opts.cwd {
                p.set_cwd(cwd.clone());
            }
            if let Some((uid, gid)) = opts.user {
                let mut u = p.user().clone();
                u.set_uid(uid);
                u.set_gid(gid);
                p.set_user(u);
            }
            p.set_terminal(Some(opts.console_socket.is_some()));
            p
        }
    };
    config.set_process(Some(process));
    let spec = crate::oci::convert(&config, &state.bundle)
        .map_err(|reason| LifecycleError::Invalid(format!("the process to exec: {reason}")))?;
    let cg = crate::cgroups::Cgroup::reopen(state.cgroup_dirs.clone())?;
    let target = ExecTarget {
        init_pid: state.pid,
        cgroup_procs: cg.procs_files().to_vec(),
    };
    let _ = cg.into_dirs();
    let console = match (&opts.console_socket, spec.terminal) {
        (Some(socket), true) => {
            Some(
                crate::console::connect(socket).map_err(|e| LifecycleError::Io {
                    what: format!("connecting to --console-socket {}", socket.display()),
                    source: e,
                })?,
            )
        }
        (None, false) => None,
        (None, true) => {
            return Err(LifecycleError::Invalid(
                "the process asks for a terminal: give --console-socket".into(),
            ))
        }
        (Some(_), false) => {
            return Err(LifecycleError::Invalid(
                "--console-socket is for a process with a terminal (--tty or process.terminal)"
                    .into(),
            ))
        }
    };
    drop(dir);
    let pid = crate::process::exec(
        &target,
        &spec,
        console.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
    )?;
    Ok(pid)
}
