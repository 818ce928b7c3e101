//! The monitor against a hostile guest: `bootlab vm run --guest fuzz` in each of the
//! fuzz guest's modes (vmm/lab-guest/fuzz.rs). The monitor must survive every port
//! and MMIO access, report how the VM ended (guest status, triple fault, timeout),
//! honour `--timeout` whatever the guest does (also when nobody reads its console),
//! keep its memory bounded under a serial flood, and never panic; against the
//! guest's hostile virtio drivers, mark a device whose ring is broken
//! DEVICE_NEEDS_RESET, answer a broken vsock packet with a RST, drop a frame that
//! cannot go, and serve again after a reset. The net case runs in a network
//! namespace of its own (tests/common/netns.rs) and needs root.

mod common;
use common::{bootlab, kvm_or_skip};
use timeline::event;

use std::io::{Read, Write};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vmm::lab::{FUZZ_STATUS_SURVIVED, FUZZ_SURVIVED_LINE};

/// Runs the fuzz guest with `cmdline` and extra arguments to its end.
fn fuzz(cmdline: &str, extra: &[&str]) -> Output {
    bootlab()
        .args(["vm", "run", "--guest", "fuzz", "--cmdline", cmdline])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// [`fuzz`] in `mode` with `--timeout timeout`; checks that nothing panicked and
/// returns the output and how many seconds the run took.
fn fuzz_timed(mode: &str, timeout: f64) -> (Output, f64) {
    let started = Instant::now();
    let out = fuzz(mode, &["--timeout", &timeout.to_string()]);
    let took = started.elapsed().as_secs_f64();
    assert_no_panic(mode, &out);
    (out, took)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_panic(what: &str, out: &Output) {
    for s in [text(&out.stdout), text(&out.stderr)] {
        assert!(!s.contains("panicked"), "{what} panicked: {s}");
    }
}

/// A hostile-driver run of `device` that survived (no panic, the survived status)
/// and printed, for attacks 1..=`total`, "needs-reset" for the first `broken` (a
/// broken ring) and `soft` for the rest (a sound chain with a bad packet); returns
/// its stdout.
fn assert_attacks(
    what: &str,
    out: &Output,
    device: &str,
    broken: u32,
    total: u32,
    soft: &str,
) -> String {
    assert_no_panic(what, out);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(i32::from(FUZZ_STATUS_SURVIVED)),
        "{what}: {stdout}{}",
        text(&out.stderr)
    );
    for n in 1..=total {
        let outcome = if n <= broken { "needs-reset" } else { soft };
        let line = format!("fuzz: {device} attack {n}: {outcome}\n");
        assert!(stdout.contains(&line), "{what}: attack {n}: {stdout}");
    }
    stdout
}

/// Seeds of the sweep, each with a vCPU count (a second vCPU waits for a SIPI that
/// never comes, but the machine is set up for SMP) and an interrupt controller model
/// (`split` puts the monitor's own IO-APIC in the guest's way); a failure names its
/// seed, and `bootlab vm run --guest fuzz --cmdline "sweep SEED"` replays it.
const SWEEP_RUNS: [(u32, u32, &str); 4] = [
    (1, 1, "kernel"),
    (57005, 2, "kernel"),
    (4_000_000_007, 1, "kernel"),
    (48879, 1, "split"),
];

#[test]
fn sweep_of_every_port_and_random_mmio_is_survived_for_several_seeds() {
    if !kvm_or_skip("sweep_of_every_port_and_random_mmio_is_survived_for_several_seeds") {
        return;
    }
    // The seeds run side by side; each takes a few seconds under the emulated KVM.
    let runs: Vec<_> = SWEEP_RUNS
        .iter()
        .map(|&(seed, vcpus, irqchip)| {
            let cmdline = format!("sweep {seed}");
            std::thread::spawn(move || {
                let vcpus = vcpus.to_string();
                let out = fuzz(
                    &cmdline,
                    &[
                        "--mem",
                        "64",
                        "--vcpus",
                        &vcpus,
                        "--irqchip",
                        irqchip,
                        "--timeout",
                        "300",
                    ],
                );
                (cmdline, irqchip, out)
            })
        })
        .collect();
    for run in runs {
        let (cmdline, irqchip, out) = run.join().unwrap();
        let what = format!("{cmdline} (--irqchip {irqchip})");
        assert_no_panic(&what, &out);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(FUZZ_STATUS_SURVIVED as i32),
            "{what}: stderr {stderr}\nstdout tail: {}",
            &stdout[stdout.len().saturating_sub(500)..]
        );
        assert!(stdout.contains(&format!("fuzz: {cmdline}\n")), "{stdout}");
        for stage in [
            "fuzz: ports done",
            "fuzz: boot-timer page done",
            "fuzz: mmio below 4 GiB done",
            "fuzz: mmio above 4 GiB done",
            FUZZ_SURVIVED_LINE,
        ] {
            assert!(stdout.contains(stage), "{what}: no {stage:?} in {stdout}");
        }
    }
}

