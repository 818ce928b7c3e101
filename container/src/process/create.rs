//! The create half of the OCI lifecycle: the container's init set up and stopped
//! right before the workload's execve.

use super::*;

/// Sets up the container `spec` describes in the cgroup `cgroup` and leaves its init
/// stopped right before the workload's execve, waiting for a byte on `exec_fifo`
/// (opened read-write by the caller): the create half of the OCI lifecycle. Returns
/// the init's pid. The init is a child of the calling process; once the caller
/// exits it is adopted by the nearest subreaper (an engine's shim or conmon), as
/// with runc. The caller's stdin, stdout and stderr are the container's.
///
/// Every set-up step is the one `sandbox run` takes (always on the forked start: the
/// vfork start suspends the caller until the execve, which here waits for `start`);
/// descriptors 3 .. 3+`preserve_fds` stay open for the workload.
pub fn create(
    spec: &SandboxSpec,
    bundle_dir: Option<&Path>,
    cgroup: &Cgroup,
    exec_fifo: RawFd,
    preserve_fds: u32,
    console: Option<RawFd>,
) -> Result<libc::pid_t> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    // No network namespace made in parallel here: the child learns of it through
    // memory it shares with the runtime, which only the vfork start has.
    let mut prep = Prepared::new(spec, bundle_dir)?;
    if euid != 0 && spec.resources.any() {
        return Err(Error::Cgroup(
            "resource limits need root (cgroups are not delegated to this user)".into(),
        ));
    }
    cgroup_steps(&mut prep, spec, cgroup)?;
    // The cgroup2 folder (the only one on a v2 host, the one for cgroup.kill on a
    // hybrid host) is entered by the clone itself.
    let into = cgroup.dirs().iter().position(|d| cgroups::is_cgroup2(d));
    let into_fd = match into {
        Some(i) => {
            let dir = &cgroup.dirs()[i];
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(dir)
                .map_err(|e| Error::sys(format!("opening {}", dir.display()), e))?;
            let procs = prep.cgroup_procs.remove(i);
            Some((OwnedFd::from(f), procs))
        }
        None => None,
    };
    prep.into_cgroup = into_fd.as_ref().map(|(f, p)| (f.as_raw_fd(), p.clone()));
    prep.runtime_exe = security::exe_identity("/proc/self/exe");
    prep.hold = Some(Hold {
        fifo: exec_fifo,
        preserve_fds,
    });
    prep.console = console;
    let (alive_r, alive_w) = alive_pipe(&mut prep)?;
    identity_steps(&mut prep, spec, euid)?;
    let mut mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut mask))
        .map_err(|e| Error::sys("sigprocmask", e))?;
    let launch = spawn_forked(&prep, &mask)?;
    drop(alive_r);
    let pid = launch.pid;
    if let Err(e) = launch.exec {
        cgroup.kill_all();
        let npid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(npid, None);
        return Err(e);
    }
    drop(alive_w);
    Ok(pid)
}
