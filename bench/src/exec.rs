//! One measured run of a runtime process: stamp `spawn` right before spawning (and
//! hand it to the child in `BOOTLAB_SPAWN_NS`), stamp every console marker line on
//! arrival, stamp `exit` when wait returns, enforce a timeout, then merge the
//! runtime's own `--timeline-out` file. Whatever goes wrong becomes the run's error;
//! the timeline is always returned.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use timeline::clock::ENV_SPAWN_NS;
use timeline::marker::{Marker, KERNEL_RUN_INIT_LINE};
use timeline::{now_ns, EventSource, Timeline};

/// Bytes of the child's stderr kept for the error message of a failed run.
const STDERR_TAIL: usize = 600;
/// How long to wait for the console reader after the runtime exited before killing
/// its process group (something inherited its stdout and lingers).
const READER_GRACE: Duration = Duration::from_secs(2);

/// How console marker lines map to timeline events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMap {
    /// Guest serial console: markers by their own names, the kernel's "Run /init"
    /// line as `kernel-run-init`.
    Vm,
    /// A container's stdout: the workload is guest-init itself, so its
    /// `init-start` line marks the workload's start (`exec`); its own `exec` line is
    /// kept as `workload-exec`.
    Container,
}

impl ConsoleMap {
    /// The event a console line stands for, if any.
    pub fn event(self, line: &str) -> Option<&'static str> {
        if let Some(m) = Marker::parse_line(line) {
            return Some(match (self, m) {
                (ConsoleMap::Container, Marker::InitStart) => "exec",
                (ConsoleMap::Container, Marker::Exec) => "workload-exec",
                (_, m) => m.name(),
            });
        }
        (self == ConsoleMap::Vm && line.contains(KERNEL_RUN_INIT_LINE)).then_some("kernel-run-init")
    }
}

/// Which exit codes count as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitExpect {
    Code(i32),
    Any,
}

/// Everything needed to run and time one instance.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// The runtime writes its own timeline here (`--timeline-out`); merged after exit.
    pub timeline_out: Option<PathBuf>,
    pub console: ConsoleMap,
    pub expect: ExitExpect,
    /// Events without which the run counts as failed.
    pub required: Vec<&'static str>,
    /// Kill the runtime when this event arrives (a VM that cannot power itself off).
    pub kill_on: Option<&'static str>,
    pub timeout: Duration,
}

impl RunSpec {
    pub fn new(program: impl Into<PathBuf>, console: ConsoleMap) -> Self {
        RunSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            timeline_out: None,
            console,
            expect: ExitExpect::Code(0),
            required: Vec::new(),
            kill_on: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// The command line, for the record.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for
    // the child (process_group(0) makes its pgid equal to its pid); no memory is
    // touched. ESRCH (group already gone) is harmless.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Runs `spec` once as runtime `runtime` and returns its timeline.
pub fn execute(runtime: &str, spec: &RunSpec) -> Timeline {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a terminal's Ctrl-C reaches the harness only, and a
        // timeout can kill everything the runtime started.
        .process_group(0);
    if let Some(p) = &spec.timeline_out {
        let _ = std::fs::remove_file(p);
    }
    let spawn = now_ns();
    cmd.env(ENV_SPAWN_NS, spawn.to_string());
    let mut tl = Timeline::new(runtime, spawn);
    tl.push("spawn", spawn, EventSource::Harness);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tl.error = Some(format!("cannot start {}: {e}", spec.program.display()));
            return tl;
        }
    };
    let pid = child.id() as i32;

    let killed_on_event = Arc::new(AtomicBool::new(false));
    let stdout = child.stdout.take().expect("stdout is piped");
    let (line_tx, line_rx) = mpsc::channel();
    {
        let (console, kill_on, flag) = (spec.console, spec.kill_on, killed_on_event.clone());
        std::thread::spawn(move || {
            let mut events = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let t = now_ns();
                if let Some(ev) = console.event(&String::from_utf8_lossy(&buf)) {
                    events.push((ev, t));
                    if Some(ev) == kill_on {
                        flag.store(true, Ordering::SeqCst);
                        kill_group(pid);
                    }
                }
                buf.clear();
            }
            let _ = line_tx.send(events);
        });
    }
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let err_thread = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        let start = all.len().saturating_sub(STDERR_TAIL);
        let tail = String::from_utf8_lossy(&all[start..]);
        // One line, so that the error fits in a table cell.
        tail.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    });

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let timeout = spec.timeout;
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(timeout) {
            kill_group(pid);
            return true;
        }
        false
    });

    let status = child.wait();
    let exit = now_ns();
    let _ = stop_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    tl.push("exit", exit, EventSource::Harness);

    let events = match line_rx.recv_timeout(READER_GRACE) {
        Ok(ev) => ev,
        Err(_) => {
            kill_group(pid);
            line_rx.recv().unwrap_or_default()
        }
    };
    for (name, t) in events {
        tl.push(name, t, EventSource::Console);
    }
    let stderr_tail = err_thread.join().unwrap_or_default();

    let code = match &status {
        Ok(s) => s.code().or_else(|| s.signal().map(|n| 128 + n)),
        Err(_) => None,
    };
    tl.exit_code = code;

    let mut errors = Vec::new();
    if let Some(path) = &spec.timeline_out {
        match merge_runtime_timeline(&mut tl, path) {
            Ok(()) => {}
            Err(e) if errors.is_empty() => errors.push(e),
            Err(_) => {}
        }
    }
    let killed_by_us = killed_on_event.load(Ordering::SeqCst);
    if timed_out {
        errors.insert(
            0,
            format!("timed out after {:.1} s (killed)", timeout.as_secs_f64()),
        );
    } else if let Err(e) = &status {
        errors.insert(0, format!("wait failed: {e}"));
    } else if let (ExitExpect::Code(want), false) = (spec.expect, killed_by_us) {
        if code != Some(want) {
            let shown = code.map_or("none".to_string(), |c| c.to_string());
            errors.insert(0, format!("exit status {shown} (expected {want})"));
        }
    }
    for req in &spec.required {
        if tl.event_ns(req).is_none() {
            errors.push(format!("no `{req}` event observed"));
        }
    }
    if !errors.is_empty() {
        if !stderr_tail.is_empty() {
            errors.push(format!("stderr: {stderr_tail}"));
        }
        tl.error = Some(errors.join("; "));
    }
    tl
}