/// The fuzz guest's hostile virtio drivers against a `--disk` device: the
/// monitor marks the device DEVICE_NEEDS_RESET after each of the eight attacks
/// (the guest reads the status register and says so), serves good requests again
/// after a reset, survives a notification storm and a reset mid-request, and the
/// image is untouched, under both irqchip models. A sweep with a disk attached
/// puts the device in the random MMIO's way too.
#[test]
fn hostile_virtio_drivers_get_the_device_marked_and_the_monitor_survives() {
    if !kvm_or_skip("hostile_virtio_drivers_get_the_device_marked_and_the_monitor_survives") {
        return;
    }
    let dir = test_support::TempDir::new("hostile-virtio").unwrap();
    let img = dir.path().join("disk.img");
    let image: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&img, &image).unwrap();
    let disk = format!("{},rw", img.display());
    // Each irqchip with notifications by exit, and the split one with ioeventfds
    // (the queue then served on the event loop's thread).
    for (chip, notify) in [
        ("split", "exit"),
        ("kernel", "exit"),
        ("split", "ioeventfd"),
    ] {
        let args = ["--disk", &disk, "--irqchip", chip, "--timeout", "60"];
        let out = fuzz(
            "virtio",
            &[&args[..], &["--virtio-notify", notify]].concat(),
        );
        let chip = format!("{chip}, {notify}");
        let stdout = assert_attacks(&chip, &out, "virtio", 8, 8, "");
        for what in ["storm", "reset mid-request"] {
            let line = format!("fuzz: virtio {what} done, read ok\n");
            assert!(stdout.contains(&line), "{chip}: {what}: {stdout}");
        }
    }
    let out = fuzz("sweep 7", &["--disk", &disk, "--timeout", "120"]);
    assert_no_panic("sweep with a disk", &out);
    assert_eq!(
        out.status.code(),
        Some(i32::from(FUZZ_STATUS_SURVIVED)),
        "{}",
        text(&out.stdout)
    );
    assert!(
        std::fs::read(&img).unwrap() == image,
        "the guest only ever read"
    );
}

/// A host service on `PATH_1234` for the fuzz guest's vsock streams: takes every
/// connection, reads one line, answers [`VSOCK_REPLY`] and waits for the end of
/// the stream. Stopped by [`VsockService::finish`], which returns the line of each
/// connection in order.
struct VsockService {
    at: std::path::PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    accepter: std::thread::JoinHandle<Vec<std::thread::JoinHandle<String>>>,
}

const VSOCK_REPLY: &str = "hello hostile guest\n";

impl VsockService {
    fn start(path: &std::path::Path) -> VsockService {
        use std::io::BufRead;
        let mut at = path.as_os_str().to_owned();
        at.push("_1234");
        let at = std::path::PathBuf::from(at);
        let listener = std::os::unix::net::UnixListener::bind(&at).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let accepter = std::thread::spawn(move || {
            let mut streams = Vec::new();
            for sock in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let sock = sock.unwrap();
                streams.push(std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(sock);
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    // A stream the guest reset is closed: the reply may not go.
                    let _ = reader.get_mut().write_all(VSOCK_REPLY.as_bytes());
                    let _ = reader.read_to_end(&mut Vec::new());
                    line
                }));
            }
            streams
        });
        VsockService { at, stop, accepter }
    }

    /// Stops taking connections (the monitor has exited, so every stream has
    /// ended) and returns each connection's line.
    fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(&self.at);
        let streams = self.accepter.join().unwrap();
        streams.into_iter().map(|s| s.join().unwrap()).collect()
    }
}

