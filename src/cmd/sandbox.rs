//! `bootlab sandbox run`: run a workload in a namespace sandbox (crate `container`),
//! either the short form `--rootfs DIR -- CMD ARGS` or an OCI bundle `--bundle DIR`,
//! and report its timeline (spawn -> exec -> done -> exit).

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use container::{Namespace, NamespaceSet, SandboxSpec};
use std::path::PathBuf;
use timeline::{event, step};
use timeline::{EventSource, Timeline};

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run a command in a fresh sandbox over a root filesystem.
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Namespaces: pid, mount, uts, ipc, net, cgroup, user. Default: all of them, \
except user when run as root. The exit status is the workload's (128+N when killed by signal N)."
)]
pub struct RunArgs {
    /// Root filesystem directory [default: $BOOTLAB_IMAGES/rootfs or guest-images/out/rootfs].
    #[arg(long, value_name = "DIR", conflicts_with = "bundle")]
    pub rootfs: Option<PathBuf>,
    /// OCI bundle directory (config.json + rootfs) instead of --rootfs.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Hostname inside the sandbox.
    #[arg(long, value_name = "H")]
    pub hostname: Option<String>,
    /// Namespaces to create: `all`, `none`, a list (`pid,mount,net`), or changes to the
    /// default (`--unshare=-net,+user`).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub unshare: Option<String>,
    /// Share the host's network (no network namespace).
    #[arg(long)]
    pub no_net: bool,
    /// No PID namespace.
    #[arg(long)]
    pub no_pid: bool,
    /// No IPC namespace.
    #[arg(long)]
    pub no_ipc: bool,
    /// No UTS namespace.
    #[arg(long)]
    pub no_uts: bool,
    /// No cgroup namespace.
    #[arg(long)]
    pub no_cgroupns: bool,
    /// No user namespace.
    #[arg(long)]
    pub no_user: bool,
    /// Memory limit in bytes (suffixes K, M, G).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub memory: Option<u64>,
    /// Maximum number of processes.
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// CPU bandwidth in CPUs (e.g. 0.5).
    #[arg(long, value_name = "F")]
    pub cpus: Option<f64>,
    /// Kill the whole sandbox after S seconds.
    #[arg(long, value_name = "S")]
    pub timeout: Option<f64>,
    /// Writable root (default: read-only).
    #[arg(long)]
    pub rw: bool,
    /// Extra environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[command(flatten)]
    pub report: super::TimelineArgs,
    /// The command and its arguments (with --bundle: overrides process.args).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

impl RunArgs {
    /// The options the scanner takes (what clap knows for this command: a test
    /// in src/main.rs checks that none is missing).
    pub const FAST: crate::fastargs::Known<'static> = crate::fastargs::Known {
        flags: &[
            "no-net",
            "no-pid",
            "no-ipc",
            "no-uts",
            "no-cgroupns",
            "no-user",
            "rw",
        ],
        valued: &[
            "rootfs",
            "bundle",
            "hostname",
            "unshare",
            "memory",
            "pids",
            "cpus",
            "timeout",
            "env",
            "timeline",
            "timeline-out",
        ],
        repeatable: &["env"],
    };

    /// These arguments (what follows `run`) scanned without clap, or `None` to leave
    /// them to clap (see [`crate::fastargs`]).
    pub fn fast(args: &[std::ffi::OsString]) -> Option<RunArgs> {
        let s = crate::fastargs::scan(args, &Self::FAST)?;
        if s.value("rootfs").is_some() && s.value("bundle").is_some() {
            return None;
        }
        Some(RunArgs {
            rootfs: s.value("rootfs").map(PathBuf::from),
            bundle: s.value("bundle").map(PathBuf::from),
            hostname: s.value("hostname").map(str::to_owned),
            unshare: s.value("unshare").map(str::to_owned),
            no_net: s.flag("no-net"),
            no_pid: s.flag("no-pid"),
            no_ipc: s.flag("no-ipc"),
            no_uts: s.flag("no-uts"),
            no_cgroupns: s.flag("no-cgroupns"),
            no_user: s.flag("no-user"),
            memory: s.parsed_with("memory", parse_bytes)?,
            pids: s.parsed("pids")?,
            cpus: s.parsed("cpus")?,
            timeout: s.parsed("timeout")?,
            rw: s.flag("rw"),
            env: s.values("env"),
            report: super::TimelineArgs::fast(&s)?,
            cmd: s.rest,
        })
    }
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n = num
        .parse::<u64>()
        .map_err(|_| format!("`{s}` is not a byte count (e.g. 64M)"))?;
    let bytes = n
        .checked_mul(mult)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    container::oci::check_memory(bytes).map_err(|e| format!("`{s}`: {e}"))?;
    Ok(bytes)
}

/// The default rootfs: `rootfs/` of the guest images folder.
fn default_rootfs() -> PathBuf {
    super::images_dir().join("rootfs")
}

