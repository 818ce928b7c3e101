//! The child's side: every set-up step from the parent-death signal to the execve
//! (see the module doc of `process` for their order), and the PATH lookup and the
//! refusal of the runtime's own binary.

use super::*;

pub(super) enum ChildFail {
    NotFound(String),
    RuntimeExe,
    Msg(String),
}

impl ChildFail {
    pub(super) fn into_error(self) -> Error {
        match self {
            ChildFail::NotFound(c) => Error::CommandNotFound(c),
            ChildFail::RuntimeExe => Error::RuntimeExe,
            ChildFail::Msg(m) => Error::Setup(m),
        }
    }
}

impl From<String> for ChildFail {
    fn from(s: String) -> Self {
        ChildFail::Msg(s)
    }
}

pub(super) fn step<T, E: std::fmt::Display>(
    what: &str,
    r: std::result::Result<T, E>,
) -> std::result::Result<T, ChildFail> {
    r.map_err(|e| ChildFail::Msg(format!("{what}: {e}")))
}

pub(super) fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: `data` is valid for its length; a failed write only loses the report.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
}

/// Last steps before the execve, in the child: the kernel's default scheduler
/// slice, default SIGPIPE (Rust's runtime ignores it; the workload must get the
/// default) and the original signal mask.
pub(super) fn prepare_exec(p: &Prepared, old_mask: &SigSet) {
    if let Some(s) = &p.slice {
        // Best effort: the slice is a hint.
        let _ = s.reset();
    }
    // SAFETY: resetting a disposition to the default is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
}

