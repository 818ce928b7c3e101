//! The default seccomp filter, a classic BPF program written by hand with libc's
//! `sock_filter` (no extra crate, nothing to compile; it is short enough to read).
//!
//! The program is built in the parent before the clone and installed by the child as
//! the very last set-up step (after its mounts), right before the workload's execve:
//! - a foreign architecture (i386 `int 0x80`, x32) gets `EPERM`;
//! - the calls in [`DENIED`] get `EPERM`: loading kernels or modules, key rings,
//!   `ptrace` and cross-process memory access, `mount` and friends (the set-up is
//!   over), namespace changes (`unshare`, `setns`), `bpf`, `perf_event_open`,
//!   `userfaultfd`, `io_uring`, clock changes, swap, reboot, ...;
//! - `clone` with any `CLONE_NEW*` flag gets `EPERM`; `clone3` gets `ENOSYS`
//!   (its flags live in memory BPF cannot read; libc then falls back to `clone`);
//! - everything else is allowed.
//!
//! The system call number is looked up by binary search (`jge` nodes, `jeq` leaves,
//! see `search`), not a linear list: fewer instructions per call, and the kernel's
//! per-filter action cache (it emulates the filter for every syscall number when it
//! is installed) is cheaper to prepare, which is on the spawn path.

use crate::sys::cvt;
use std::io;

/// Syscalls the default filter answers with EPERM.
pub const DENIED: &[(libc::c_long, &str)] = &[
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_kexec_file_load, "kexec_file_load"),
    (libc::SYS_init_module, "init_module"),
    (libc::SYS_finit_module, "finit_module"),
    (libc::SYS_delete_module, "delete_module"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_pidfd_getfd, "pidfd_getfd"),
    (libc::SYS_kcmp, "kcmp"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsconfig, "fsconfig"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_fspick, "fspick"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_open_tree, "open_tree"),
    (libc::SYS_mount_setattr, "mount_setattr"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_open_by_handle_at, "open_by_handle_at"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_perf_event_open, "perf_event_open"),
    (libc::SYS_userfaultfd, "userfaultfd"),
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_lookup_dcookie, "lookup_dcookie"),
    (libc::SYS_quotactl, "quotactl"),
    (libc::SYS_swapon, "swapon"),
    (libc::SYS_swapoff, "swapoff"),
    (libc::SYS_reboot, "reboot"),
    (libc::SYS_syslog, "syslog"),
    (libc::SYS_acct, "acct"),
    (libc::SYS_settimeofday, "settimeofday"),
    (libc::SYS_clock_settime, "clock_settime"),
    (libc::SYS_clock_adjtime, "clock_adjtime"),
    (libc::SYS_adjtimex, "adjtimex"),
    (libc::SYS_iopl, "iopl"),
    (libc::SYS_ioperm, "ioperm"),
    (libc::SYS_uselib, "uselib"),
    (libc::SYS__sysctl, "_sysctl"),
    (libc::SYS_vhangup, "vhangup"),
    (libc::SYS_nfsservctl, "nfsservctl"),
];