/// The fuzz guest's hostile virtio-vsock driver (`virtio-vsock`) against a
/// `--vsock` device, with notifications by exit and by ioeventfd: a broken ring
/// (a chain that loops, leaves its table or guest memory, is too short for the
/// 44-byte header, has a buffer of the wrong direction, TX or RX) gets the device
/// marked DEVICE_NEEDS_RESET (attacks 1-7); a broken header (a length its buffers
/// do not hold, one above 64 KiB, an unknown op or socket type on an open stream,
/// data for a stream never opened) gets that stream a RST while the device goes
/// on serving (8-12). 200 packets for no stream while the guest offers no receive
/// buffer get only the device's bound of RSTs. A notification storm and a reset with a stream in flight
/// each leave a device that connects to the host again and carries a line both
/// ways; the monitor survives and removes its socket.
#[test]
fn a_hostile_vsock_driver_gets_needs_reset_for_broken_rings_and_rst_for_broken_packets() {
    let test =
        "a_hostile_vsock_driver_gets_needs_reset_for_broken_rings_and_rst_for_broken_packets";
    if !kvm_or_skip(test) {
        return;
    }
    let dir = test_support::TempDir::new("hostile-vsock").unwrap();
    for (chip, notify) in [("split", "exit"), ("kernel", "ioeventfd")] {
        let path = dir.path().join(format!("{notify}.sock"));
        let service = VsockService::start(&path);
        let vsock = format!("3,{}", path.display());
        let out = fuzz(
            "virtio-vsock",
            &[
                "--vsock",
                &vsock,
                "--irqchip",
                chip,
                "--virtio-notify",
                notify,
                "--timeout",
                "120",
            ],
        );
        let lines = service.finish();
        let what = format!("{chip}, {notify}");
        let stdout = assert_attacks(&what, &out, "vsock", 7, 12, "rst, serving");
        // 200 RSTs owed with nowhere to go: the device keeps its bound of them.
        let flood = format!(
            "fuzz: vsock flood of 200 packets for no stream done, rsts: {}\n",
            vmm::devices::virtio::vsock::muxer::MAX_ORPHAN_RSTS
        );
        assert!(stdout.contains(&flood), "{what}: {stdout}");
        assert!(
            stdout.contains("fuzz: vsock storm done, connect ok\n"),
            "{what}: {stdout}"
        );
        let last = format!("fuzz: vsock reset mid-stream done, got: {VSOCK_REPLY}");
        assert!(stdout.contains(&last), "{what}: {stdout}");
        assert!(
            stdout.ends_with(&format!("{FUZZ_SURVIVED_LINE}\n")),
            "{stdout}"
        );
        // Streams reached the host for attacks 10 and 11 (no line: reset first),
        // after the storm (none), and twice around the reset (the guest's line
        // both times).
        let line = "fuzz vsock\n";
        assert_eq!(lines, ["", "", "", line, line], "{what}: {stdout}");
        assert!(!path.exists(), "{what}: {} left behind", path.display());
    }
}