pub(super) fn child_main(p: &Prepared, exec_w: RawFd, go_r: OwnedFd, old_mask: &SigSet) -> ! {
    match child_setup(p, Some(go_r), Some(exec_w), &mut Steps::default()) {
        Ok(path) if p.hold.is_some() => hold_then_exec(p, &path, exec_w, old_mask),
        Ok(path) => {
            prepare_exec(p, old_mask);
            let mut rec = [0u8; 9];
            rec[0] = b'T';
            rec[1..].copy_from_slice(&timeline::now_ns().to_le_bytes());
            write_fd(exec_w, &rec);
            // SAFETY: path and the prepared argv/envp arrays are valid, NUL- and
            // null-terminated, and outlive the call.
            unsafe { libc::execve(path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
            let e = std::io::Error::last_os_error();
            write_fd(exec_w, format!("Eexecve {}: {e}", p.cmd).as_bytes());
        }
        Err(ChildFail::NotFound(cmd)) => write_fd(exec_w, format!("N{cmd}").as_bytes()),
        Err(ChildFail::RuntimeExe) => write_fd(exec_w, b"X"),
        Err(ChildFail::Msg(m)) => write_fd(exec_w, format!("E{m}").as_bytes()),
    }
    // SAFETY: _exit ends the child without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

/// A created container's last steps: report ready, wait on the exec FIFO for
/// `start`, exec. From the report on the runtime is gone (`create` has exited), so
/// the parent-death signal is disarmed first and a late failure can only go to the
/// container's own stderr.
pub(super) fn hold_then_exec(p: &Prepared, path: &CString, exec_w: RawFd, old_mask: &SigSet) -> ! {
    let fail = |msg: String| -> ! {
        write_fd(2, format!("bootlab: container init: {msg}\n").as_bytes());
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: integer-only prctl.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) } != 0 {
        write_fd(exec_w, b"Eprctl(PR_SET_PDEATHSIG, 0) failed");
        fail("prctl(PR_SET_PDEATHSIG, 0) failed".into());
    }
    let mut rec = [0u8; 9];
    rec[0] = b'R';
    rec[1..].copy_from_slice(&timeline::now_ns().to_le_bytes());
    write_fd(exec_w, &rec);
    // SAFETY: closing our copy of the report pipe: the runtime sees end-of-file.
    unsafe { libc::close(exec_w) };
    let fifo = p.hold.map_or(-1, |h| h.fifo);
    let mut b = [0u8; 1];
    loop {
        // SAFETY: `b` is writable for one byte; `fifo` is open (kept by the set-up).
        let n = unsafe { libc::read(fifo, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        fail(format!("waiting on the exec FIFO: {e}"));
    }
    // SAFETY: closing our own descriptor once, before the execve.
    unsafe { libc::close(fifo) };
    if let Some(h) = &p.hooks {
        let pid = HOST_PID.load(std::sync::atomic::Ordering::Relaxed);
        let st = h.state(oci_spec::runtime::ContainerState::Running, pid);
        if let Err(e) = crate::hooks::start_container(Some(&h.hooks), &st) {
            fail(e.to_string());
        }
    }
    prepare_exec(p, old_mask);
    // SAFETY: path and the prepared argv/envp arrays are valid, NUL- and
    // null-terminated, and outlive the call.
    unsafe { libc::execve(path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
    fail(format!(
        "execve {}: {}",
        p.cmd,
        std::io::Error::last_os_error()
    ))
}

/// The child's pid as the runtime sees it (from the go byte; 0 without hooks), for
/// the state of the startContainer hooks that run after `start` (the child is a
/// process of its own: this static is its copy).
pub(super) static HOST_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

pub(super) fn child_setup(
    p: &Prepared,
    go_r: Option<OwnedFd>,
    exec_w: Option<RawFd>,
    steps: &mut Steps,
) -> std::result::Result<CString, ChildFail> {
    // Our copy of the write end would keep the pipe open after the runtime's death.
    // SAFETY: closing the child's own copy of a descriptor (no CLONE_FILES).
    unsafe { libc::close(p.alive.1) };
    // The sandbox's pid as the runtime sees it (sent with the go byte when there
    // are hooks, whose state carries it).
    let mut host_pid = 0;
    if p.pdeath {
        arm_parent_death(p.alive.0)?;
    }
    if let Some(r) = go_r {
        let mut b = [0u8; 5];
        let want = if p.hooks.is_some() { 5 } else { 1 };
        match nix::unistd::read(&r, &mut b[..want]) {
            Ok(n) if n == want => {
                host_pid = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
            }
            _ => {
                return Err(ChildFail::Msg(
                    "the runtime went away before the sandbox was ready".into(),
                ))
            }
        }
        drop(r);
        if p.rootless {
            step("prctl(PR_SET_DUMPABLE)", security::set_non_dumpable())?;
        }
    }
    // CVE-2024-21626: a descriptor the runtime or its caller left open (a host
    // directory) must not be reachable during the set-up, e.g. as the working
    // directory `/proc/self/fd/N`. Only our own pipes stay.
    let mut keep = vec![
        Some(p.alive.0),
        exec_w,
        p.console,
        p.netns.as_ref().map(NetnsHandle::pidfd),
        p.hold.map(|h| h.fifo),
    ];
    keep.extend(p.joins.raw_fds().map(Some));
    step(
        "closing inherited descriptors",
        close_fds_except(&keep, p.hold.map_or(0, |h| h.preserve_fds)),
    )?;
    if !p.joins.is_empty() {
        p.joins.enter()?;
    }
    if p.clear_groups {
        // Custom maps: become root of the new user namespace before touching files
        // (our host ids are not mapped there; creating a file would fail EOVERFLOW).
        step("setgroups", ids::setgroups(&[]))?;
        step("setresgid", ids::setresgid(0))?;
        step("setresuid", ids::setresuid(0))?;
    }
    if p.own_maps {
        if let Some((uid_map, gid_map)) = &p.userns {
            let w = |file: &str, data: &str| {
                step(
                    &format!("writing /proc/self/{file}"),
                    crate::sys::write_file(
                        Path::new(&format!("/proc/self/{file}")),
                        data.as_bytes(),
                    ),
                )
            };
            w("uid_map", uid_map)?;
            // Writing one's own gid_map needs setgroups denied first, also as root:
            // the child has no CAP_SETGID in the parent user namespace.
            w("setgroups", "deny")?;
            w("gid_map", gid_map)?;
            if p.rootless {
                step("prctl(PR_SET_DUMPABLE)", security::set_non_dumpable())?;
            }
        }
    }
    // New session: no controlling terminal, so no TIOCSTI injection into the host's.
    step("setsid", nix::unistd::setsid())?;

    if !p.cgroup_procs.is_empty() {
        step("joining the cgroup", cgroups::join(&p.cgroup_procs))?;
    }
    // Once in the sandbox's cgroup (joined, or cloned into it), so the namespace
    // is rooted there.
    if p.late_cgroupns {
        step(
            "unshare(CLONE_NEWCGROUP)",
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP),
        )?;
    }
    if !p.sysctls.is_empty() {
        crate::sysctl::apply(&p.sysctls)?;
    }
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let hook_state = |status| p.hooks.as_ref().map(|h| (h, h.state(status, host_pid)));
    if let Some(plan) = &p.rootfs {
        match hook_state(oci_spec::runtime::ContainerState::Creating) {
            Some((h, st)) => plan.apply_with(Some(&|| {
                crate::hooks::create_container(Some(&h.hooks), &st).map_err(|e| e.to_string())
            }))?,
            None => plan.apply()?,
        }
    }
    if let Some(sock) = p.console {
        step("the terminal", container_terminal(sock, p.console_size))?;
    }
    steps.stamp(2);
    if let Some(h) = &p.hostname {
        step("sethostname", nix::unistd::sethostname(h))?;
    }
    if let Some(n) = &p.netns {
        step("joining the new network namespace", n.join())?;
    } else if p.unshare_net {
        step(
            "unshare(CLONE_NEWNET)",
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET),
        )?;
        step("bringing up lo", loopback_up())?;
    } else if p.lo_up {
        step("bringing up lo", loopback_up())?;
    }
    steps.stamp(3);
    step(
        &format!("chdir {}", p.cwd.display()),
        nix::unistd::chdir(&p.cwd),
    )?;
    // The working directory must be inside the new root: a magic link such as
    // `/proc/PID/cwd` of a host process (without a PID namespace) leads out of it.
    // getcwd fails (ENOENT) for a directory unreachable from the root.
    match nix::unistd::getcwd() {
        Ok(d) if d.is_absolute() => {}
        _ => {
            return Err(ChildFail::Msg(format!(
                "the working directory {} is outside the sandbox's root",
                p.cwd.display()
            )))
        }
    }
    let path = resolve(&p.cmd, &p.path_dirs).ok_or_else(|| ChildFail::NotFound(p.cmd.clone()))?;
    if let Some(exe) = p.runtime_exe {
        if runs_program(&path, exe) {
            return Err(ChildFail::RuntimeExe);
        }
    }
    for (res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
        let rc = unsafe { libc::setrlimit(*res as _, &lim) };
        step("setrlimit", cvt(rc))?;
    }
    nix::sys::stat::umask(match p.user.umask {
        Some(m) => nix::sys::stat::Mode::from_bits_truncate(m),
        None => old_umask,
    });
    // startContainer hooks; on the create path they wait for `start` (see
    // hold_then_exec).
    HOST_PID.store(host_pid, std::sync::atomic::Ordering::Relaxed);
    if p.hold.is_none() {
        if let Some((h, st)) = hook_state(oci_spec::runtime::ContainerState::Running) {
            step(
                "startContainer hooks",
                crate::hooks::start_container(Some(&h.hooks), &st),
            )?;
        }
    }
    if let Some(request) = &p.apparmor {
        step(
            "setting the AppArmor profile",
            security::apparmor::change_on_exec(request),
        )?;
    }
    step(
        "dropping the capability bounding set",
        caps::drop_bounding(&p.caps),
    )?;
    if p.no_new_privs {
        step("prctl(PR_SET_NO_NEW_PRIVS)", security::set_no_new_privs())?;
    }
    if let Some(f) = &p.filter {
        step("installing the seccomp filter", f.install())?;
    }
    if p.change_user {
        step("prctl(PR_SET_KEEPCAPS)", caps::keep_caps())?;
        let u = &p.user;
        if !u.additional_gids.is_empty() || p.clear_groups {
            step("setgroups", ids::setgroups(&u.additional_gids))?;
        }
        step("setresgid", ids::setresgid(u.gid))?;
        step("setresuid", ids::setresuid(u.uid))?;
    }
    step("setting capabilities", caps::apply(&p.caps))?;
    if p.change_user && p.pdeath {
        // A change of the effective uid/gid clears the parent-death signal
        // (commit_creds): arm it again for the workload.
        arm_parent_death(p.alive.0)?;
    }
    steps.stamp(4);
    // Layer 3 of the CVE-2019-5736 guard: no descriptor of the runtime survives exec.
    // SAFETY: close_range only changes descriptor flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32.saturating_add(p.hold.map_or(0, |h| h.preserve_fds)),
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    step("close_range", crate::sys::cvt_long(rc))?;
    Ok(path)
}

/// Opens a pty on the container's devpts, sends its master on the console
/// connection `sock` and makes the slave this process's terminal and stdio.
pub(super) fn container_terminal(sock: RawFd, size: Option<(u16, u16)>) -> std::io::Result<()> {
    let pty = crate::console::Pty::open()?;
    if let Some((rows, cols)) = size {
        pty.set_size(rows, cols)?;
    }
    pty.send_master(sock)?;
    pty.take_slave()?;
    // SAFETY: closing our copy of the connection; the engine holds the master.
    unsafe { libc::close(sock) };
    Ok(())
}

/// Identity changes of the child as raw system calls. glibc's wrappers apply a
/// uid/gid change to every thread it knows of (a SIGSETXID broadcast); a child made
/// by a raw `clone` of a multi-threaded runtime inherits that thread list without
/// the threads, and waited forever for one that was starting or exiting at the
/// clone (seen in container/tests/sandbox.rs). The child has one thread, and the
/// kernel changes the calling thread's credentials: that is all it needs.
pub(super) mod ids {
    use crate::sys::cvt_long;

    pub(super) fn setgroups(gids: &[u32]) -> std::io::Result<()> {
        // SAFETY: `gids` is valid for its length; the kernel copies it.
        cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) }).map(drop)
    }

    pub(super) fn setresgid(g: u32) -> std::io::Result<()> {
        // SAFETY: integer arguments only.
        cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, g, g, g) }).map(drop)
    }

    pub(super) fn setresuid(u: u32) -> std::io::Result<()> {
        // SAFETY: integer arguments only.
        cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, u, u, u) }).map(drop)
    }
}

