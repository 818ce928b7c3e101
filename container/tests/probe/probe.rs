//! A tiny static test workload for the sandbox tests (busybox cannot make arbitrary
//! system calls). Built by the tests with `rustc -C target-feature=+crt-static` and
//! copied into the test rootfs as `/bin/probe`; std only, so it needs no crate.
//!
//! Subcommands (one line of output per result):
//! - `syscalls`: tries calls the default seccomp filter denies and one it allows,
//!   printing `NAME=OK` or `NAME=ERRNO_NAME` (e.g. `keyctl=EPERM`);
//! - `alloc MIB`: allocates and touches MIB MiB (for the memory limit), prints
//!   `allocated` when it survived;
//! - `forks N`: forks up to N sleeping children, prints `forked=K errno=E` when a fork
//!   failed (or `forked=N`), then kills and reaps them;
//! - `forkbomb`: every process forks as fast as it can, forever (for the pids limit);
//! - `call NAME:NR...`: system call NR with zero arguments, `NAME=OK|ERRNO_NAME`
//!   (what a seccomp profile answers for calls it lists or not);
//! - `attack OP...`: the escape attempts of `tests/sandbox_escape.rs`, one
//!   `OP=OK|ERRNO_NAME` line each (`OP` as given, after `{pid}` was replaced by the
//!   first line of stdin and `{ppid}` by the parent's pid). OPs: `open:PATH:r|w|path`, `mknod:PATH:b|c:MAJ:MIN`,
//!   `kill:PID:SIG`, `ptrace:PID`, `pidfd:PID`, `mount:FSTYPE:TARGET`,
//!   `umount:TARGET`, `pivot_root`, `chroot:PATH`, `open_by_handle_at`, `fsopen`,
//!   `open_tree:PATH`, `setns:PATH`,
//!   `unshare-user` (then, only if that worked, `…-then-mount`), `clone-user`,
//!   `clone3`, `i386:NR:A:B:C` (system call NR of the i386 ABI through `int 0x80`).

use std::io::Write;

extern "C" {
    fn syscall(num: i64, ...) -> i64;
    fn fork() -> i32;
    fn pause() -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
    fn open(path: *const i8, flags: i32, ...) -> i32;
    fn mknod(path: *const i8, mode: u32, dev: u64) -> i32;
    fn close(fd: i32) -> i32;
    fn getppid() -> i32;
    fn __errno_location() -> *mut i32;
}

// x86-64 system call numbers (asm/unistd_64.h).
const SYS_GETPID: i64 = 39;
const SYS_MOUNT: i64 = 165;
const SYS_KEXEC_LOAD: i64 = 246;
const SYS_KEYCTL: i64 = 250;
const SYS_UNSHARE: i64 = 272;
const SYS_PTRACE: i64 = 101;
const SYS_INIT_MODULE: i64 = 175;
const SYS_BPF: i64 = 321;
const SYS_UMOUNT2: i64 = 166;
const SYS_PIVOT_ROOT: i64 = 155;
const SYS_FSOPEN: i64 = 430;
const SYS_OPEN_TREE: i64 = 428;
const SYS_SETNS: i64 = 308;
const SYS_PIDFD_OPEN: i64 = 434;
const SYS_CLONE: i64 = 56;
const SYS_CLONE3: i64 = 435;
const SYS_KILL: i64 = 62;
const SYS_CHROOT: i64 = 161;
const SYS_OPEN_BY_HANDLE_AT: i64 = 304;
const CLONE_NEWUSER: i64 = 0x1000_0000;
const CLONE_NEWNS: i64 = 0x0002_0000;
const SIGCHLD: i64 = 17;
const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_PATH: i32 = 0o10_000_000;
const O_CLOEXEC: i32 = 0o2_000_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const CLONE_NEWNET: i64 = 0x4000_0000;
const PTRACE_ATTACH: i64 = 16;
const SIGKILL: i32 = 9;

fn errno_name(e: i32) -> String {
    match e {
        1 => "EPERM".into(),
        2 => "ENOENT".into(),
        3 => "ESRCH".into(),
        6 => "ENXIO".into(),
        9 => "EBADF".into(),
        13 => "EACCES".into(),
        16 => "EBUSY".into(),
        17 => "EEXIST".into(),
        19 => "ENODEV".into(),
        20 => "ENOTDIR".into(),
        26 => "ETXTBSY".into(),
        30 => "EROFS".into(),
        11 => "EAGAIN".into(),
        12 => "ENOMEM".into(),
        14 => "EFAULT".into(),
        22 => "EINVAL".into(),
        38 => "ENOSYS".into(),
        n => format!("E{n}"),
    }
}

