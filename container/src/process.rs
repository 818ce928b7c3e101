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

/// What the hooks of a bundle need: the hooks and the state's fixed parts.
struct HookCtx {
    hooks: oci_spec::runtime::Hooks,
    id: String,
    bundle: PathBuf,
    annotations: std::collections::HashMap<String, String>,
}

impl HookCtx {
    fn state(
        &self,
        status: oci_spec::runtime::ContainerState,
        pid: libc::pid_t,
    ) -> oci_spec::runtime::State {
        crate::hooks::state(&self.id, status, Some(pid), &self.bundle, &self.annotations)
    }
}

/// Everything the child needs, computed before the clone.
struct Prepared {
    /// A bundle's hooks: the start goes through the forked path.
    hooks: Option<HookCtx>,
    /// The short scheduler slice the start runs with, which the child gives back
    /// before the workload's execve (see crate::slice).
    slice: Option<crate::slice::Shortened>,
    flags: libc::c_int,
    userns: Option<(String, String)>,
    rootfs: Option<RootfsPlan>,
    hostname: Option<String>,
    lo_up: bool,
    /// The child makes its network namespace itself once its root filesystem is
    /// set up (`unshare`, then `lo` up); then `CLONE_NEWNET` is not in `flags`.
    unshare_net: bool,
    cgroup_procs: Vec<CString>,
    late_cgroupns: bool,
    cmd: String,
    path_dirs: Vec<String>,
    /// Own the strings `argv_ptrs` and `envp_ptrs` point to.
    #[allow(dead_code)]
    argv: Vec<CString>,
    #[allow(dead_code)]
    envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    own_maps: bool,
    rootless: bool,
    cwd: PathBuf,
    user: User,
    change_user: bool,
    clear_groups: bool,
    caps: caps::CapSets,
    rlimits: Vec<(u32, u64, u64)>,
    no_new_privs: bool,
    /// What the child writes to its AppArmor exec attribute (made here: no
    /// allocation in the child).
    apparmor: Option<Vec<u8>>,
    filter: Option<Filter>,
    /// Namespaces the child joins by path, first thing.
    joins: Joins,
    /// Sysctls the child writes before its rootfs set-up.
    sysctls: crate::sysctl::Plan,
    /// (device, inode) of the runtime's binary: the child refuses to execve it.
    runtime_exe: Option<(u64, u64)>,
    /// The parent-alive pipe (read end, write end): the parent holds the write end
    /// for the whole run; the child closes its copy and sees end-of-file once the
    /// runtime is gone (see [`arm_parent_death`]).
    alive: (RawFd, RawFd),
    /// The network namespace the runtime makes in parallel (see [`crate::netns`]);
    /// then `CLONE_NEWNET` is not in `flags`.
    netns: Option<NetnsHandle>,
    /// Set by [`create`]: the init stops before its execve until `start`.
    hold: Option<Hold>,
    /// The connection to the engine's console socket: the child opens a pty in the
    /// container, sends the master there and takes the slave as its stdio.
    console: Option<RawFd>,
    /// The terminal's size (rows, columns).
    console_size: Option<(u16, u16)>,
    /// A cgroup2 folder the child is cloned straight into (`CLONE_INTO_CGROUP`),
    /// as an open descriptor, with its `cgroup.procs` for the fallback join when
    /// the kernel lacks clone3.
    into_cgroup: Option<(RawFd, CString)>,
    /// The child dies with the runtime (parent-death signal). Not for [`exec`]'s
    /// process, which outlives a runtime that returned with `--detach`.
    pdeath: bool,
}

/// How a created container's init waits for `start` (see [`create`]).
#[derive(Debug, Clone, Copy)]
struct Hold {
    /// The exec FIFO, opened read-write (so the open did not block and a read
    /// blocks until `start` writes a byte).
    fifo: RawFd,
    /// Descriptors 3 .. 3+N of the caller that the workload keeps (`--preserve-fds`).
    preserve_fds: u32,
}

fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Config(format!("{what} contains a NUL byte")))
        })
        .collect()
}