/// Arms `PR_SET_PDEATHSIG` = SIGKILL, then checks that the runtime did not die before
/// it was armed (the signal is only sent to children a dying parent finds armed): the
/// runtime closes its descriptors, the write end of the parent-alive pipe among them,
/// before the kernel reparents its children, so a pipe that is not at end-of-file
/// after the prctl means the runtime will still signal us when it dies.
///
/// The parent-death signal follows the parent THREAD. On the vfork path the child's
/// parent is the thread suspended in `clone`, which stays in [`run`] until the
/// workload has ended: it can only go away with its whole process.
pub(super) fn arm_parent_death(alive_r: RawFd) -> std::result::Result<(), ChildFail> {
    // SAFETY: integer-only prctl.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    step("prctl(PR_SET_PDEATHSIG)", cvt(rc))?;
    let mut pfd = libc::pollfd {
        fd: alive_r,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd; a zero timeout only checks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        match n {
            0 => return Ok(()),
            n if n > 0 => {
                return Err(ChildFail::Msg(
                    "the runtime died during the sandbox set-up".into(),
                ))
            }
            _ => {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(ChildFail::Msg(format!(
                        "checking that the runtime is alive (poll): {e}"
                    )));
                }
            }
        }
    }
}

/// Closes every descriptor above 2 except `keep` and the `preserved` ones right
/// above 2 (`close_range` over the gaps).
pub(super) fn close_fds_except(keep: &[Option<RawFd>], preserved: u32) -> std::io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .flatten()
        .filter(|f| **f > 2)
        .filter_map(|f| u32::try_from(*f).ok())
        .chain(3..3u32.saturating_add(preserved))
        .collect();
    keep.sort_unstable();
    let mut lo = 3u32;
    for k in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if k > lo {
            let hi = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range only closes descriptors of this (child) process.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
            crate::sys::cvt_long(rc)?;
        }
        lo = k.saturating_add(1);
    }
    Ok(())
}