fn report(name: &str, ret: i64) {
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if ret < 0 {
        println!("{name}={}", errno_name(e));
    } else {
        println!("{name}=OK");
    }
}

fn syscalls() {
    // SAFETY (all calls): raw system calls with null or integer arguments; the
    // kernel validates them and, for the denied ones, seccomp answers first.
    unsafe {
        report("getpid", syscall(SYS_GETPID));
        report("keyctl", syscall(SYS_KEYCTL, 0i64, 0i64, 0i64, 0i64, 0i64));
        report("kexec_load", syscall(SYS_KEXEC_LOAD, 0i64, 0i64, 0i64, 0i64));
        report("init_module", syscall(SYS_INIT_MODULE, 0i64, 0i64, 0i64));
        report("bpf", syscall(SYS_BPF, 0i64, 0i64, 0i64));
        report(
            "mount",
            syscall(
                SYS_MOUNT,
                c"none".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                0i64,
                0i64,
            ),
        );
        report("unshare", syscall(SYS_UNSHARE, CLONE_NEWNET));
        report("ptrace", syscall(SYS_PTRACE, PTRACE_ATTACH, 1i64, 0i64, 0i64));
    }
}

fn alloc(mib: usize) {
    let mut v: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        // Non-zero fill so every page is really touched.
        v.push(vec![0x5a; 1 << 20]);
    }
    println!("allocated {}", v.len());
}

