//! The runtime-independent description of one sandbox run. The CLI short form
//! (`--rootfs DIR -- CMD`) and an OCI bundle ([`crate::oci`]) both produce one.

use crate::namespaces::{Namespace, NamespaceSet};
use crate::security::{caps, seccomp::Filter};
use std::path::PathBuf;
use std::time::Duration;

/// The PATH given to workloads when none is configured.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hostname set in a fresh UTS namespace when none is configured.
pub const DEFAULT_HOSTNAME: &str = "bootlab";

/// Hidden by default (the short form; an OCI bundle lists its own `maskedPaths`):
/// the procfs files that read kernel memory, key rings, timers and hardware state
/// of the host (the runtime-spec / Docker default list).
pub const DEFAULT_MASKED_PATHS: [&str; 9] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// Read-only by default (the short form; an OCI bundle lists its own
/// `readonlyPaths`): procfs files that change the HOST's kernel, whatever namespace
/// they are opened from. A writable `/proc/sys` lets a root workload set
/// `kernel.core_pattern` to `|/proc/%P/root/evil`, which the host kernel then runs
/// as root outside the sandbox; `/proc/sysrq-trigger` reboots or crashes the host.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A uid or gid mapping line of a user namespace (`/proc/PID/uid_map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id outside (on the host).
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// The identity the workload runs as (inside its user namespace, if any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// File mode creation mask, if it is to be set.
    pub umask: Option<u32>,
}

/// cgroup limits. `None` means "not limited".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// Memory limit in bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub memory_bytes: Option<u64>,
    /// Maximum number of tasks (`pids.max`).
    pub pids: Option<u64>,
    /// CPU bandwidth: (quota µs, period µs) (v1 `cpu.cfs_*`, v2 `cpu.max`).
    pub cpu_quota: Option<(u64, u64)>,
    /// Memory soft limit in bytes (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub memory_reservation: Option<u64>,
    /// Memory + swap limit in bytes, as OCI's `memory.swap`; `Some(None)` = no
    /// limit on swap (-1). Unset: no swap beside a memory limit.
    pub memory_swap: Option<Option<u64>>,
    /// Relative CPU weight (v1 `cpu.shares`, v2 `cpu.weight` scaled like runc).
    pub cpu_shares: Option<u64>,
    /// CPUs the sandbox may run on (`cpuset.cpus`, e.g. `0-1`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes (`cpuset.mems`).
    pub cpuset_mems: Option<String>,
    /// Device access rules, in order (`linux.resources.devices`; see
    /// [`crate::cgroups::devices`]).
    pub devices: Vec<crate::cgroups::devices::Rule>,
}

impl Resources {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory_bytes.is_some()
            || self.pids.is_some()
            || self.cpu_quota.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swap.is_some()
            || self.cpu_shares.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || !self.devices.is_empty()
    }

    /// Whether a cpuset is asked for.
    pub fn cpuset(&self) -> bool {
        self.cpuset_cpus.is_some() || self.cpuset_mems.is_some()
    }

    /// CPU bandwidth for `cpus` CPUs with the default 100 ms period.
    pub fn cpus(cpus: f64) -> (u64, u64) {
        const PERIOD_US: u64 = 100_000;
        // A float-to-integer `as` saturates (NaN gives 0); `--cpus` is checked
        // positive and finite before it gets here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (
            ((cpus * PERIOD_US as f64).round() as u64).max(1_000),
            PERIOD_US,
        )
    }
}

/// One extra mount, as in config.json (`mounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// Filesystem type (`proc`, `tmpfs`, `bind`, ...); `None` for a plain bind mount.
    pub fstype: Option<String>,
    /// Source: a host path for bind mounts, a device name otherwise.
    pub source: Option<PathBuf>,
    /// fstab-style options (`ro`, `nosuid`, `rbind`, `mode=755`, ...).
    pub options: Vec<String>,
}

