//! Container engines driving an OCI runtime: `podman run --rm --runtime PATH IMAGE
//! ARGV` and `ctr run --rm --runc-binary PATH IMAGE ID ARGV`, with runc or our
//! `bootlab-runc` (rows podman+runc, podman+bootlab, containerd+runc,
//! containerd+bootlab). Each row sets its engine up once in `prepare` (a private
//! podman store with the rootfs imported; for containerd its own daemon, root, state
//! and socket, the image imported from an OCI archive podman saves) and tears it down
//! in `teardown` (or on drop): nothing stays running or mounted.

use super::{version_of, which, RunCtx, Runner, Workload};
use crate::exec::{ConsoleMap, RunSpec};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use timeline::event;

/// The image every engine row runs.
const IMAGE: &str = "localhost/bootlab-bench:latest";
/// The engine folders' names start with this (under the temp dir).
pub const ENGINE_DIR_PREFIX: &str = "bl-eng-";
/// Seconds one engine run may take (a first podman run sets up its storage).
const ENGINE_RUN_TIMEOUT_S: u64 = 60;
/// How long containerd gets to answer after its start.
const DAEMON_START: Duration = Duration::from_secs(20);

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Podman,
    Containerd,
}

/// Which OCI runtime the engine drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineRuntime {
    Runc,
    /// The bootlab binary through a link named `bootlab-runc`.
    Bootlab,
}

/// What `prepare` set up, undone on drop.
#[derive(Debug)]
struct Setup {
    dir: PathBuf,
    daemon: Option<Child>,
    /// The runtime binary handed to the engine.
    runtime: PathBuf,
}

/// One engine + runtime row.
#[derive(Debug)]
pub struct EngineRow {
    pub engine: Engine,
    pub runtime: EngineRuntime,
    /// The bootlab binary (for [`EngineRuntime::Bootlab`]).
    pub bootlab: PathBuf,
    pub workload: Workload,
    setup: Option<Setup>,
}

impl EngineRow {
    pub fn new(
        engine: Engine,
        runtime: EngineRuntime,
        bootlab: PathBuf,
        workload: Workload,
    ) -> Self {
        EngineRow {
            engine,
            runtime,
            bootlab,
            workload,
            setup: None,
        }
    }

    /// The row's engine folder: podman refuses a run root longer than 50
    /// characters, so a short name under the temp dir rather than the session's
    /// scratch folder.
    fn dir(&self) -> PathBuf {
        let tag = match (self.engine, self.runtime) {
            (Engine::Podman, EngineRuntime::Bootlab) => "pb",
            (Engine::Podman, EngineRuntime::Runc) => "pr",
            (Engine::Containerd, EngineRuntime::Bootlab) => "cb",
            (Engine::Containerd, EngineRuntime::Runc) => "cr",
        };
        std::env::temp_dir().join(format!("{ENGINE_DIR_PREFIX}{}-{tag}", std::process::id()))
    }

    fn tools(&self) -> &'static [&'static str] {
        match self.engine {
            // conmon runs the container for podman.
            Engine::Podman => &["podman", "conmon"],
            // podman makes the OCI archive containerd imports.
            Engine::Containerd => &["containerd", "ctr", "containerd-shim-runc-v2", "podman"],
        }
    }
}

/// `podman` with the row's private store and configuration under `dir`.
fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.current_dir(dir)
        .env("CONTAINERS_CONF", dir.join("containers.conf"))
        .args(podman_globals(dir))
        .stdin(Stdio::null());
    c
}

fn podman_globals(dir: &Path) -> Vec<PathBuf> {
    vec![
        "--root".into(),
        dir.join("root"),
        "--runroot".into(),
        dir.join("rr"),
        "--tmpdir".into(),
        dir.join("tmp"),
    ]
}

/// `ctr` talking to the row's containerd under `dir`.
fn ctr(dir: &Path) -> Command {
    let mut c = Command::new("ctr");
    c.arg("--address")
        .arg(dir.join("c.sock"))
        .stdin(Stdio::null());
    c
}

fn run_ok(what: &str, cmd: &mut Command) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// The containers.conf of a private podman: root lacks CAP_SYS_RESOURCE on our
/// hosts, so podman's default RLIMIT_NOFILE (1048576) fails for every runtime.
const CONTAINERS_CONF: &str = "[containers]\n\
     default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
     [engine]\n\
     cgroup_manager = \"cgroupfs\"\n\
     events_logger = \"file\"\n";

/// `podman import` of the rootfs (a tar stream) into the store under `dir`.
fn podman_import(dir: &Path, rootfs: &Path) -> Result<(), String> {
    std::fs::write(dir.join("containers.conf"), CONTAINERS_CONF)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("tar: {e}"))?;
    let stdin = tar.stdout.take().map_or_else(Stdio::null, Stdio::from);
    let imported = run_ok(
        "podman import",
        podman(dir).args(["import", "-", IMAGE]).stdin(stdin),
    );
    let tar_ok = tar.wait().map(|s| s.success()).unwrap_or(false);
    imported?;
    if !tar_ok {
        return Err(format!("tar of {} failed", rootfs.display()));
    }
    Ok(())
}