fn map_text(maps: &[IdMap], default_outside: u32) -> String {
    if maps.is_empty() {
        return format!("0 {default_outside} 1\n");
    }
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

impl Prepared {
    fn new(spec: &SandboxSpec, bundle_dir: Option<&Path>) -> Result<Prepared> {
        if spec.args.is_empty() || spec.args[0].is_empty() {
            return Err(Error::Config("no command to run".into()));
        }
        let ns = spec.namespaces;
        let userns = ns.contains(Namespace::User);
        let rootfs = match &spec.rootfs {
            None => None,
            Some(_) if !ns.contains(Namespace::Mount) => {
                return Err(Error::Config(
                    "a root filesystem needs the mount namespace (it was turned off)".into(),
                ))
            }
            Some(r) => {
                let canon = crate::rootfs::check_root(r)?;
                Some(RootfsPlan::new(spec, &canon, bundle_dir, userns)?)
            }
        };
        // SAFETY: geteuid/getegid cannot fail.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let path_var = spec
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let change_user = spec.user != User::default();
        let joined = |n: Namespace| spec.namespace_paths.iter().any(|(k, _)| *k == n);
        let sysctls = crate::sysctl::plan(&spec.sysctl, |n| ns.contains(n) || joined(n))
            .map_err(Error::Config)?;
        let joins = Joins::open(&spec.namespace_paths)?;
        let joined_flags = spec
            .namespace_paths
            .iter()
            .fold(0, |f, (n, _)| f | n.clone_flag());
        let argv = cstrings(&spec.args, "an argument")?;
        let envp = cstrings(&spec.env, "the environment")?;
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(Prepared {
            slice: None,
            hooks: spec.hooks.clone().map(|hooks| HookCtx {
                hooks,
                id: spec
                    .container_id
                    .clone()
                    .unwrap_or_else(|| format!("bootlab-{}", std::process::id())),
                bundle: bundle_dir.map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
                annotations: spec.annotations.clone(),
            }),
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            own_maps: false,
            rootless: false,
            flags: ns.clone_flags() & !joined_flags,
            userns: userns.then(|| {
                (
                    map_text(&spec.uid_mappings, euid),
                    map_text(&spec.gid_mappings, egid),
                )
            }),
            rootfs,
            hostname: (ns.contains(Namespace::Uts) || joined(Namespace::Uts))
                .then(|| spec.hostname.clone())
                .flatten(),
            lo_up: ns.contains(Namespace::Net) && !joined(Namespace::Net),
            unshare_net: false,
            cgroup_procs: Vec::new(),
            late_cgroupns: false,
            cmd: spec.args[0].clone(),
            path_dirs: path_var.split(':').map(str::to_owned).collect(),
            argv,
            envp,
            cwd: spec.cwd.clone(),
            user: spec.user.clone(),
            change_user,
            clear_groups: false,
            caps: spec.capabilities,
            rlimits: spec.rlimits.clone(),
            no_new_privs: spec.no_new_privs,
            apparmor: spec
                .apparmor_profile
                .as_deref()
                .map(security::apparmor::exec_request),
            filter: match &spec.seccomp_profile {
                Some(f) => Some(f.clone()),
                None => spec.seccomp.then(Filter::default_filter),
            },
            joins,
            sysctls,
            runtime_exe: None,
            alive: (-1, -1),
            netns: None,
            hold: None,
            console: None,
            console_size: spec.console_size,
            into_cgroup: None,
            pdeath: true,
        })
    }
}

/// Runs `spec` to completion. `bundle_dir` resolves relative bind-mount sources of
/// an OCI bundle.
pub fn run(spec: &SandboxSpec) -> Result<Outcome> {
    run_in(spec, None)
}

/// Size of the child's stack on the vfork path (only the touched pages cost).
const CHILD_STACK: usize = 512 * 1024;

/// What the parent learns from the start of the child.
struct Launch {
    pid: libc::pid_t,
    steps: Steps,
    /// Exec timestamp, or why the child failed before its execve.
    exec: Result<u64>,
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

/// Sets up the container `spec` describes in the cgroup `cgroup` and leaves its init
/// stopped right before the workload's execve, waiting for a byte on `exec_fifo`
/// (opened read-write by the caller): the create half of the OCI lifecycle. Returns
/// the init's pid. The init is a child of the calling process; once the caller
/// exits it is adopted by the nearest subreaper (an engine's shim or conmon), as
/// with runc. The caller's stdin, stdout and stderr are the container's.
///
/// Every set-up step is the one `sandbox run` takes (always on the forked start: the
/// vfork start suspends the caller until the execve, which here waits for `start`);
/// descriptors 3 .. 3+`preserve_fds` stay open for the workload.
pub fn create(
    spec: &SandboxSpec,
    bundle_dir: Option<&Path>,
    cgroup: &Cgroup,
    exec_fifo: RawFd,
    preserve_fds: u32,
    console: Option<RawFd>,
) -> Result<libc::pid_t> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    // No network namespace made in parallel here: the child learns of it through
    // memory it shares with the runtime, which only the vfork start has.
    let mut prep = Prepared::new(spec, bundle_dir)?;
    if euid != 0 && spec.resources.any() {
        return Err(Error::Cgroup(
            "resource limits need root (cgroups are not delegated to this user)".into(),
        ));
    }
    cgroup_steps(&mut prep, spec, cgroup)?;
    // The cgroup2 folder (the only one on a v2 host, the one for cgroup.kill on a
    // hybrid host) is entered by the clone itself.
    let into = cgroup.dirs().iter().position(|d| cgroups::is_cgroup2(d));
    let into_fd = match into {
        Some(i) => {
            let dir = &cgroup.dirs()[i];
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(dir)
                .map_err(|e| Error::sys(format!("opening {}", dir.display()), e))?;
            let procs = prep.cgroup_procs.remove(i);
            Some((OwnedFd::from(f), procs))
        }
        None => None,
    };
    prep.into_cgroup = into_fd.as_ref().map(|(f, p)| (f.as_raw_fd(), p.clone()));
    prep.runtime_exe = security::exe_identity("/proc/self/exe");
    prep.hold = Some(Hold {
        fifo: exec_fifo,
        preserve_fds,
    });
    prep.console = console;
    let (alive_r, alive_w) = alive_pipe(&mut prep)?;
    identity_steps(&mut prep, spec, euid)?;
    let mut mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut mask))
        .map_err(|e| Error::sys("sigprocmask", e))?;
    let launch = spawn_forked(&prep, &mask)?;
    drop(alive_r);
    let pid = launch.pid;
    if let Err(e) = launch.exec {
        cgroup.kill_all();
        let npid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(npid, None);
        return Err(e);
    }
    drop(alive_w);
    Ok(pid)
}

