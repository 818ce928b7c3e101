//! bootlab's guest init: PID 1 in a microVM, or a plain workload launcher.
//!
//! `guest-init [WORKLOAD [ARGS...]]`. As the init of a VM (PID 1 with /proc not yet
//! mounted, see `guest_init::mode`) it announces `init-start`, mounts /proc, /sys
//! and /dev, reads `bootlab.*` from /proc/cmdline, gives eth0 its address and
//! brings it up if asked (`bootlab.ip=ADDR/PREFIX`), announces `snapshot` if asked
//! (`bootlab.snapshot`), announces `exec`, runs the
//! workload, announces `done`, writes the status to the exit port and reboots.
//! Every marker goes to the console and, in a VM, as one byte to the marker port,
//! and with `bootlab.markers=vsock:PORT` as its line to host port PORT over vsock.
//! Otherwise it runs the argv workload with the same console markers and exits
//! with its status.
//!
//! Two builds of the same code: the default one links std (tests, `cargo build`);
//! with `--cfg guest_init_tiny` (guest-images/build.sh) it links neither std nor
//! libc and brings its own entry point (`rt.rs`), which makes the static binary a
//! few kilobytes instead of a megabyte: under an emulated KVM every initramfs byte
//! costs boot time.

#![cfg_attr(guest_init_tiny, no_std, no_main)]

extern crate alloc;

#[cfg(guest_init_tiny)]
mod rt;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_init::cmdline::{self, RunSpec, Workload};
use guest_init::console::{self, MarkerLine, EXIT_NOT_RUN, HELLO_LINE};
use guest_init::exec;
use guest_init::marker::{Marker, EXIT_PORT, MARKER_PORT};
use guest_init::measure::MAX_LINE;
use guest_init::mode::{self, Mode};
use guest_init::net;
use guest_init::seqread::{self, SeqRead};
use guest_init::sys::{self, PortIo};

const STDOUT: i32 = 1;
const STDERR: i32 = 2;

/// Where markers go besides the console: the marker port (when granted) and a
/// vsock stream to the host (when asked for on the command line).
#[derive(Debug, Clone, Copy, Default)]
struct Channels {
    ports: Option<PortIo>,
    vsock: Option<i32>,
}

/// Announces `marker` on the console and the other channels.
fn announce(marker: Marker, ch: Channels) {
    if let Some(p) = ch.ports {
        p.outb(MARKER_PORT, marker.code());
    }
    let line = MarkerLine::new(marker);
    // Nothing sensible to do if the console is gone; keep going.
    let _ = sys::write_all(STDOUT, line.as_bytes());
    if let Some(fd) = ch.vsock {
        let _ = sys::write_all(fd, line.as_bytes());
    }
}

/// Opens the vsock marker channel to host `port`; it starts with the markers
/// already announced on the others (init-start).
fn open_vsock_markers(port: u32) -> Option<sys::Fd> {
    match sys::vsock_connect(libc::VMADDR_CID_HOST, port) {
        Ok(fd) => {
            let _ = sys::write_all(fd.raw(), MarkerLine::new(Marker::InitStart).as_bytes());
            Some(fd)
        }
        Err(e) => {
            warn(&format!("markers over vsock to port {port}: {e}"));
            None
        }
    }
}

fn warn(msg: &str) {
    let _ = sys::write_all(STDERR, format!("guest-init: {msg}\n").as_bytes());
}

/// Runs `program` with `args` in a child and returns its exit code.
fn run_program(program: &str, args: &[String], env: &[Vec<u8>]) -> u8 {
    let path = exec::env_get(env, b"PATH").unwrap_or(exec::DEFAULT_PATH);
    let candidates: Option<Vec<Vec<u8>>> = exec::candidates(program.as_bytes(), path)
        .iter()
        .map(|c| exec::c_string(c))
        .collect();
    let argv: Option<Vec<Vec<u8>>> = core::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|a| exec::c_string(a.as_bytes()))
        .collect();
    let envp: Option<Vec<Vec<u8>>> = env.iter().map(|e| exec::c_string(e)).collect();
    let (Some(candidates), Some(argv), Some(envp)) = (candidates, argv, envp) else {
        warn(&format!("cannot run {program}: NUL byte in an argument"));
        return EXIT_NOT_RUN;
    };
    let fail_msg = format!("guest-init: cannot execute {program}\n");
    match sys::spawn_and_wait(&candidates, &argv, &envp, fail_msg.as_bytes(), EXIT_NOT_RUN) {
        Ok(status) => console::exit_code(status),
        Err(e) => {
            warn(&format!("cannot run {program}: {e}"));
            EXIT_NOT_RUN
        }
    }
}

/// The built-in sequential read: its measurement line, or a warning and status 1.
fn run_seqread(args: &[String]) -> u8 {
    let spec = SeqRead::from_args(args);
    match seqread::run(&spec) {
        Ok(outcome) => {
            let mut buf = [0u8; MAX_LINE];
            let n = outcome.line(&mut buf);
            u8::from(sys::write_all(STDOUT, &buf[..n]).is_err())
        }
        Err(e) => {
            warn(&format!("seqread {}: {e}", spec.device));
            1
        }
    }
}

