//! The clone that makes the child: the fast vfork-style start on a separate stack,
//! and the fork-style start with a go pipe when the parent must act between the
//! clone and the child's set-up (custom id maps, hooks).

use super::*;

/// Size of the child's stack on the vfork path (only the touched pages cost).
pub(super) const CHILD_STACK: usize = 512 * 1024;

/// What the parent learns from the start of the child.
pub(super) struct Launch {
    pub(super) pid: libc::pid_t,
    pub(super) steps: Steps,
    /// Exec timestamp, or why the child failed before its execve.
    pub(super) exec: Result<u64>,
}

/// `CLONE_INTO_CGROUP` (linux/sched.h).
pub(super) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3's argument block (`struct clone_args`, its version 2 with `cgroup`).
#[repr(C)]
#[derive(Default)]
pub(super) struct CloneArgs {
    pub(super) flags: u64,
    pub(super) pidfd: u64,
    pub(super) child_tid: u64,
    pub(super) parent_tid: u64,
    pub(super) exit_signal: u64,
    pub(super) stack: u64,
    pub(super) stack_size: u64,
    pub(super) tls: u64,
    pub(super) set_tid: u64,
    pub(super) set_tid_size: u64,
    pub(super) cgroup: u64,
}

/// A fork-style clone with `flags` (and SIGCHLD), straight into the cgroup2 folder
/// `cgroup` when given: no later move into it, whose first one costs an RCU grace
/// period (about 15 ms here, docs/HOSTS.md). Returns the clone's result (0 in the
/// child, the pid or -1 with errno in the parent) and whether the child was placed
/// in `cgroup` (false when clone3 is missing: the child must join itself).
pub(super) fn fork_clone(flags: libc::c_int, cgroup: Option<RawFd>) -> (libc::c_long, bool) {
    if let Some(fd) = cgroup.and_then(|fd| u64::try_from(fd).ok()) {
        let args = CloneArgs {
            flags: u64::from(flags.cast_unsigned()) | CLONE_INTO_CGROUP,
            exit_signal: u64::from(libc::SIGCHLD.cast_unsigned()),
            cgroup: fd,
            ..CloneArgs::default()
        };
        // SAFETY: a fork-style clone3 (no stack given: the child continues on a copy
        // of this single-threaded process's memory); `args` is a valid clone_args
        // of the size passed.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        let missing = pid < 0
            && matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ENOSYS | libc::E2BIG)
            );
        if !missing {
            return (pid, true);
        }
    }
    // SAFETY: a fork-style clone (no new stack): the child continues on a copy of
    // this single-threaded process's memory and never returns into the caller's
    // frames (it execs or _exits).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from((flags | libc::SIGCHLD).cast_unsigned()),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    (pid, false)
}

pub(super) fn clone_error(e: std::io::Error) -> Error {
    let hint = if e.raw_os_error() == Some(libc::EPERM) {
        " (creating namespaces without root needs the user namespace)"
    } else {
        ""
    };
    Error::Sys {
        context: format!("clone{hint}"),
        source: e,
    }
}

/// State shared by the parent and the child on the vfork path (same memory).
pub(super) struct VforkArgs<'a> {
    pub(super) prep: &'a Prepared,
    pub(super) old_mask: &'a SigSet,
    pub(super) exec_ns: u64,
    pub(super) fail: Option<ChildFail>,
    pub(super) steps: Steps,
    /// The runtime's own CPU mask, which the child puts back (see crate::affinity).
    pub(super) pin: Option<crate::affinity::Pin>,
}

pub(super) extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `VforkArgs` the parent passed to clone; the parent is
    // suspended (CLONE_VFORK) until this child execs or exits, so nothing else
    // touches it meanwhile.
    let a = unsafe { &mut *(arg as *mut VforkArgs) };
    a.steps.stamp(1);
    if let Some(Err(e)) = a.pin.map(|p| p.restore()) {
        a.fail = Some(ChildFail::Msg(format!("sched_setaffinity: {e}")));
        // SAFETY: _exit ends the child without unwinding into the parent's state.
        unsafe { libc::_exit(127) }
    }
    match child_setup(a.prep, None, None, &mut a.steps) {
        Ok(path) => {
            prepare_exec(a.prep, a.old_mask);
            a.exec_ns = timeline::now_ns();
            // SAFETY: path and the prepared argv/envp arrays are valid, NUL- and
            // null-terminated, and outlive the call.
            unsafe {
                libc::execve(
                    path.as_ptr(),
                    a.prep.argv_ptrs.as_ptr(),
                    a.prep.envp_ptrs.as_ptr(),
                )
            };
            let e = std::io::Error::last_os_error();
            a.fail = Some(ChildFail::Msg(format!("execve {}: {e}", a.prep.cmd)));
        }
        Err(f) => a.fail = Some(f),
    }
    // SAFETY: _exit ends the child without running atexit handlers or unwinding into
    // the parent's (shared) state.
    unsafe { libc::_exit(127) }
}

