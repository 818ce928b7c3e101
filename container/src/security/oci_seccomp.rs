//! A bundle's own seccomp profile (`linux.seccomp` of config.json) compiled to a
//! classic BPF program with libseccomp, the library runc, crun and podman use.
//!
//! libseccomp rather than seccompiler (rust-vmm): an OCI profile lists several
//! architectures (podman and containerd write x86_64, x86 and x32), and one program
//! must check each with that architecture's syscall numbers, including calls that
//! exist only on some (`socketcall` on x86); seccompiler builds a program for one
//! architecture and kills every other, and has no name table for the names a
//! profile uses. libseccomp resolves names per architecture, expresses every
//! operator (`SCMP_CMP_MASKED_EQ` included) and action, and its static archive links
//! into the +crt-static binary (.cargo/config.toml).
//!
//! It costs start-up time: podman 4.3's default profile (378 names, three
//! architectures, 1,125 instructions) takes 37 ms to compile here
//! (`container/benches/sandbox.rs`, `seccomp/podman_profile`; our default filter:
//! 7 µs), almost all of it in libseccomp merging the x86 and x32 tables (x86_64
//! alone: 2-4 ms). runc pays the same (same library). It is compiled in the parent
//! before the clone, only for bundles that carry a profile, and root's runs keep
//! the program ([`super::seccomp_cache`]): read back in 45 µs
//! (`seccomp/podman_profile_cached`, beside 24 ms for the compile in that run).
//!
//! The program is exported, not loaded by libseccomp: the child installs it like the
//! default filter ([`super::seccomp::Filter::install`]), as its last set-up step.

use super::seccomp::Filter;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

/// Why a profile cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A syscall name libseccomp knows on none of the profile's architectures.
    #[error("linux.seccomp: unknown system call `{0}`")]
    UnknownSyscall(String),
    /// An architecture this host cannot run.
    #[error("linux.seccomp: architecture {0:?} is not supported (this host runs x86_64, x86 and x32 programs)")]
    UnsupportedArch(Arch),
    /// `SCMP_ACT_NOTIFY` needs a seccomp agent (`listenerPath`).
    #[error("linux.seccomp: SCMP_ACT_NOTIFY (a seccomp agent) is not supported")]
    Notify,
    /// An argument condition the kernel cannot check.
    #[error("linux.seccomp: {0}")]
    BadArg(String),
    /// libseccomp refused a rule or the export.
    #[error("linux.seccomp: {what}: {source}")]
    Library {
        /// What was being done.
        what: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// The exported program could not be read back.
    #[error("linux.seccomp: reading the exported program: {0}")]
    Io(#[from] std::io::Error),
}

/// `SECCOMP_FILTER_FLAG_*` (linux/seccomp.h).
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// The actions [`compile`] takes (all but `SCMP_ACT_NOTIFY`); `oci features` lists
/// their names, so the two cannot drift apart (a test compiles each).
pub const ACTIONS: &[LinuxSeccompAction] = &[
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActTrap,
];

/// The argument comparisons [`compile`] takes (all of the runtime-spec's).
pub const OPERATORS: &[LinuxSeccompOperator] = &[
    LinuxSeccompOperator::ScmpCmpEq,
    LinuxSeccompOperator::ScmpCmpGe,
    LinuxSeccompOperator::ScmpCmpGt,
    LinuxSeccompOperator::ScmpCmpLe,
    LinuxSeccompOperator::ScmpCmpLt,
    LinuxSeccompOperator::ScmpCmpMaskedEq,
    LinuxSeccompOperator::ScmpCmpNe,
];

/// The architectures [`compile`] takes (x86's three ABIs).
pub const ARCHES: &[Arch] = &[Arch::ScmpArchX86, Arch::ScmpArchX86_64, Arch::ScmpArchX32];

/// The runtime-spec names of `items` (`SCMP_ACT_ALLOW`, ...), as oci-spec writes them.
pub fn spec_names<T: serde::Serialize>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match serde_json::to_value(i) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .collect()
}

fn arch(a: Arch) -> Result<ScmpArch, ProfileError> {
    match a {
        Arch::ScmpArchNative | Arch::ScmpArchX86_64 => Ok(ScmpArch::X8664),
        Arch::ScmpArchX86 => Ok(ScmpArch::X86),
        Arch::ScmpArchX32 => Ok(ScmpArch::X32),
        other => Err(ProfileError::UnsupportedArch(other)),
    }
}

/// The libseccomp action of an OCI action; `errno` is the rule's `errnoRet` (EPERM
/// when absent, as in runc).
fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, ProfileError> {
    let errno = errno.unwrap_or(libc::EPERM.cast_unsigned());
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(
            i32::try_from(errno)
                .map_err(|_| ProfileError::BadArg(format!("errnoRet {errno} is out of range")))?,
        ),
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(u16::try_from(errno).map_err(|_| {
                ProfileError::BadArg(format!("trace value {errno} is out of range"))
            })?)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => return Err(ProfileError::Notify),
    })
}

