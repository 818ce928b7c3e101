//! `oci exec`: a new process that joins a running container's namespaces and
//! cgroup.

use super::*;

/// The running container an `exec` joins: its init and its cgroup.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    /// Host pid of the container's init.
    pub init_pid: libc::pid_t,
    /// `cgroup.procs` of each of the container's cgroup folders.
    pub cgroup_procs: Vec<CString>,
}

/// Namespaces an exec joins, in the order it joins them: the user namespace first
/// (it grants the rights for the others), the mount namespace last (after it,
/// paths are the container's).
pub(super) const EXEC_NAMESPACES: [&str; 7] = ["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"];

/// Starts `spec`'s process (args, env, cwd, user, capabilities, rlimits,
/// no_new_privs; the bundle's seccomp filter) inside the running container `target`
/// (with a terminal when `console` is a connection to a console socket):
/// what `runc exec` does. The process joins the container's cgroup and every
/// namespace of its init that differs from ours, then, as a child of the calling
/// process (a second clone with `CLONE_PARENT` puts it in the PID namespace), takes
/// the same security steps as the container's init and execs. Returns its pid once
/// it has exec'd.
pub fn exec(
    target: &ExecTarget,
    spec: &SandboxSpec,
    console: Option<RawFd>,
) -> Result<libc::pid_t> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mut plan = spec.clone();
    // The container's root and namespaces are joined, not made.
    plan.rootfs = None;
    plan.namespaces = crate::namespaces::NamespaceSet::empty();
    plan.namespace_paths.clear();
    plan.sysctl.clear();
    // The container's hooks ran for its init, not for an exec.
    plan.hooks = None;
    plan.hostname = None;
    let mut prep = Prepared::new(&plan, None)?;
    // With a terminal: a pty of the container's devpts, sent on this connection.
    prep.console = console;
    prep.runtime_exe = security::exe_identity("/proc/self/exe");
    prep.change_user = true;
    prep.pdeath = false;
    let mut ns_fds = Vec::new();
    for ns in EXEC_NAMESPACES {
        let theirs = format!("/proc/{}/ns/{ns}", target.init_pid);
        let ours = format!("/proc/self/ns/{ns}");
        let id = |p: &str| {
            std::fs::metadata(p).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
        };
        match (id(&theirs), id(&ours)) {
            (Some(a), Some(b)) if a == b => continue,
            (None, _) => {
                return Err(Error::Setup(format!(
                    "the container's init {} is gone ({theirs})",
                    target.init_pid
                )))
            }
            _ => {}
        }
        let f =
            std::fs::File::open(&theirs).map_err(|e| Error::sys(format!("open {theirs}"), e))?;
        ns_fds.push(OwnedFd::from(f));
    }
    if euid == 0 {
        security::set_non_dumpable().map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE)", e))?;
    }
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    let mut mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut mask))
        .map_err(|e| Error::sys("sigprocmask", e))?;
    // SAFETY: a fork-style clone of this single-threaded process; the child never
    // returns from `exec_joiner`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from(libc::SIGCHLD.cast_unsigned()),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        drop(report_r);
        exec_joiner(&prep, target, &ns_fds, report_w.as_raw_fd(), &mask);
    }
    if pid < 0 {
        return Err(clone_error(std::io::Error::last_os_error()));
    }
    drop(report_w);
    drop(ns_fds);
    let joiner = nix::unistd::Pid::from_raw(
        libc::pid_t::try_from(pid)
            .map_err(|_| clone_error(std::io::Error::from_raw_os_error(libc::ERANGE)))?,
    );
    let msg = read_all(report_r.as_raw_fd());
    let _ = nix::sys::wait::waitpid(joiner, None);
    let mut child = None;
    let mut i = 0;
    while i < msg.len() {
        match msg[i] {
            b'P' if i + 5 <= msg.len() => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&msg[i + 1..i + 5]);
                child = Some(i32::from_le_bytes(b));
                i += 5;
            }
            b'N' => {
                return Err(Error::CommandNotFound(
                    String::from_utf8_lossy(&msg[i + 1..]).into_owned(),
                ))
            }
            b'X' => return Err(Error::RuntimeExe),
            _ => {
                return Err(Error::Setup(
                    String::from_utf8_lossy(msg.get(i + 1..).unwrap_or_default()).into_owned(),
                ))
            }
        }
    }
    child.ok_or_else(|| Error::Setup("the exec'd process died before its execve".into()))
}

/// The first child of an exec: joins the cgroup and the namespaces, then clones the
/// process that runs (with `CLONE_PARENT`: a child of the runtime, in the joined PID
/// namespace), reports its pid and exits.
pub(super) fn exec_joiner(
    p: &Prepared,
    target: &ExecTarget,
    ns_fds: &[OwnedFd],
    report: RawFd,
    old_mask: &SigSet,
) -> ! {
    let fail = |m: String| -> ! {
        write_fd(report, format!("E{m}").as_bytes());
        // SAFETY: _exit in the forked child.
        unsafe { libc::_exit(127) }
    };
    // Joined from the host's view of /sys/fs/cgroup, before the mount namespace.
    if let Err(e) = cgroups::join(&target.cgroup_procs) {
        fail(format!("joining the container's cgroup: {e}"));
    }
    for fd in ns_fds {
        // SAFETY: setns on a namespace descriptor we own.
        if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
            fail(format!("setns: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: a fork-style clone; the child never returns from `exec_child`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from((libc::CLONE_PARENT | libc::SIGCHLD).cast_unsigned()),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        exec_child(p, report, old_mask);
    }
    if pid < 0 {
        fail(format!("clone: {}", std::io::Error::last_os_error()));
    }
    let mut rec = [0u8; 5];
    rec[0] = b'P';
    rec[1..].copy_from_slice(&i32::try_from(pid).unwrap_or(0).to_le_bytes());
    write_fd(report, &rec);
    // SAFETY: _exit in the forked child.
    unsafe { libc::_exit(0) }
}

/// The exec'd process: the security steps of a container's init, then execve.
pub(super) fn exec_child(p: &Prepared, report: RawFd, old_mask: &SigSet) -> ! {
    match child_setup(p, None, Some(report), &mut Steps::default()) {
        Ok(path) => {
            prepare_exec(p, old_mask);
            // SAFETY: path and the prepared argv/envp arrays are valid, NUL- and
            // null-terminated, and outlive the call.
            unsafe { libc::execve(path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
            let e = std::io::Error::last_os_error();
            write_fd(report, format!("Eexecve {}: {e}", p.cmd).as_bytes());
        }
        Err(ChildFail::NotFound(cmd)) => write_fd(report, format!("N{cmd}").as_bytes()),
        Err(ChildFail::RuntimeExe) => write_fd(report, b"X"),
        Err(ChildFail::Msg(m)) => write_fd(report, format!("E{m}").as_bytes()),
    }
    // SAFETY: _exit ends the child without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}