fn forks(n: usize) {
    let mut kids = Vec::new();
    let mut failed = None;
    for _ in 0..n {
        // SAFETY: the child only calls async-signal-safe pause/_exit.
        let pid = unsafe { fork() };
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                pause();
                _exit(0)
            }
        }
        if pid < 0 {
            failed = std::io::Error::last_os_error().raw_os_error();
            break;
        }
        kids.push(pid);
    }
    match failed {
        Some(e) => println!("forked={} errno={}", kids.len(), errno_name(e)),
        None => println!("forked={}", kids.len()),
    }
    let _ = std::io::stdout().flush();
    for pid in kids {
        // SAFETY: signalling and reaping our own children.
        unsafe {
            kill(pid, SIGKILL);
            waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

fn forkbomb() -> ! {
    loop {
        // SAFETY: the child continues the same loop; nothing is shared.
        unsafe { fork() };
    }
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_default()
}

/// `makedev(3)` for the major/minor numbers of the host's devices.
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

/// One escape attempt; returns the raw result (< 0 = failed, errno set).
fn attack(op: &str) -> i64 {
    let f: Vec<&str> = op.split(':').collect();
    let arg = |i: usize| f.get(i).copied().unwrap_or("");
    let int = |i: usize| arg(i).parse::<i64>().unwrap_or(-1);
    // SAFETY (all calls): raw system calls with integer arguments or pointers to
    // live NUL-terminated strings; the kernel validates them.
    unsafe {
        match f[0] {
            "open" => {
                let flags = match arg(2) {
                    "w" => O_WRONLY,
                    "path" => O_PATH,
                    _ => O_RDONLY,
                };
                let fd = open(cstr(arg(1)).as_ptr(), flags | O_CLOEXEC);
                if fd >= 0 {
                    close(fd);
                }
                fd as i64
            }
            "mknod" => {
                let kind = if arg(2) == "b" { S_IFBLK } else { S_IFCHR };
                let dev = makedev(int(3) as u64, int(4) as u64);
                mknod(cstr(arg(1)).as_ptr(), kind | 0o600, dev) as i64
            }
            "kill" => syscall(SYS_KILL, int(1), int(2)),
            "ptrace" => syscall(SYS_PTRACE, PTRACE_ATTACH, int(1), 0i64, 0i64),
            "pidfd" => syscall(SYS_PIDFD_OPEN, int(1), 0i64),
            "mount" => syscall(
                SYS_MOUNT,
                cstr("none").as_ptr(),
                cstr(arg(2)).as_ptr(),
                cstr(arg(1)).as_ptr(),
                0i64,
                0i64,
            ),
            "umount" => syscall(SYS_UMOUNT2, cstr(arg(1)).as_ptr(), 0i64),
            "pivot_root" => syscall(SYS_PIVOT_ROOT, c".".as_ptr(), c".".as_ptr()),
            "fsopen" => syscall(SYS_FSOPEN, c"tmpfs".as_ptr(), 0i64),
            "chroot" => syscall(SYS_CHROOT, cstr(arg(1)).as_ptr()),
            // The "shocker" attack: a file handle of the host's root directory
            // (ext4: inode 2, generation 0) opened through any descriptor.
            "open_by_handle_at" => {
                let mut handle = [0u32; 4];
                handle[0] = 8; // handle_bytes
                handle[1] = 1; // handle_type FILEID_INO32_GEN
                handle[2] = 2; // inode 2
                let fd = open(c"/".as_ptr(), O_RDONLY | O_CLOEXEC);
                let r = syscall(SYS_OPEN_BY_HANDLE_AT, fd as i64, handle.as_mut_ptr(), 0i64);
                close(fd);
                r
            }
            "open_tree" => syscall(SYS_OPEN_TREE, -100i64, cstr(arg(1)).as_ptr(), 1i64),
            "setns" => {
                let fd = open(cstr(arg(1)).as_ptr(), O_RDONLY | O_CLOEXEC);
                if fd < 0 {
                    return fd as i64;
                }
                let r = syscall(SYS_SETNS, fd as i64, 0i64);
                // close() of an open fd succeeds and leaves errno alone.
                close(fd);
                r
            }
            "unshare-user" => {
                let r = syscall(SYS_UNSHARE, CLONE_NEWUSER | CLONE_NEWNS);
                if r == 0 {
                    // The escape worked: now try something privileged with it.
                    let m = attack("mount:tmpfs:/tmp");
                    report("unshare-user-then-mount", m);
                }
                r
            }
            "clone-user" => {
                let pid = syscall(SYS_CLONE, CLONE_NEWUSER | SIGCHLD, 0i64, 0i64, 0i64, 0i64);
                if pid == 0 {
                    let r = attack("mount:tmpfs:/tmp");
                    report("clone-user-then-mount", r);
                    let _ = std::io::stdout().flush();
                    _exit(0);
                }
                if pid > 0 {
                    waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
                pid
            }
            // A struct clone_args asking for a user namespace.
            "clone3" => {
                let mut args = [0u64; 11];
                args[0] = CLONE_NEWUSER as u64;
                args[4] = SIGCHLD as u64;
                let pid = syscall(SYS_CLONE3, args.as_mut_ptr(), 88i64);
                if pid == 0 {
                    _exit(0);
                }
                if pid > 0 {
                    waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
                pid
            }
            // The i386 ABI from this 64-bit process: a filter that looked at the
            // number only would see a different (x86-64) call.
            "i386" => {
                let r: i32;
                // rbx belongs to LLVM: saved, loaded and restored around the call.
                std::arch::asm!(
                    "push rbx",
                    "mov ebx, {a:e}",
                    "int 0x80",
                    "pop rbx",
                    a = in(reg) int(2) as i32,
                    inlateout("eax") int(1) as i32 => r,
                    in("ecx") int(3) as i32,
                    in("edx") int(4) as i32,
                );
                if (-4095..0).contains(&r) {
                    *__errno_location() = -r;
                    return -1;
                }
                r as i64
            }
            _ => {
                eprintln!("probe: unknown attack `{op}`");
                _exit(2)
            }
        }
    }
}

fn calls(specs: &[String]) {
    for spec in specs {
        let (name, nr) = spec.split_once(':').unwrap_or((spec, "-1"));
        let nr = nr.parse::<i64>().unwrap_or(-1);
        // SAFETY: a raw system call with zero arguments; the kernel validates them
        // (and seccomp answers first when it denies the call).
        let r = unsafe { syscall(nr, 0i64, 0i64, 0i64, 0i64, 0i64) };
        report(name, r);
    }
}

fn attacks(ops: &[String]) {
    let mut pid = None;
    for op in ops {
        // SAFETY: getppid cannot fail.
        let op = op.replace("{ppid}", &unsafe { getppid() }.to_string());
        let op = if op.contains("{pid}") {
            let p = pid.get_or_insert_with(|| {
                let mut l = String::new();
                let _ = std::io::stdin().read_line(&mut l);
                l.trim().to_owned()
            });
            op.replace("{pid}", p)
        } else {
            op.clone()
        };
        let r = attack(&op);
        report(&op, r);
        let _ = std::io::stdout().flush();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
    match args.get(1).map(String::as_str) {
        Some("syscalls") => syscalls(),
        Some("alloc") => alloc(num(2)),
        Some("forks") => forks(num(2)),
        Some("forkbomb") => forkbomb(),
        Some("attack") => attacks(&args[2..]),
        Some("call") => calls(&args[2..]),
        _ => {
            eprintln!("usage: probe syscalls | alloc MIB | forks N");
            std::process::exit(2);
        }
    }
}
