//! `config.json` of an OCI bundle, read with the `oci-spec` crate's types
//! (`oci_spec::runtime::Spec`, youki's model of the whole runtime spec) and turned
//! into a [`SandboxSpec`].
//!
//! Two checks come before the conversion, so nothing is silently ignored:
//! - a key the runtime spec does not have (a typo, a field of a newer spec) is an
//!   error naming it: oci-spec's types ignore unknown keys, so the keys it skipped
//!   are collected while deserialising (`serde_ignored`) and refused;
//! - a field of the spec that the sandbox does not honour yet is an error naming it
//!   ([`SUPPORTED`] lists what is honoured): `process` (args, env, cwd, user with
//!   umask and additionalGids, capabilities, rlimits, noNewPrivileges,
//!   apparmorProfile where AppArmor is enabled ([`crate::security::apparmor`]),
//!   terminal=false), `root`, `hostname`, `mounts`, `linux.namespaces` (a `path`
//!   joins an engine's namespace, [`crate::nsjoin`]), `linux.seccomp`
//!   ([`crate::security::oci_seccomp`]), `linux.sysctl` ([`crate::sysctl`]),
//!   `linux.cgroupsPath`, `linux.resources` (memory limit/reservation/swap, pids,
//!   cpu quota/period/shares/cpus/mems, device rules: [`crate::cgroups`]),
//!   `linux.devices` ([`crate::devices`]), `linux.uidMappings`,
//!   `linux.gidMappings`, `linux.maskedPaths`, `linux.readonlyPaths`, `hooks`
//!   ([`crate::hooks`]), `ociVersion` and `annotations`. What `runc spec`, podman 4.3 and containerd 1.6 write by
//!   default is accepted (container/tests/fixtures holds captured configs).
//!
//! Differences from runc, on purpose: without `linux.seccomp` our default filter is
//! installed (runc installs none); a `cgroup` mount is a cgroup2 mount
//! (namespace-aware, also on hybrid hosts); on a cgroup2-only host device rules are
//! met by construction (see [`crate::cgroups::devices`]).

use crate::namespaces::{Namespace, NamespaceSet};
use crate::security::caps::{self, CapSets};
use crate::spec::{IdMap, Mount, SandboxSpec, User};
use crate::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// The config.json fields the sandbox honours, as key paths (`[]` stands for every
/// element of a list). A path names its whole subtree: `annotations` takes any key.
pub const SUPPORTED: &[&str] = &[
    "ociVersion",
    "annotations",
    "hooks",
    "hostname",
    "root.path",
    "root.readonly",
    "process.terminal",
    "process.consoleSize",
    "process.user.uid",
    "process.user.gid",
    "process.user.umask",
    "process.user.additionalGids",
    "process.args",
    "process.env",
    "process.cwd",
    "process.capabilities.bounding",
    "process.capabilities.effective",
    "process.capabilities.inheritable",
    "process.capabilities.permitted",
    "process.capabilities.ambient",
    "process.rlimits[].type",
    "process.rlimits[].hard",
    "process.rlimits[].soft",
    "process.noNewPrivileges",
    "process.apparmorProfile",
    "mounts[].destination",
    "mounts[].type",
    "mounts[].source",
    "mounts[].options",
    "linux.namespaces[].type",
    "linux.namespaces[].path",
    "linux.resources.devices[].allow",
    "linux.resources.devices[].type",
    "linux.resources.devices[].major",
    "linux.resources.devices[].minor",
    "linux.resources.devices[].access",
    "linux.resources.memory.limit",
    "linux.resources.memory.reservation",
    "linux.resources.memory.swap",
    "linux.resources.pids.limit",
    "linux.resources.cpu.quota",
    "linux.resources.cpu.period",
    "linux.resources.cpu.shares",
    "linux.resources.cpu.cpus",
    "linux.resources.cpu.mems",
    "linux.cgroupsPath",
    "linux.seccomp",
    "linux.sysctl",
    "linux.devices[].path",
    "linux.devices[].type",
    "linux.devices[].major",
    "linux.devices[].minor",
    "linux.devices[].fileMode",
    "linux.devices[].uid",
    "linux.devices[].gid",
    "linux.uidMappings[].containerID",
    "linux.uidMappings[].hostID",
    "linux.uidMappings[].size",
    "linux.gidMappings[].containerID",
    "linux.gidMappings[].hostID",
    "linux.gidMappings[].size",
    "linux.maskedPaths",
    "linux.readonlyPaths",
];

