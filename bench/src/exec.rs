//! One measured run of a runtime process: stamp `spawn` right before spawning (and
//! hand it to the child in `BOOTLAB_SPAWN_NS`), stamp every console marker line on
//! arrival and keep the workload's measurement lines (`timeline::measure`), stamp
//! `exit` when wait returns (all from one thread, see `watch`), enforce a timeout,
//! then merge the
//! runtime's own `--timeline-out` file. A runtime started through its API (a
//! Firecracker snapshot load) gets its request right after the spawn, before the
//! console is watched. Whatever goes wrong becomes the run's error;
//! the timeline is always returned.

use crate::firmware::{is_efi_stub_line, is_kernel_line, FirmwareLog};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timeline::clock::ENV_SPAWN_NS;
use timeline::marker::{Marker, CONSOLE_PREFIX, KERNEL_RUN_INIT_LINE};
use timeline::measure::Measure;
use timeline::{event, step};
use timeline::{now_ns, EventSource, Timeline};

/// Bytes of the child's stderr kept for the error message of a failed run.
const STDERR_TAIL: usize = 600;
/// Bytes of the child's stderr held while it runs (the tail is taken from them).
const STDERR_KEEP: usize = 4096;
/// How long to wait for the console reader after the runtime exited before killing
/// its process group (something inherited its stdout and lingers).
const READER_GRACE: Duration = Duration::from_secs(2);

/// How console marker lines map to timeline events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMap {
    /// Guest serial console: markers by their own names, the kernel's "Run /init"
    /// line as `kernel-run-init`.
    Vm,
    /// A VM with firmware: as `Vm`, the first kernel printk line is
    /// `kernel-console`, and the kernel's EFI stub's first line (after UEFI firmware)
    /// is `firmware-handover`. Firmware may print on the same serial port and leave a line
    /// unfinished (SeaBIOS's `Booting from ROM..`), so a marker is also found after
    /// such text.
    FirmwareVm,
    /// A container's stdout: the workload is guest-init itself, so its
    /// `init-start` line marks the workload's start (`exec`); its own `exec` line is
    /// kept as `workload-exec`.
    Container,
}

impl ConsoleMap {
    /// The event a console line stands for, if any.
    pub fn event(self, line: &str) -> Option<&'static str> {
        let line = match (self, line.find(CONSOLE_PREFIX)) {
            (ConsoleMap::FirmwareVm, Some(i)) => &line[i..],
            _ => line,
        };
        if let Some(m) = Marker::parse_line(line) {
            return Some(match (self, m) {
                (ConsoleMap::Container, Marker::InitStart) => event::EXEC,
                (ConsoleMap::Container, Marker::Exec) => event::WORKLOAD_EXEC,
                (_, m) => m.name(),
            });
        }
        let vm = matches!(self, ConsoleMap::Vm | ConsoleMap::FirmwareVm);
        if vm && line.contains(KERNEL_RUN_INIT_LINE) {
            return Some(event::KERNEL_RUN_INIT);
        }
        if self != ConsoleMap::FirmwareVm {
            return None;
        }
        if is_efi_stub_line(line) {
            Some(event::FIRMWARE_HANDOVER)
        } else {
            is_kernel_line(line).then_some(event::KERNEL_CONSOLE)
        }
    }
}

/// Which exit codes count as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitExpect {
    Code(i32),
    Any,
}

/// A request the harness sends to the runtime's API socket right after the spawn,
/// waiting for its answer before it watches the console: the runtime prints
/// nothing until `stdin` is written, so no console line waits unread meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// The socket the runtime creates (removed before the spawn and after the run).
    pub socket: PathBuf,
    /// A whole HTTP/1.1 request ([`crate::api::request`]).
    pub request: Vec<u8>,
    /// Written to the runtime's stdin once the request succeeded.
    pub stdin: Vec<u8>,
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
    /// Values of the workload's measurement lines (`NAME.KEY`, [`timeline::measure`])
    /// without which the run counts as failed.
    pub required_measures: Vec<&'static str>,
    /// Kill the runtime when this event arrives (a VM that cannot power itself off).
    pub kill_on: Option<&'static str>,
    pub timeout: Duration,
    /// Sent to the runtime's API socket after the spawn.
    pub api: Option<ApiCall>,
    /// A mount namespace the runtime runs in ([`crate::mountns`]): the run is made
    /// from a thread that entered it before `spawn` is stamped, so the entry is not
    /// counted and the spawn keeps its fast path (a pre-exec hook would force fork).
    pub mount_ns: Option<Arc<OwnedFd>>,
    /// Firmware logs the runtime writes into FIFOs the harness makes (at most
    /// [`MAX_SIDE_LOGS`]), their lines stamped on arrival like console lines.
    pub side_logs: Vec<SideLog>,
}