/// Everything needed to run one workload in a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The root filesystem; `None` keeps the host's root (only without a mount
    /// namespace).
    pub rootfs: Option<PathBuf>,
    /// Command and arguments; `args[0]` is looked up in the sandbox's PATH.
    pub args: Vec<String>,
    /// Environment (`KEY=VALUE`).
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    /// Hostname (set when a UTS namespace is created).
    pub hostname: Option<String>,
    /// Namespaces to create.
    pub namespaces: NamespaceSet,
    /// Namespaces to join instead (an engine's network namespace, `linux.namespaces`
    /// with a `path`; see [`crate::nsjoin`]).
    pub namespace_paths: Vec<(Namespace, PathBuf)>,
    /// Kernel parameters set inside the sandbox's namespaces (`linux.sysctl`, see
    /// [`crate::sysctl`]), in order.
    pub sysctl: Vec<(String, String)>,
    /// Root read-only (default) or writable.
    pub readonly_root: bool,
    /// Mount the default /proc, /dev and /tmp (short form). OCI bundles list their
    /// own mounts instead.
    pub default_mounts: bool,
    /// Extra mounts, in order, after the default ones.
    pub mounts: Vec<Mount>,
    /// Device nodes made in /dev (`linux.devices`, see [`crate::devices`]).
    pub devices: Vec<crate::devices::Device>,
    /// Paths hidden (OCI `maskedPaths`; short form: [`DEFAULT_MASKED_PATHS`]).
    pub masked_paths: Vec<PathBuf>,
    /// Paths remounted read-only (OCI `readonlyPaths`; short form:
    /// [`DEFAULT_READONLY_PATHS`]).
    pub readonly_paths: Vec<PathBuf>,
    /// cgroup limits.
    pub resources: Resources,
    /// Where the sandbox's cgroup goes (OCI `cgroupsPath`, cgroupfs style): absolute
    /// = below each hierarchy's root, relative = below the runtime's own cgroup.
    /// `None`: a `bootlab-<pid>-<n>` cgroup below the runtime's own, only when
    /// limits or a timeout ask for one.
    pub cgroups_path: Option<PathBuf>,
    /// uid mappings for the user namespace; empty = map root to the caller.
    pub uid_mappings: Vec<IdMap>,
    /// gid mappings for the user namespace; empty = map root to the caller.
    pub gid_mappings: Vec<IdMap>,
    /// Identity of the workload.
    pub user: User,
    /// Capability sets of the workload.
    pub capabilities: caps::CapSets,
    /// Resource limits (`setrlimit`): (resource, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Set `no_new_privs` (default true).
    pub no_new_privs: bool,
    /// The AppArmor profile the workload runs in (`process.apparmorProfile`).
    pub apparmor_profile: Option<String>,
    /// Install the default seccomp filter (default true).
    pub seccomp: bool,
    /// A bundle's own seccomp program (`linux.seccomp`, compiled by
    /// [`crate::security::oci_seccomp`]), installed instead of the default filter.
    pub seccomp_profile: Option<Filter>,
    /// Kill the whole sandbox after this long.
    pub timeout: Option<Duration>,
    /// The workload's stdio is a terminal made by the runtime (OCI
    /// `process.terminal`; only `bootlab oci create`, which sends its master to the
    /// engine's console socket).
    pub terminal: bool,
    /// The terminal's size (rows, columns), OCI `process.consoleSize`.
    pub console_size: Option<(u16, u16)>,
    /// OCI hooks (config.json `hooks`, run by [`crate::hooks`]); their presence
    /// sends the start through the forked path, which can stop between steps.
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// config.json `annotations`, passed to hooks in the state.
    pub annotations: std::collections::HashMap<String, String>,
    /// The OCI container ID hooks see in the state (`bootlab oci create`'s ID;
    /// `None`: `bootlab-<runtime pid>`, for `sandbox run`).
    pub container_id: Option<String>,
}

impl SandboxSpec {
    /// A spec with the defaults of `bootlab sandbox run --rootfs ROOTFS -- ARGS`.
    pub fn new(rootfs: Option<PathBuf>, args: Vec<String>) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let mut env = vec![format!("PATH={DEFAULT_PATH}"), "HOME=/".to_owned()];
        if let Ok(term) = std::env::var("TERM") {
            env.push(format!("TERM={term}"));
        }
        SandboxSpec {
            rootfs,
            args,
            env,
            cwd: PathBuf::from("/"),
            hostname: Some(DEFAULT_HOSTNAME.to_owned()),
            namespaces: NamespaceSet::default_for_euid(euid),
            namespace_paths: Vec::new(),
            sysctl: Vec::new(),
            readonly_root: true,
            default_mounts: true,
            mounts: Vec::new(),
            devices: Vec::new(),
            masked_paths: DEFAULT_MASKED_PATHS.iter().map(PathBuf::from).collect(),
            readonly_paths: DEFAULT_READONLY_PATHS.iter().map(PathBuf::from).collect(),
            resources: Resources::default(),
            cgroups_path: None,
            uid_mappings: Vec::new(),
            gid_mappings: Vec::new(),
            user: User::default(),
            capabilities: caps::CapSets::default_set(),
            rlimits: Vec::new(),
            no_new_privs: true,
            apparmor_profile: None,
            seccomp: true,
            seccomp_profile: None,
            timeout: None,
            terminal: false,
            console_size: None,
            hooks: None,
            annotations: std::collections::HashMap::new(),
            container_id: None,
        }
    }
}
