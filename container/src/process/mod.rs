//! Starting, watching and ending the workload.
//!
//! One `clone(2)` with every requested `CLONE_NEW*` flag makes the child; the child
//! sets the sandbox up and execs the workload, which therefore is PID 1 of its PID
//! namespace. Two ways to start it:
//! - the fast path (always, except custom id maps): `CLONE_VM | CLONE_VFORK` on a
//!   separate stack, like `posix_spawn`: no page tables are copied and no
//!   copy-on-write faults are taken (page faults are the dominant cost of a small
//!   process on our virtualized hosts); the parent sleeps until the workload's execve
//!   and the child reports the pre-execve timestamp, or its error, in the shared
//!   memory. With a user namespace the child writes its own single-line uid/gid map
//!   (allowed for one's own ids), so no round trip is needed. The child uses only
//!   the suspended calling thread's state and malloc (whose locks work across the
//!   shared memory), so a multi-threaded caller (a test harness) is fine;
//! - custom (multi-range) uid/gid maps need the parent, which holds `CAP_SETUID` in
//!   the parent user namespace: a fork-style clone, the child waits on a *go pipe*
//!   until the parent wrote the maps, and reports `T` + timestamp or `E`/`N` + error
//!   on the close-on-exec *exec pipe*, whose end-of-file marks the execve.
//!
//! The parent blocks SIGCHLD and the forwarded signals before the clone, then waits
//! with `sigtimedwait`: SIGCHLD -> `waitpid`; HUP, INT, QUIT, TERM, USR1, USR2, WINCH,
//! CONT -> forwarded to the workload (as PID 1 of a PID namespace it only receives
//! the signals it installed a handler for, like any container init; a second INT or
//! TERM kills the sandbox); the timeout -> the whole cgroup and PID 1 are killed. Zombies inside are the workload's to reap
//! (it is PID 1); when it exits the kernel kills and reaps everything left in its
//! PID namespace, so nothing outlives the run.
//!
//! The child's steps, in order: parent-death signal (checked against the
//! parent-alive pipe, so a runtime killed right after the clone is noticed),
//! (go pipe / own id maps), every inherited descriptor closed but our pipes
//! (CVE-2024-21626), `setsid` (no controlling terminal: no TIOCSTI into the
//! host's), join the cgroup and unshare the cgroup namespace after it, the rootfs
//! ([`crate::rootfs`]), hostname, the network namespace joined or made
//! ([`crate::netns`]) and `lo` up, `chdir` (checked to be inside the
//! root), PATH lookup inside the new root
//! and the refusal of the runtime's own binary (also as a `#!` interpreter), rlimits,
//! umask, bounding set, `no_new_privs`, seccomp, uid/gid, capabilities, the
//! parent-death signal again after a uid/gid change (which clears it),
//! close-on-exec for every fd above 2, the `exec` stamp, execve.
//!
//! A runtime killed with SIGKILL takes the workload with it (the parent-death
//! signal; as PID 1 of its PID namespace its death kills everything in it, and with
//! it the mount and network namespaces); the cgroup directories it could not remove
//! are killed and removed by the next run that creates a cgroup
//! ([`crate::cgroups`]). Without a PID namespace (`--no-pid`) only the workload
//! itself receives the signal; its descendants then live on until that sweep.
//!
//! The files: this one decides (`run_in`: where the network namespace is made,
//! which start, who writes the id maps); `prepared` computes everything before
//! the clone; `spawn` clones; `child` is the child's side up to the execve;
//! `parent` waits and forwards; `create` and `exec` are the OCI lifecycle's
//! create half and `oci exec`.