/// Merges the events of the runtime's own timeline file into `tl` and removes it.
fn merge_runtime_timeline(tl: &mut Timeline, path: &PathBuf) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("runtime wrote no timeline to {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(path);
    let theirs: Timeline = serde_json::from_str(text.trim())
        .map_err(|e| format!("unreadable runtime timeline {}: {e}", path.display()))?;
    tl.events.extend(
        theirs
            .events
            .into_iter()
            // The harness's own spawn stamp is the run's time zero.
            .filter(|e| e.name != "spawn"),
    );
    if let Some(e) = theirs.error {
        tl.error.get_or_insert(format!("runtime reported: {e}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> RunSpec {
        RunSpec::new("/bin/sh", ConsoleMap::Container).args(["-c", script])
    }

    #[test]
    fn console_mapping() {
        assert_eq!(
            ConsoleMap::Container.event("@@bootlab init-start\n"),
            Some("exec")
        );
        assert_eq!(
            ConsoleMap::Container.event("@@bootlab exec"),
            Some("workload-exec")
        );
        assert_eq!(ConsoleMap::Vm.event("@@bootlab exec\r\n"), Some("exec"));
        assert_eq!(
            ConsoleMap::Vm.event("[    9.1] Run /init as init process\n"),
            Some("kernel-run-init")
        );
        assert_eq!(
            ConsoleMap::Container.event("Run /init as init process"),
            None
        );
        assert_eq!(ConsoleMap::Vm.event("hello"), None);
    }

    #[test]
    fn stamps_console_markers_in_order() {
        let t = execute(
            "sh",
            &sh("echo '@@bootlab init-start'; echo '@@bootlab exec'; echo hi; echo '@@bootlab done'"),
        );
        assert_eq!(t.error, None);
        assert_eq!(t.exit_code, Some(0));
        let (s, e, d, x) = (
            t.event_ns("spawn").unwrap(),
            t.event_ns("exec").unwrap(),
            t.event_ns("done").unwrap(),
            t.event_ns("exit").unwrap(),
        );
        // The console reader may see the last line after wait returned (threads
        // race), so `done` is not ordered against `exit`; phases clamp that to 0.
        assert!(s == t.spawn_ns && s < e && e <= d && s < x, "{t:?}");
        let names: Vec<_> = t
            .phases(&timeline::CONTAINER_MODEL)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["sandbox", "process", "teardown"]);
    }

    #[test]
    fn failures_are_recorded_with_their_reason() {
        let t = execute("sh", &sh("echo oops >&2; exit 3"));
        let err = t.error.unwrap();
        assert!(
            err.contains("exit status 3") && err.contains("oops"),
            "{err}"
        );

        let t = execute("nope", &RunSpec::new("/nonexistent/bin", ConsoleMap::Vm));
        assert!(t.error.unwrap().contains("cannot start"));

        let mut spec = sh("sleep 5");
        spec.timeout = Duration::from_millis(100);
        let t = execute("sh", &spec);
        assert!(t.error.unwrap().contains("timed out"));

        let mut spec = sh("true");
        spec.required.push("done");
        assert!(execute("sh", &spec).error.unwrap().contains("`done`"));
    }

    #[test]
    fn kill_on_event_ends_a_runtime_that_does_not_exit() {
        let mut spec = RunSpec::new("/bin/sh", ConsoleMap::Vm)
            .args(["-c", "echo '@@bootlab done'; exec sleep 30"]);
        spec.kill_on = Some("done");
        let t = execute("sh", &spec);
        assert_eq!(t.error, None, "{t:?}");
        assert!(t.event_ns("exit").unwrap() - t.spawn_ns < 5_000_000_000);
    }

    #[test]
    fn runtime_timeline_file_is_merged_and_spawn_env_is_passed() {
        let dir = std::env::temp_dir().join(format!("bench-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("t.json");
        // The "runtime" writes a timeline whose exec time is its spawn env + 5.
        let script = format!(
            "printf '{{\"runtime\":\"x\",\"spawn_ns\":%s,\"events\":[{{\"name\":\"exec\",\"t_ns\":%s,\"source\":\"runtime\"}}]}}' \
             $BOOTLAB_SPAWN_NS $(($BOOTLAB_SPAWN_NS + 5)) > {}",
            out.display()
        );
        let mut spec = sh(&script);
        spec.timeline_out = Some(out.clone());
        let t = execute("x", &spec);
        assert_eq!(t.error, None);
        assert_eq!(t.event_ns("exec"), Some(t.spawn_ns + 5));
        assert!(!out.exists());
        // Missing file is an error.
        let mut spec = sh("true");
        spec.timeline_out = Some(out);
        assert!(execute("x", &spec).error.unwrap().contains("no timeline"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
