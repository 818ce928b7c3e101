//! `state`, `list` and `ps`: what the runtime's root and the cgroups say about
//! containers, read without changing anything.

use super::state::{spec_state, ContainerDir, SpecState};
use super::LifecycleError;
use crate::cgroups::Cgroup;
use std::path::Path;

/// The runtime-spec state of the container `id`.
pub fn state(root: &Path, id: &str) -> Result<SpecState, LifecycleError> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.read()?;
    Ok(spec_state(&state, dir.status(&state)))
}

/// The state of every container under `root` whose state can be read, by ID.
pub fn list(root: &Path) -> Result<Vec<SpecState>, LifecycleError> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(LifecycleError::Io {
                what: format!("reading {}", root.display()),
                source: e,
            })
        }
    };
    let mut out: Vec<SpecState> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|id| state(root, &id).ok())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Host pids of the processes in the container `id`'s cgroup.
pub fn ps(root: &Path, id: &str) -> Result<Vec<i32>, LifecycleError> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.read()?;
    let cg = Cgroup::reopen(state.cgroup_dirs.clone())?;
    let pids = cg.pids();
    let _ = cg.into_dirs();
    Ok(pids)
}