/// The fast start: `clone(CLONE_VM | CLONE_VFORK | CLONE_NEW*)` on a separate stack,
/// like posix_spawn: no page tables are copied and no copy-on-write faults are taken;
/// the parent sleeps until the workload's execve, and the child reports through the
/// shared memory.
pub(super) fn spawn_vfork(prep: &Prepared, old_mask: &SigSet) -> Result<Launch> {
    // SAFETY: an anonymous private mapping; checked for MAP_FAILED below and unmapped
    // after the child has exec'd or exited.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CHILD_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(Error::sys(
            "mmap of the child stack",
            std::io::Error::last_os_error(),
        ));
    }
    let mut args = VforkArgs {
        prep,
        old_mask,
        exec_ns: 0,
        fail: None,
        steps: Steps::default(),
        pin: None,
    };
    args.steps.stamp(0);
    args.pin = crate::affinity::Pin::to_current_cpu();
    // SAFETY: the stack top is inside the mapping (stacks grow down on x86_64); the
    // callback never returns (it execs or _exits); `args` outlives the call because
    // CLONE_VFORK suspends us until the child is done with it.
    let pid = unsafe {
        libc::clone(
            vfork_child,
            (stack as *mut u8).add(CHILD_STACK).cast(),
            prep.flags | libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut VforkArgs).cast(),
        )
    };
    let err = std::io::Error::last_os_error();
    if let Some(p) = args.pin {
        // Best effort: the runtime only waits from here on.
        let _ = p.restore();
    }
    // SAFETY: the mapping was created above and the child no longer uses it.
    unsafe { libc::munmap(stack, CHILD_STACK) };
    if pid < 0 {
        return Err(clone_error(err));
    }
    let exec = match (args.fail.take(), args.exec_ns) {
        (Some(f), _) => Err(f.into_error()),
        (None, 0) => Err(Error::Setup(
            "the sandbox child died before the workload's execve".into(),
        )),
        (None, t) => Ok(t),
    };
    Ok(Launch {
        pid,
        exec,
        steps: args.steps,
    })
}

/// The start with a parent round trip (custom id maps): a fork-style clone; the child
/// waits on the go pipe until the parent wrote its maps and reports through the exec
/// pipe.
pub(super) fn spawn_forked(prep: &Prepared, old_mask: &SigSet) -> Result<Launch> {
    let (exec_r, exec_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    let (go_r, go_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    let (pid, placed) = fork_clone(prep.flags, prep.into_cgroup.as_ref().map(|c| c.0));
    if pid == 0 {
        drop(exec_r);
        drop(go_w);
        if let (Some((_, procs)), false) = (&prep.into_cgroup, placed) {
            // clone3 is missing: join like the other hierarchies, first thing.
            if let Err(e) = cgroups::join(std::slice::from_ref(procs)) {
                write_fd(
                    exec_w.as_raw_fd(),
                    format!("Ejoining the cgroup: {e}").as_bytes(),
                );
                // SAFETY: _exit in the forked child.
                unsafe { libc::_exit(127) }
            }
        }
        child_main(prep, exec_w.as_raw_fd(), go_r, old_mask);
    }
    if pid < 0 {
        return Err(clone_error(std::io::Error::last_os_error()));
    }
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| clone_error(std::io::Error::from_raw_os_error(libc::ERANGE)))?;
    drop(exec_w);
    drop(go_r);
    if let Some((uid_map, gid_map)) = &prep.userns {
        if let Err(e) = write_maps(pid, uid_map, gid_map, prep.rootless) {
            return Ok(Launch {
                pid,
                exec: Err(e),
                steps: Steps::default(),
            });
        }
    }
    if let Some(h) = &prep.hooks {
        use oci_spec::runtime::ContainerState;
        let st = h.state(ContainerState::Creating, pid);
        let ran = crate::hooks::prestart(Some(&h.hooks), &st)
            .and_then(|()| crate::hooks::create_runtime(Some(&h.hooks), &st));
        if let Err(e) = ran {
            return Ok(Launch {
                pid,
                exec: Err(Error::Setup(e.to_string())),
                steps: Steps::default(),
            });
        }
    }
    // The child proceeds when it reads this byte (and, with hooks, its pid as the
    // runtime sees it, for their state).
    let mut go = vec![b'g'];
    if prep.hooks.is_some() {
        go.extend_from_slice(&pid.to_le_bytes());
    }
    let _ = nix::unistd::write(&go_w, &go);
    drop(go_w);
    let msg = read_all(exec_r.as_raw_fd());
    let mut exec_ns = None;
    let mut failure = None;
    let mut i = 0;
    while i < msg.len() {
        match msg[i] {
            // T: about to execve; R: set up, waiting for `start` (create).
            b'T' | b'R' if i + 9 <= msg.len() => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&msg[i + 1..i + 9]);
                exec_ns = Some(u64::from_le_bytes(b));
                i += 9;
            }
            b'E' => {
                failure = Some(ChildFail::Msg(
                    String::from_utf8_lossy(&msg[i + 1..]).into_owned(),
                ));
                break;
            }
            b'N' => {
                failure = Some(ChildFail::NotFound(
                    String::from_utf8_lossy(&msg[i + 1..]).into_owned(),
                ));
                break;
            }
            b'X' => {
                failure = Some(ChildFail::RuntimeExe);
                break;
            }
            _ => break,
        }
    }
    let exec = match (failure, exec_ns) {
        (Some(f), _) => Err(f.into_error()),
        (None, Some(t)) => Ok(t),
        (None, None) => Err(Error::Setup(
            "the sandbox child died before the workload's execve".into(),
        )),
    };
    Ok(Launch {
        pid,
        exec,
        steps: Steps::default(),
    })
}
