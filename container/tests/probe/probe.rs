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
//!   failed (or `forked=N`), then kills and reaps them.

use std::io::Write;

extern "C" {
    fn syscall(num: i64, ...) -> i64;
    fn fork() -> i32;
    fn pause() -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
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
const CLONE_NEWNET: i64 = 0x4000_0000;
const PTRACE_ATTACH: i64 = 16;
const SIGKILL: i32 = 9;

fn errno_name(e: i32) -> String {
    match e {
        1 => "EPERM".into(),
        2 => "ENOENT".into(),
        3 => "ESRCH".into(),
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
    match args.get(1).map(String::as_str) {
        Some("syscalls") => syscalls(),
        Some("alloc") => alloc(num(2)),
        Some("forks") => forks(num(2)),
        _ => {
            eprintln!("usage: probe syscalls | alloc MIB | forks N");
            std::process::exit(2);
        }
    }
}