/// `AUDIT_ARCH_X86_64` (linux/audit.h): EM_X86_64 | __AUDIT_ARCH_64BIT | LE.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Syscall numbers at or above this are the x32 ABI.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG0_LO: u32 = 16;
/// Every namespace-creating clone flag.
const CLONE_NEW_MASK: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// A compiled filter, ready to install.
#[derive(Debug, Clone)]
pub struct Filter {
    prog: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` for `seccomp(2)`; 0 installs with `prctl`.
    flags: u32,
}

/// A syscall number as the filter compares it (seccomp_data.nr is a u32).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // x86-64 numbers are below 1024
const fn nr(n: libc::c_long) -> u32 {
    n as u32
}

/// A BPF opcode as the instruction holds it.
#[allow(clippy::cast_possible_truncation)] // BPF opcodes are 16-bit: class | size | mode
const fn op(code: u32) -> u16 {
    code as u16
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: op(code),
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: op(code),
        jt,
        jf,
        k,
    }
}

const LD_W_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ_K: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE_K: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET_K: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const RET_K: u32 = libc::BPF_RET | libc::BPF_K;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;

/// What the filter does with one system call number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Deny,
    CloneCheck,
    Enosys,
}

/// A jump target while the program is laid out: relative (within the search tree)
/// or one of the shared tail blocks.
#[derive(Debug, Clone, Copy)]
enum Target {
    Rel(usize),
    Allow,
    CloneCheck,
    Enosys,
    Deny,
}

#[derive(Debug, Clone, Copy)]
struct Ins {
    code: u32,
    k: u32,
    jt: Target,
    jf: Target,
}

impl Ins {
    fn jump(code: u32, k: u32, jt: Target, jf: Target) -> Ins {
        Ins { code, k, jt, jf }
    }
}

/// Leaves with at most this many numbers are tested one by one.
const LEAF: usize = 3;

/// Binary search over `calls` (sorted by number): `jge` nodes, `jeq` leaves, a miss
/// jumps to ALLOW. About log2(n) + 3 instructions run per system call instead of n,
/// which also makes the kernel's per-filter action cache cheap to prepare.
fn search(calls: &[(u32, Action)]) -> Vec<Ins> {
    if calls.len() <= LEAF {
        let mut v: Vec<Ins> = calls
            .iter()
            .map(|&(nr, a)| {
                let t = match a {
                    Action::Deny => Target::Deny,
                    Action::CloneCheck => Target::CloneCheck,
                    Action::Enosys => Target::Enosys,
                };
                Ins::jump(JEQ_K, nr, t, Target::Rel(0))
            })
            .collect();
        v.push(Ins::jump(JA, 0, Target::Allow, Target::Allow));
        return v;
    }
    let mid = calls.len() / 2;
    let left = search(&calls[..mid]);
    let right = search(&calls[mid..]);
    let mut v = Vec::with_capacity(1 + left.len() + right.len());
    v.push(Ins::jump(
        JGE_K,
        calls[mid].0,
        Target::Rel(left.len()),
        Target::Rel(0),
    ));
    v.extend(left);
    v.extend(right);
    v
}

impl Filter {
    /// The default filter described in the module documentation.
    pub fn default_filter() -> Filter {
        let mut calls: Vec<(u32, Action)> =
            DENIED.iter().map(|(n, _)| (nr(*n), Action::Deny)).collect();
        calls.push((nr(libc::SYS_clone), Action::CloneCheck));
        calls.push((nr(libc::SYS_clone3), Action::Enosys));
        calls.sort_unstable_by_key(|c| c.0);
        calls.dedup_by_key(|c| c.0);

        let rel = Target::Rel(0);
        let mut ins = vec![
            Ins::jump(LD_W_ABS, DATA_ARCH, rel, rel),
            Ins::jump(JEQ_K, AUDIT_ARCH_X86_64, Target::Rel(1), rel),
            Ins::jump(RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32, rel, rel),
            Ins::jump(LD_W_ABS, DATA_NR, rel, rel),
            Ins::jump(JGE_K, X32_SYSCALL_BIT, Target::Deny, rel),
        ];
        ins.extend(search(&calls));
        let allow = ins.len();
        ins.push(Ins::jump(RET_K, SECCOMP_RET_ALLOW, rel, rel));
        let clone_check = ins.len();
        ins.push(Ins::jump(LD_W_ABS, DATA_ARG0_LO, rel, rel));
        ins.push(Ins::jump(JSET_K, CLONE_NEW_MASK, Target::Deny, rel));
        ins.push(Ins::jump(RET_K, SECCOMP_RET_ALLOW, rel, rel));
        let enosys = ins.len();
        ins.push(Ins::jump(
            RET_K,
            SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            rel,
            rel,
        ));
        let deny = ins.len();
        ins.push(Ins::jump(
            RET_K,
            SECCOMP_RET_ERRNO | libc::EPERM as u32,
            rel,
            rel,
        ));

        // Resolve targets to forward offsets. Every jump goes forward and the whole
        // program is far shorter than 256 instructions, so each offset fits in u8
        // (checked by the tests).
        #[allow(clippy::cast_possible_truncation)] // offsets < 256: see above
        let prog = ins
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let off = |t: Target| -> usize {
                    match t {
                        Target::Rel(r) => r,
                        Target::Allow => allow - i - 1,
                        Target::CloneCheck => clone_check - i - 1,
                        Target::Enosys => enosys - i - 1,
                        Target::Deny => deny - i - 1,
                    }
                };
                if x.code == JA {
                    stmt(JA, off(x.jt) as u32)
                } else if x.code & 0x07 == libc::BPF_JMP {
                    jump(x.code, x.k, off(x.jt) as u8, off(x.jf) as u8)
                } else {
                    stmt(x.code, x.k)
                }
            })
            .collect();
        Filter { prog, flags: 0 }
    }

    /// A program compiled elsewhere (a bundle's profile, [`super::oci_seccomp`]),
    /// installed with the `SECCOMP_FILTER_FLAG_*` bits in `flags`.
    pub fn from_program(prog: Vec<libc::sock_filter>, flags: u32) -> Filter {
        Filter { prog, flags }
    }

    /// The instructions.
    pub fn program(&self) -> &[libc::sock_filter] {
        &self.prog
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits it is installed with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Whether the program is empty (never for the default filter).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }

    /// Installs the filter on the calling thread (which then passes it to everything
    /// it executes). Needs `no_new_privs` or `CAP_SYS_ADMIN`.
    pub fn install(&self) -> io::Result<()> {
        let fprog = libc::sock_fprog {
            len: u16::try_from(self.prog.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long")
            })?,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        if self.flags != 0 {
            // SAFETY: as below; seccomp(2) takes the same program and the flags.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    self.flags,
                    &fprog as *const libc::sock_fprog,
                )
            };
            return crate::sys::cvt_long(rc).map(drop);
        }
        // SAFETY: `fprog` points to `len` valid instructions that outlive the call;
        // the kernel copies the program.
        cvt(unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &fprog as *const libc::sock_fprog as libc::c_ulong,
                0,
                0,
            )
        })
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::nr as sys_nr;
    use super::*;

    /// A tiny classic-BPF interpreter for the instructions the filter uses, so the
    /// program's decisions are checked without installing it.
    fn eval(f: &Filter, arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut pc = 0usize;
        let mut acc = 0u32;
        loop {
            let i = f.prog[pc];
            let code = i.code as u32;
            if code == LD_W_ABS {
                acc = match i.k {
                    DATA_NR => nr,
                    DATA_ARCH => arch,
                    DATA_ARG0_LO => u32::try_from(arg0 & 0xffff_ffff).unwrap(),
                    _ => panic!("unexpected load"),
                };
                pc += 1;
            } else if code == RET_K {
                return i.k;
            } else if code == JA {
                pc += 1 + i.k as usize;
            } else {
                let taken = match code {
                    JEQ_K => acc == i.k,
                    JGE_K => acc >= i.k,
                    JSET_K => acc & i.k != 0,
                    _ => panic!("unexpected op {code:#x}"),
                };
                pc += 1 + if taken { i.jt as usize } else { i.jf as usize };
            }
        }
    }

    #[test]
    fn decisions() {
        let f = Filter::default_filter();
        let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let a = AUDIT_ARCH_X86_64;
        for (nr, name) in DENIED {
            assert_eq!(eval(&f, a, sys_nr(*nr), 0), eperm, "{name}");
        }
        assert_eq!(eval(&f, a, sys_nr(libc::SYS_read), 0), SECCOMP_RET_ALLOW);
        assert_eq!(eval(&f, a, sys_nr(libc::SYS_execve), 0), SECCOMP_RET_ALLOW);
        assert_eq!(
            eval(&f, a, sys_nr(libc::SYS_clone), 0x11),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            eval(&f, a, sys_nr(libc::SYS_clone), libc::CLONE_NEWNET as u64),
            eperm
        );
        assert_eq!(
            eval(&f, a, sys_nr(libc::SYS_clone3), 0),
            SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(eval(&f, 0x4000_0003, 1, 0), eperm, "i386 is refused");
        assert_eq!(eval(&f, a, X32_SYSCALL_BIT | 1, 0), eperm, "x32 is refused");
    }

    /// Every syscall number gets what the lists say (so no jump offset was truncated),
    /// and a lookup runs a logarithmic number of instructions.
    #[test]
    fn exhaustive_and_short() {
        let f = Filter::default_filter();
        assert!(f.len() < 256, "{} instructions", f.len());
        let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let a = AUDIT_ARCH_X86_64;
        for nr in 0..1024u32 {
            let denied = DENIED.iter().any(|(d, _)| sys_nr(*d) == nr);
            let want = if denied {
                eperm
            } else if nr == sys_nr(libc::SYS_clone3) {
                SECCOMP_RET_ERRNO | libc::ENOSYS as u32
            } else {
                SECCOMP_RET_ALLOW
            };
            assert_eq!(eval(&f, a, nr, 0), want, "syscall {nr}");
        }
    }
}