/// Whether the key path `path` is honoured: listed, inside a listed subtree, or on
/// the way to a listed field.
fn supported(path: &str) -> bool {
    SUPPORTED.iter().any(|s| {
        s == &path
            || path
                .strip_prefix(s)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
            || s.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
    })
}

/// The first field of `value` (walked in document order) that is not [`SUPPORTED`].
/// A `null` stands for an absent field and is let through.
fn first_unsupported(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if v.is_null() {
                None
            } else if !supported(&p) {
                Some(p)
            } else {
                first_unsupported(v, &p)
            }
        }),
        serde_json::Value::Array(items) => {
            let p = format!("{path}[]");
            items.iter().find_map(|v| first_unsupported(v, &p))
        }
        _ => None,
    }
}

/// Parses a process JSON (`runc exec --process FILE`), refusing unknown keys.
pub fn parse_process(text: &str) -> std::result::Result<oci_spec::runtime::Process, String> {
    strict::<oci_spec::runtime::Process>(text)
}

/// Deserialises the runtime spec from `text`, refusing every key oci-spec's types
/// do not have (they would otherwise be dropped without a word).
fn deserialize_strict(text: &str) -> std::result::Result<Spec, String> {
    strict::<Spec>(text)
}

/// Deserialises `T` from JSON `text`, refusing every key `T` does not have.
fn strict<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let spec: T = serde_ignored::deserialize(&mut de, |p| {
        // serde_ignored writes `?` for the inside of an Option: not a key.
        let path: Vec<String> = p
            .to_string()
            .split('.')
            .filter(|s| *s != "?")
            .map(str::to_owned)
            .collect();
        unknown.push(path.join("."));
    })
    .and_then(|s| de.end().map(|()| s))
    .map_err(|e| format!("malformed config: {e}"))?;
    if let Some(first) = unknown.first() {
        return Err(format!(
            "unknown field `{first}`: not in the OCI runtime spec{}",
            if unknown.len() > 1 {
                format!(" (and {} more)", unknown.len() - 1)
            } else {
                String::new()
            }
        ));
    }
    Ok(spec)
}

/// Largest config.json read (a `runc spec` one is about 3 KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Smallest memory limit accepted (bundles and `--memory`): below it the sandbox's
/// own set-up (bind mounts, the exec) is charged to the cgroup and fails with ENOMEM
/// before the workload starts (256 KiB was enough here; 4x margin).
pub const MIN_MEMORY_LIMIT: u64 = 1 << 20;
/// Largest pids limit: the kernel's `PID_MAX_LIMIT` on 64-bit (4 Mi tasks).
pub const PID_MAX_LIMIT: u64 = 4 << 20;
/// Longest hostname `sethostname(2)` takes (`HOST_NAME_MAX`).
pub const HOST_NAME_MAX: usize = 64;
/// CFS bandwidth bounds the kernel enforces (kernel/sched/core.c): period 1 ms..1 s,
/// quota at least 1 ms and below 2^44 µs.
pub const CFS_PERIOD_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
pub const CFS_QUOTA_US: std::ops::RangeInclusive<u64> = 1_000..=(1 << 44) - 1;

/// Checks a memory limit in bytes against [`MIN_MEMORY_LIMIT`].
pub fn check_memory(bytes: u64) -> std::result::Result<(), String> {
    if bytes < MIN_MEMORY_LIMIT {
        return Err(format!(
            "memory limit {bytes} bytes is below the minimum of {} MiB",
            MIN_MEMORY_LIMIT >> 20
        ));
    }
    Ok(())
}