/// The running container an `exec` joins: its init and its cgroup.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    /// Host pid of the container's init.
    pub init_pid: libc::pid_t,
    /// `cgroup.procs` of each of the container's cgroup folders.
    pub cgroup_procs: Vec<CString>,
}

/// Namespaces an exec joins, in the order it joins them: the user namespace first
/// (it grants the rights for the others), the mount namespace last (after it,
/// paths are the container's).
const EXEC_NAMESPACES: [&str; 7] = ["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"];

/// Starts `spec`'s process (args, env, cwd, user, capabilities, rlimits,
/// no_new_privs; the bundle's seccomp filter) inside the running container `target`
/// (with a terminal when `console` is a connection to a console socket):
/// what `runc exec` does. The process joins the container's cgroup and every
/// namespace of its init that differs from ours, then, as a child of the calling
/// process (a second clone with `CLONE_PARENT` puts it in the PID namespace), takes
/// the same security steps as the container's init and execs. Returns its pid once
/// it has exec'd.
pub fn exec(
    target: &ExecTarget,
    spec: &SandboxSpec,
    console: Option<RawFd>,
) -> Result<libc::pid_t> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mut plan = spec.clone();
    // The container's root and namespaces are joined, not made.
    plan.rootfs = None;
    plan.namespaces = crate::namespaces::NamespaceSet::empty();
    plan.namespace_paths.clear();
    plan.sysctl.clear();
    // The container's hooks ran for its init, not for an exec.
    plan.hooks = None;
    plan.hostname = None;
    let mut prep = Prepared::new(&plan, None)?;
    // With a terminal: a pty of the container's devpts, sent on this connection.
    prep.console = console;
    prep.runtime_exe = security::exe_identity("/proc/self/exe");
    prep.change_user = true;
    prep.pdeath = false;
    let mut ns_fds = Vec::new();
    for ns in EXEC_NAMESPACES {
        let theirs = format!("/proc/{}/ns/{ns}", target.init_pid);
        let ours = format!("/proc/self/ns/{ns}");
        let id = |p: &str| {
            std::fs::metadata(p).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
        };
        match (id(&theirs), id(&ours)) {
            (Some(a), Some(b)) if a == b => continue,
            (None, _) => {
                return Err(Error::Setup(format!(
                    "the container's init {} is gone ({theirs})",
                    target.init_pid
                )))
            }
            _ => {}
        }
        let f =
            std::fs::File::open(&theirs).map_err(|e| Error::sys(format!("open {theirs}"), e))?;
        ns_fds.push(OwnedFd::from(f));
    }
    if euid == 0 {
        security::set_non_dumpable().map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE)", e))?;
    }
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    let mut mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut mask))
        .map_err(|e| Error::sys("sigprocmask", e))?;
    // SAFETY: a fork-style clone of this single-threaded process; the child never
    // returns from `exec_joiner`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from(libc::SIGCHLD.cast_unsigned()),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        drop(report_r);
        exec_joiner(&prep, target, &ns_fds, report_w.as_raw_fd(), &mask);
    }
    if pid < 0 {
        return Err(clone_error(std::io::Error::last_os_error()));
    }
    drop(report_w);
    drop(ns_fds);
    let joiner = nix::unistd::Pid::from_raw(
        libc::pid_t::try_from(pid)
            .map_err(|_| clone_error(std::io::Error::from_raw_os_error(libc::ERANGE)))?,
    );
    let msg = read_all(report_r.as_raw_fd());
    let _ = nix::sys::wait::waitpid(joiner, None);
    let mut child = None;
    let mut i = 0;
    while i < msg.len() {
        match msg[i] {
            b'P' if i + 5 <= msg.len() => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&msg[i + 1..i + 5]);
                child = Some(i32::from_le_bytes(b));
                i += 5;
            }
            b'N' => {
                return Err(Error::CommandNotFound(
                    String::from_utf8_lossy(&msg[i + 1..]).into_owned(),
                ))
            }
            b'X' => return Err(Error::RuntimeExe),
            _ => {
                return Err(Error::Setup(
                    String::from_utf8_lossy(msg.get(i + 1..).unwrap_or_default()).into_owned(),
                ))
            }
        }
    }
    child.ok_or_else(|| Error::Setup("the exec'd process died before its execve".into()))
}