/// The fuzz guest's hostile virtio-net driver (`virtio-net`) against a `--net`
/// card, in a network namespace of the test's own, with notifications by exit
/// and by ioeventfd. A broken ring (a TX chain that loops, leaves its table or
/// guest memory, is shorter than the 12-byte header or device-writable; an RX
/// buffer that is read-only or shorter than the header) gets the device marked
/// DEVICE_NEEDS_RESET (attacks 1-7); a sound chain whose frame cannot go (128 KiB
/// out, a 64-byte RX buffer for a 126-byte frame in) only drops that frame (8-9).
/// The host answers each `fuzz net ping` with a larger frame, which is what
/// brings the RX attacks to the device. After a notification storm and a reset
/// with a frame on its way in the card sends again; the tap is gone at the end.
#[test]
fn a_hostile_net_driver_gets_needs_reset_for_broken_rings_and_drops_frames_that_cannot_go() {
    use common::netns::{needs, Netns, ETH_HDR};
    let test =
        "a_hostile_net_driver_gets_needs_reset_for_broken_rings_and_drops_frames_that_cannot_go";
    if !needs(test) {
        return;
    }
    let ns = Netns::new();
    // Only the test's frames reach the guest, so each ping is sent and answered.
    ns.without_ipv6();
    for (chip, notify) in [("split", "exit"), ("kernel", "ioeventfd")] {
        let tap = format!("blfuzz{}", notify.len());
        let what = format!("{chip}, {notify}");
        let done = std::sync::atomic::AtomicBool::new(false);
        let (out, payloads) = std::thread::scope(|scope| {
            // The host side: every frame of the guest's ethertype is kept, a ping
            // answered with 100 bytes of payload.
            let host = scope.spawn(|| {
                let mut payloads = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let wait = Duration::from_millis(100);
                    let Some((frame, ifindex)) = ns.recv_within(wait) else {
                        continue;
                    };
                    let payload = text(&frame[ETH_HDR..]);
                    if payload.starts_with("fuzz net ping") {
                        ns.send(ifindex, &frame[6..12], &[b'p'; 100]);
                    }
                    payloads.push(payload);
                }
                payloads
            });
            let child = ns.spawn_vm(&[
                "--guest",
                "fuzz",
                "--cmdline",
                "virtio-net",
                "--net",
                &format!("tap={tap}"),
                "--irqchip",
                chip,
                "--virtio-notify",
                notify,
                "--timeout",
                "120",
            ]);
            let out = child.wait_with_output().unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            (out, host.join().unwrap())
        });
        let stdout = assert_attacks(&what, &out, "net", 7, 9, "dropped, serving");
        for line in [
            "fuzz: net storm done, sent\n",
            "fuzz: net reset mid-traffic done, sent\n",
        ] {
            assert!(stdout.contains(line), "{what}: {stdout}");
        }
        // Pings for attacks 6, 7, 9 and before the reset, then the two frames
        // after the storm and the reset, in that order; nothing of the broken or
        // 128 KiB frames.
        let ping = "fuzz net ping\n";
        assert_eq!(
            payloads,
            [
                ping,
                ping,
                ping,
                "fuzz net after the storm\n",
                ping,
                "fuzz net after the reset\n"
            ],
            "{what}: {stdout}"
        );
        assert_eq!(ns.ifindex(&tap), None, "{what}: {tap} outlived the VM");
    }
}