fn build_spec(a: &RunArgs) -> anyhow::Result<(SandboxSpec, Option<PathBuf>)> {
    let (mut spec, bundle) = if let Some(b) = &a.bundle {
        let mut spec = container::oci::load_bundle(b)?;
        if !a.cmd.is_empty() {
            spec.args = a.cmd.clone();
        }
        (spec, Some(b.clone()))
    } else {
        if a.cmd.is_empty() {
            bail!("no command given: bootlab sandbox run [OPTIONS] -- CMD [ARGS...]");
        }
        let rootfs = a.rootfs.clone().unwrap_or_else(default_rootfs);
        (SandboxSpec::new(Some(rootfs), a.cmd.clone()), None)
    };
    let mut ns = spec.namespaces;
    if let Some(list) = &a.unshare {
        if list.split(',').all(|s| s.trim().is_empty()) {
            bail!(
                "--unshare `{list}` names no namespace (give all, none, or a list like pid,mount)"
            );
        }
        ns = NamespaceSet::parse_list(list, ns).with_context(|| format!("--unshare `{list}`"))?;
    }
    for (off, n) in [
        (a.no_net, Namespace::Net),
        (a.no_pid, Namespace::Pid),
        (a.no_ipc, Namespace::Ipc),
        (a.no_uts, Namespace::Uts),
        (a.no_cgroupns, Namespace::Cgroup),
        (a.no_user, Namespace::User),
    ] {
        if off {
            ns = ns.without(n);
        }
    }
    spec.namespaces = ns;
    if !ns.contains(Namespace::Mount) && a.bundle.is_none() {
        if a.rootfs.is_some() {
            bail!("--rootfs needs the mount namespace; without it the command runs in the host's root");
        }
        spec.rootfs = None;
    }
    if let Some(h) = &a.hostname {
        container::oci::check_hostname(h).map_err(|e| anyhow!("--hostname: {e}"))?;
        spec.hostname = Some(h.clone());
    }
    if a.rw {
        spec.readonly_root = false;
    }
    for e in &a.env {
        if !e.contains('=') {
            bail!("--env `{e}` is not KEY=VALUE");
        }
        let key = e.split('=').next().unwrap_or_default();
        spec.env.retain(|x| x.split('=').next() != Some(key));
        spec.env.push(e.clone());
    }
    if let Some(m) = a.memory {
        spec.resources.memory_bytes = Some(m);
    }
    if let Some(p) = a.pids {
        container::oci::check_pids(p).map_err(|e| anyhow!("--pids: {e}"))?;
        spec.resources.pids = Some(p);
    }
    if let Some(c) = a.cpus {
        let max = (*container::oci::CFS_QUOTA_US.end() / 100_000) as f64;
        if !(c > 0.0 && c <= max) {
            bail!(
                "--cpus {} is not a number of CPUs in (0, {max:.0}]",
                super::short(c)
            );
        }
        spec.resources.cpu_quota = Some(container::Resources::cpus(c));
    }
    if let Some(t) = a.timeout {
        spec.timeout = Some(super::timeout("--timeout", t)?);
    }
    Ok((spec, bundle))
}

pub fn run(cmd: SandboxCommand) -> anyhow::Result<u8> {
    match cmd {
        SandboxCommand::Run(a) => run_one(*a),
    }
}

fn run_one(a: RunArgs) -> anyhow::Result<u8> {
    let (spawn_ns, spawn_src) = match timeline::clock::spawn_ns_from_env() {
        Some(t) => (t, EventSource::Harness),
        None => (
            timeline::clock::main_entry_ns().unwrap_or_else(timeline::now_ns),
            EventSource::Runtime,
        ),
    };
    a.report.check()?;
    let mut tl = Timeline::new("bootlab-sandbox", spawn_ns);
    tl.push(event::SPAWN, spawn_ns, spawn_src);
    super::push_main_entry(&mut tl, step::SANDBOX_MAIN);
    let result = build_spec(&a).and_then(|(spec, bundle)| {
        container::process::run_in(&spec, bundle.as_deref()).map_err(anyhow::Error::from)
    });
    let code = match &result {
        Ok(out) => {
            for (name, t) in &out.steps {
                tl.push(*name, *t, EventSource::Runtime);
            }
            tl.push(event::EXEC, out.exec_ns, EventSource::Runtime);
            tl.push(event::DONE, out.done_ns, EventSource::Runtime);
            if out.oom_killed {
                eprintln!("bootlab: the workload was killed by the out-of-memory killer (memory limit reached)");
            }
            if out.timed_out {
                eprintln!("bootlab: timeout expired; the sandbox was killed");
            }
            out.status.code()
        }
        Err(e) => {
            tl.error = Some(format!("{e:#}"));
            1
        }
    };
    tl.exit_code = Some(code);
    tl.push(event::EXIT, timeline::now_ns(), EventSource::Runtime);
    a.report.report(&tl, &timeline::CONTAINER_MODEL)?;
    result?;
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(u8::MAX))
}
