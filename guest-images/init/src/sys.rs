//! The system calls guest-init makes, as raw Linux x86-64 `syscall`s: console
//! writes, mounts, port I/O, spawning and waiting for the workload, ending the VM.
//! Raw so that the same code serves the normal (std, glibc) build used by the
//! tests and the libc-free static build that goes into the images (see
//! `main.rs`). Thin; the decisions are made by the pure modules.

use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use crate::cmdline::ExitMethod;
use crate::net::{self, Ipv4Cidr};

/// A failed system call: the kernel's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            libc::EPERM => "EPERM (operation not permitted)",
            libc::ENOENT => "ENOENT (no such file or directory)",
            libc::EACCES => "EACCES (permission denied)",
            libc::EBUSY => "EBUSY (busy)",
            libc::ENODEV => "ENODEV (no such device / file system type)",
            libc::EINVAL => "EINVAL (invalid argument)",
            libc::ENOEXEC => "ENOEXEC (exec format error)",
            _ => "",
        };
        write!(f, "errno {} {name}", self.0)
    }
}

/// Result of a system call.
pub type SysResult<T> = Result<T, Errno>;

/// Issues system call `nr` with up to six arguments; returns the raw result
/// (negative errno on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to live memory of
/// the right shape).
#[allow(clippy::cast_possible_truncation)] // x86-64 only (the asm): i64 is isize
unsafe fn syscall6(nr: i64, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the arguments; `syscall` clobbers rcx and r11
    // and nothing else besides rax.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// [`syscall6`] with the result turned into a `SysResult`, retrying on EINTR.
///
/// # Safety
/// As for [`syscall6`].
unsafe fn sys(nr: i64, a: [usize; 6]) -> SysResult<usize> {
    loop {
        // SAFETY: forwarded from the caller.
        let ret = unsafe { syscall6(nr, a) };
        if ret >= 0 {
            return Ok(ret.unsigned_abs());
        }
        // The kernel returns -4095..=-1 for an error.
        let errno = i32::try_from(ret.unsigned_abs()).unwrap_or(i32::MAX);
        if errno != libc::EINTR {
            return Err(Errno(errno));
        }
    }
}

fn ptr<T>(p: *const T) -> usize {
    p as usize
}

/// Writes all of `bytes` to file descriptor `fd` (short writes continued).
/// Unbuffered, so lines keep their order with the workload's own output.
pub fn write_all(fd: i32, mut bytes: &[u8]) -> SysResult<()> {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live slice `bytes`.
        let n = unsafe {
            sys(
                libc::SYS_write,
                [
                    fd.cast_unsigned() as usize,
                    ptr(bytes.as_ptr()),
                    bytes.len(),
                    0,
                    0,
                    0,
                ],
            )
        }?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Reads a whole (small) file such as /proc/cmdline.
pub fn read_file(path: &CStr) -> SysResult<Vec<u8>> {
    // SAFETY: valid NUL-terminated path.
    let fd = unsafe {
        sys(
            libc::SYS_open,
            [
                ptr(path.as_ptr()),
                (libc::O_RDONLY | libc::O_CLOEXEC) as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }?;
    let mut data = Vec::new();
    let mut chunk = [0u8; 512];
    let result = loop {
        // SAFETY: `chunk` is a live, writable buffer of the given length.
        match unsafe {
            sys(
                libc::SYS_read,
                [fd, ptr(chunk.as_mut_ptr()), chunk.len(), 0, 0, 0],
            )
        } {
            Ok(0) => break Ok(data),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) => break Err(e),
        }
    };
    // SAFETY: closing the descriptor opened above.
    let _ = unsafe { sys(libc::SYS_close, [fd, 0, 0, 0, 0, 0]) };
    result
}

/// An open file descriptor, closed when dropped.
#[derive(Debug)]
pub struct Fd(usize);

impl Fd {
    /// The descriptor's number (for [`write_all`]).
    pub fn raw(&self) -> i32 {
        i32::try_from(self.0).unwrap_or(-1)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns.
        let _ = unsafe { sys(libc::SYS_close, [self.0, 0, 0, 0, 0, 0]) };
    }
}

/// Opens `path` read-only with O_DIRECT: reads bypass the page cache and go to the
/// device (or file system) every time.
pub fn open_direct(path: &CStr) -> SysResult<Fd> {
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECT;
    // SAFETY: valid NUL-terminated path.
    unsafe {
        sys(
            libc::SYS_open,
            [
                ptr(path.as_ptr()),
                flags.cast_unsigned() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }
    .map(Fd)
}

/// One read(2) into `buf`: the bytes read, 0 at the end.
pub fn read(fd: &Fd, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is a live, writable buffer of the given length.
    unsafe {
        sys(
            libc::SYS_read,
            [fd.0, ptr(buf.as_mut_ptr()), buf.len(), 0, 0, 0],
        )
    }
}

/// CLOCK_MONOTONIC in nanoseconds (0 if the clock cannot be read).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live out pointer of the type clock_gettime writes.
    let ok = unsafe {
        sys(
            libc::SYS_clock_gettime,
            [
                libc::CLOCK_MONOTONIC.cast_unsigned() as usize,
                ptr(&mut ts as *mut libc::timespec),
                0,
                0,
                0,
                0,
            ],
        )
    }
    .is_ok();
    if !ok {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// This process's PID.
pub fn pid() -> i32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { sys(libc::SYS_getpid, [0; 6]) }.map_or(-1, |p| i32::try_from(p).unwrap_or(-1))
}

/// Whether a procfs is mounted at /proc (`/proc/self/stat` exists).
pub fn proc_mounted() -> bool {
    // SAFETY: valid NUL-terminated path.
    unsafe {
        sys(
            libc::SYS_access,
            [
                ptr(c"/proc/self/stat".as_ptr()),
                libc::F_OK as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }
    .is_ok()
}

/// Creates `target` if needed and mounts a `fstype` file system there (the source
/// is named like the type). An already mounted target (EBUSY) counts as success.
pub fn mount(fstype: &CStr, target: &CStr) -> SysResult<()> {
    // SAFETY: valid NUL-terminated path; an existing directory (EEXIST) is fine.
    let _ = unsafe { sys(libc::SYS_mkdir, [ptr(target.as_ptr()), 0o755, 0, 0, 0, 0]) };
    #[allow(clippy::cast_possible_truncation)] // c_ulong is usize on Linux
    let flags = (libc::MS_NOSUID | libc::MS_NOEXEC) as usize;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        sys(
            libc::SYS_mount,
            [
                ptr(fstype.as_ptr()),
                ptr(target.as_ptr()),
                ptr(fstype.as_ptr()),
                flags,
                0,
                0,
            ],
        )
    };
    match rc {
        Ok(_) | Err(Errno(libc::EBUSY)) => Ok(()),
        Err(e) => Err(e),
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
            unsafe { sys(libc::SYS_ioperm, [port as usize, 1, 1, 0, 0, 0]) }.ok()?;
        }
        Some(PortIo(()))
    }

    /// Writes one byte to `port`. Only call with a port passed to [`PortIo::open`].
    pub fn outb(&self, port: u16, value: u8) {
        // SAFETY: `self` exists only if ioperm granted the ports it was opened
        // with; an `out` to a granted port has no memory effects.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value,
                             options(nomem, nostack, preserves_flags));
        }
    }
}

/// A NUL-terminated pointer array over NUL-terminated strings, for execve.
fn pointer_array(strings: &[Vec<u8>]) -> Vec<*const u8> {
    let mut v: Vec<*const u8> = strings.iter().map(|s| s.as_ptr()).collect();
    v.push(core::ptr::null());
    v
}

/// Forks; the child tries `execve` on each of `candidates` (NUL-terminated paths)
/// with `argv` and `envp` (NUL-terminated strings) and, if all fail, writes
/// `fail_msg` to stderr and exits with `fail_code`. The parent waits and returns
/// the raw wait status.
pub fn spawn_and_wait(
    candidates: &[Vec<u8>],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    fail_msg: &[u8],
    fail_code: u8,
) -> SysResult<i32> {
    let argv_ptrs = pointer_array(argv);
    let envp_ptrs = pointer_array(envp);
    // SAFETY: fork takes no arguments. The child below only makes raw system
    // calls on memory prepared before the fork, and never returns.
    let child = unsafe { sys(libc::SYS_fork, [0; 6]) }?;
    if child == 0 {
        for path in candidates {
            // SAFETY: `path`, `argv_ptrs` and `envp_ptrs` are NUL-terminated and
            // live; execve only returns on failure.
            let _ = unsafe {
                syscall6(
                    libc::SYS_execve,
                    [
                        ptr(path.as_ptr()),
                        ptr(argv_ptrs.as_ptr()),
                        ptr(envp_ptrs.as_ptr()),
                        0,
                        0,
                        0,
                    ],
                )
            };
        }
        let _ = write_all(2, fail_msg);
        exit(fail_code);
    }
    let mut status: i32 = 0;
    // SAFETY: `status` is a live out pointer; `child` is our child.
    unsafe {
        sys(
            libc::SYS_wait4,
            [child, ptr(&mut status as *mut i32), 0, 0, 0, 0],
        )
    }?;
    Ok(status)
}

/// Waits until the terminal on `fd` has sent everything written to it (tcdrain:
/// TCSBRK with a non-zero argument sends no break). The monitor ends the VM at the
/// exit-port write and saves it at the snapshot-port write, so a console line still
/// in the serial driver's buffer then would be cut short. Fails harmlessly (ENOTTY)
/// when `fd` is not a terminal.
pub fn drain(fd: i32) -> SysResult<()> {
    /// ioctl number of TCSBRK on x86 (asm-generic/ioctls.h).
    const TCSBRK: usize = 0x5409;
    // SAFETY: TCSBRK takes an integer argument, no pointer.
    unsafe {
        sys(
            libc::SYS_ioctl,
            [fd.cast_unsigned() as usize, TCSBRK, 1, 0, 0, 0],
        )
    }
    .map(|_| ())
}

/// Gives interface `name` the address `ip` and brings it up: an AF_INET datagram
/// socket and the ioctls SIOCSIFADDR, SIOCSIFNETMASK, SIOCGIFFLAGS and
/// SIOCSIFFLAGS (IFF_UP). The kernel adds the prefix's route itself.
pub fn interface_up(name: &CStr, ip: Ipv4Cidr) -> SysResult<()> {
    /// ioctl numbers of uapi/linux/sockios.h, and IFF_UP of uapi/linux/if.h.
    const SIOCGIFFLAGS: usize = 0x8913;
    const SIOCSIFFLAGS: usize = 0x8914;
    const SIOCSIFADDR: usize = 0x8916;
    const SIOCSIFNETMASK: usize = 0x891c;
    const IFF_UP: i16 = 1;
    // SAFETY: socket takes no pointers.
    let fd = unsafe {
        sys(
            libc::SYS_socket,
            [
                libc::AF_INET as usize,
                (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }?;
    let name = name.to_bytes();
    let ioctl = |request: usize, req: &mut [u8; net::IFREQ_LEN]| {
        // SAFETY: each of these ioctls reads (and SIOCGIFFLAGS writes) one ifreq,
        // which `req` is, live for the call.
        unsafe {
            sys(
                libc::SYS_ioctl,
                [fd, request, ptr(req.as_mut_ptr()), 0, 0, 0],
            )
        }
    };
    let result = (|| {
        ioctl(SIOCSIFADDR, &mut net::ifreq_addr(name, ip.addr))?;
        ioctl(SIOCSIFNETMASK, &mut net::ifreq_addr(name, ip.netmask()))?;
        let mut req = net::ifreq(name);
        ioctl(SIOCGIFFLAGS, &mut req)?;
        let flags = net::ifreq_flags(&req) | IFF_UP;
        ioctl(SIOCSIFFLAGS, &mut net::with_flags(req, flags))
    })();
    // SAFETY: closing the socket opened above.
    let _ = unsafe { sys(libc::SYS_close, [fd, 0, 0, 0, 0, 0]) };
    result.map(|_| ())
}

/// A vsock stream socket connected to `port` of `cid`. Closing it (dropping the
/// [`Fd`]) lingers until the host has taken its bytes, 2 s at most.
pub fn vsock_connect(cid: u32, port: u32) -> SysResult<Fd> {
    const LINGER_S: i32 = 2;
    // SAFETY: socket takes no pointers.
    let fd = unsafe {
        sys(
            libc::SYS_socket,
            [
                libc::AF_VSOCK as usize,
                (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }
    .map(Fd)?;
    // struct sockaddr_vm: family, reserved, port, cid, zero padding.
    let mut addr = [0u8; 16];
    #[allow(clippy::cast_possible_truncation)] // AF_VSOCK is 40
    addr[0..2].copy_from_slice(&(libc::AF_VSOCK as u16).to_ne_bytes());
    addr[4..8].copy_from_slice(&port.to_ne_bytes());
    addr[8..12].copy_from_slice(&cid.to_ne_bytes());
    // A linger makes close wait for the host's reset, which comes once the host
    // socket has the stream's bytes: the last marker is not lost when the VM ends
    // right after.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: LINGER_S,
    };
    // SAFETY: `linger` and `addr` are live buffers of the lengths given.
    unsafe {
        sys(
            libc::SYS_setsockopt,
            [
                fd.0,
                libc::SOL_SOCKET as usize,
                libc::SO_LINGER as usize,
                ptr(&raw const linger),
                core::mem::size_of::<libc::linger>(),
                0,
            ],
        )?;
        sys(
            libc::SYS_connect,
            [fd.0, ptr(addr.as_ptr()), addr.len(), 0, 0, 0],
        )?;
    }
    Ok(fd)
}

/// Flushes file systems, then ends the VM with reboot(2). Returns only on failure.
pub fn end_vm(method: ExitMethod) -> Errno {
    let cmd = match method {
        ExitMethod::Reboot => libc::LINUX_REBOOT_CMD_RESTART,
        ExitMethod::PowerOff => libc::LINUX_REBOOT_CMD_POWER_OFF,
    };
    // SAFETY: sync and reboot take no pointers; reboot needs CAP_SYS_BOOT and
    // either does not return or fails with an errno.
    unsafe {
        let _ = sys(libc::SYS_sync, [0; 6]);
        let magic1 = libc::LINUX_REBOOT_MAGIC1.cast_unsigned() as usize;
        let magic2 = libc::LINUX_REBOOT_MAGIC2.cast_unsigned() as usize;
        match sys(
            libc::SYS_reboot,
            [magic1, magic2, cmd.cast_unsigned() as usize, 0, 0, 0],
        ) {
            Ok(_) => Errno(0),
            Err(e) => e,
        }
    }
}

/// Ends this process with `code` (all threads).
pub fn exit(code: u8) -> ! {
    loop {
        // SAFETY: exit_group takes a plain integer and does not return.
        unsafe { syscall6(libc::SYS_exit_group, [code as usize, 0, 0, 0, 0, 0]) };
    }
}

/// Sleeps forever (PID 1 must never exit: the kernel would panic).
pub fn idle_forever() -> ! {
    loop {
        // SAFETY: pause takes no arguments.
        let _ = unsafe { syscall6(libc::SYS_pause, [0; 6]) };
    }
}
