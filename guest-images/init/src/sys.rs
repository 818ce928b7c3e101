//! The system calls guest-init makes, wrapped: console writes, mounts, port I/O,
//! spawning and waiting for the workload, ending the VM. Thin and allocation-light;
//! the decisions are made by the pure modules.

use std::ffi::{CStr, CString};
use std::io;

use crate::cmdline::ExitMethod;

/// Writes all of `bytes` to file descriptor `fd`, retrying on EINTR and short
/// writes. Unbuffered, so lines keep their order with the workload's own output.
pub fn write_all(fd: libc::c_int, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live slice `bytes`.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// This process's PID.
pub fn pid() -> i32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Whether a procfs is mounted at /proc (its `self` link resolves).
pub fn proc_mounted() -> bool {
    // SAFETY: the path is a valid NUL-terminated string.
    unsafe { libc::access(c"/proc/self/stat".as_ptr(), libc::F_OK) == 0 }
}

/// Creates `target` if needed and mounts a `fstype` file system there. A target
/// that is already mounted (EBUSY) counts as success.
pub fn mount(fstype: &CStr, target: &CStr) -> io::Result<()> {
    // SAFETY: valid NUL-terminated path; an existing directory is fine.
    unsafe { libc::mkdir(target.as_ptr(), 0o755) };
    // SAFETY: all pointers are valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EBUSY) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Access to x86 I/O ports, granted by `ioperm` (needs CAP_SYS_RAWIO: PID 1 of a
/// VM has it). Only constructed when every requested port was granted.
#[derive(Debug, Clone, Copy)]
pub struct PortIo(());

impl PortIo {
    /// Requests access to each port in `ports`; `None` if any is refused.
    pub fn open(ports: &[u16]) -> Option<PortIo> {
        for &port in ports {
            // SAFETY: ioperm only changes this process's I/O permission bitmap.
            if unsafe { libc::ioperm(port.into(), 1, 1) } != 0 {
                return None;
            }
        }
        Some(PortIo(()))
    }

    /// Writes one byte to `port`. Only call with a port passed to [`PortIo::open`].
    pub fn outb(&self, port: u16, value: u8) {
        // SAFETY: `self` exists only if ioperm granted the ports it was opened
        // with; an `out` to a granted port has no memory effects.
        unsafe {
            std::arch::asm!("out dx, al", in("dx") port, in("al") value,
                            options(nomem, nostack, preserves_flags));
        }
    }
}

/// Runs `program` (a path, or a name looked up in PATH) with `args` in a child
/// process and waits for it. Returns the raw wait status. If the exec fails the
/// child prints why and exits with 127.
pub fn spawn_and_wait(program: &str, args: &[String]) -> io::Result<libc::c_int> {
    let invalid = |_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument");
    let prog = CString::new(program).map_err(invalid)?;
    let mut argv_owned = Vec::with_capacity(args.len() + 1);
    argv_owned.push(prog.clone());
    for a in args {
        argv_owned.push(CString::new(a.as_str()).map_err(invalid)?);
    }
    let mut argv: Vec<*const libc::c_char> = argv_owned.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let fail_msg = format!("guest-init: cannot execute {program}\n");

    // SAFETY: fork has no preconditions; the child only calls async-signal-safe
    // functions (execvp, write, _exit) on memory prepared before the fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: `prog` and `argv` are valid, NUL-terminated, and outlive the call.
        unsafe { libc::execvp(prog.as_ptr(), argv.as_ptr()) };
        // SAFETY: plain write of a live buffer, then _exit without unwinding.
        unsafe {
            libc::write(2, fail_msg.as_ptr().cast(), fail_msg.len());
            libc::_exit(crate::console::EXIT_NOT_RUN.into());
        }
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out pointer; `child` is our child's PID.
        let rc = unsafe { libc::waitpid(child, &mut status, 0) };
        if rc == child {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sets environment variable `key` to `value` unless it is set already.
pub fn set_env_default(key: &CStr, value: &CStr) {
    // SAFETY: valid NUL-terminated strings; guest-init is single-threaded.
    unsafe { libc::setenv(key.as_ptr(), value.as_ptr(), 0) };
}

/// Flushes file systems, then ends the VM with reboot(2). Returns only on failure.
pub fn end_vm(method: ExitMethod) -> io::Error {
    let cmd = match method {
        ExitMethod::Reboot => libc::RB_AUTOBOOT,
        ExitMethod::PowerOff => libc::RB_POWER_OFF,
    };
    // SAFETY: sync and reboot take no pointers; reboot needs CAP_SYS_BOOT and
    // either does not return or fails with an errno.
    unsafe {
        libc::sync();
        libc::reboot(cmd);
    }
    io::Error::last_os_error()
}

/// Sleeps forever (PID 1 must never exit: the kernel would panic).
pub fn idle_forever() -> ! {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}