/// The snapshot point: the console line first, then the port write at which the
/// monitor saves the machine (the line belongs to the run that is saved).
fn announce_snapshot(ch: Channels) {
    let line = MarkerLine::new(Marker::Snapshot);
    let _ = sys::write_all(STDOUT, line.as_bytes());
    let _ = sys::drain(STDOUT);
    if let Some(fd) = ch.vsock {
        let _ = sys::write_all(fd, line.as_bytes());
    }
    if let Some(p) = ch.ports {
        p.outb(MARKER_PORT, Marker::Snapshot.code());
    }
}

/// Runs the workload between the `exec` and `done` markers; returns its exit code.
fn run_workload(spec: &RunSpec, env: &[Vec<u8>], ch: Channels) -> u8 {
    announce(Marker::Exec, ch);
    let code = match &spec.workload {
        Workload::Hello => match sys::write_all(STDOUT, HELLO_LINE.as_bytes()) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Workload::SeqRead => run_seqread(&spec.args),
        Workload::Program(program) => run_program(program, &spec.args, env),
    };
    announce(Marker::Done, ch);
    code
}

fn vm_main(env: Vec<Vec<u8>>) -> ! {
    let ports = PortIo::open(&[MARKER_PORT, EXIT_PORT]);
    announce(Marker::InitStart, Channels { ports, vsock: None });
    for (fstype, target) in [
        (c"proc", c"/proc"),
        (c"sysfs", c"/sys"),
        (c"devtmpfs", c"/dev"),
    ] {
        if let Err(e) = sys::mount(fstype, target) {
            warn(&format!(
                "mount {}: {e}",
                String::from_utf8_lossy(target.to_bytes())
            ));
        }
    }
    let env = exec::with_default_path(&env);
    let spec = match sys::read_file(c"/proc/cmdline") {
        Ok(line) => cmdline::parse_cmdline(&String::from_utf8_lossy(&line)),
        Err(e) => {
            warn(&format!(
                "cannot read /proc/cmdline ({e}); running {}",
                cmdline::HELLO
            ));
            RunSpec::default()
        }
    };
    if let Some(ip) = spec.ip {
        if let Err(e) = sys::interface_up(net::INTERFACE, ip) {
            warn(&format!("bringing eth0 up: {e}"));
        }
    }
    let vsock = spec.markers_vsock_port.and_then(open_vsock_markers);
    let ch = Channels {
        ports,
        vsock: vsock.as_ref().map(sys::Fd::raw),
    };
    if spec.snapshot {
        announce_snapshot(ch);
    }
    let code = run_workload(&spec, &env, ch);
    drop(vsock);
    // The workload's last lines and `done` must be on the console before the
    // exit port ends the VM (seen cut mid-line in the nested lane under load).
    let _ = sys::drain(STDOUT);
    if let Some(p) = ports {
        p.outb(EXIT_PORT, code);
    }
    let err = sys::end_vm(spec.exit);
    warn(&format!("reboot failed: {err}"));
    sys::idle_forever()
}

const USAGE: &[u8] = b"usage: guest-init [WORKLOAD [ARGS...]]\n\
WORKLOAD: `hello` (built-in, default), `seqread [DEVICE [MIB]]` (built-in:\n\
O_DIRECT 4 KiB reads of a block device, timed) or a program path/name.\n\
Prints the @@bootlab markers init-start, exec, done around it and exits\n\
with its status. As PID 1 of a VM it reads bootlab.workload=,\n\
bootlab.args=a,b, bootlab.exit=reboot|poweroff, bootlab.ip=ADDR/PREFIX\n\
(eth0) and bootlab.markers=vsock:PORT from /proc/cmdline.\n";

fn host_main(argv: &[String], env: &[Vec<u8>]) -> u8 {
    if matches!(argv.first().map(String::as_str), Some("-h" | "--help")) {
        let _ = sys::write_all(STDOUT, USAGE);
        return 0;
    }
    announce(Marker::InitStart, Channels::default());
    let spec = cmdline::parse_argv(argv);
    run_workload(&spec, env, Channels::default())
}

/// guest-init proper: `argv` without argv\[0\], `env` as `KEY=VALUE` entries.
/// Returns the exit code outside a VM; never returns as a VM's init.
fn run(argv: Vec<String>, env: Vec<Vec<u8>>) -> u8 {
    match mode::detect(sys::pid(), sys::proc_mounted()) {
        Mode::Vm => vm_main(env),
        Mode::Host => host_main(&argv, &env),
    }
}

#[cfg(not(guest_init_tiny))]
fn main() -> std::process::ExitCode {
    use std::os::unix::ffi::OsStrExt;
    let argv = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env = std::env::vars_os()
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect();
    std::process::ExitCode::from(run(argv, env))
}