use crate::cgroups::{self, Cgroup};
use crate::namespaces::Namespace;
use crate::netns::{self, NetnsHandle, ParallelNetns, Placement};
use crate::nsjoin::Joins;
use crate::rootfs::RootfsPlan;
use crate::security::{self, caps, seccomp::Filter};
use crate::spec::{IdMap, SandboxSpec, User, DEFAULT_PATH};
use crate::sys::{cpath, cvt};
use crate::{Error, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use timeline::step;

/// Signals the runtime forwards to the workload.
pub const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Normal exit with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// Shell convention: the exit status, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// The result of one sandbox run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How the workload ended.
    pub status: ExitStatus,
    /// CLOCK_MONOTONIC ns the child took right before the workload's execve.
    pub exec_ns: u64,
    /// CLOCK_MONOTONIC ns when the parent's wait for the workload returned.
    pub done_ns: u64,
    /// The memory limit's OOM killer killed a task of the sandbox.
    pub oom_killed: bool,
    /// The timeout expired and the sandbox was killed.
    pub timed_out: bool,
    /// The cgroup backend used, if a cgroup was created.
    pub cgroup_backend: Option<&'static str>,
    /// Set-up steps of the start, CLOCK_MONOTONIC ns (see [`STEP_NAMES`]); only on
    /// the fast start path, where the child stamps them into shared memory.
    pub steps: Vec<(&'static str, u64)>,
}

/// Names of the set-up steps in [`Outcome::steps`]: the parent right before the
/// clone, the child's first instruction, rootfs done, network done (hostname and
/// `lo`), security done (bounding set, no_new_privs, seccomp, ids, capabilities).
pub const STEP_NAMES: [&str; 5] = [
    step::SANDBOX_CLONE,
    step::SANDBOX_CHILD,
    step::SANDBOX_ROOTFS,
    step::SANDBOX_NET,
    step::SANDBOX_SECURITY,
];

/// Timestamps of the set-up steps, indexed like [`STEP_NAMES`].
#[derive(Debug, Default, Clone, Copy)]
struct Steps([u64; 5]);

impl Steps {
    fn stamp(&mut self, i: usize) {
        self.0[i] = timeline::now_ns();
    }

    fn named(&self) -> Vec<(&'static str, u64)> {
        STEP_NAMES
            .iter()
            .zip(self.0)
            .filter(|(_, t)| *t != 0)
            .map(|(n, t)| (*n, t))
            .collect()
    }
}

mod child;
mod create;
mod exec;
mod parent;
mod prepared;
mod spawn;

use child::*;
use parent::*;
use prepared::*;
use spawn::*;

pub(crate) use child::loopback_up;
pub use create::create;
pub use exec::{exec, ExecTarget};

/// Runs `spec` to completion. `bundle_dir` resolves relative bind-mount sources of
/// an OCI bundle.
pub fn run(spec: &SandboxSpec) -> Result<Outcome> {
    run_in(spec, None)
}

/// [`run`] with the bundle directory for relative mount sources.
pub fn run_in(spec: &SandboxSpec, bundle_dir: Option<&Path>) -> Result<Outcome> {
    if spec.terminal {
        return Err(Error::Config(
            "process.terminal=true needs a console socket to send the terminal to (bootlab oci create --console-socket); `sandbox run` passes its stdio through"
                .into(),
        ));
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let slice = crate::slice::Shortened::request();
    // The network namespace is the longest step of a start: where a CPU is idle, a
    // thread makes it while the child sets up the rest, so it starts first; else the
    // child makes it after its root filesystem (see crate::netns).
    let placement = netns_placement(spec, euid);
    let parallel_net = match placement {
        Placement::Parallel => ParallelNetns::start(),
        Placement::InClone | Placement::InChild => None,
    };
    let mut prep = Prepared::new(spec, bundle_dir)?;
    prep.slice = slice;
    match (placement, &parallel_net) {
        (Placement::Parallel, Some(net)) => use_parallel_netns(&mut prep, net),
        (Placement::InChild, _) => prep_unshare_net(&mut prep),
        // No thread (an old kernel without pidfd_open): the clone makes it.
        (Placement::Parallel | Placement::InClone, _) => {}
    }
    let cgroup = if spec.resources.any() || spec.timeout.is_some() || spec.cgroups_path.is_some() {
        if euid != 0 && (spec.resources.any() || spec.cgroups_path.is_some()) {
            return Err(Error::Cgroup(
                "resource limits need root (cgroups are not delegated to this user)".into(),
            ));
        }
        let cg = Cgroup::create_at(
            &spec.resources,
            spec.timeout.is_some(),
            spec.cgroups_path.as_deref(),
        )?;
        cgroup_steps(&mut prep, spec, &cg)?;
        Some(cg)
    } else {
        None
    };
    let self_exe = security::exe_identity("/proc/self/exe");
    prep.runtime_exe = self_exe;
    let (alive_r, alive_w) = alive_pipe(&mut prep)?;
    let parent_maps = identity_steps(&mut prep, spec, euid)?;

    let mut block = SigSet::empty();
    block.add(Signal::SIGCHLD);
    for s in FORWARDED {
        block.add(s);
    }
    let mut old_mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&block), Some(&mut old_mask))
        .map_err(|e| Error::sys("sigprocmask", e))?;
    // Hooks run between the steps of the start: the forked path stops there.
    let launched = if parent_maps || prep.hooks.is_some() {
        spawn_forked(&prep, &old_mask)
    } else {
        spawn_vfork(&prep, &old_mask)
    };
    drop(alive_r);
    // The child has exec'd (or failed): the thread is done and its fds can go.
    drop(parallel_net);
    let result =
        launched.and_then(|l| parent(l, cgroup, spec, self_exe, &block, prep.hooks.as_ref()));
    drop(alive_w);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    result
}