fn condition(a: &LinuxSeccompArg) -> Result<ScmpArgCompare, ProfileError> {
    let index = u32::try_from(a.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| ProfileError::BadArg(format!("argument index {} is not 0..5", a.index())))?;
    let op = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: `value` is the mask, `valueTwo` the value the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(a.value()),
                a.value_two().unwrap_or(0),
            ))
        }
    };
    Ok(ScmpArgCompare::new(index, op, a.value()))
}

/// The filter flags of a profile, as `seccomp(2)` takes them.
fn flags(profile: &LinuxSeccomp) -> u32 {
    profile
        .flags()
        .iter()
        .flatten()
        .map(|f| match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        })
        .fold(0, |a, b| a | b)
}

/// Compiles `profile` into a filter for [`Filter::install`].
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, ProfileError> {
    let lib = |what: String| move |source| ProfileError::Library { what, source };
    if profile.listener_path().is_some() {
        return Err(ProfileError::Notify);
    }
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("creating the filter".into()))?;
    // The filter is installed by the child, which sets no_new_privs itself when the
    // bundle asks for it; the exported program does not depend on these.
    let arches: Vec<ScmpArch> = profile
        .architectures()
        .iter()
        .flatten()
        .map(|a| arch(*a))
        .collect::<Result<_, _>>()?;
    for a in &arches {
        if *a != ScmpArch::X8664 {
            ctx.add_arch(*a)
                .map_err(lib(format!("adding architecture {a:?}")))?;
        }
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        // libseccomp refuses a rule whose action is the default one; it changes
        // nothing, so it is skipped (as runc does).
        if act == default {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(condition)
            .collect::<Result<_, _>>()?;
        let mut seen = [false; 6];
        let same_arg_twice = rule.args().iter().flatten().any(|a| {
            let i = a.index().min(5);
            std::mem::replace(&mut seen[i], true)
        });
        for name in rule.names() {
            let nr = ScmpSyscall::from_name(name)
                .map_err(|_| ProfileError::UnknownSyscall(name.clone()))?;
            let what = || format!("rule for `{name}`");
            if same_arg_twice {
                // One argument compared twice cannot be one libseccomp rule; as in
                // runc, each condition becomes its own rule (they match as an OR).
                for c in &conds {
                    ctx.add_rule_conditional(act, nr, std::slice::from_ref(c))
                        .map_err(lib(what()))?;
                }
            } else {
                ctx.add_rule_conditional(act, nr, &conds)
                    .map_err(lib(what()))?;
            }
        }
    }
    let prog = export(&ctx)?;
    Ok(Filter::from_program(prog, flags(profile)))
}

