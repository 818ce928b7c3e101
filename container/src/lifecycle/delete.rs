//! `delete`: kills what is left of a container (its waiting init, or with `force`
//! a running one), removes its cgroup and its folder, then runs the bundle's
//! poststop hooks.

use super::state::{init_alive, ContainerDir};
use super::status::Status;
use super::LifecycleError;
use crate::cgroups::Cgroup;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `delete` waits for a killed init to be gone.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Deletes the container `id`; a running one only with `force`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), LifecycleError> {
    let dir = ContainerDir::open(root, id)?;
    let named = || Cgroup::find_named(&super::create::cgroup_name(id));
    let state = match dir.read() {
        Ok(s) => s,
        // A create killed before its first state write, or a damaged file: with
        // --force the folder goes, and a cgroup of the container's name with
        // whatever runs in it.
        Err(e) if force => {
            log::warn!("{e}; removing the folder and any cgroup named after the container");
            let mut cg = Cgroup::reopen(named())?;
            cg.kill_all();
            cg.remove()?;
            return dir.remove();
        }
        Err(e) => return Err(e),
    };
    let status = dir.status(&state);
    if !force && !status.can_delete() {
        return Err(LifecycleError::WrongStatus {
            op: "delete",
            id: id.to_owned(),
            status,
        });
    }
    let mut dirs = state.cgroup_dirs.clone();
    if !state.ready {
        // Killed during create: the cgroup may exist before it was recorded.
        for d in named() {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    let mut cg = Cgroup::reopen(dirs)?;
    if status != Status::Stopped {
        cg.kill_all();
        // Only the recorded init (pid and start time): never pid 0 (our process
        // group) or a pid reused by another process.
        if init_alive(state.pid, state.start_time) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(state.pid, libc::SIGKILL) };
        }
        let t = Instant::now();
        while init_alive(state.pid, state.start_time) && t.elapsed() < KILL_WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    cg.remove()?;
    dir.remove()?;
    super::start::run_hooks(
        crate::hooks::Stage::Poststop,
        &state,
        oci_spec::runtime::ContainerState::Stopped,
    );
    Ok(())
}