/// Checks a pids limit against 1..=[`PID_MAX_LIMIT`].
pub fn check_pids(n: u64) -> std::result::Result<(), String> {
    if !(1..=PID_MAX_LIMIT).contains(&n) {
        return Err(format!("pids limit {n} is not in 1..={PID_MAX_LIMIT}"));
    }
    Ok(())
}

/// Checks a CPU bandwidth (quota, period in µs) against what the kernel accepts.
pub fn check_cpu(quota: u64, period: u64) -> std::result::Result<(), String> {
    if !CFS_PERIOD_US.contains(&period) {
        return Err(format!(
            "cpu period {period} µs is not in {}..={} µs",
            CFS_PERIOD_US.start(),
            CFS_PERIOD_US.end()
        ));
    }
    if !CFS_QUOTA_US.contains(&quota) {
        return Err(format!(
            "cpu quota {quota} µs is not in {}..={} µs",
            CFS_QUOTA_US.start(),
            CFS_QUOTA_US.end()
        ));
    }
    Ok(())
}

/// Checks a hostname's length against [`HOST_NAME_MAX`].
pub fn check_hostname(h: &str) -> std::result::Result<(), String> {
    if h.len() > HOST_NAME_MAX {
        return Err(format!(
            "hostname `{h}` is {} bytes long, longer than {HOST_NAME_MAX}",
            h.len()
        ));
    }
    Ok(())
}

/// `RLIMIT_*` names and their resource numbers.
const RLIMITS: [(&str, u32); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

/// A bundle's config: the whole runtime spec as read, and the sandbox it describes.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// config.json in the spec's types.
    pub config: Spec,
    /// The sandbox to run.
    pub sandbox: SandboxSpec,
}

/// Reads `BUNDLE/config.json` into a [`SandboxSpec`] (root path resolved against the
/// bundle).
pub fn load_bundle(bundle: &Path) -> Result<SandboxSpec> {
    load(bundle).map(|b| b.sandbox)
}

/// Reads `BUNDLE/config.json`: the spec and the [`SandboxSpec`] it describes.
pub fn load(bundle: &Path) -> Result<Bundle> {
    if !bundle.is_dir() {
        return Err(Error::Oci {
            path: bundle.to_path_buf(),
            reason: if bundle.exists() {
                "the bundle is not a directory".into()
            } else {
                "no such bundle directory".into()
            },
        });
    }
    let path = bundle.join("config.json");
    let oci = |reason: String| Error::Oci {
        path: path.clone(),
        reason,
    };
    // A regular file of bounded size: a FIFO would block, /dev/zero never ends. Opened
    // without blocking (a FIFO's open waits for a writer) and checked on the open file
    // (what the path named may change in between).
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| oci(format!("cannot read: {e}")))?
    };
    let md = file
        .metadata()
        .map_err(|e| oci(format!("cannot read: {e}")))?;
    if !md.is_file() {
        return Err(oci("not a regular file".into()));
    }
    if md.len() > MAX_CONFIG_BYTES {
        return Err(oci(format!(
            "{} bytes, larger than the {} MiB a config.json may have",
            md.len(),
            MAX_CONFIG_BYTES >> 20
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_CONFIG_BYTES), &mut text)
        .map_err(|e| oci(format!("cannot read: {e}")))?;
    parse_bundle(&text, bundle).map_err(oci)
}

/// Parses config.json text; errors are one-line reasons.
pub fn parse(text: &str, bundle: &Path) -> std::result::Result<SandboxSpec, String> {
    parse_bundle(text, bundle).map(|b| b.sandbox)
}

/// Parses config.json text into the spec and the sandbox.
pub fn parse_bundle(text: &str, bundle: &Path) -> std::result::Result<Bundle, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("malformed config: {e}"))?;
    if !value.is_object() {
        return Err("malformed config: not a JSON object".into());
    }
    // Parsed again into the spec's types from the text: the tree above has lost
    // duplicate keys, which the typed parse refuses.
    let cfg = deserialize_strict(text)?;
    if let Some(field) = first_unsupported(&value, "") {
        return Err(format!(
            "unsupported field `{field}` (bootlab runs a subset of the OCI runtime spec)"
        ));
    }
    let sandbox = convert(&cfg, bundle)?;
    Ok(Bundle {
        config: cfg,
        sandbox,
    })
}

