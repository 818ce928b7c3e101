//! `bootlab oci ...` (also `bootlab-runc ...`, the binary called through a link of
//! that name): runc's command line over `container::lifecycle`, so that engines
//! (podman's conmon, containerd's shim) drive the sandbox as they drive runc.
//! Global options come before the command, as engines pass them: `--root`, `--log`,
//! `--log-format text|json` (errors as runc's JSON lines, which engines read),
//! `--debug`, `--systemd-cgroup` (refused: only the cgroupfs driver exists).

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use container::lifecycle::{self, CreateOptions, OCI_VERSION};
use std::io::Write;
use std::path::{Path, PathBuf};

/// runc-compatible OCI runtime commands.
#[derive(Debug, Args)]
#[command(
    after_help = "Also runs as `bootlab-runc` (a link to the bootlab binary with that name), \
with the same options. Exit status: the command's, 1 on any error (one line on stderr and, \
with --log, in the log)."
)]
pub struct OciArgs {
    /// Folder of the containers' state.
    #[arg(long, value_name = "DIR", default_value = lifecycle::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Also write errors (and with --debug, debug lines) to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of the --log lines.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Debug lines in the log.
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: the cgroupfs driver only).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Print the version and the runtime-spec version.
    #[arg(long, short = 'v')]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<OciCommand>,
}

/// Format of `--log` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time level msg`.
    Text,
    /// `{"level":"error","msg":"...","time":"..."}`, one object per line.
    Json,
}

/// Options of `create` and `run`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The bundle folder (config.json and the root filesystem).
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to this file.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (process.terminal=true).
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Pass descriptors 3 .. 3+N on to the workload.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility; the root is always switched with pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility; no session keyring is ever created.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// The container's ID.
    #[arg(value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Set a container up; its init waits for `start` before the workload's execve.
    Create(CreateArgs),
    /// Start a created container's workload.
    Start {
        /// The container's ID.
        id: String,
    },
    /// Print a container's state (runtime-spec JSON).
    State {
        /// The container's ID.
        id: String,
    },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        /// Signal every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        /// The container's ID.
        id: String,
        /// The signal: a name with or without SIG, or a number.
        #[arg(default_value = "SIGTERM", allow_hyphen_values = true)]
        signal: String,
    },
    /// Delete a container (a running one only with --force).
    Delete {
        /// Kill a running container first.
        #[arg(long, short = 'f')]
        force: bool,
        /// The container's ID.
        id: String,
    },
    /// Create and start a container, wait for it and delete it; exits with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once started, leaving the container running.
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// List the containers.
    List {
        /// Output format.
        #[arg(long, short = 'f', value_name = "FORMAT", default_value = "table")]
        format: ListFormat,
        /// Print the IDs only.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// List the processes of a container (host pids).
    Ps {
        /// Output format.
        #[arg(long, short = 'f', value_name = "FORMAT", default_value = "table")]
        format: ListFormat,
        /// The container's ID.
        id: String,
    },
    /// Run another process in a created or running container (exits with its
    /// status unless --detach).
    Exec(ExecArgs),
    /// Print the runtime's features (runtime-spec features JSON).
    Features,
}

/// Options of `exec`, as runc has them (podman's conmon sends `--process FILE
/// --detach --pid-file F`).
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process JSON (runtime-spec `process`) to run instead of COMMAND.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Give the process a terminal (with --console-socket; with --process, its
    /// `terminal` field decides).
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Unix socket for the terminal's master (with --tty).
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Working directory (with COMMAND).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Extra environment variable KEY=VALUE (with COMMAND; repeatable).
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// uid[:gid] to run as (with COMMAND).
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// The container's ID.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Output format of `list` and `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Columns.
    Table,
    /// JSON.
    Json,
}

/// Exit status of an `exec` that failed before its process ran (runc's).
const EXEC_FAILED: u8 = 255;

/// The `--log` destination.
struct Log {
    file: Option<std::fs::File>,
    format: LogFormat,
    debug: bool,
}