/// A firmware's log: the runtime is told to write it to `fifo`, which the harness
/// makes before the spawn, reads while the runtime runs and removes afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideLog {
    pub fifo: PathBuf,
    pub log: FirmwareLog,
}

/// Firmware logs one run can have (QEMU's debug console and its trace log).
pub const MAX_SIDE_LOGS: usize = 2;

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
            required_measures: Vec::new(),
            kill_on: None,
            timeout: Duration::from_secs(10),
            api: None,
            mount_ns: None,
            side_logs: Vec::new(),
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

/// The runtime's command: no stdin (a pipe for one driven through its API), stdout
/// (the console) and stderr piped to the harness, a process group of its own (a
/// terminal's Ctrl-C reaches the harness only, and a timeout can kill everything
/// the runtime started).
fn command(spec: &RunSpec) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.api.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

/// Runs `spec` once as runtime `runtime` and returns its timeline.
pub fn execute(runtime: &str, spec: &RunSpec) -> Timeline {
    let Some(ns) = &spec.mount_ns else {
        return execute_here(runtime, spec);
    };
    std::thread::scope(|s| {
        s.spawn(|| match crate::mountns::enter_on_this_thread(ns) {
            Ok(()) => execute_here(runtime, spec),
            Err(e) => {
                let mut tl = Timeline::new(runtime, now_ns());
                tl.error = Some(format!("cannot enter the run's mount namespace: {e}"));
                tl
            }
        })
        .join()
        .unwrap_or_else(|_| Timeline {
            error: Some("the run's thread panicked".into()),
            ..Timeline::new(runtime, now_ns())
        })
    })
}

