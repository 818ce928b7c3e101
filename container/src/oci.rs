//! The OCI runtime-spec `config.json` subset we run: `process` (args, env, cwd, user,
//! capabilities, rlimits, noNewPrivileges, terminal=false), `root`, `hostname`,
//! `mounts`, `linux.namespaces` (without `path`), `linux.resources` (memory.limit,
//! pids.limit, cpu.quota/period, and device *deny* rules), `linux.uidMappings`,
//! `linux.gidMappings`, `linux.maskedPaths`, `linux.readonlyPaths`; `ociVersion` and
//! `annotations` are read and ignored. Every other field is rejected with a message
//! naming it (serde `deny_unknown_fields`), never silently ignored. What `runc spec`
//! writes is accepted once `terminal` is false.
//!
//! Differences from runc, on purpose: our default seccomp filter is always installed
//! (a bundle cannot carry its own, `linux.seccomp` is rejected); a `cgroup` mount is a
//! cgroup2 mount (namespace-aware, also on hybrid hosts); device deny rules are met by
//! construction (only the minimal /dev exists and `CAP_MKNOD` is never granted by
//! default) rather than with the v1 devices controller.

use crate::namespaces::{Namespace, NamespaceSet};
use crate::security::caps::{self, CapSets};
use crate::spec::{IdMap, Mount, SandboxSpec, User};
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    #[allow(dead_code)]
    oci_version: String,
    process: Process,
    root: Root,
    hostname: Option<String>,
    #[serde(default)]
    mounts: Vec<OciMount>,
    linux: Option<Linux>,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Process {
    #[serde(default)]
    terminal: bool,
    user: Option<OciUser>,
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    cwd: String,
    capabilities: Option<Capabilities>,
    #[serde(default)]
    rlimits: Vec<Rlimit>,
    #[serde(default)]
    no_new_privileges: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OciUser {
    uid: u32,
    gid: u32,
    umask: Option<u32>,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Capabilities {
    #[serde(default)]
    bounding: Vec<String>,
    #[serde(default)]
    effective: Vec<String>,
    #[serde(default)]
    inheritable: Vec<String>,
    #[serde(default)]
    permitted: Vec<String>,
    #[serde(default)]
    ambient: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rlimit {
    #[serde(rename = "type")]
    kind: String,
    hard: u64,
    soft: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Root {
    path: String,
    #[serde(default)]
    readonly: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciMount {
    destination: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Linux {
    namespaces: Option<Vec<OciNamespace>>,
    resources: Option<OciResources>,
    #[serde(default)]
    uid_mappings: Vec<OciIdMap>,
    #[serde(default)]
    gid_mappings: Vec<OciIdMap>,
    #[serde(default)]
    masked_paths: Vec<PathBuf>,
    #[serde(default)]
    readonly_paths: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciNamespace {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciIdMap {
    #[serde(rename = "containerID")]
    container_id: u32,
    #[serde(rename = "hostID")]
    host_id: u32,
    size: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciResources {
    #[serde(default)]
    devices: Vec<OciDevice>,
    memory: Option<OciMemory>,
    pids: Option<OciPids>,
    cpu: Option<OciCpu>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciDevice {
    allow: bool,
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: Option<String>,
    #[allow(dead_code)]
    major: Option<i64>,
    #[allow(dead_code)]
    minor: Option<i64>,
    #[allow(dead_code)]
    access: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciMemory {
    limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciPids {
    limit: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OciCpu {
    quota: Option<i64>,
    period: Option<u64>,
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

/// Reads `BUNDLE/config.json` into a [`SandboxSpec`] (root path resolved against the
/// bundle).
pub fn load_bundle(bundle: &Path) -> Result<SandboxSpec> {
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
    parse(&text, bundle).map_err(oci)
}

/// Parses config.json text; errors are one-line reasons.
pub fn parse(text: &str, bundle: &Path) -> std::result::Result<SandboxSpec, String> {
    let cfg: Config = serde_json::from_str(text).map_err(|e| {
        let m = e.to_string();
        if m.starts_with("unknown field") {
            format!("unsupported field: {m} (bootlab runs a subset of the OCI runtime spec)")
        } else {
            format!("malformed config: {m}")
        }
    })?;
    let p = cfg.process;
    if p.terminal {
        return Err(
            "process.terminal=true is not supported: stdio is passed through (set it to false)"
                .into(),
        );
    }
    if p.args.is_empty() {
        return Err("process.args is empty".into());
    }
    if !p.cwd.starts_with('/') {
        return Err(format!("process.cwd `{}` is not absolute", p.cwd));
    }
    if cfg.root.path.is_empty() {
        return Err("root.path is empty".into());
    }
    if let Some(h) = &cfg.hostname {
        check_hostname(h)?;
    }
    let root = PathBuf::from(&cfg.root.path);
    let root = if root.is_relative() {
        bundle.join(root)
    } else {
        root
    };
    let mut spec = SandboxSpec::new(Some(root), p.args);
    spec.env = p.env;
    spec.cwd = PathBuf::from(p.cwd);
    spec.readonly_root = cfg.root.readonly;
    spec.default_mounts = false;
    spec.hostname = cfg.hostname;
    spec.no_new_privs = p.no_new_privileges;
    if let Some(u) = p.user {
        spec.user = User {
            uid: u.uid,
            gid: u.gid,
            additional_gids: u.additional_gids,
            umask: u.umask,
        };
    }
    let c = p.capabilities.unwrap_or_default();
    let m = |v: &Vec<String>| {
        caps::mask_of(v.iter().map(String::as_str))
            .map_err(|e| format!("process.capabilities: {e}"))
    };
    spec.capabilities = CapSets {
        bounding: m(&c.bounding)?,
        effective: m(&c.effective)?,
        permitted: m(&c.permitted)?,
        inheritable: m(&c.inheritable)?,
        ambient: m(&c.ambient)?,
    };
    spec.rlimits = p
        .rlimits
        .iter()
        .map(|r| {
            RLIMITS
                .iter()
                .find(|(n, _)| *n == r.kind)
                .ok_or_else(|| format!("process.rlimits: unknown type `{}`", r.kind))
                .and_then(|(_, res)| {
                    if r.soft > r.hard {
                        return Err(format!(
                            "process.rlimits: {} soft limit {} is above its hard limit {}",
                            r.kind, r.soft, r.hard
                        ));
                    }
                    Ok((*res, r.soft, r.hard))
                })
        })
        .collect::<std::result::Result<_, _>>()?;
    spec.mounts = cfg
        .mounts
        .into_iter()
        .map(|m| Mount {
            destination: PathBuf::from(m.destination),
            fstype: m.kind,
            source: m.source.map(PathBuf::from),
            options: m.options,
        })
        .collect();
    let linux = cfg.linux.unwrap_or(Linux {
        namespaces: None,
        resources: None,
        uid_mappings: Vec::new(),
        gid_mappings: Vec::new(),
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
    });
    let mut ns = NamespaceSet::empty();
    for n in linux.namespaces.unwrap_or_default() {
        if n.path.is_some() {
            return Err(format!(
                "linux.namespaces: joining an existing {} namespace (path) is not supported",
                n.kind
            ));
        }
        ns = ns.with(Namespace::parse(&n.kind).map_err(|e| format!("linux.namespaces: {e}"))?);
    }
    spec.namespaces = ns;
    let idmaps = |v: Vec<OciIdMap>| -> Vec<IdMap> {
        v.into_iter()
            .map(|m| IdMap {
                inside: m.container_id,
                outside: m.host_id,
                count: m.size,
            })
            .collect()
    };
    spec.uid_mappings = idmaps(linux.uid_mappings);
    spec.gid_mappings = idmaps(linux.gid_mappings);
    let has_maps = !(spec.uid_mappings.is_empty() && spec.gid_mappings.is_empty());
    if has_maps && !ns.contains(Namespace::User) {
        return Err(
            "linux.uidMappings/gidMappings need a user namespace in linux.namespaces".into(),
        );
    }
    spec.masked_paths = linux.masked_paths;
    spec.readonly_paths = linux.readonly_paths;
    if let Some(r) = linux.resources {
        if r.devices.iter().any(|d| d.allow) {
            return Err("linux.resources.devices: allow rules are not supported (only deny rules; the sandbox exposes its minimal /dev only)".into());
        }
        // As in runc: -1 (and, for pids and the cpu quota, 0) means "no limit".
        if let Some(mem) = r.memory.and_then(|m| m.limit) {
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
        if let Some(p) = r.pids {
            match p.limit {
                l if l <= 0 => {}
                l => {
                    check_pids(l.unsigned_abs())
                        .map_err(|e| format!("linux.resources.pids.limit: {e}"))?;
                    spec.resources.pids = Some(l.unsigned_abs());
                }
            }
        }
        if let Some(cpu) = r.cpu {
            if let Some(q) = cpu.quota.filter(|q| *q > 0) {
                let period = cpu.period.unwrap_or(100_000);
                // Positive here, so its magnitude is its value.
                let q = q.unsigned_abs();
                check_cpu(q, period).map_err(|e| format!("linux.resources.cpu: {e}"))?;
                spec.resources.cpu_quota = Some((q, period));
            }
        }
    }
    Ok(spec)
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
        let seccomp = RUNC_LIKE.replace("\"maskedPaths\"", "\"seccomp\": {}, \"maskedPaths\"");
        let e = parse(&seccomp, Path::new("/b")).unwrap_err();
        assert!(
            e.contains("unsupported field") && e.contains("seccomp"),
            "{e}"
        );
        let e = parse("{ not json", Path::new("/b")).unwrap_err();
        assert!(e.starts_with("malformed config"), "{e}");
        let e = parse(
            &RUNC_LIKE.replace("\"network\"", "\"bogus\""),
            Path::new("/b"),
        )
        .unwrap_err();
        assert!(e.contains("unknown namespace `bogus`"), "{e}");
        let e = parse(
            &RUNC_LIKE.replace("\"terminal\": false", "\"terminal\": true"),
            Path::new("/b"),
        )
        .unwrap_err();
        assert!(e.contains("terminal"), "{e}");
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
}