/// How many `#!` interpreters the kernel follows (BINPRM_MAX_RECURSION) plus the
/// program itself.
pub(super) const MAX_INTERPRETERS: usize = 5;

/// Layer 2 of the CVE-2019-5736 guard, before the execve: whether executing `path`
/// would run the program `exe` (device, inode), directly or as the `#!` interpreter
/// of a script (followed like the kernel does). An unreadable script is not
/// followed; the parent's check after the execve still catches it.
pub(super) fn runs_program(path: &CString, exe: (u64, u64)) -> bool {
    let mut cur = path.clone();
    for _ in 0..MAX_INTERPRETERS {
        // SAFETY: `cur` is a valid C string; stat writes only into `st`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::stat(cur.as_ptr(), &mut st) } != 0 {
            return false;
        }
        if (st.st_dev, st.st_ino) == exe {
            return true;
        }
        // Only a regular file can be a script (execve refuses anything else), and
        // O_NONBLOCK: a file swapped for a FIFO meanwhile must not hang the start.
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return false;
        }
        let mut head = [0u8; 256];
        // SAFETY: `cur` is a valid C string; the fd is closed below.
        let fd = unsafe {
            libc::open(
                cur.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            return false;
        }
        // SAFETY: `head` is writable for its length; `fd` is open and closed once.
        let n = unsafe {
            let n = libc::read(fd, head.as_mut_ptr().cast(), head.len());
            libc::close(fd);
            n
        };
        let head = &head[..usize::try_from(n).unwrap_or(0)];
        let Some(rest) = head.strip_prefix(b"#!") else {
            return false;
        };
        let interp: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|b| *b == b' ' || *b == b'\t')
            .take_while(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0))
            .collect();
        match CString::new(interp) {
            Ok(c) if !c.is_empty() => cur = c,
            _ => return false,
        }
    }
    false
}

