//! `start`: releases a created container's init, which waits on the exec FIFO
//! before its execve, by writing one byte to the FIFO; the FIFO is then removed,
//! which is what makes the container `running` from then on.

use super::state::ContainerDir;
use super::LifecycleError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Starts the created container `id`.
pub fn start(root: &Path, id: &str) -> Result<(), LifecycleError> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.read()?;
    let status = dir.status(&state);
    if !status.can_start() {
        return Err(LifecycleError::WrongStatus {
            op: "start",
            id: id.to_owned(),
            status,
        });
    }
    let fifo = dir.fifo();
    // Without blocking: with no reader (the init died meanwhile) the open fails with
    // ENXIO instead of waiting forever.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&fifo)
        .map_err(|e| LifecycleError::Io {
            what: format!("the init of `{id}` is not waiting on {}", fifo.display()),
            source: e,
        })?;
    f.write_all(b"0").map_err(|e| LifecycleError::Io {
        what: format!("releasing the init of `{id}`"),
        source: e,
    })?;
    drop(f);
    std::fs::remove_file(&fifo).map_err(|e| LifecycleError::Io {
        what: format!("removing {}", fifo.display()),
        source: e,
    })
}