impl Log {
    fn open(a: &OciArgs) -> anyhow::Result<Log> {
        let file = match &a.log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("--log {}", p.display()))?,
            ),
            None => None,
        };
        Ok(Log {
            file,
            format: a.log_format,
            debug: a.debug,
        })
    }

    fn line(&mut self, level: &str, msg: &str) {
        let Some(f) = self.file.as_mut() else { return };
        let time = lifecycle::state::rfc3339_now();
        let text = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
            }
            LogFormat::Text => format!("{time} {level} {msg}"),
        };
        let _ = writeln!(f, "{text}");
    }
}

/// A signal from a name (`TERM`, `SIGTERM`, `sigterm`) or a number (0..=64; 0, as
/// with runc, only checks that the init is there).
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // SIGRTMAX is 64 on Linux.
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        bail!("signal {n} is not in 0..=64");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow!("unknown signal `{s}`"))
}

pub fn run(a: OciArgs) -> anyhow::Result<u8> {
    let mut log = Log::open(&a)?;
    if log.debug {
        log.line("debug", &format!("{:?}", a.command));
    }
    match dispatch(&a) {
        Ok(code) => Ok(code),
        Err(e) => {
            log.line("error", &format!("{e:#}"));
            // As runc: exec's own failures are 255, apart from the statuses its
            // process can exit with.
            if matches!(a.command, Some(OciCommand::Exec(_))) {
                eprintln!("bootlab: error: {e:#}");
                return Ok(EXEC_FAILED);
            }
            Err(e)
        }
    }
}

