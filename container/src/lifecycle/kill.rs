//! `kill`: sends a signal to a container's init, or with `all` to every process
//! of its cgroup.

use super::state::ContainerDir;
use super::LifecycleError;
use crate::cgroups::Cgroup;
use std::path::Path;

/// Sends `signal` to the container `id` (its init, or every process with `all`).
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<(), LifecycleError> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.read()?;
    let status = dir.status(&state);
    if !status.can_kill() {
        return Err(LifecycleError::WrongStatus {
            op: "kill",
            id: id.to_owned(),
            status,
        });
    }
    let send = |pid: i32| -> Result<(), LifecycleError> {
        // SAFETY: kill has no memory-safety preconditions.
        if unsafe { libc::kill(pid, signal) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // Gone meanwhile: nothing left to signal.
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        Err(LifecycleError::Io {
            what: format!("sending signal {signal} to pid {pid}"),
            source: e,
        })
    };
    if all {
        let cg = Cgroup::reopen(state.cgroup_dirs.clone())?;
        let pids = cg.pids();
        // Keep the directories: this value must not remove them on drop.
        let _ = cg.into_dirs();
        for pid in pids {
            send(pid)?;
        }
        Ok(())
    } else {
        send(state.pid)
    }
}
