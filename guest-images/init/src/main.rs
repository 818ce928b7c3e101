//! bootlab's guest init: PID 1 in a microVM, or a plain workload launcher.
//!
//! `guest-init [WORKLOAD [ARGS...]]`. As the init of a VM (PID 1 with /proc not yet
//! mounted, see `guest_init::mode`) it announces `init-start`, mounts /proc, /sys
//! and /dev, reads `bootlab.*` from /proc/cmdline, announces `exec`, runs the
//! workload, announces `done`, writes the status to the exit port and reboots.
//! Every marker goes to the console and, in a VM, as one byte to the marker port.
//! Otherwise it runs the argv workload with the same console markers and exits
//! with its status.

use std::process::ExitCode;

use guest_init::cmdline::{self, RunSpec, Workload};
use guest_init::console::{self, MarkerLine, EXIT_NOT_RUN, HELLO_LINE};
use guest_init::mode::{self, Mode};
use guest_init::sys::{self, PortIo};
use timeline::marker::{Marker, EXIT_PORT, MARKER_PORT};

const STDOUT: libc::c_int = 1;
const STDERR: libc::c_int = 2;

/// Announces `marker` on the console and, when granted, on the marker port.
fn announce(marker: Marker, ports: Option<PortIo>) {
    if let Some(p) = ports {
        p.outb(MARKER_PORT, marker.code());
    }
    // Nothing sensible to do if the console is gone; keep going.
    let _ = sys::write_all(STDOUT, MarkerLine::new(marker).as_bytes());
}

fn warn(msg: &str) {
    let _ = sys::write_all(STDERR, format!("guest-init: {msg}\n").as_bytes());
}

/// Runs the workload between the `exec` and `done` markers; returns its exit code.
fn run_workload(spec: &RunSpec, ports: Option<PortIo>) -> u8 {
    announce(Marker::Exec, ports);
    let code = match &spec.workload {
        Workload::Hello => match sys::write_all(STDOUT, HELLO_LINE.as_bytes()) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Workload::Program(program) => match sys::spawn_and_wait(program, &spec.args) {
            Ok(status) => console::exit_code(status),
            Err(e) => {
                warn(&format!("cannot run {program}: {e}"));
                EXIT_NOT_RUN
            }
        },
    };
    announce(Marker::Done, ports);
    code
}

fn vm_main() -> ! {
    let ports = PortIo::open(&[MARKER_PORT, EXIT_PORT]);
    announce(Marker::InitStart, ports);
    for (fstype, target) in [
        (c"proc", c"/proc"),
        (c"sysfs", c"/sys"),
        (c"devtmpfs", c"/dev"),
    ] {
        if let Err(e) = sys::mount(fstype, target) {
            warn(&format!("mount {}: {e}", target.to_string_lossy()));
        }
    }
    sys::set_env_default(c"PATH", c"/sbin:/bin:/usr/sbin:/usr/bin");
    let spec = match std::fs::read_to_string("/proc/cmdline") {
        Ok(line) => cmdline::parse_cmdline(&line),
        Err(e) => {
            warn(&format!(
                "cannot read /proc/cmdline ({e}); running {}",
                cmdline::HELLO
            ));
            RunSpec::default()
        }
    };
    let code = run_workload(&spec, ports);
    if let Some(p) = ports {
        p.outb(EXIT_PORT, code);
    }
    let err = sys::end_vm(spec.exit);
    warn(&format!("reboot failed: {err}"));
    sys::idle_forever()
}

fn host_main(argv: &[String]) -> ExitCode {
    if matches!(argv.first().map(String::as_str), Some("-h" | "--help")) {
        let _ = sys::write_all(
            STDOUT,
            b"usage: guest-init [WORKLOAD [ARGS...]]\n\
              WORKLOAD: `hello` (built-in, default) or a program path/name.\n\
              Prints the @@bootlab markers init-start, exec, done around it and exits\n\
              with its status. As PID 1 of a VM it reads bootlab.workload=,\n\
              bootlab.args=a,b and bootlab.exit=reboot|poweroff from /proc/cmdline.\n",
        );
        return ExitCode::SUCCESS;
    }
    announce(Marker::InitStart, None);
    let spec = cmdline::parse_argv(argv);
    ExitCode::from(run_workload(&spec, None))
}

fn main() -> ExitCode {
    match mode::detect(sys::pid(), sys::proc_mounted()) {
        Mode::Vm => vm_main(),
        Mode::Host => {
            let argv: Vec<String> = std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            host_main(&argv)
        }
    }
}
