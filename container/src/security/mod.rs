//! Security of the workload: capabilities ([`caps`]), the default seccomp filter
//! ([`seccomp`]) or a bundle's own profile ([`oci_seccomp`]), `no_new_privs`, and the guard against the runtime-binary overwrite
//! attack (CVE-2019-5736).
//!
//! # The CVE-2019-5736 guard
//! The attack needs a process inside the container to reach the runtime's binary
//! through `/proc/PID/exe` of a process that is executing it, and write to it once no
//! process executes it any more. We keep that cheap (no copy of the binary per run,
//! unlike runc's sealed memfd) with three layers:
//! 1. The runtime and the child are made non-dumpable (`PR_SET_DUMPABLE 0`) before the
//!    child can be seen from inside: `/proc/PID/exe` of a non-dumpable process needs
//!    `CAP_SYS_PTRACE`, which no default capability set contains. The child is
//!    alone in its fresh PID namespace until its execve, which replaces the binary.
//! 2. The workload must never be the runtime binary itself (`/proc/self/exe`, a
//!    `#!/proc/self/exe` script, a bind mount of it): once running inside, it is
//!    dumpable again (execve resets that) and a process of a neighbour sandbox
//!    sharing the host's PID namespace could open its `/proc/PID/exe`. The child
//!    compares the program, following `#!` interpreters like the kernel, with the
//!    runtime's (device, inode) before the execve and refuses it; after the execve
//!    the parent compares the workload's `/proc/PID/exe` with its own as a backstop
//!    (kills the sandbox). Either way: [`crate::Error::RuntimeExe`].
//! 3. Every descriptor of the runtime is close-on-exec in the child
//!    (`close_range(CLOSE_RANGE_CLOEXEC)`), so no fd of the runtime leaks in.

pub mod apparmor;
pub mod caps;
pub mod oci_seccomp;
pub mod seccomp;
pub mod seccomp_cache;

use crate::sys::cvt;
use std::io;

/// `prctl(PR_SET_DUMPABLE, 0)` for the calling process.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: execve can no longer grant privileges.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments and touches no memory.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// Identity (device, inode) of an executable, to compare two `/proc/PID/exe`.
pub fn exe_identity(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
