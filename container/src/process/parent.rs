//! The runtime's side once the child runs: the id maps it writes, then the wait for
//! the workload with signal forwarding, the timeout and the end of the cgroup.

use super::*;

/// From the child's exec (or failure) to the workload's end: checks the exec'd
/// binary is not the runtime's own, runs the poststart hooks, then waits with
/// `sigtimedwait`, forwarding signals and enforcing the timeout, and returns how the
/// workload ended with the exec and done stamps.
pub(super) fn parent(
    launch: Launch,
    mut cgroup: Option<Cgroup>,
    spec: &SandboxSpec,
    self_exe: Option<(u64, u64)>,
    block: &SigSet,
    hooks: Option<&HookCtx>,
) -> Result<Outcome> {
    let pid = launch.pid;
    let npid = nix::unistd::Pid::from_raw(pid);
    let kill_now = |cg: &Option<Cgroup>| {
        if let Some(cg) = cg {
            cg.kill_all();
        }
        let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(npid, None);
    };
    let exec_ns = match launch.exec {
        Ok(t) => t,
        Err(e) => {
            kill_now(&cgroup);
            return Err(e);
        }
    };
    // Layer 2 of the CVE-2019-5736 guard.
    if self_exe.is_some() && security::exe_identity(&format!("/proc/{pid}/exe")) == self_exe {
        kill_now(&cgroup);
        return Err(Error::RuntimeExe);
    }
    if let Some(h) = hooks {
        let st = h.state(oci_spec::runtime::ContainerState::Running, pid);
        if let Err(e) = crate::hooks::poststart(Some(&h.hooks), &st) {
            log::warn!("{e}");
        }
    }
    let deadline = spec.timeout.map(|t| std::time::Instant::now() + t);
    let mut timed_out = false;
    let mut interrupts = 0u32;
    let status = loop {
        use nix::sys::wait::{WaitPidFlag, WaitStatus};
        match nix::sys::wait::waitpid(npid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => break ExitStatus::Exited(c),
            Ok(WaitStatus::Signaled(_, s, _)) => break ExitStatus::Signaled(s as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
        let mut ts = None;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() && !timed_out {
                timed_out = true;
                if let Some(cg) = &cgroup {
                    cg.kill_all();
                }
                let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
                continue;
            }
            if !timed_out {
                ts = Some(libc::timespec {
                    tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                });
            }
        }
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `block` is a valid sigset, the info pointer may be null and `tsp` is
        // null or points to a live timespec.
        let sig = unsafe { libc::sigtimedwait(block.as_ref(), std::ptr::null_mut(), tsp) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
            // PID 1 ignores signals it has no handler for: a second INT or TERM
            // (Ctrl-C twice) kills the sandbox instead of leaving the user stuck.
            if sig == libc::SIGINT || sig == libc::SIGTERM {
                if interrupts > 0 {
                    if let Some(cg) = &cgroup {
                        cg.kill_all();
                    }
                    let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
                }
                interrupts += 1;
            }
        }
    };
    let done_ns = timeline::now_ns();
    let oom_killed = cgroup.as_ref().map(|c| c.oom_kills() > 0).unwrap_or(false);
    let backend = cgroup.as_ref().map(|c| c.backend().name());
    if let Some(cg) = cgroup.as_mut() {
        cg.remove()?;
    }
    if let Some(h) = hooks {
        let st = h.state(oci_spec::runtime::ContainerState::Stopped, pid);
        if let Err(e) = crate::hooks::poststop(Some(&h.hooks), &st) {
            log::warn!("{e}");
        }
    }
    Ok(Outcome {
        status,
        exec_ns,
        done_ns,
        oom_killed,
        timed_out,
        cgroup_backend: backend,
        steps: launch.steps.named(),
    })
}

pub(super) fn write_maps(
    pid: libc::pid_t,
    uid_map: &str,
    gid_map: &str,
    rootless: bool,
) -> Result<()> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let w = |file: &str, data: &str| {
        crate::sys::write_file(&proc.join(file), data.as_bytes()).map_err(|e| Error::Sys {
            context: format!("writing {file} `{}`", data.trim().replace('\n', "; ")),
            source: e,
        })
    };
    w("uid_map", uid_map)?;
    if rootless {
        w("setgroups", "deny")?;
    }
    w("gid_map", gid_map)
}

pub(super) fn read_all(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: `buf` is a valid writable buffer of its length and `fd` is open.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            out.extend_from_slice(&buf[..n.unsigned_abs()]);
        } else if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return out;
        }
    }
}

// ---------------------------------------------------------------------------
// Child side.