/// The sandbox a parsed (and checked) config describes.
pub fn convert(cfg: &Spec, bundle: &Path) -> std::result::Result<SandboxSpec, String> {
    if cfg.version().is_empty() {
        return Err("missing field `ociVersion`".into());
    }
    let p = cfg.process().as_ref().ok_or("missing field `process`")?;
    let args = p.args().clone().ok_or("missing field `process.args`")?;
    if args.is_empty() {
        return Err("process.args is empty".into());
    }
    if !p.cwd().is_absolute() {
        return Err(format!(
            "process.cwd `{}` is not absolute",
            p.cwd().display()
        ));
    }
    let root = cfg.root().as_ref().ok_or("missing field `root`")?;
    if root.path().as_os_str().is_empty() {
        return Err("root.path is empty".into());
    }
    if let Some(h) = cfg.hostname() {
        check_hostname(h)?;
    }
    let root_path = if root.path().is_relative() {
        bundle.join(root.path())
    } else {
        root.path().clone()
    };
    let mut spec = SandboxSpec::new(Some(root_path), args);
    spec.env = p.env().clone().unwrap_or_default();
    spec.cwd = p.cwd().clone();
    spec.terminal = p.terminal() == Some(true);
    spec.console_size = p.console_size().map(|b| {
        let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
        (clamp(b.height()), clamp(b.width()))
    });
    spec.readonly_root = root.readonly().unwrap_or(false);
    spec.default_mounts = false;
    spec.hostname = cfg.hostname().clone();
    spec.no_new_privs = p.no_new_privileges().unwrap_or(false);
    spec.apparmor_profile = p.apparmor_profile().clone().filter(|a| !a.is_empty());
    if let Some(profile) = &spec.apparmor_profile {
        if !crate::security::apparmor::enabled() {
            return Err(format!(
                "process.apparmorProfile `{profile}`: AppArmor is not enabled on this host"
            ));
        }
    }
    let u = p.user();
    spec.user = User {
        uid: u.uid(),
        gid: u.gid(),
        additional_gids: u.additional_gids().clone().unwrap_or_default(),
        umask: u.umask(),
    };
    let empty = oci_spec::runtime::LinuxCapabilities::default();
    let c = p.capabilities().as_ref().unwrap_or(&empty);
    let m = |set: &Option<oci_spec::runtime::Capabilities>| {
        let names: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
        caps::mask_of(names.iter().map(String::as_str))
            .map_err(|e| format!("process.capabilities: {e}"))
    };
    spec.capabilities = CapSets {
        bounding: m(c.bounding())?,
        effective: m(c.effective())?,
        permitted: m(c.permitted())?,
        inheritable: m(c.inheritable())?,
        ambient: m(c.ambient())?,
    };
    spec.rlimits = p
        .rlimits()
        .iter()
        .flatten()
        .map(|r| {
            let kind = r.typ().to_string();
            RLIMITS
                .iter()
                .find(|(n, _)| *n == kind)
                .ok_or_else(|| format!("process.rlimits: unknown type `{kind}`"))
                .and_then(|(_, res)| {
                    if r.soft() > r.hard() {
                        return Err(format!(
                            "process.rlimits: {kind} soft limit {} is above its hard limit {}",
                            r.soft(),
                            r.hard()
                        ));
                    }
                    Ok((*res, r.soft(), r.hard()))
                })
        })
        .collect::<std::result::Result<_, _>>()?;
    spec.mounts = cfg
        .mounts()
        .iter()
        .flatten()
        .map(|m| Mount {
            destination: m.destination().clone(),
            fstype: m.typ().clone(),
            source: m.source().clone(),
            options: m.options().clone().unwrap_or_default(),
        })
        .collect();
    // An absent `linux` asks for nothing (not for `Linux::default()`, which carries
    // youki's default namespaces, masked paths and limits).
    let linux: oci_spec::runtime::Linux = match cfg.linux() {
        Some(l) => l.clone(),
        None => serde_json::from_str("{}").map_err(|e| format!("linux: {e}"))?,
    };
    let mut ns = NamespaceSet::empty();
    for n in linux.namespaces().iter().flatten() {
        let kind = namespace(n.typ())?;
        match n.path() {
            // Joined, not made (an engine's network namespace).
            Some(path) => {
                crate::nsjoin::check(kind, path)?;
                spec.namespace_paths.push((kind, path.clone()));
            }
            None => ns = ns.with(kind),
        }
    }
    spec.namespaces = ns;
    // Sorted: the map's order is random, the writes' order should not be.
    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    sysctl.sort();
    crate::sysctl::plan(&sysctl, |n| {
        ns.contains(n) || spec.namespace_paths.iter().any(|(k, _)| *k == n)
    })?;
    spec.sysctl = sysctl;
    if let Some(profile) = linux.seccomp() {
        spec.seccomp_profile = Some(
            crate::security::seccomp_cache::compile_cached(
                profile,
                crate::security::seccomp_cache::default_dir().as_deref(),
            )
            .map_err(|e| e.to_string())?,
        );
    }
    spec.cgroups_path = linux.cgroups_path().clone();
    if let Some(h) = cfg.hooks() {
        crate::hooks::check(h).map_err(|e| e.to_string())?;
        spec.hooks = Some(h.clone());
    }
    spec.annotations = cfg.annotations().clone().unwrap_or_default();
    spec.devices = linux
        .devices()
        .iter()
        .flatten()
        .map(|d| {
            let kind = crate::devices::Kind::parse(d.typ().as_str()).ok_or_else(|| {
                format!(
                    "linux.devices: {}: type `{}` is not c, b, u or p",
                    d.path().display(),
                    d.typ().as_str()
                )
            })?;
            let num = |n: i64, what: &str| {
                u64::try_from(n).map_err(|_| {
                    format!("linux.devices: {}: negative {what} {n}", d.path().display())
                })
            };
            Ok(crate::devices::Device {
                path: d.path().clone(),
                kind,
                major: num(d.major(), "major")?,
                minor: num(d.minor(), "minor")?,
                mode: d.file_mode(),
                uid: d.uid(),
                gid: d.gid(),
            })
        })
        .collect::<std::result::Result<_, String>>()?;
    let idmaps = |v: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<IdMap> {
        v.iter()
            .flatten()
            .map(|m| IdMap {
                inside: m.container_id(),
                outside: m.host_id(),
                count: m.size(),
            })
            .collect()
    };
    spec.uid_mappings = idmaps(linux.uid_mappings());
    spec.gid_mappings = idmaps(linux.gid_mappings());
    let has_maps = !(spec.uid_mappings.is_empty() && spec.gid_mappings.is_empty());
    if has_maps && !ns.contains(Namespace::User) {
        return Err(
            "linux.uidMappings/gidMappings need a user namespace in linux.namespaces".into(),
        );
    }
    spec.masked_paths = linux
        .masked_paths()
        .iter()
        .flatten()
        .map(PathBuf::from)
        .collect();
    spec.readonly_paths = linux
        .readonly_paths()
        .iter()
        .flatten()
        .map(PathBuf::from)
        .collect();
    if let Some(r) = linux.resources() {
        spec.resources.devices = r
            .devices()
            .iter()
            .flatten()
            .map(|d| {
                let rule = crate::cgroups::devices::Rule {
                    allow: d.allow(),
                    kind: d.typ().and_then(|t| t.as_str().chars().next()),
                    major: d.major(),
                    minor: d.minor(),
                    access: d.access().clone().unwrap_or_default(),
                };
                rule.check().map(|()| rule)
            })
            .collect::<std::result::Result<_, String>>()?;
        // As in runc: -1 (and, for pids and the cpu quota, 0) means "no limit".
        if let Some(mem) = r.memory().as_ref().and_then(|m| m.limit()) {
            match mem {
                -1 | 0 => {}
                m if m < 0 => {
                    return Err(format!(
                        "linux.resources.memory.limit {m} is not a byte count (-1 or 0 = no limit)"
                    ))
                }
                m => {
                    check_memory(m.unsigned_abs())
                        .map_err(|e| format!("linux.resources.memory.limit: {e}"))?;
                    spec.resources.memory_bytes = Some(m.unsigned_abs());
                }
            }
        }
        if let Some(mem) = r.memory() {
            match mem.reservation() {
                None | Some(-1 | 0) => {}
                Some(v) if v < 0 => {
                    return Err(format!(
                        "linux.resources.memory.reservation {v} is not a byte count"
                    ))
                }
                Some(v) => spec.resources.memory_reservation = Some(v.unsigned_abs()),
            }
            // OCI's swap is the memory + swap total; -1 = no limit on swap.
            match mem.swap() {
                None | Some(0) => {}
                Some(-1) => spec.resources.memory_swap = Some(None),
                Some(v) if v < 0 => {
                    return Err(format!(
                        "linux.resources.memory.swap {v} is not a byte count"
                    ))
                }
                Some(v) => {
                    let v = v.unsigned_abs();
                    if spec.resources.memory_bytes.is_some_and(|l| v < l) {
                        return Err(format!(
                            "linux.resources.memory.swap {v} is below the memory limit (it is memory + swap)"
                        ));
                    }
                    spec.resources.memory_swap = Some(Some(v));
                }
            }
        }
        if let Some(p) = r.pids() {
            match p.limit() {
                l if l <= 0 => {}
                l => {
                    check_pids(l.unsigned_abs())
                        .map_err(|e| format!("linux.resources.pids.limit: {e}"))?;
                    spec.resources.pids = Some(l.unsigned_abs());
                }
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(q) = cpu.quota().filter(|q| *q > 0) {
                let period = cpu.period().unwrap_or(100_000);
                // Positive here, so its magnitude is its value.
                let q = q.unsigned_abs();
                check_cpu(q, period).map_err(|e| format!("linux.resources.cpu: {e}"))?;
                spec.resources.cpu_quota = Some((q, period));
            }
            spec.resources.cpu_shares = cpu.shares().filter(|s| *s > 0);
            spec.resources.cpuset_cpus = cpu.cpus().clone().filter(|c| !c.is_empty());
            spec.resources.cpuset_mems = cpu.mems().clone().filter(|m| !m.is_empty());
        }
    }
    Ok(spec)
}

/// Our namespace for the spec's namespace type.
fn namespace(t: LinuxNamespaceType) -> std::result::Result<Namespace, String> {
    Ok(match t {
        LinuxNamespaceType::Mount => Namespace::Mount,
        LinuxNamespaceType::Cgroup => Namespace::Cgroup,
        LinuxNamespaceType::Uts => Namespace::Uts,
        LinuxNamespaceType::Ipc => Namespace::Ipc,
        LinuxNamespaceType::User => Namespace::User,
        LinuxNamespaceType::Pid => Namespace::Pid,
        LinuxNamespaceType::Network => Namespace::Net,
        LinuxNamespaceType::Time => {
            return Err("linux.namespaces: the time namespace is not supported".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_LIKE: &str = r#"{
        "ociVersion": "1.0.2-dev",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/bin"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true},
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}], "memory": {"limit": 1048576}},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
    }"#;

    #[test]
    fn runc_like_config_parses() {
        let s = parse(RUNC_LIKE, Path::new("/b")).unwrap();
        assert_eq!(s.rootfs.as_deref(), Some(Path::new("/b/rootfs")));
        assert_eq!(s.hostname.as_deref(), Some("runc"));
        assert!(s.namespaces.contains(Namespace::Net) && !s.namespaces.contains(Namespace::Uts));
        assert_eq!(s.capabilities.bounding, 1 << 5);
        assert_eq!(s.rlimits, vec![(libc::RLIMIT_NOFILE, 1024, 1024)]);
        assert_eq!(s.resources.memory_bytes, Some(1 << 20));
        assert!(s.readonly_root && s.no_new_privs && !s.default_mounts);
    }

    #[test]
    fn unsupported_and_malformed_are_rejected() {
        let rdt = RUNC_LIKE.replace(
            "\"maskedPaths\"",
            "\"intelRdt\": {\"closID\": \"x\"}, \"maskedPaths\"",
        );
        let e = parse(&rdt, Path::new("/b")).unwrap_err();
        assert!(
            e.contains("unsupported field") && e.contains("linux.intelRdt"),
            "{e}"
        );
        let seccomp = RUNC_LIKE.replace(
            "\"maskedPaths\"",
            "\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"nope\"], \"action\": \"SCMP_ACT_ERRNO\"}]}, \"maskedPaths\"",
        );
        let e = parse(&seccomp, Path::new("/b")).unwrap_err();
        assert_eq!(e, "linux.seccomp: unknown system call `nope`");
        let sysctl = RUNC_LIKE.replace(
            "\"maskedPaths\"",
            "\"sysctl\": {\"kernel.core_pattern\": \"|/x\"}, \"maskedPaths\"",
        );
        let e = parse(&sysctl, Path::new("/b")).unwrap_err();
        assert!(e.contains("`kernel.core_pattern` is not namespaced"), "{e}");
        let e = parse("{ not json", Path::new("/b")).unwrap_err();
        assert!(e.starts_with("malformed config"), "{e}");
        let e = parse(
            &RUNC_LIKE.replace("\"network\"", "\"bogus\""),
            Path::new("/b"),
        )
        .unwrap_err();
        assert!(e.contains("unknown variant `bogus`"), "{e}");
        // A key the spec does not have is named with its path, also when oci-spec's
        // types would skip it.
        for (from, to, want) in [
            (
                "\"cwd\"",
                "\"cwdd\": 1, \"cwd\"",
                "unknown field `process.cwdd`",
            ),
            (
                "\"hostname\"",
                "\"hostnam\": \"x\", \"hostname\"",
                "unknown field `hostnam`",
            ),
            (
                "\"source\": \"proc\"",
                "\"source\": \"proc\", \"opts\": []",
                "unknown field `mounts.0.opts`",
            ),
        ] {
            let e = parse(&RUNC_LIKE.replace(from, to), Path::new("/b")).unwrap_err();
            assert!(e.contains(want), "{to}: {e}");
        }
        // A terminal is the runtime's to make (`oci create --console-socket`).
        let t = parse(
            &RUNC_LIKE.replace("\"terminal\": false", "\"terminal\": true"),
            Path::new("/b"),
        )
        .unwrap();
        assert!(t.terminal);
    }

    #[test]
    fn an_apparmor_profile_is_taken_where_apparmor_is_enabled_and_refused_elsewhere() {
        let cfg = RUNC_LIKE.replace(
            "\"cwd\"",
            "\"apparmorProfile\": \"containers-default-0.50.1\", \"cwd\"",
        );
        let got = parse(&cfg, Path::new("/b"));
        if crate::security::apparmor::enabled() {
            let s = got.unwrap();
            assert_eq!(
                s.apparmor_profile.as_deref(),
                Some("containers-default-0.50.1")
            );
        } else {
            let e = got.unwrap_err();
            assert!(e.contains("AppArmor is not enabled on this host"), "{e}");
        }
        // An empty profile asks for nothing (runc's reading).
        let empty = RUNC_LIKE.replace("\"cwd\"", "\"apparmorProfile\": \"\", \"cwd\"");
        assert_eq!(
            parse(&empty, Path::new("/b")).unwrap().apparmor_profile,
            None
        );
    }

    #[test]
    fn out_of_range_values_are_rejected_with_their_field() {
        let cases = [
            ("\"limit\": 1048576", "\"limit\": 1", "memory.limit"),
            ("\"limit\": 1048576", "\"limit\": -2", "-2"),
            (
                "\"hostname\": \"runc\"",
                &format!("\"hostname\": \"{}\"", "h".repeat(65)),
                "hostname",
            ),
            ("\"path\": \"rootfs\"", "\"path\": \"\"", "root.path"),
            ("\"soft\": 1024", "\"soft\": 1025", "soft limit 1025"),
            (
                "\"memory\":",
                "\"pids\": {\"limit\": 4194305}, \"memory\":",
                "4194305",
            ),
            (
                "\"memory\":",
                "\"cpu\": {\"quota\": 5000, \"period\": 10}, \"memory\":",
                "period 10",
            ),
        ];
        for (from, to, want) in cases {
            assert!(RUNC_LIKE.contains(from), "{from}");
            let e = parse(&RUNC_LIKE.replace(from, to), Path::new("/b")).unwrap_err();
            assert!(e.contains(want), "{to}: {e}");
        }
        // -1 and 0 mean "no limit", as in runc.
        for none in ["-1", "0"] {
            let text = RUNC_LIKE.replace("\"limit\": 1048576", &format!("\"limit\": {none}"));
            assert_eq!(
                parse(&text, Path::new("/b"))
                    .unwrap()
                    .resources
                    .memory_bytes,
                None
            );
        }
    }

    /// A config.json an engine wrote (container/tests/fixtures).
    fn fixture(name: &str) -> SandboxSpec {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read_to_string(&path).unwrap(), Path::new("/b"))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn podman_configs_are_accepted_whole() {
        let s = fixture("podman-4.3-default.json");
        assert!(s.seccomp_profile.is_some());
        assert_eq!(s.namespace_paths.len(), 1);
        assert_eq!(s.namespace_paths[0].0, Namespace::Net);
        assert!(!s.namespaces.contains(Namespace::Net) && s.namespaces.contains(Namespace::Ipc));
        assert!(s
            .cgroups_path
            .as_deref()
            .is_some_and(|p| p.starts_with("/libpod_parent")));
        assert_eq!(s.resources.pids, Some(2048));
        assert_eq!(s.resources.devices.len(), 1);
        assert!(s.resources.devices[0].is_deny_all());
        assert_eq!(s.user.umask, Some(0o22));
        let l = fixture("podman-4.3-limits.json");
        assert_eq!(l.sysctl, vec![("net.ipv4.ip_forward".into(), "1".into())]);
        assert_eq!(l.resources.memory_bytes, Some(64 << 20));
        assert_eq!(l.resources.memory_swap, Some(Some(128 << 20)));
        assert_eq!(l.resources.pids, Some(50));
        assert_eq!((l.user.uid, l.user.gid), (1000, 1000));
        assert!(l.user.additional_gids.contains(&2000), "{:?}", l.user);
    }

    #[test]
    fn containerd_configs_are_accepted_whole() {
        let s = fixture("containerd-1.6-default.json");
        assert!(
            s.seccomp_profile.is_none() && s.seccomp,
            "no profile: our default filter"
        );
        assert!(s.cgroups_path.is_some());
        let l = fixture("containerd-1.6-limits.json");
        assert_eq!(l.resources.memory_bytes, Some(64 << 20));
        assert_eq!(l.resources.cpu_quota, Some((50_000, 100_000)));
        assert!(fixture("containerd-1.6-seccomp.json")
            .seccomp_profile
            .is_some());
    }
}