/// What the child does about its cgroup `cg`: join it, then (a cgroup namespace
/// must be rooted at the sandbox's cgroup) unshare the cgroup namespace after the
/// join rather than in the clone.
fn cgroup_steps(prep: &mut Prepared, spec: &SandboxSpec, cg: &Cgroup) -> Result<()> {
    if cg.backend() == cgroups::Backend::V2
        && !spec.resources.devices.is_empty()
        && cgroups::devices::v2_by_construction(&spec.resources.devices).map_err(Error::Cgroup)?
    {
        // No devices controller without eBPF: a deny-all is kept by giving the
        // workload no way to make a node (cgroups::devices).
        prep.caps = prep.caps.without(caps::CAP_MKNOD);
    }
    prep.cgroup_procs = cg.procs_files().to_vec();
    if prep.flags & libc::CLONE_NEWCGROUP != 0 {
        prep.flags &= !libc::CLONE_NEWCGROUP;
        prep.late_cgroupns = true;
    }
    Ok(())
}

/// Where the sandbox's network namespace is made (see [`crate::netns`]). Outside
/// the clone only as root, for a new network namespace without a user namespace,
/// and when nothing needs it before the child's root filesystem is set up: no
/// sysfs mount and no net.* sysctl (made before, they would see or change the
/// host's) and no hooks (the prestart and createRuntime hooks are given the
/// sandbox's pid to configure its network namespace, which must exist then).
fn netns_placement(spec: &SandboxSpec, euid: u32) -> Placement {
    let ns = spec.namespaces;
    let sysfs = spec.rootfs.is_some()
        && spec
            .mounts
            .iter()
            .any(|m| m.fstype.as_deref() == Some("sysfs"));
    let net_sysctl = spec.sysctl.iter().any(|(k, _)| k.starts_with("net"));
    let joined_net = spec
        .namespace_paths
        .iter()
        .any(|(n, _)| *n == Namespace::Net);
    let movable = ns.contains(Namespace::Net)
        && !joined_net
        && !ns.contains(Namespace::User)
        && euid == 0
        && !sysfs
        && !net_sysctl
        && spec.hooks.is_none();
    if movable {
        netns::placement(true, netns::idle_cpu())
    } else {
        Placement::InClone
    }
}

/// The child joins `net` instead of cloning a network namespace itself.
fn use_parallel_netns(prep: &mut Prepared, net: &ParallelNetns) {
    prep.flags &= !libc::CLONE_NEWNET;
    prep.lo_up = false;
    prep.netns = Some(net.handle());
}

/// The child makes its network namespace after its root filesystem.
fn prep_unshare_net(prep: &mut Prepared) {
    prep.flags &= !libc::CLONE_NEWNET;
    prep.lo_up = false;
    prep.unshare_net = true;
}

/// The parent-alive pipe, held (write end) by the runtime while the child sets up:
/// the child's way to notice that the runtime died before the parent-death signal
/// was armed.
fn alive_pipe(prep: &mut Prepared) -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    prep.alive = (r.as_raw_fd(), w.as_raw_fd());
    Ok((r, w))
}

/// Decides who writes the id maps and which identity steps the child takes, and
/// makes the runtime non-dumpable. Returns whether the parent writes the maps (the
/// forked start is needed then).
fn identity_steps(prep: &mut Prepared, spec: &SandboxSpec, euid: u32) -> Result<bool> {
    // Only custom (multi-range) id maps need the parent, which holds CAP_SETUID in the
    // parent user namespace; a single mapping of our own ids the child writes itself.
    let parent_maps =
        prep.userns.is_some() && !(spec.uid_mappings.is_empty() && spec.gid_mappings.is_empty());
    prep.own_maps = prep.userns.is_some() && !parent_maps;
    if parent_maps {
        // The child's host ids are not mapped by a custom map: it must switch to the
        // configured ids (root by default) inside, and drop the host's groups.
        prep.change_user = true;
        prep.clear_groups = true;
    }
    prep.rootless = prep.userns.is_some() && euid != 0;
    if !prep.rootless {
        // Layer 1 of the CVE-2019-5736 guard; the child inherits it. Rootless, the
        // child's /proc/PID/uid_map must stay writable until the maps are written, so
        // it is set right after that.
        security::set_non_dumpable().map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE)", e))?;
    }
    Ok(parent_maps)
}