/// The first child of an exec: joins the cgroup and the namespaces, then clones the
/// process that runs (with `CLONE_PARENT`: a child of the runtime, in the joined PID
/// namespace), reports its pid and exits.
fn exec_joiner(
    p: &Prepared,
    target: &ExecTarget,
    ns_fds: &[OwnedFd],
    report: RawFd,
    old_mask: &SigSet,
) -> ! {
    let fail = |m: String| -> ! {
        write_fd(report, format!("E{m}").as_bytes());
        // SAFETY: _exit in the forked child.
        unsafe { libc::_exit(127) }
    };
    // Joined from the host's view of /sys/fs/cgroup, before the mount namespace.
    if let Err(e) = cgroups::join(&target.cgroup_procs) {
        fail(format!("joining the container's cgroup: {e}"));
    }
    for fd in ns_fds {
        // SAFETY: setns on a namespace descriptor we own.
        if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
            fail(format!("setns: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: a fork-style clone; the child never returns from `exec_child`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from((libc::CLONE_PARENT | libc::SIGCHLD).cast_unsigned()),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        exec_child(p, report, old_mask);
    }
    if pid < 0 {
        fail(format!("clone: {}", std::io::Error::last_os_error()));
    }
    let mut rec = [0u8; 5];
    rec[0] = b'P';
    rec[1..].copy_from_slice(&i32::try_from(pid).unwrap_or(0).to_le_bytes());
    write_fd(report, &rec);
    // SAFETY: _exit in the forked child.
    unsafe { libc::_exit(0) }
}

/// The exec'd process: the security steps of a container's init, then execve.
fn exec_child(p: &Prepared, report: RawFd, old_mask: &SigSet) -> ! {
    match child_setup(p, None, Some(report), &mut Steps::default()) {
        Ok(path) => {
            prepare_exec(p, old_mask);
            // SAFETY: path and the prepared argv/envp arrays are valid, NUL- and
            // null-terminated, and outlive the call.
            unsafe { libc::execve(path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
            let e = std::io::Error::last_os_error();
            write_fd(report, format!("Eexecve {}: {e}", p.cmd).as_bytes());
        }
        Err(ChildFail::NotFound(cmd)) => write_fd(report, format!("N{cmd}").as_bytes()),
        Err(ChildFail::RuntimeExe) => write_fd(report, b"X"),
        Err(ChildFail::Msg(m)) => write_fd(report, format!("E{m}").as_bytes()),
    }
    // SAFETY: _exit ends the child without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

/// `CLONE_INTO_CGROUP` (linux/sched.h).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3's argument block (`struct clone_args`, its version 2 with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A fork-style clone with `flags` (and SIGCHLD), straight into the cgroup2 folder
/// `cgroup` when given: no later move into it, whose first one costs an RCU grace
/// period (about 15 ms here, docs/HOSTS.md). Returns the clone's result (0 in the
/// child, the pid or -1 with errno in the parent) and whether the child was placed
/// in `cgroup` (false when clone3 is missing: the child must join itself).
fn fork_clone(flags: libc::c_int, cgroup: Option<RawFd>) -> (libc::c_long, bool) {
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

fn clone_error(e: std::io::Error) -> Error {
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
struct VforkArgs<'a> {
    prep: &'a Prepared,
    old_mask: &'a SigSet,
    exec_ns: u64,
    fail: Option<ChildFail>,
    steps: Steps,
    /// The runtime's own CPU mask, which the child puts back (see crate::affinity).
    pin: Option<crate::affinity::Pin>,
}

extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
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
fn spawn_vfork(prep: &Prepared, old_mask: &SigSet) -> Result<Launch> {
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
fn spawn_forked(prep: &Prepared, old_mask: &SigSet) -> Result<Launch> {
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

fn parent(
    launch: Launch,
    mut cgroup: Option<Cgroup>,
    spec: &SandboxSpec,
    self_exe: Option<(u64, u64)>,
    block: &SigSet,
    hooks: Option<&HookCtx>,
) -> Result<Outcome> {
    let pid = launch.pid;
    let npid = nix::unistd::Pid::from_raw(pid);
    let kill_now = |cg: &Option<Cgroup>| {
        if let Some(cg) = cg {
            cg.kill_all();
        }
        let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(npid, None);
    };
    let exec_ns = match launch.exec {
        Ok(t) => t,
        Err(e) => {
            kill_now(&cgroup);
            return Err(e);
        }
    };
    // Layer 2 of the CVE-2019-5736 guard.
    if self_exe.is_some() && security::exe_identity(&format!("/proc/{pid}/exe")) == self_exe {
        kill_now(&cgroup);
        return Err(Error::RuntimeExe);
    }
    if let Some(h) = hooks {
        let st = h.state(oci_spec::runtime::ContainerState::Running, pid);
        if let Err(e) = crate::hooks::poststart(Some(&h.hooks), &st) {
            log::warn!("{e}");
        }
    }
    let deadline = spec.timeout.map(|t| std::time::Instant::now() + t);
    let mut timed_out = false;
    let mut interrupts = 0u32;
    let status = loop {
        use nix::sys::wait::{WaitPidFlag, WaitStatus};
        match nix::sys::wait::waitpid(npid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => break ExitStatus::Exited(c),
            Ok(WaitStatus::Signaled(_, s, _)) => break ExitStatus::Signaled(s as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
        let mut ts = None;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() && !timed_out {
                timed_out = true;
                if let Some(cg) = &cgroup {
                    cg.kill_all();
                }
                let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
                continue;
            }
            if !timed_out {
                ts = Some(libc::timespec {
                    tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                });
            }
        }
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `block` is a valid sigset, the info pointer may be null and `tsp` is
        // null or points to a live timespec.
        let sig = unsafe { libc::sigtimedwait(block.as_ref(), std::ptr::null_mut(), tsp) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
            // PID 1 ignores signals it has no handler for: a second INT or TERM
            // (Ctrl-C twice) kills the sandbox instead of leaving the user stuck.
            if sig == libc::SIGINT || sig == libc::SIGTERM {
                if interrupts > 0 {
                    if let Some(cg) = &cgroup {
                        cg.kill_all();
                    }
                    let _ = nix::sys::signal::kill(npid, Signal::SIGKILL);
                }
                interrupts += 1;
            }
        }
    };
    let done_ns = timeline::now_ns();
    let oom_killed = cgroup.as_ref().map(|c| c.oom_kills() > 0).unwrap_or(false);
    let backend = cgroup.as_ref().map(|c| c.backend().name());
    if let Some(cg) = cgroup.as_mut() {
        cg.remove()?;
    }
    if let Some(h) = hooks {
        let st = h.state(oci_spec::runtime::ContainerState::Stopped, pid);
        if let Err(e) = crate::hooks::poststop(Some(&h.hooks), &st) {
            log::warn!("{e}");
        }
    }
    Ok(Outcome {
        status,
        exec_ns,
        done_ns,
        oom_killed,
        timed_out,
        cgroup_backend: backend,
        steps: launch.steps.named(),
    })
}

fn write_maps(pid: libc::pid_t, uid_map: &str, gid_map: &str, rootless: bool) -> Result<()> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let w = |file: &str, data: &str| {
        crate::sys::write_file(&proc.join(file), data.as_bytes()).map_err(|e| Error::Sys {
            context: format!("writing {file} `{}`", data.trim().replace('\n', "; ")),
            source: e,
        })
    };
    w("uid_map", uid_map)?;
    if rootless {
        w("setgroups", "deny")?;
    }
    w("gid_map", gid_map)
}

fn read_all(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: `buf` is a valid writable buffer of its length and `fd` is open.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            out.extend_from_slice(&buf[..n.unsigned_abs()]);
        } else if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return out;
        }
    }
}

// ---------------------------------------------------------------------------
// Child side.

enum ChildFail {
    NotFound(String),
    RuntimeExe,
    Msg(String),
}

impl ChildFail {
    fn into_error(self) -> Error {
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

fn step<T, E: std::fmt::Display>(
    what: &str,
    r: std::result::Result<T, E>,
) -> std::result::Result<T, ChildFail> {
    r.map_err(|e| ChildFail::Msg(format!("{what}: {e}")))
}

fn write_fd(fd: RawFd, data: &[u8]) {
    // SAFETY: `data` is valid for its length; a failed write only loses the report.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
}

/// Last steps before the execve, in the child: the kernel's default scheduler
/// slice, default SIGPIPE (Rust's runtime ignores it; the workload must get the
/// default) and the original signal mask.
fn prepare_exec(p: &Prepared, old_mask: &SigSet) {
    if let Some(s) = &p.slice {
        // Best effort: the slice is a hint.
        let _ = s.reset();
    }
    // SAFETY: resetting a disposition to the default is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
}

fn child_main(p: &Prepared, exec_w: RawFd, go_r: OwnedFd, old_mask: &SigSet) -> ! {
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
fn hold_then_exec(p: &Prepared, path: &CString, exec_w: RawFd, old_mask: &SigSet) -> ! {
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
static HOST_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn child_setup(
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
fn container_terminal(sock: RawFd, size: Option<(u16, u16)>) -> std::io::Result<()> {
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
mod ids {
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
fn arm_parent_death(alive_r: RawFd) -> std::result::Result<(), ChildFail> {
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
fn close_fds_except(keep: &[Option<RawFd>], preserved: u32) -> std::io::Result<()> {
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
const MAX_INTERPRETERS: usize = 5;

/// Layer 2 of the CVE-2019-5736 guard, before the execve: whether executing `path`
/// would run the program `exe` (device, inode), directly or as the `#!` interpreter
/// of a script (followed like the kernel does). An unreadable script is not
/// followed; the parent's check after the execve still catches it.
fn runs_program(path: &CString, exe: (u64, u64)) -> bool {
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
fn resolve(cmd: &str, dirs: &[String]) -> Option<CString> {
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
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn identity(p: &Path) -> (u64, u64) {
        let md = std::fs::metadata(p).unwrap();
        (md.dev(), md.ino())
    }

    fn script(dir: &Path, name: &str, text: &str) -> CString {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        cpath(&p).unwrap()
    }

    #[test]
    fn runtime_binary_is_found_through_interpreter_chains() {
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
    fn parent_death_check_sees_a_dead_runtime() {
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