#[test]
fn string_port_input_delivers_every_byte() {
    if !kvm_or_skip("string_port_input_delivers_every_byte") {
        return;
    }
    // The guest takes four bytes of console input with one `rep insb`: KVM hands
    // them to the monitor as one exit holding four 1-byte reads of the port.
    let mut child = bootlab()
        .args(["vm", "run", "--guest", "fuzz", "--cmdline", "echo"])
        .args(["--timeout", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"wxyz").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_no_panic("echo", &out);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(FUZZ_STATUS_SURVIVED as i32),
        "{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("fuzz: echo wxyz\n"), "{stdout:?}");
}

#[test]
fn hypercalls_do_not_kill_the_monitor() {
    if !kvm_or_skip("hypercalls_do_not_kill_the_monitor") {
        return;
    }
    let timeout = 3.0;
    let (out, took) = fuzz_timed("hypercall 7", timeout);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    match out.status.code() {
        // Hardware KVM answers each hypercall (unknown numbers with -ENOSYS).
        Some(c) if c == FUZZ_STATUS_SURVIVED as i32 => {
            assert!(stdout.contains("fuzz: hypercalls done"), "{stdout}");
        }
        // The emulated KVM of our CI hosts never completes a vmcall/vmmcall (its
        // instruction emulator re-executes the "fixed" hypercall forever, inside
        // KVM_RUN): the monitor must still end the VM on time and say so.
        Some(124) => {
            assert!(stderr.contains("vm ended: timeout"), "{stderr}");
            assert!(took < timeout + 10.0, "timeout took {took:.1} s");
            eprintln!("hypercall: this host's KVM never completed one; ended by --timeout");
        }
        // A guest-side fault is fine too, if it is reported.
        Some(80) | Some(81) => assert!(stderr.contains("vm ended:"), "{stderr}"),
        other => panic!("hypercall: exit {other:?}\nstderr {stderr}\nstdout {stdout}"),
    }
}

#[test]
fn triple_fault_is_reported_with_exit_code_80() {
    if !kvm_or_skip("triple_fault_is_reported_with_exit_code_80") {
        return;
    }
    let out = fuzz("triple", &["--timeout", "60"]);
    assert_no_panic("triple", &out);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(80), "{stderr}");
    assert!(text(&out.stdout).contains("fuzz: triple fault next"));
    assert!(
        stderr.contains("bootlab: vm ended: triple fault"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn spinning_guest_is_ended_by_the_timeout() {
    if !kvm_or_skip("spinning_guest_is_ended_by_the_timeout") {
        return;
    }
    let timeout = 1.0;
    let (out, took) = fuzz_timed("spin", timeout);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("fuzz: spinning"));
    assert!(text(&out.stderr).contains("vm ended: timeout"));
    // Not before the timeout; after it, only the time to stop a vCPU and exit
    // (milliseconds; the slack is for a loaded CI host).
    assert!(took >= timeout, "ended after {took:.2} s");
    assert!(took < timeout + 5.0, "ended after {took:.2} s");
}

#[test]
fn timeout_holds_when_nobody_reads_the_console() {
    if !kvm_or_skip("timeout_holds_when_nobody_reads_the_console") {
        return;
    }
    // stdout is a pipe that is never read: once it is full the guest's next `out`
    // blocks in write(2); the timeout must still end the VM.
    let timeout = 2.0;
    let started = Instant::now();
    let mut child = bootlab()
        .args(["vm", "run", "--guest", "fuzz", "--cmdline", "flood"])
        .args(["--timeout", &timeout.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs_f64(timeout + 10.0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = status.unwrap_or_else(|| {
        panic!("still running {timeout} s past its --timeout with a full stdout")
    });
    assert_eq!(status.code(), Some(124), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn closed_console_does_not_stop_the_monitor() {
    if !kvm_or_skip("closed_console_does_not_stop_the_monitor") {
        return;
    }
    // The reader goes away after the first bytes (like `| head`): writes fail with
    // EPIPE from then on; the monitor drops the output and runs to its timeout.
    let timeout = 2.0;
    let mut child = bootlab()
        .args(["vm", "run", "--guest", "fuzz", "--cmdline", "flood"])
        .args(["--timeout", &timeout.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_no_panic("flood into a closed pipe", &out);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("vm ended: timeout"));
}

/// VmRSS and VmHWM of `pid` in bytes, from /proc/<pid>/status.
fn rss_hwm(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A fuzz-guest run watched from outside: what came out and when, and the monitor's
/// memory sampled every 100 ms.
struct Watched {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    /// (seconds since spawn, bytes) for every read of stdout.
    arrivals: Vec<(f64, usize)>,
    /// (seconds since spawn, (VmRSS, VmHWM)).
    samples: Vec<(f64, (u64, u64))>,
}

impl Watched {
    fn run(args: &[&str], timeout: f64) -> Watched {
        let started = Instant::now();
        let mut child = bootlab()
            .args(["vm", "run", "--guest", "fuzz"])
            .args(args)
            .args(["--timeout", &timeout.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let reader = {
            let arrivals = arrivals.clone();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    match stdout.read(&mut buf) {
                        Ok(0) | Err(_) => return all,
                        Ok(n) => {
                            let t = started.elapsed().as_secs_f64();
                            arrivals.lock().unwrap().push((t, n));
                            all.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            })
        };
        let mut samples = Vec::new();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if let Some(m) = rss_hwm(pid) {
                samples.push((started.elapsed().as_secs_f64(), m));
            }
            assert!(started.elapsed().as_secs_f64() < timeout + 20.0, "no end");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stdout = reader.join().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let arrivals = arrivals.lock().unwrap().clone();
        Watched {
            code: status.code(),
            stdout,
            stderr,
            arrivals,
            samples,
        }
    }

    /// The resident set half a second after the first output and at the last sample
    /// taken while output still arrived, in bytes. Samples after the last output
    /// are left out: by then the timeout has stopped the guest and the monitor is
    /// building its timeline and exiting, which allocates whatever the flood did.
    fn rss_growth(&self) -> (u64, u64) {
        let first = self.arrivals.first().expect("no output at all").0;
        let last = self.arrivals.last().expect("no output at all").0;
        let early = self
            .samples
            .iter()
            .find(|s| s.0 >= first + 0.5)
            .expect("no sample once the guest ran");
        let late = self
            .samples
            .iter()
            .rev()
            .find(|s| s.0 <= last)
            .filter(|s| s.0 > early.0)
            .expect("no sample while the flood ran");
        (early.1 .0, late.1 .0)
    }

    fn assert_no_panic(&self) {
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(!text(&self.stdout).contains("panicked"));
    }
}

#[test]
fn serial_flood_keeps_memory_bounded_and_output_flowing() {
    if !kvm_or_skip("serial_flood_keeps_memory_bounded_and_output_flowing") {
        return;
    }
    const MEM_MIB: u64 = 16;
    // The monitor's own footprint (binary, libc, threads, KVM's run pages) next to
    // the guest's RAM: a few MiB measured; 32 MiB leaves room for any allocator.
    const MONITOR_MARGIN: u64 = 32 << 20;
    let bound = (MEM_MIB << 20) + MONITOR_MARGIN;
    let timeout = 5.0;
    let w = Watched::run(
        &["--cmdline", "flood", "--mem", &MEM_MIB.to_string()],
        timeout,
    );
    assert_eq!(w.code, Some(124), "{}", w.stderr);
    w.assert_no_panic();

    // Output kept flowing: bytes arrived in every second of the flood.
    let first = w.arrivals.first().map(|a| a.0).expect("no output at all");
    let mut t = first;
    while t + 1.0 < timeout {
        let got: usize = w
            .arrivals
            .iter()
            .filter(|a| a.0 >= t && a.0 < t + 1.0)
            .map(|a| a.1)
            .sum();
        assert!(got > 0, "no output between {t:.1} s and {:.1} s", t + 1.0);
        t += 1.0;
    }
    // Every complete line is one of the guest's two flood lines, whole.
    let out = text(&w.stdout);
    let mut lines = out.lines().collect::<Vec<_>>();
    lines.pop(); // cut off by the timeout
    assert_eq!(lines.first(), Some(&"fuzz: flood"));
    let rep = "flood: rep outsb 0123456789abcdefghijklmnopqrstuvwxyz";
    let single = "flood: out loop 0123456789abcdefghijklmnopqrstuvwxyz";
    let (mut n_rep, mut n_single) = (0u64, 0u64);
    for l in &lines[1..] {
        match *l {
            x if x == rep => n_rep += 1,
            x if x == single => n_single += 1,
            other => panic!("garbled flood line {other:?}"),
        }
    }
    assert!(n_rep > 0 && n_single > 0 && n_rep.abs_diff(n_single) <= 1);

    // Memory stayed bounded: the peak is under guest RAM + the monitor's margin, and
    // while the flood ran the resident set grew by far less than what went through
    // (a monitor that queued the output would grow by all of it).
    let peak = w.samples.iter().map(|s| s.1 .1).max().expect("no samples");
    assert!(
        peak <= bound,
        "peak RSS {} KiB over the bound {} KiB",
        peak >> 10,
        bound >> 10
    );
    let (early, late) = w.rss_growth();
    let flooded = w.stdout.len() as u64;
    assert!(
        late.saturating_sub(early) < flooded / 2,
        "RSS grew {} KiB while {} KiB went through",
        late.saturating_sub(early) >> 10,
        flooded >> 10
    );
    eprintln!(
        "flood: {} KiB in {timeout} s, {n_rep}+{n_single} lines, peak RSS {} KiB (bound {} KiB), RSS {} -> {} KiB",
        flooded >> 10,
        peak >> 10,
        bound >> 10,
        early >> 10,
        late >> 10
    );
}

#[test]
fn repeated_markers_are_recorded_once_and_cost_no_memory() {
    if !kvm_or_skip("repeated_markers_are_recorded_once_and_cost_no_memory") {
        return;
    }
    // The guest stamps `done` on the marker port and the console in a loop.
    let dir = test_support::TempDir::new("hostile").unwrap();
    let path = dir.join("timeline.json");
    let timeout = 4.0;
    let w = Watched::run(
        &[
            "--cmdline",
            "markers",
            "--timeline-out",
            path.to_str().unwrap(),
        ],
        timeout,
    );
    assert_eq!(w.code, Some(124), "{}", w.stderr);
    w.assert_no_panic();
    let json = std::fs::read_to_string(&path).unwrap();
    let t: timeline::Timeline = serde_json::from_str(&json).unwrap();
    let done: Vec<_> = t.events.iter().filter(|e| e.name == event::DONE).collect();
    let lines = text(&w.stdout).matches("@@bootlab done\n").count() as u64;
    assert!(lines > 100, "only {lines} marker lines came out");
    // Once per channel: the first marker-port write and the first console line.
    assert_eq!(done.len(), 2, "{} done events recorded", done.len());
    // Keeping every stamp costs at least an event (48 bytes) and its name per stamp,
    // two stamps per line; the monitor must not grow by even 32 bytes a line.
    let (early, late) = w.rss_growth();
    assert!(
        late.saturating_sub(early) < lines * 32,
        "RSS grew {} KiB over {lines} marker lines",
        late.saturating_sub(early) >> 10
    );
}