fn dispatch(a: &OciArgs) -> anyhow::Result<u8> {
    if a.version {
        println!(
            "bootlab-runc version {}\nspec: {OCI_VERSION}",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    if a.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: bootlab manages cgroups through cgroupfs only (configure the engine's cgroup manager as cgroupfs)");
    }
    let Some(command) = &a.command else {
        bail!("no command given (create, start, state, kill, delete, run, list, ps, features; see --help)");
    };
    let root = a.root.as_path();
    match command {
        OciCommand::Create(c) => {
            lifecycle::create(&create_options(root, c))?;
        }
        OciCommand::Start { id } => lifecycle::start(root, id)?,
        OciCommand::State { id } => {
            let st = lifecycle::state(root, id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        OciCommand::Kill { all, id, signal } => {
            let sig = parse_signal(signal)?;
            lifecycle::kill(root, id, sig, *all)?;
        }
        OciCommand::Delete { force, id } => lifecycle::delete(root, id, *force)?,
        OciCommand::Run { create, detach } => return run_container(root, create, *detach),
        OciCommand::List { format, quiet } => list(root, *format, *quiet)?,
        OciCommand::Ps { format, id } => {
            let pids = lifecycle::ps(root, id)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string(&pids)?),
                ListFormat::Table => {
                    println!("PID");
                    for p in pids {
                        println!("{p}");
                    }
                }
            }
        }
        OciCommand::Exec(e) => return exec(root, e),
        OciCommand::Features => println!("{}", serde_json::to_string_pretty(&features())?),
    }
    Ok(0)
}

fn create_options(root: &Path, c: &CreateArgs) -> CreateOptions {
    CreateOptions {
        root: root.to_path_buf(),
        id: c.id.clone(),
        bundle: c.bundle.clone(),
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        preserve_fds: c.preserve_fds,
    }
}

/// `run`: create, start, then (in the foreground) forward signals to the init until
/// it ends, delete, and exit with its status.
fn run_container(root: &Path, c: &CreateArgs, detach: bool) -> anyhow::Result<u8> {
    let block = forwarded_set();
    let state = lifecycle::create(&create_options(root, c))?;
    let started = lifecycle::start(root, &c.id);
    if let Err(e) = started {
        let _ = lifecycle::delete(root, &c.id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(state.pid, &block);
    lifecycle::delete(root, &c.id, true)?;
    code
}

/// Signals the runtime forwards to a foreground process, plus SIGCHLD.
fn forwarded_set() -> nix::sys::signal::SigSet {
    let mut block = nix::sys::signal::SigSet::empty();
    block.add(nix::sys::signal::Signal::SIGCHLD);
    for s in container::process::FORWARDED {
        block.add(s);
    }
    block
}

/// Waits for our child `pid`, forwarding the signals of `block` to it, and returns
/// its exit status (128 + N when killed by signal N).
fn wait_forwarding(pid: i32, block: &nix::sys::signal::SigSet) -> anyhow::Result<u8> {
    use nix::sys::signal::SigmaskHow;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(block), None)?;
    let npid = nix::unistd::Pid::from_raw(pid);
    let code = loop {
        match waitpid(npid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(anyhow!("waiting for pid {pid}: {e}")),
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: `block` is a valid sigset, the info pointer may be null and the
        // timeout points to a live timespec.
        let sig = unsafe { libc::sigtimedwait(block.as_ref(), std::ptr::null_mut(), &timeout) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
        }
    };
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(u8::MAX))
}

/// `exec`: start the process, write its pid file, then wait for it unless detached.
fn exec(root: &Path, e: &ExecArgs) -> anyhow::Result<u8> {
    if e.tty != e.console_socket.is_some() && e.process.is_none() {
        bail!("exec: --tty and --console-socket go together (the terminal's master is sent there)");
    }
    if e.process.is_some() && !e.command.is_empty() {
        bail!("exec: give either --process FILE or a COMMAND, not both");
    }
    let user = match &e.user {
        None => None,
        Some(u) => {
            let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
            let parse = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| anyhow!("--user `{u}` is not UID[:GID] (numbers)"))
            };
            Some((parse(uid)?, parse(gid)?))
        }
    };
    for kv in &e.env {
        if !kv.contains('=') {
            bail!("--env `{kv}` is not KEY=VALUE");
        }
    }
    let opts = lifecycle::ExecOptions {
        process: e.process.clone(),
        args: e.command.clone(),
        env: e.env.clone(),
        cwd: e.cwd.clone(),
        user,
        console_socket: e.console_socket.clone(),
    };
    // The process takes the signal mask it finds: nothing is blocked before it runs.
    let pid = lifecycle::exec(root, &e.id, &opts)?;
    let block = forwarded_set();
    if let Some(f) = &e.pid_file {
        lifecycle::write_pid_file(f, pid)?;
    }
    if e.detach {
        return Ok(0);
    }
    wait_forwarding(pid, &block)
}

fn list(root: &Path, format: ListFormat, quiet: bool) -> anyhow::Result<()> {
    let all = lifecycle::list(root)?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(&all)?),
        ListFormat::Table => {
            println!(
                "{:<24} {:<8} {:<10} {:<40} CREATED",
                "ID", "PID", "STATUS", "BUNDLE"
            );
            for s in &all {
                println!(
                    "{:<24} {:<8} {:<10} {:<40} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created
                );
            }
        }
    }
    Ok(())
}

/// The mount options `container::rootfs::parse_options` turns into mount flags.
const MOUNT_OPTIONS: [&str; 29] = [
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "noatime",
    "atime",
    "nodiratime",
    "diratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// The runtime-spec features document: what this runtime honours today.
fn features() -> serde_json::Value {
    use container::security::oci_seccomp;
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": container::security::caps::NAMES.to_vec(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            // What container/src/security/oci_seccomp.rs compiles (libseccomp).
            "seccomp": {
                "enabled": true,
                "actions": oci_seccomp::spec_names(oci_seccomp::ACTIONS),
                "operators": oci_seccomp::spec_names(oci_seccomp::OPERATORS),
                "archs": oci_seccomp::spec_names(oci_seccomp::ARCHES)
            },
            // process.apparmorProfile is applied where the host enables AppArmor.
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "org.opencontainers.runc.version": env!("CARGO_PKG_VERSION")
        }
    })
}
