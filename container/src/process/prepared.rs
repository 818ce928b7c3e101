//! What the runtime computes before the clone ([`Prepared`]): flags, paths, argv and
//! environment as C strings, the seccomp program, the id maps and the hooks' context,
//! so that the child, which runs on the vfork path in the runtime's memory, only
//! makes system calls.

use super::*;

/// What the hooks of a bundle need: the hooks and the state's fixed parts.
pub(super) struct HookCtx {
    pub(super) hooks: oci_spec::runtime::Hooks,
    pub(super) id: String,
    pub(super) bundle: PathBuf,
    pub(super) annotations: std::collections::HashMap<String, String>,
}

impl HookCtx {
    pub(super) fn state(
        &self,
        status: oci_spec::runtime::ContainerState,
        pid: libc::pid_t,
    ) -> oci_spec::runtime::State {
        crate::hooks::state(&self.id, status, Some(pid), &self.bundle, &self.annotations)
    }
}

/// Everything the child needs, computed before the clone.
pub(super) struct Prepared {
    /// A bundle's hooks: the start goes through the forked path.
    pub(super) hooks: Option<HookCtx>,
    /// The short scheduler slice the start runs with, which the child gives back
    /// before the workload's execve (see crate::slice).
    pub(super) slice: Option<crate::slice::Shortened>,
    pub(super) flags: libc::c_int,
    pub(super) userns: Option<(String, String)>,
    pub(super) rootfs: Option<RootfsPlan>,
    pub(super) hostname: Option<String>,
    pub(super) lo_up: bool,
    /// The child makes its network namespace itself once its root filesystem is
    /// set up (`unshare`, then `lo` up); then `CLONE_NEWNET` is not in `flags`.
    pub(super) unshare_net: bool,
    pub(super) cgroup_procs: Vec<CString>,
    pub(super) late_cgroupns: bool,
    pub(super) cmd: String,
    pub(super) path_dirs: Vec<String>,
    /// Own the strings `argv_ptrs` and `envp_ptrs` point to.
    #[allow(dead_code)]
    pub(super) argv: Vec<CString>,
    #[allow(dead_code)]
    pub(super) envp: Vec<CString>,
    pub(super) argv_ptrs: Vec<*const libc::c_char>,
    pub(super) envp_ptrs: Vec<*const libc::c_char>,
    pub(super) own_maps: bool,
    pub(super) rootless: bool,
    pub(super) cwd: PathBuf,
    pub(super) user: User,
    pub(super) change_user: bool,
    pub(super) clear_groups: bool,
    pub(super) caps: caps::CapSets,
    pub(super) rlimits: Vec<(u32, u64, u64)>,
    pub(super) no_new_privs: bool,
    /// What the child writes to its AppArmor exec attribute (made here: no
    /// allocation in the child).
    pub(super) apparmor: Option<Vec<u8>>,
    pub(super) filter: Option<Filter>,
    /// Namespaces the child joins by path, first thing.
    pub(super) joins: Joins,
    /// Sysctls the child writes before its rootfs set-up.
    pub(super) sysctls: crate::sysctl::Plan,
    /// (device, inode) of the runtime's binary: the child refuses to execve it.
    pub(super) runtime_exe: Option<(u64, u64)>,
    /// The parent-alive pipe (read end, write end): the parent holds the write end
    /// for the whole run; the child closes its copy and sees end-of-file once the
    /// runtime is gone (see [`arm_parent_death`]).
    pub(super) alive: (RawFd, RawFd),
    /// The network namespace the runtime makes in parallel (see [`crate::netns`]);
    /// then `CLONE_NEWNET` is not in `flags`.
    pub(super) netns: Option<NetnsHandle>,
    /// Set by [`create`]: the init stops before its execve until `start`.
    pub(super) hold: Option<Hold>,
    /// The connection to the engine's console socket: the child opens a pty in the
    /// container, sends the master there and takes the slave as its stdio.
    pub(super) console: Option<RawFd>,
    /// The terminal's size (rows, columns).
    pub(super) console_size: Option<(u16, u16)>,
    /// A cgroup2 folder the child is cloned straight into (`CLONE_INTO_CGROUP`),
    /// as an open descriptor, with its `cgroup.procs` for the fallback join when
    /// the kernel lacks clone3.
    pub(super) into_cgroup: Option<(RawFd, CString)>,
    /// The child dies with the runtime (parent-death signal). Not for [`exec`]'s
    /// process, which outlives a runtime that returned with `--detach`.
    pub(super) pdeath: bool,
}

/// How a created container's init waits for `start` (see [`create`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Hold {
    /// The exec FIFO, opened read-write (so the open did not block and a read
    /// blocks until `start` writes a byte).
    pub(super) fifo: RawFd,
    /// Descriptors 3 .. 3+N of the caller that the workload keeps (`--preserve-fds`).
    pub(super) preserve_fds: u32,
}

pub(super) fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Config(format!("{what} contains a NUL byte")))
        })
        .collect()
}

pub(super) fn map_text(maps: &[IdMap], default_outside: u32) -> String {
    if maps.is_empty() {
        return format!("0 {default_outside} 1\n");
    }
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

impl Prepared {
    pub(super) fn new(spec: &SandboxSpec, bundle_dir: Option<&Path>) -> Result<Prepared> {
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