/// The program libseccomp generates, read back from a memfd (libseccomp 2.5 exports
/// to a descriptor only).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, ProfileError> {
    // SAFETY: memfd_create with a valid name and flags; the result is checked and
    // owned below.
    let fd = unsafe { libc::memfd_create(c"bootlab-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file)
        .map_err(|source| ProfileError::Library {
            what: "exporting the program".into(),
            source,
        })?;
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    const INS: usize = std::mem::size_of::<libc::sock_filter>();
    Ok(bytes
        .chunks_exact(INS)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `oci features` lists is what compiles: every listed action, operator
    /// and architecture is taken, the one action left out is refused, and the
    /// names are the runtime-spec's.
    #[test]
    fn the_listed_features_are_the_compiled_ones() {
        for a in ACTIONS {
            assert!(action(*a, None).is_ok(), "{a:?}");
        }
        assert!(action(LinuxSeccompAction::ScmpActNotify, None).is_err());
        for op in OPERATORS {
            let arg = oci_spec::runtime::LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(1u64)
                .op(*op)
                .build()
                .unwrap();
            assert!(condition(&arg).is_ok(), "{op:?}");
        }
        for a in ARCHES {
            assert!(arch(*a).is_ok(), "{a:?}");
        }
        assert_eq!(spec_names(ACTIONS).len(), ACTIONS.len());
        assert_eq!(spec_names(ACTIONS)[0], "SCMP_ACT_ALLOW");
        assert_eq!(spec_names(OPERATORS)[5], "SCMP_CMP_MASKED_EQ");
        assert_eq!(
            spec_names(ARCHES),
            ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
        );
    }

    /// The `linux.seccomp` of a captured engine config (container/tests/fixtures).
    fn fixture(name: &str) -> LinuxSeccomp {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        serde_json::from_value(v["linux"]["seccomp"].clone()).unwrap()
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    /// Installs `f` in a forked child, runs `call` there and returns what it gave:
    /// the syscall's result, or minus its errno.
    fn in_child(f: &Filter, call: fn() -> i64) -> i64 {
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only installs the filter, makes raw system calls and
        // _exits; nothing of the test harness runs there.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let out = match crate::security::set_no_new_privs().and_then(|()| f.install()) {
                Ok(()) => call(),
                Err(_) => i64::MIN,
            };
            let _ = nix::unistd::write(&w, &out.to_le_bytes());
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(0) }
        }
        drop(w);
        let mut b = [0u8; 8];
        let n = nix::unistd::read(&r, &mut b).unwrap();
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(n, 8, "the child died (status {status:#x})");
        i64::from_le_bytes(b)
    }

    /// A raw system call with integer arguments: its result, or minus its errno.
    fn sys(nr: libc::c_long, a: [u64; 5]) -> i64 {
        // SAFETY: integer arguments only; the calls used here take no pointers or
        // null ones, which the kernel checks (seccomp answers first when denied).
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]) };
        if r < 0 {
            -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            r
        }
    }

    #[test]
    fn engine_profiles_compile() {
        for name in [
            "podman-4.3-default.json",
            "podman-4.3-limits.json",
            "containerd-1.6-seccomp.json",
        ] {
            let f = compile(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(f.len() > 100, "{name}: {} instructions", f.len());
        }
    }

    #[test]
    fn podman_profile_denies_and_allows_inside() {
        let f = compile(&fixture("podman-4.3-default.json")).unwrap();
        let getpid = in_child(&f, || sys(libc::SYS_getpid, [0, 0, 0, 0, 0]));
        assert!(getpid > 0, "getpid gave {getpid}");
        // Podman lists kexec_load with SCMP_ACT_ERRNO, errnoRet 1 (EPERM).
        let kexec = in_child(&f, || sys(libc::SYS_kexec_load, [0, 0, 0, 0, 0]));
        assert_eq!(kexec, -i64::from(libc::EPERM));
        // Not listed at all: the default action, errno 38 (ENOSYS).
        let add_key = in_child(&f, || sys(libc::SYS_add_key, [0, 0, 0, 0, 0]));
        assert_eq!(add_key, -i64::from(libc::ENOSYS));
        // personality is allowed for a few values (args with SCMP_CMP_EQ) only.
        let p_ok = in_child(&f, || {
            sys(libc::SYS_personality, [0xffff_ffffu64, 0, 0, 0, 0])
        });
        assert!(p_ok >= 0, "personality(query) gave {p_ok}");
        let p_no = in_child(&f, || {
            sys(libc::SYS_personality, [0x0040_0000u64, 0, 0, 0, 0])
        });
        assert_eq!(p_no, -i64::from(libc::ENOSYS));
    }

    #[test]
    fn masked_eq_and_actions_are_honoured() {
        // containerd's clone rule: allowed when (flags & CLONE_NEW*) == 0.
        let f = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                  {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                   "args": [{"index": 0, "value": 1073741824, "valueTwo": 1073741824, "op": "SCMP_CMP_MASKED_EQ"}]},
                  {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                  {"names": ["getuid"], "action": "SCMP_ACT_LOG"},
                  {"names": ["getgid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                  {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"},
                  {"names": ["socketcall"], "action": "SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        let netns = in_child(&f, || {
            sys(libc::SYS_unshare, [libc::CLONE_NEWNET as u64, 0, 0, 0, 0])
        });
        assert_eq!(netns, -i64::from(libc::EINVAL), "masked bit set: errnoRet");
        let fs = in_child(&f, || {
            sys(libc::SYS_unshare, [libc::CLONE_FS as u64, 0, 0, 0, 0])
        });
        assert_eq!(fs, 0, "masked bit clear: allowed");
        let ppid = in_child(&f, || sys(libc::SYS_getppid, [0, 0, 0, 0, 0]));
        assert_eq!(
            ppid,
            -i64::from(libc::EPERM),
            "ERRNO without errnoRet is EPERM"
        );
        let uid = in_child(&f, || sys(libc::SYS_getuid, [0, 0, 0, 0, 0]));
        assert!(uid >= 0, "LOG allows");
        // TRACE without a tracer: the kernel answers ENOSYS.
        let gid = in_child(&f, || sys(libc::SYS_getgid, [0, 0, 0, 0, 0]));
        assert_eq!(gid, -i64::from(libc::ENOSYS));
    }

    #[test]
    fn unknown_names_arches_and_notify_are_errors() {
        let e = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.seccomp: unknown system call `no_such_call`"
        );
        let e = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("ScmpArchAarch64"), "{e}");
        let e = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("SCMP_ACT_NOTIFY"), "{e}");
        assert!(serde_json::from_str::<LinuxSeccomp>(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}"#
        )
        .is_err());
    }
}