impl Setup {
    fn podman(dir: PathBuf, rootfs: &Path, runtime: PathBuf) -> Result<Setup, String> {
        let s = Setup {
            dir,
            daemon: None,
            runtime,
        };
        podman_import(&s.dir, rootfs)?;
        Ok(s)
    }

    fn containerd(dir: PathBuf, rootfs: &Path, runtime: PathBuf) -> Result<Setup, String> {
        let d = dir.display();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/t.sock\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", config.display()))?;
        let log = std::fs::File::create(dir.join("containerd.log"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        // From here on a failure stops the daemon (drop).
        let s = Setup {
            dir,
            daemon: Some(daemon),
            runtime,
        };
        let t = Instant::now();
        while run_ok("ctr version", ctr(&s.dir).arg("version")).is_err() {
            if t.elapsed() > DAEMON_START {
                let log = std::fs::read_to_string(s.dir.join("containerd.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
                return Err(format!("containerd did not answer in 20 s: {tail}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // An OCI archive of the rootfs, made by a private podman, imported.
        let pm = s.dir.join("p");
        std::fs::create_dir_all(&pm).map_err(|e| format!("{}: {e}", pm.display()))?;
        podman_import(&pm, rootfs)?;
        let archive = s.dir.join("image.tar");
        let saved = run_ok(
            "podman save",
            podman(&pm)
                .args(["save", "--format", "oci-archive", "-o"])
                .arg(&archive)
                .arg(IMAGE),
        );
        let _ = podman(&pm).args(["system", "reset", "--force"]).output();
        saved?;
        run_ok(
            "ctr image import",
            ctr(&s.dir)
                .args(["image", "import", "--base-name", "localhost/bootlab-bench"])
                .arg(&archive),
        )?;
        let _ = std::fs::remove_file(&archive);
        Ok(s)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        match self.daemon.take() {
            None => {
                let _ = podman(&self.dir).args(["rm", "--all", "--force"]).output();
                let _ = podman(&self.dir)
                    .args(["system", "reset", "--force"])
                    .output();
            }
            Some(mut daemon) => {
                // Containers of failed runs, then the image (its snapshots unmounted).
                if let Ok(o) = ctr(&self.dir).args(["container", "ls", "-q"]).output() {
                    for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = ctr(&self.dir)
                            .args(["task", "kill", "--signal", "KILL", id])
                            .output();
                        let _ = ctr(&self.dir)
                            .args(["task", "delete", "--force", id])
                            .output();
                        let _ = ctr(&self.dir).args(["container", "rm", id]).output();
                    }
                }
                let _ = ctr(&self.dir).args(["image", "rm", IMAGE]).output();
                if let Ok(pid) = i32::try_from(daemon.id()) {
                    // SAFETY: kill(2) touches no memory; the pid is our unreaped child.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let _ = daemon.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Runner for EngineRow {
    fn name(&self) -> &str {
        match (self.engine, self.runtime) {
            (Engine::Podman, EngineRuntime::Bootlab) => "podman+bootlab",
            (Engine::Podman, EngineRuntime::Runc) => "podman+runc",
            (Engine::Containerd, EngineRuntime::Bootlab) => "containerd+bootlab",
            (Engine::Containerd, EngineRuntime::Runc) => "containerd+runc",
        }
    }

    fn ours(&self) -> bool {
        self.runtime == EngineRuntime::Bootlab
    }

    fn check(&self) -> Result<(), String> {
        if let Some(t) = self.tools().iter().find(|t| which(t).is_none()) {
            return Err(format!("{t} not found on PATH (Debian package {t})"));
        }
        if self.runtime == EngineRuntime::Runc && which("runc").is_none() {
            return Err("runc not found on PATH (Debian package runc)".into());
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the engine rows run rootful podman/containerd: needs root".into());
        }
        self.workload.check()
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let _ = scratch;
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let runtime = match self.runtime {
            EngineRuntime::Runc => which("runc").ok_or("runc not found on PATH")?,
            EngineRuntime::Bootlab => {
                // Engines take one path to a binary: the link's name selects runc's
                // command line.
                let link = dir.join("bootlab-runc");
                let bin = std::fs::canonicalize(&self.bootlab)
                    .map_err(|e| format!("{}: {e}", self.bootlab.display()))?;
                std::os::unix::fs::symlink(bin, &link)
                    .map_err(|e| format!("{}: {e}", link.display()))?;
                link
            }
        };
        let rootfs = std::fs::canonicalize(&self.workload.rootfs)
            .map_err(|e| format!("{}: {e}", self.workload.rootfs.display()))?;
        let setup = match self.engine {
            Engine::Podman => Setup::podman(dir, &rootfs, runtime),
            Engine::Containerd => Setup::containerd(dir, &rootfs, runtime),
        };
        // On an error the partial set-up was dropped, which removed what it made.
        self.setup = Some(setup?);
        Ok(())
    }

    fn teardown(&mut self) {
        self.setup = None;
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let (dir, runtime) = match &self.setup {
            Some(s) => (s.dir.clone(), s.runtime.clone()),
            None => (self.dir(), "runc".into()),
        };
        let mut spec = match self.engine {
            Engine::Podman => {
                let mut s = RunSpec::new("podman", ConsoleMap::Container)
                    .args(podman_globals(&dir))
                    .arg("--runtime")
                    .arg(runtime)
                    .args(["run", "--rm", "--network", "none", IMAGE]);
                s.env
                    .push(("CONTAINERS_CONF".into(), dir.join("containers.conf").into()));
                s
            }
            Engine::Containerd => {
                let id = format!("bootlab-{}-{}-{}", self.name(), std::process::id(), ctx.id)
                    .replace('+', "-");
                RunSpec::new("ctr", ConsoleMap::Container)
                    .arg("--address")
                    .arg(dir.join("c.sock"))
                    .args(["run", "--rm", "--runc-binary"])
                    .arg(runtime)
                    .args([IMAGE, &id])
            }
        };
        spec = spec.args(self.workload.argv.iter());
        spec.required = vec![event::EXEC, event::DONE];
        spec.timeout = Duration::from_secs(ENGINE_RUN_TIMEOUT_S);
        spec
    }

    fn version(&self) -> Option<String> {
        let engine = match self.engine {
            Engine::Podman => version_of(&which("podman")?, &["--version"])?,
            Engine::Containerd => version_of(&which("containerd")?, &["--version"])?,
        };
        let runtime = match self.runtime {
            EngineRuntime::Runc => version_of(&which("runc")?, &["--version"])?,
            EngineRuntime::Bootlab => version_of(&self.bootlab, &["oci", "--version"])?,
        };
        Some(format!("{engine}; {runtime}"))
    }

    fn notes(&self) -> Vec<String> {
        let engine = match self.engine {
            Engine::Podman => {
                "podman CLI start, container creation in its store, conmon, the runtime's \
                 create + start, and the attach that relays the workload's stdout"
            }
            Engine::Containerd => {
                "ctr start, containerd's container and task creation (snapshot mount), the \
                 runc shim, the runtime's create + start, and the FIFO copy of the \
                 workload's stdout"
            }
        };
        vec![
            format!(
                "engine row: `sandbox` is the engine phase, spawn of the engine's CLI -> \
                 arrival of the workload's `@@bootlab init-start` line, i.e. {engine}"
            ),
            "`process` = init-start -> the workload's `done` line as relayed by the engine \
             (near 0: the engine relays the workload's few lines in one read, so this row \
             cannot time the workload itself); `teardown` = done -> the CLI's exit (the \
             runtime's delete and the engine's --rm clean-up)"
                .into(),
            match self.engine {
                Engine::Podman => "set-up (a private store, `podman import` of the rootfs) \
                                   happens once per session, untimed; --network none: a new \
                                   netns with only lo, as the runc/bootlab-oci bundle"
                    .into(),
                Engine::Containerd => "set-up (a containerd of the session's own, `ctr image \
                                       import` of a podman-saved OCI archive) happens once per \
                                       session, untimed; ctr's default network: a new netns \
                                       with only lo, as the runc/bootlab-oci bundle"
                    .into(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(e: Engine, r: EngineRuntime) -> EngineRow {
        EngineRow::new(
            e,
            r,
            "/b/bootlab".into(),
            Workload::guest_init("/img/rootfs"),
        )
    }

    #[test]
    fn names_and_ours() {
        let pb = row(Engine::Podman, EngineRuntime::Bootlab);
        assert_eq!(pb.name(), "podman+bootlab");
        assert!(pb.ours());
        let cr = row(Engine::Containerd, EngineRuntime::Runc);
        assert_eq!(cr.name(), "containerd+runc");
        assert!(!cr.ours());
    }

    #[test]
    fn podman_spec_runs_the_workload_through_the_runtime() {
        let r = row(Engine::Podman, EngineRuntime::Runc);
        let s = r.spec(RunCtx {
            scratch: Path::new("/s"),
            id: 3,
        });
        let line = s.command_line();
        let root = format!("podman --root {}/root", r.dir().display());
        assert!(line.starts_with(&root), "{line}");
        assert!(r.dir().join("rr").as_os_str().len() <= 50 || std::env::var_os("TMPDIR").is_some());
        assert!(
            line.ends_with(&format!(
                "run --rm --network none {IMAGE} /sbin/guest-init hello"
            )),
            "{line}"
        );
        assert!(s.env.iter().any(|(k, _)| k == "CONTAINERS_CONF"));
    }

    #[test]
    fn ctr_ids_are_unique_per_run_and_safe() {
        let r = row(Engine::Containerd, EngineRuntime::Bootlab);
        let line = |id| {
            r.spec(RunCtx {
                scratch: Path::new("/s"),
                id,
            })
            .command_line()
        };
        assert_ne!(line(1), line(2));
        let l = line(1);
        assert!(l.contains("--runc-binary"), "{l}");
        let id = l.split_whitespace().nth(8).unwrap();
        assert!(!id.contains('+') && id.ends_with("-1"), "{id}");
    }
}