/// Looks `cmd` up like execvp: as a path when it contains a slash, else in `dirs`.
pub(super) fn resolve(cmd: &str, dirs: &[String]) -> Option<CString> {
    let executable = |c: &CString| {
        // SAFETY: `c` is a valid C string; stat writes only into `st`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; access has no memory-safety preconditions.
        unsafe {
            libc::stat(c.as_ptr(), &mut st) == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFREG
                && libc::access(c.as_ptr(), libc::X_OK) == 0
        }
    };
    if cmd.contains('/') {
        let c = CString::new(cmd).ok()?;
        return executable(&c).then_some(c);
    }
    dirs.iter().find_map(|d| {
        let d = if d.is_empty() { "." } else { d };
        let c = cpath(&Path::new(d).join(cmd)).ok()?;
        executable(&c).then_some(c)
    })
}

/// Brings the loopback interface of the new network namespace up.
pub(crate) fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket creation; the fd is closed below.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: an all-zero ifreq is valid; the name is copied in below.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = libc::c_char::from_ne_bytes([*s]);
    }
    // SAFETY: `ifr` is a valid ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS on `fd`.
    let r = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            -1
        } else {
            #[allow(clippy::cast_possible_truncation)] // IFF_UP | IFF_RUNNING is 0x41
            let up = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ifr.ifr_ifru.ifru_flags |= up;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr)
        }
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: `fd` is open and closed once.
    unsafe { libc::close(fd) };
    if r < 0 {
        Err(err)
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    pub(super) fn identity(p: &Path) -> (u64, u64) {
        let md = std::fs::metadata(p).unwrap();
        (md.dev(), md.ino())
    }

    pub(super) fn script(dir: &Path, name: &str, text: &str) -> CString {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        cpath(&p).unwrap()
    }

    #[test]
    pub(super) fn runtime_binary_is_found_through_interpreter_chains() {
        let dir = std::env::temp_dir().join(format!("bootlab-runs-program-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("runtime");
        std::fs::write(&exe, b"\x7fELF").unwrap();
        let id = identity(&exe);
        let e = exe.display();
        assert!(runs_program(&cpath(&exe).unwrap(), id));
        let a = script(&dir, "a", &format!("#!{e}\n"));
        assert!(runs_program(&a, id));
        // Blanks after `#!`, arguments, no newline at all.
        let b = script(&dir, "b", &format!("#! \t{e} --flag x"));
        assert!(runs_program(&b, id));
        // Four scripts deep (the kernel's limit) is still followed.
        let mut prev = exe.clone();
        for i in 0..4 {
            script(&dir, &format!("c{i}"), &format!("#!{}\n", prev.display()));
            prev = dir.join(format!("c{i}"));
        }
        assert!(runs_program(&cpath(&prev).unwrap(), id));
        // Another interpreter, a plain binary, a missing one, an empty `#!`, a FIFO
        // (opened without blocking): not the runtime.
        let sh = script(&dir, "sh", "#!/bin/sh\necho hi\n");
        assert!(!runs_program(&sh, id));
        let other = script(&dir, "other", "\x7fELF other");
        assert!(!runs_program(&other, id));
        let missing = script(&dir, "missing", "#!/nonexistent/interp\n");
        assert!(!runs_program(&missing, id));
        let empty = script(&dir, "empty", "#!\n");
        assert!(!runs_program(&empty, id));
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let to_fifo = script(&dir, "to-fifo", &format!("#!{}\n", fifo.display()));
        assert!(!runs_program(&to_fifo, id));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    pub(super) fn parent_death_check_sees_a_dead_runtime() {
        // In a forked child, so the test process's own parent-death signal is left
        // alone. The child owns both ends: open write end = runtime alive; closed =
        // the runtime died.
        // SAFETY: the child only makes system calls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok((r, w)) => {
                    let alive = arm_parent_death(r.as_raw_fd()).is_ok();
                    drop(w);
                    alive && arm_parent_death(r.as_raw_fd()).is_err()
                }
                Err(_) => false,
            };
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
