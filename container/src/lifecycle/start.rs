//! `start`: releases a created container's init, which waits on the exec FIFO
//! before its execve, by writing one byte to the FIFO; the FIFO is then removed,
//! which is what makes the container `running` from then on. Then the bundle's
//! poststart hooks run ([`crate::hooks`]; the init runs its startContainer hooks
//! itself once released).

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
    })?;
    run_hooks(
        crate::hooks::Stage::Poststart,
        &state,
        oci_spec::runtime::ContainerState::Running,
    );
    Ok(())
}

/// Runs the bundle's hooks of a stage after `create` (poststart here, poststop in
/// delete); their failures are warnings, as the runtime spec says.
pub(super) fn run_hooks(
    stage: crate::hooks::Stage,
    state: &super::state::State,
    status: oci_spec::runtime::ContainerState,
) {
    let hooks = match crate::hooks::from_bundle(&state.bundle) {
        Ok(Some(h)) if !stage.of(&h).is_empty() => h,
        Ok(_) => return,
        Err(e) => {
            log::warn!("{} hooks not run: {e}", stage.name());
            return;
        }
    };
    if stage == crate::hooks::Stage::Poststart {
        wait_exec(state.pid);
    }
    let annotations = state.annotations.clone().into_iter().collect();
    let st = crate::hooks::state(
        &state.id,
        status,
        Some(state.pid),
        &state.bundle,
        &annotations,
    );
    if let Err(e) = crate::hooks::run(stage, Some(&hooks), &st) {
        log::warn!("{e}");
    }
}

/// Longest wait for the released init to reach its execve (its startContainer
/// hooks run first).
const EXEC_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until the init `pid` no longer runs the runtime's binary (it exec'd the
/// user's program, or died), so poststart hooks run after the program started, as
/// the runtime spec asks. Only called when there are poststart hooks.
fn wait_exec(pid: i32) {
    let ours = crate::security::exe_identity("/proc/self/exe");
    let t = std::time::Instant::now();
    while ours.is_some()
        && crate::security::exe_identity(&format!("/proc/{pid}/exe")) == ours
        && t.elapsed() < EXEC_WAIT
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