/// [`execute`] on the calling thread, in its mount namespace.
fn execute_here(runtime: &str, spec: &RunSpec) -> Timeline {
    let mut cmd = command(spec);
    if let Some(p) = &spec.timeline_out {
        let _ = std::fs::remove_file(p);
    }
    if let Some(api) = &spec.api {
        let _ = std::fs::remove_file(&api.socket);
    }
    let mut sides = Vec::new();
    for side in spec.side_logs.iter().take(MAX_SIDE_LOGS) {
        match open_fifo(&side.fifo) {
            Ok(fd) => sides.push(SideReader {
                fd: Some(fd),
                log: side.log,
                line: Vec::new(),
            }),
            Err(e) => {
                let mut tl = Timeline::new(runtime, now_ns());
                tl.error = Some(format!("cannot make the FIFO {}: {e}", side.fifo.display()));
                remove_fifos(spec);
                return tl;
            }
        }
    }
    let started = Instant::now();
    let spawn = now_ns();
    cmd.env(ENV_SPAWN_NS, spawn.to_string());
    let mut tl = Timeline::new(runtime, spawn);
    tl.push(event::SPAWN, spawn, EventSource::Harness);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tl.error = Some(format!("cannot start {}: {e}", spec.program.display()));
            remove_fifos(spec);
            return tl;
        }
    };
    let pidfd = i32::try_from(child.id()).ok().and_then(pidfd_of);
    let api_error = spec.api.as_ref().and_then(|api| {
        let exited = || poll_in(pidfd.as_ref());
        let sent = send_api_call(&mut child, api, started + spec.timeout, &exited, &mut tl);
        if sent.is_err() {
            // A runtime that did not take its request is ended; watch sees it exit.
            if let Ok(pid) = i32::try_from(child.id()) {
                kill_group(pid);
            }
        }
        sent.err()
    });
    let seen = watch(&mut child, spec, spawn, pidfd, &mut sides);
    if let Some(api) = &spec.api {
        let _ = std::fs::remove_file(&api.socket);
    }
    remove_fifos(spec);
    tl.push(event::EXIT, seen.exit_ns, EventSource::Harness);
    for (name, t) in seen.events {
        tl.push(name, t, EventSource::Console);
    }
    tl.measured = seen.measured;
    let (status, timed_out, killed_by_us) = (seen.status, seen.timed_out, seen.killed_on_event);
    let timeout = spec.timeout;
    let stderr_tail = {
        let start = seen.stderr.len().saturating_sub(STDERR_TAIL);
        let tail = String::from_utf8_lossy(&seen.stderr[start..]);
        // One line, so that the error fits in a table cell.
        tail.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    };

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
    if let Some(e) = api_error {
        errors.insert(0, e);
    } else if timed_out {
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
    for key in &spec.required_measures {
        if !tl.measured.contains_key(*key) {
            errors.push(format!("the workload reported no `{key}`"));
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

/// Sends `api`'s request to the runtime, stamps when it was taken, then writes
/// `api.stdin` on the runtime's stdin.
fn send_api_call(
    child: &mut Child,
    api: &ApiCall,
    deadline: Instant,
    exited: &dyn Fn() -> bool,
    tl: &mut Timeline,
) -> Result<(), String> {
    let took = crate::api::call(&api.socket, &api.request, deadline, exited)?;
    tl.push(step::API_CONNECTED, took.connected_ns, EventSource::Harness);
    tl.push(step::API_ANSWERED, took.answered_ns, EventSource::Harness);
    match child.stdin.as_mut() {
        Some(stdin) => stdin
            .write_all(&api.stdin)
            .map_err(|e| format!("cannot write the runtime's stdin: {e}")),
        None => Ok(()),
    }
}

/// A firmware log being read: its FIFO's read end (until its end), how its lines
/// read, the line so far.
struct SideReader {
    fd: Option<OwnedFd>,
    log: FirmwareLog,
    line: Vec<u8>,
}

/// Makes the FIFO `path` (replacing a stale one) and opens its read end without
/// blocking, so that the runtime's open for writing does not wait and poll(2) sees
/// its end only after a writer came and went.
fn open_fifo(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("NUL in the path"))?;
    // SAFETY: mkfifo(3) with a NUL-terminated path that lives for the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: open(2) with a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn remove_fifos(spec: &RunSpec) {
    for side in &spec.side_logs {
        let _ = std::fs::remove_file(&side.fifo);
    }
}

/// Reads a firmware log once: stamps the first line of each event it names, or at
/// its end closes it.
fn read_side(side: &mut SideReader, buf: &mut [u8], seen: &mut Seen) {
    let n = read_some(side.fd.as_ref(), buf);
    if n == 0 {
        side.fd = None;
        return;
    }
    let t = now_ns();
    for &b in &buf[..n] {
        if b != b'\n' {
            side.line.push(b);
            continue;
        }
        if let Some(ev) = side.log.event(&String::from_utf8_lossy(&side.line)) {
            if !seen.events.iter().any(|(e, _)| *e == ev) {
                seen.events.push((ev, t));
            }
        }
        side.line.clear();
    }
}

/// What the harness saw of one run while it waited for it.
struct Seen {
    status: std::io::Result<ExitStatus>,
    /// When wait returned.
    exit_ns: u64,
    /// When the console (stdout) reached its end, if it did.
    console_closed_ns: Option<u64>,
    /// When console bytes were last read.
    last_console_ns: u64,
    /// Console events, stamped when their line was read.
    events: Vec<(&'static str, u64)>,
    /// The workload's measurement lines, as `NAME.KEY` -> value.
    measured: BTreeMap<String, u64>,
    /// The end of the runtime's stderr.
    stderr: Vec<u8>,
    timed_out: bool,
    killed_on_event: bool,
}

/// How often the exit is looked for without a pidfd (before Linux 5.3).
const NO_PIDFD_TICK: Duration = Duration::from_millis(5);
/// How often a runtime killed at its timeout is looked at until it has exited.
const AFTER_KILL_TICK: Duration = Duration::from_millis(100);

/// A duration in nanoseconds, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A pidfd for `pid` (Linux 5.3 and later), which poll(2) reports readable when the
/// process has exited.
fn pidfd_of(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open on our own child's pid with no flags; the result is checked.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let raw = RawFd::try_from(rc).unwrap_or(-1);
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Waits for `child` on this thread alone: one poll(2) loop over its stdout (console
/// lines, stamped as they are read), its stderr and `pidfd` (exit, stamped when wait
/// returns; without a pidfd, try_wait every `NO_PIDFD_TICK`). No thread is started
/// while the runtime starts: on a two-core host, the three threads this used to start
/// stole about 0.2 ms of CPU from the start being measured. Kills the process group
/// at the timeout, on `kill_on`, and when the pipes stay open `READER_GRACE` after
/// the exit (something inherited them); stops waiting for them `READER_GRACE` later.
/// Firmware logs (`sides`) are read in the same loop; at the exit what they hold is
/// read and they are closed (their writer was the runtime).
fn watch(
    child: &mut Child,
    spec: &RunSpec,
    spawn_ns: u64,
    mut pidfd: Option<OwnedFd>,
    sides: &mut [SideReader],
) -> Seen {
    #[allow(clippy::cast_possible_wrap)] // Linux pids are at most 2^22 (PID_MAX_LIMIT)
    let pid = child.id() as i32;
    let mut out: Option<OwnedFd> = child.stdout.take().map(OwnedFd::from);
    let mut err: Option<OwnedFd> = child.stderr.take().map(OwnedFd::from);
    let deadline = spawn_ns.saturating_add(nanos(spec.timeout));
    let grace_ns = nanos(READER_GRACE);
    let mut seen = Seen {
        status: Err(std::io::Error::other("not waited for")),
        exit_ns: 0,
        console_closed_ns: None,
        last_console_ns: 0,
        events: Vec::new(),
        measured: BTreeMap::new(),
        stderr: Vec::new(),
        timed_out: false,
        killed_on_event: false,
    };
    let mut exited = false;
    // After the exit: when the group is killed for holding the pipes (false), then
    // when the harness stops waiting for them (true).
    let mut grace: Option<(u64, bool)> = None;
    let finish = |seen: &mut Seen, status: std::io::Result<ExitStatus>| {
        seen.status = status;
        seen.exit_ns = now_ns();
        seen.exit_ns.saturating_add(grace_ns)
    };
    let mut line = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if !exited && pidfd.is_none() {
            let status = match child.try_wait() {
                Ok(None) => None,
                Ok(Some(s)) => Some(Ok(s)),
                Err(e) => Some(Err(e)),
            };
            if let Some(status) = status {
                // What the runtime wrote before it exited is read (and stamped) first;
                // bounded, in case something it left behind keeps writing.
                for _ in 0..64 {
                    if !poll_in(out.as_ref()) {
                        break;
                    }
                    read_console(&mut out, &mut line, &mut buf, spec, pid, &mut seen);
                }
                grace = Some((finish(&mut seen, status), false));
                exited = true;
                drain_sides(sides, &mut buf, &mut seen);
            }
        }
        if exited && out.is_none() && err.is_none() {
            break;
        }
        let now = now_ns();
        if !exited && now >= deadline && !seen.timed_out {
            seen.timed_out = true;
            kill_group(pid);
        }
        if let Some((at, killed)) = grace {
            if now >= at {
                if killed {
                    break;
                }
                kill_group(pid);
                grace = Some((now.saturating_add(grace_ns), true));
            }
        }
        let mut wake = grace.map(|(at, _)| at);
        if !exited {
            let mut at = if seen.timed_out {
                now.saturating_add(nanos(AFTER_KILL_TICK))
            } else {
                deadline
            };
            if pidfd.is_none() {
                at = at.min(now.saturating_add(nanos(NO_PIDFD_TICK)));
            }
            wake = Some(at);
        }
        let side = |i: usize| sides.get(i).and_then(|s| s.fd.as_ref());
        let mut fds =
            [out.as_ref(), err.as_ref(), pidfd.as_ref(), side(0), side(1)].map(|fd| libc::pollfd {
                fd: fd.map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            });
        let ms = wake.map_or(-1, |w| {
            w.saturating_sub(now).div_ceil(1_000_000).min(60_000) as i32
        });
        // SAFETY: `fds` is a live array of pollfd of the given length; a negative fd
        // is ignored by poll.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Nothing more can be watched: end the runtime (its pipes are no longer
            // read, so it could block on them), wait for it and stop.
            if !exited {
                kill_group(pid);
                finish(&mut seen, child.wait());
            }
            break;
        }
        let ready = |i: usize| fds[i].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if ready(0) {
            read_console(&mut out, &mut line, &mut buf, spec, pid, &mut seen);
        }
        if ready(1) {
            match read_some(err.as_ref(), &mut buf) {
                0 => err = None,
                n => {
                    seen.stderr.extend_from_slice(&buf[..n]);
                    let over = seen.stderr.len().saturating_sub(STDERR_KEEP);
                    seen.stderr.drain(..over);
                }
            }
        }
        for (i, side) in sides.iter_mut().enumerate().take(MAX_SIDE_LOGS) {
            if ready(3 + i) {
                read_side(side, &mut buf, &mut seen);
            }
        }
        if !exited && ready(2) {
            grace = Some((finish(&mut seen, child.wait()), false));
            exited = true;
            pidfd = None;
            drain_sides(sides, &mut buf, &mut seen);
        }
    }
    if !line.is_empty() {
        // The harness stopped waiting in the middle of a line: stamped when its last
        // bytes came.
        let t = seen.last_console_ns;
        console_lines(&mut line, b"\n", t, spec, pid, &mut seen);
    }
    seen
}

/// Reads what the firmware logs still hold, then closes them.
fn drain_sides(sides: &mut [SideReader], buf: &mut [u8], seen: &mut Seen) {
    for side in sides {
        while side.fd.is_some() {
            read_side(side, buf, seen);
        }
    }
}

/// Whether `fd` has something to read (or its end) right now.
fn poll_in(fd: Option<&OwnedFd>) -> bool {
    let Some(fd) = fd else { return false };
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd; a zero timeout does not block.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

/// Reads the console once: stamps the lines completed, or at its end the last
/// partial line (with the time its bytes came) and closes it.
fn read_console(
    out: &mut Option<OwnedFd>,
    line: &mut Vec<u8>,
    buf: &mut [u8],
    spec: &RunSpec,
    pid: i32,
    seen: &mut Seen,
) {
    match read_some(out.as_ref(), buf) {
        0 => {
            let t = seen.last_console_ns;
            console_lines(line, b"\n", t, spec, pid, seen);
            seen.console_closed_ns = Some(now_ns());
            *out = None;
        }
        n => {
            let t = now_ns();
            seen.last_console_ns = t;
            console_lines(line, &buf[..n], t, spec, pid, seen);
        }
    }
}

/// Reads what `fd` has (0 at its end or on an error other than EINTR).
fn read_some(fd: Option<&OwnedFd>, buf: &mut [u8]) -> usize {
    let Some(fd) = fd else { return 0 };
    loop {
        // SAFETY: reading into a live buffer of the given length from an fd we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return n.unsigned_abs();
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return 0;
        }
    }
}

/// Appends console bytes to `line` and stamps the event of every line completed
/// with `t`, when the bytes were read.
fn console_lines(
    line: &mut Vec<u8>,
    bytes: &[u8],
    t: u64,
    spec: &RunSpec,
    pid: i32,
    seen: &mut Seen,
) {
    for &b in bytes {
        line.push(b);
        if b != b'\n' {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(m) = Measure::parse_line(&text) {
            for (key, value) in m.values() {
                seen.measured.insert(format!("{}.{key}", m.name), value);
            }
        }
        let ev = spec.console.event(&text);
        // Only the first kernel line matters, and a boot prints hundreds.
        let ev =
            ev.filter(|&e| e != event::KERNEL_CONSOLE || !seen.events.iter().any(|(n, _)| *n == e));
        if let Some(ev) = ev {
            seen.events.push((ev, t));
            if Some(ev) == spec.kill_on {
                seen.killed_on_event = true;
                kill_group(pid);
            }
        }
        line.clear();
    }
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
            .filter(|e| e.name != event::SPAWN),
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
            Some(event::EXEC)
        );
        assert_eq!(
            ConsoleMap::Container.event("@@bootlab exec"),
            Some(event::WORKLOAD_EXEC)
        );
        assert_eq!(
            ConsoleMap::Vm.event("@@bootlab exec\r\n"),
            Some(event::EXEC)
        );
        assert_eq!(
            ConsoleMap::Vm.event("[    9.1] Run /init as init process\n"),
            Some(event::KERNEL_RUN_INIT)
        );
        assert_eq!(
            ConsoleMap::Container.event("Run /init as init process"),
            None
        );
        assert_eq!(ConsoleMap::Vm.event("hello"), None);
        // Only a VM with firmware looks for the kernel's first printk line.
        let kernel = "Booting from ROM..[    0.000000] Linux version 6.1";
        assert_eq!(ConsoleMap::Vm.event(kernel), None);
        assert_eq!(
            ConsoleMap::FirmwareVm.event(kernel),
            Some(event::KERNEL_CONSOLE)
        );
        assert_eq!(
            ConsoleMap::FirmwareVm.event("@@bootlab exec"),
            Some(event::EXEC)
        );
        // Behind SeaBIOS's unfinished serial line (a guest that prints a marker first).
        let behind = "Booting from ROM..@@bootlab init-start";
        assert_eq!(
            ConsoleMap::FirmwareVm.event(behind),
            Some(event::INIT_START)
        );
        assert_eq!(ConsoleMap::Vm.event(behind), None);
        // After OVMF: the EFI stub's line (behind OVMF's escapes) hands over.
        let stub = "\u{1b}[2J\u{1b}[01;01HEFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path\r";
        assert_eq!(
            ConsoleMap::FirmwareVm.event(stub),
            Some(event::FIRMWARE_HANDOVER)
        );
        assert_eq!(ConsoleMap::Vm.event(stub), None);
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
            t.event_ns(event::SPAWN).unwrap(),
            t.event_ns(event::EXEC).unwrap(),
            t.event_ns(event::DONE).unwrap(),
            t.event_ns(event::EXIT).unwrap(),
        );
        // stdout is read before the pidfd is looked at in the same poll, so a line
        // written before the exit is stamped before it.
        assert!(s == t.spawn_ns && s < e && e <= d && d <= x, "{t:?}");
        let names: Vec<_> = t
            .phases(&timeline::CONTAINER_MODEL)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["sandbox", "process", "teardown"]);
    }

    #[test]
    fn measurement_lines_are_kept_and_can_be_required() {
        let mut spec = sh("echo '@@bootlab-measure seqread bytes=4096 ns=77'; echo 'x=1'");
        spec.required_measures = vec!["seqread.ns"];
        let t = execute("sh", &spec);
        assert_eq!(t.error, None);
        assert_eq!(t.measured.get("seqread.ns"), Some(&77));
        assert_eq!(t.measured.get("seqread.bytes"), Some(&4096));
        assert_eq!(t.measured.len(), 2);
        spec.required_measures = vec!["seqread.requests"];
        let err = execute("sh", &spec).error.unwrap();
        assert!(err.contains("reported no `seqread.requests`"), "{err}");
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
        spec.required.push(event::DONE);
        assert!(execute("sh", &spec).error.unwrap().contains("`done`"));
    }

    #[test]
    fn an_api_call_is_answered_before_the_runtime_gets_its_stdin() {
        use std::io::Read;
        let dir = std::env::temp_dir().join(format!("bench-exec-api-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("api.sock");
        // The API end is played by a thread here; it binds after execute removed any
        // old socket.
        let server = {
            let socket = socket.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                let l = std::os::unix::net::UnixListener::bind(&socket).unwrap();
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).unwrap();
                s.write_all(b"HTTP/1.1 204 \r\n\r\n").unwrap();
                buf[..n].to_vec()
            })
        };
        let mut spec = sh("read go; echo \"@@bootlab $go\"; echo '@@bootlab done'");
        let request = crate::api::request("PUT", "/snapshot/load", &serde_json::json!({}));
        spec.api = Some(ApiCall {
            socket: socket.clone(),
            request: request.clone(),
            stdin: b"init-start\n".to_vec(),
        });
        let t = execute("sh", &spec);
        assert_eq!(t.error, None, "{t:?}");
        assert_eq!(server.join().unwrap(), request);
        let (connected, answered, exec) = (
            t.event_ns(step::API_CONNECTED).unwrap(),
            t.event_ns(step::API_ANSWERED).unwrap(),
            t.event_ns(event::EXEC).unwrap(),
        );
        assert!(t.spawn_ns < connected && connected <= answered && answered < exec);
        assert!(!socket.exists(), "the socket is removed after the run");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_runtime_that_never_opens_its_api_socket_fails_the_run_and_is_ended() {
        let dir = std::env::temp_dir().join(format!("bench-exec-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = sh("exec sleep 30");
        spec.timeout = Duration::from_millis(200);
        spec.api = Some(ApiCall {
            socket: dir.join("api.sock"),
            request: crate::api::request("PUT", "/x", &serde_json::json!({})),
            stdin: b"go".to_vec(),
        });
        let t = execute("sh", &spec);
        let err = t.error.clone().unwrap();
        assert!(
            err.starts_with("API socket") && err.contains("api.sock"),
            "{err}"
        );
        assert!(t.event_ns(event::EXIT).unwrap() - t.spawn_ns < 5_000_000_000);
        // One that exits first is not waited for until the timeout.
        let mut spec = RunSpec {
            timeout: Duration::from_secs(60),
            ..spec
        };
        spec.args = vec!["-c".into(), "echo no >&2; exit 3".into()];
        let t = execute("sh", &spec);
        let err = t.error.clone().unwrap();
        assert!(err.contains("exited before") && err.contains("no"), "{err}");
        assert!(t.event_ns(event::EXIT).unwrap() - t.spawn_ns < 5_000_000_000);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn kill_on_event_ends_a_runtime_that_does_not_exit() {
        let mut spec = RunSpec::new("/bin/sh", ConsoleMap::Vm)
            .args(["-c", "echo '@@bootlab done'; exec sleep 30"]);
        spec.kill_on = Some(event::DONE);
        let t = execute("sh", &spec);
        assert_eq!(t.error, None, "{t:?}");
        assert!(t.event_ns(event::EXIT).unwrap() - t.spawn_ns < 5_000_000_000);
    }

    /// `spec` started the way [`execute`] starts a runtime.
    fn spawn(spec: &RunSpec) -> Child {
        command(spec).spawn().unwrap()
    }

    #[test]
    fn a_child_that_keeps_the_console_open_is_killed_after_the_grace() {
        // The runtime exits at once; the `sleep` it left behind holds its stdout.
        let script = "sleep 30 & echo '@@bootlab init-start'; exit 0";
        let spec = sh(script);
        let mut child = spawn(&spec);
        let pidfd = pidfd_of(i32::try_from(child.id()).unwrap());
        assert!(pidfd.is_some(), "pidfd_open");
        let seen = watch(&mut child, &spec, now_ns(), pidfd, &mut []);
        assert_eq!(seen.status.unwrap().code(), Some(0));
        assert!(!seen.timed_out);
        assert_eq!(seen.events.len(), 1, "{:?}", seen.events);
        // The exit is stamped when wait returned, the console's end only came with
        // the kill of the group after the grace.
        let closed = seen.console_closed_ns.expect("console closed by the kill");
        assert!(seen.exit_ns < closed);
    }

    #[test]
    fn without_a_pidfd_the_exit_and_the_timeout_are_still_seen() {
        let script = "echo '@@bootlab init-start'; echo oops >&2; exit 3";
        let spec = sh(script);
        let mut child = spawn(&spec);
        let seen = watch(&mut child, &spec, now_ns(), None, &mut []);
        assert_eq!(seen.status.unwrap().code(), Some(3));
        assert_eq!(seen.events.len(), 1);
        // Written before the exit, read (and stamped) before the exit is stamped.
        assert!(
            seen.events[0].1 <= seen.exit_ns,
            "{:?} {}",
            seen.events,
            seen.exit_ns
        );
        assert_eq!(String::from_utf8_lossy(&seen.stderr).trim(), "oops");

        // A grandchild holding stdout does not turn a finished run into a timeout.
        let script = "sleep 30 & exit 0";
        let mut spec = sh(script);
        spec.timeout = Duration::from_secs(60);
        let mut child = spawn(&spec);
        let seen = watch(&mut child, &spec, now_ns(), None, &mut []);
        assert_eq!(seen.status.unwrap().code(), Some(0));
        assert!(!seen.timed_out);

        let mut spec = sh("sleep 30");
        spec.timeout = Duration::from_millis(100);
        let mut child = spawn(&spec);
        let seen = watch(&mut child, &spec, now_ns(), None, &mut []);
        assert!(seen.timed_out);
        assert_eq!(seen.status.unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn firmware_logs_are_read_from_their_fifos_and_stamped_in_order() {
        let dir = test_support::TempDir::new("exec-fifo").unwrap();
        let (debugcon, trace) = (dir.path().join("debugcon"), dir.path().join("trace"));
        // Like QEMU: each log opened once for writing, lines written as they happen.
        let script = format!(
            "exec 3>{d} 4>{t}; echo 'SeaBIOS (version 1.16.2)' >&3; sleep 0.05; \
             echo \"fw_cfg_select 0x1 key 0x0000 'signature', ret: 1\" >&4; \
             echo 'Booting from ROM...' >&3; sleep 0.05; \
             echo \"fw_cfg_select 0x1 key 0x0010 'kernel_entry', ret: 1\" >&4; sleep 0.05; \
             echo 'Booting from ROM..[    0.000000] Linux version 6.1'; \
             echo '[    0.010000] second kernel line'; sleep 0.05; \
             echo '@@bootlab init-start'",
            d = debugcon.display(),
            t = trace.display()
        );
        let mut spec = RunSpec::new("/bin/sh", ConsoleMap::FirmwareVm).args(["-c", &script]);
        spec.side_logs = vec![
            SideLog {
                fifo: debugcon.clone(),
                log: FirmwareLog::SeaBiosDebugcon,
            },
            SideLog {
                fifo: trace.clone(),
                log: FirmwareLog::FwCfgTrace,
            },
        ];
        spec.required = vec![event::FIRMWARE_START, event::FIRMWARE_HANDOVER];
        let tl = execute("fw", &spec);
        assert_eq!(tl.error, None);
        let at = |n: &str| tl.event_ns(n).unwrap_or_else(|| panic!("no {n}"));
        // The debug console's first line beats the trace's later `signature`.
        assert!(at(event::FIRMWARE_START) < at(step::FIRMWARE_BOOT_ENTRY));
        assert!(at(step::FIRMWARE_BOOT_ENTRY) < at(event::FIRMWARE_HANDOVER));
        assert!(at(event::FIRMWARE_HANDOVER) < at(event::KERNEL_CONSOLE));
        assert!(at(event::KERNEL_CONSOLE) < at(event::INIT_START));
        let count = |n: &str| tl.events.iter().filter(|e| e.name == n).count();
        assert_eq!(count(event::FIRMWARE_START), 1);
        assert_eq!(count(event::KERNEL_CONSOLE), 1);
        let phases: Vec<String> = tl
            .phases(&timeline::FIRMWARE_VM_MODEL)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(
            phases,
            ["vmm", "firmware", "kernel", "init+process+teardown"]
        );
        // The FIFOs are gone after the run.
        assert!(!debugcon.exists() && !trace.exists());
        // A runtime that never opens its log: the run ends at its exit all the same,
        // with the firmware events missing.
        let mut quiet = spec.clone();
        quiet.args = vec!["-c".into(), "true".into()];
        let t0 = Instant::now();
        let tl = execute("fw", &quiet);
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(tl.error.unwrap().contains("no `firmware-start` event"));
    }

    #[test]
    fn a_run_with_a_mount_namespace_runs_inside_it_and_leaves_the_harness_outside() {
        use test_support::Need;
        if !test_support::need("run_in_mount_namespace", &[Need::Root]) {
            return;
        }
        let dir = test_support::TempDir::new("exec-mountns").unwrap();
        let file = dir.path().join("controllers");
        std::fs::write(&file, "hugetlb\n").unwrap();
        let ns = crate::mountns::with_masked_file(&file).unwrap();
        // The script announces `exec` only when it sees the file masked (empty).
        let script = format!(
            "[ -s {} ] || echo '@@bootlab init-start'; echo '@@bootlab done'",
            file.display()
        );
        let mut spec = sh(&script);
        spec.required = vec![event::EXEC, event::DONE];
        let outside = execute("plain", &spec);
        assert!(outside.error.as_deref().unwrap_or("").contains("no `exec`"));
        spec.mount_ns = Some(Arc::new(ns));
        let inside = execute("masked", &spec);
        assert_eq!(inside.error, None);
        assert!(inside.event_ns(event::EXEC).unwrap() > inside.spawn_ns);
        // The harness's own threads still see the file.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hugetlb\n");
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
        assert_eq!(t.event_ns(event::EXEC), Some(t.spawn_ns + 5));
        assert!(!out.exists());
        // Missing file is an error.
        let mut spec = sh("true");
        spec.timeline_out = Some(out);
        assert!(execute("x", &spec).error.unwrap().contains("no timeline"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
