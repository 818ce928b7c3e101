//! `bootlab`: the command-line front of the workspace. Thin: it parses arguments with
//! clap and hands each subcommand to its module under `cmd/`, which calls the
//! libraries (`vmm`, `container`, `bench`) and turns their errors into messages.
//! How a command flows through the crates: docs/ARCHITECTURE.md.
//!
//! The binary has its own C `main` instead of Rust's runtime start: see [`main`].
#![cfg_attr(not(test), no_main)]

mod cmd;
mod fastargs;
mod plan;

use clap::{Parser, Subcommand};

/// Boot-time laboratory: how much does a VM really cost compared with a container,
/// and where does the time go?
#[derive(Debug, Parser)]
#[command(name = "bootlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot and run microVMs on KVM.
    #[command(subcommand)]
    Vm(cmd::vm::VmCommand),
    /// Run a workload in a namespace sandbox.
    #[command(subcommand)]
    Sandbox(cmd::sandbox::SandboxCommand),
    /// Benchmark the microVM, the sandbox and installed peers, side by side.
    Bench(cmd::bench::BenchArgs),
    /// Regenerate report.md and report.html from a results.json, or compare hosts
    /// (`--compare A/results.json B/results.json ...`).
    Report(cmd::report::ReportArgs),
    /// Build the guest images (kernel, initramfs, rootfs).
    #[command(subcommand)]
    Images(cmd::images::ImagesCommand),
    /// One CPU-bound worker of `bench --load` (internal).
    #[command(hide = true)]
    LoadWorker(cmd::bench::LoadWorkerArgs),
    /// An OCI runtime with runc's command line, for engines (also as `bootlab-runc`).
    Oci(cmd::oci::OciArgs),
}

/// The name a link to the binary has when engines call it as runc.
const RUNC_NAME: &str = "bootlab-runc";

/// `bootlab-runc ARGS` is `bootlab oci ARGS`.
fn runc_alias(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let invoked_as_runc = args
        .first()
        .and_then(|a0| std::path::Path::new(a0).file_name())
        .is_some_and(|n| n == RUNC_NAME);
    if !invoked_as_runc {
        return args;
    }
    ["bootlab", "oci"]
        .into_iter()
        .map(Into::into)
        .chain(args.into_iter().skip(1))
        .collect()
}

/// The runtimes a benchmark starts again and again, `bootlab sandbox run ...` and
/// `bootlab vm run ...`, are scanned without clap when their arguments are plain
/// (see [`fastargs`]); help, version, errors and everything unusual go through clap.
fn parse_runtime_fast(args: &[std::ffi::OsString]) -> Option<Command> {
    let level = |i: usize| args.get(i).and_then(|a| a.to_str());
    let rest = args.get(3..).unwrap_or_default();
    match (level(1)?, level(2)?) {
        ("sandbox", "run") => Some(Command::Sandbox(cmd::sandbox::SandboxCommand::Run(
            Box::new(cmd::sandbox::RunArgs::fast(rest)?),
        ))),
        ("vm", "run") => Some(Command::Vm(cmd::vm::VmCommand::Run(
            cmd::vm::RunArgs::fast(rest)?,
        ))),
        ("vm", "restore") => Some(Command::Vm(cmd::vm::VmCommand::Restore(
            cmd::restore::RestoreArgs::fast(rest)?,
        ))),
        _ => None,
    }
}

/// The process entry, called by the C library's start-up code.
///
/// A runtime's start-up is part of what bootlab measures, so `main` skips what Rust's
/// runtime start (`lang_start`) does before a Rust `main`: it reads /proc/self/maps to
/// find the main thread's stack guard, installs SIGSEGV/SIGBUS handlers and maps an
/// alternate signal stack in every thread, to turn a stack overflow into a message
/// (without it, an overflow is a plain SIGSEGV). Together with the single arena
/// below, that is about 0.1 ms of a start here, in side-by-side runs.
/// What of it the program relies on is done here: a closed stdin, stdout or stderr is
/// opened on /dev/null (else the first file bootlab opens would take its number, and
/// messages, or a sandbox's stdio, would go into it), SIGPIPE is ignored (writes to a
/// closed pipe fail with EPIPE instead of killing the process), a panic becomes exit
/// status 101, and stdout is flushed before returning. Arguments still come from
/// `std::env::args_os`, which the standard library captures on its own at load time.
///
/// glibc's malloc also gets a single arena: by default each thread that allocates
/// first maps a 64-128 MiB arena of its own (mmap, then munmap of what is not
/// aligned), and those mmap-lock writers stall the other thread's page faults in the
/// few hundred microseconds of a start. bootlab's threads allocate little.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    timeline::clock::mark_main_entry();
    open_missing_stdio();
    // SAFETY: setting a signal's disposition to SIG_IGN and a malloc parameter, before
    // any other thread exists; neither touches memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let code = std::panic::catch_unwind(run_cli).unwrap_or(101);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code.into()
}

/// Opens /dev/null on each of descriptors 0, 1 and 2 that is not open (one poll(2)
/// tells which; open(2) takes the lowest free number, so they are filled in order).
#[cfg(not(test))]
fn open_missing_stdio() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a live array of three pollfd; a zero timeout does not block.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for p in fds {
        if p.revents & libc::POLLNVAL != 0 {
            // SAFETY: opening a constant NUL-terminated path; the descriptor is kept
            // for the life of the process as the missing standard one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Parses the command line and runs the command: the program's exit status.
#[cfg_attr(test, allow(dead_code))] // Test builds have the test harness's `main`.
fn run_cli() -> u8 {
    let args = runc_alias(std::env::args_os().collect());
    if let Some(command) = parse_runtime_fast(&args) {
        return finish(command);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // --help and --version print to stdout and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error: clap's message (the error line, possibly the valid values
        // and its usage hint), then exit code 1 like every other bad input.
        Err(e) => {
            let _ = e.print();
            return cmd::EXIT_ERROR;
        }
    };
    finish(cli.command)
}

/// Runs a parsed command and turns its result into the exit status.
fn finish(command: Command) -> u8 {
    let result = match command {
        Command::Vm(c) => cmd::vm::run(c),
        Command::Sandbox(c) => cmd::sandbox::run(c),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Images(c) => cmd::images::run(c),
        Command::LoadWorker(a) => cmd::bench::load_worker(a),
        Command::Oci(a) => cmd::oci::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bootlab: error: {e:#}");
            cmd::EXIT_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every long option clap knows for the commands the scanner takes is known to
    /// the scanner, valued or a flag as clap has it, and the scanner knows nothing
    /// clap does not: a new option cannot silently send every start through clap.
    #[test]
    fn the_scanner_knows_exactly_the_long_options_of_clap() {
        use clap::{ArgAction, Args};
        let cases = [
            (
                "vm run",
                cmd::vm::RunArgs::augment_args(clap::Command::new("run")),
                &cmd::vm::RunArgs::FAST,
            ),
            (
                "vm restore",
                cmd::restore::RestoreArgs::augment_args(clap::Command::new("restore")),
                &cmd::restore::RestoreArgs::FAST,
            ),
            (
                "sandbox run",
                cmd::sandbox::RunArgs::augment_args(clap::Command::new("run")),
                &cmd::sandbox::RunArgs::FAST,
            ),
        ];
        for (name, command, known) in cases {
            let mut longs = Vec::new();
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                longs.push(long);
                match arg.get_action() {
                    ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count => {
                        assert!(
                            known.flags.contains(&long),
                            "{name}: --{long} is not a known flag"
                        );
                    }
                    action => {
                        assert!(
                            known.valued.contains(&long),
                            "{name}: --{long} is not known as valued"
                        );
                        assert_eq!(
                            known.repeatable.contains(&long),
                            matches!(action, ArgAction::Append),
                            "{name}: --{long} repeatable as clap has it"
                        );
                    }
                }
            }
            for k in known.flags.iter().chain(known.valued) {
                assert!(
                    longs.contains(k),
                    "{name}: the scanner knows --{k}, clap does not"
                );
            }
        }
    }

    fn argv(line: &str) -> Vec<std::ffi::OsString> {
        line.split(' ').map(Into::into).collect()
    }

    /// The fast path yields exactly what the full parser yields, and leaves help,
    /// version and every error to the full parser.
    #[test]
    fn fast_path_parses_like_the_full_parser() {
        let same = [
            "bootlab sandbox run -- /bin/true",
            "bootlab sandbox run --rootfs /r --hostname h --unshare=-net,+user --memory 64M \
             --pids 8 --cpus 0.5 --timeout 3 --rw --env A=1 --env=B=2 --timeline json -- sh -c x",
            "bootlab sandbox run --bundle /b --no-net --no-pid --no-ipc --no-uts --no-cgroupns \
             --no-user --timeline-out /t.json --timeline=text",
            "bootlab sandbox run --unshare none --rootfs=/r -- a -- b",
            "bootlab vm run --guest lab",
            "bootlab vm run --guest=fuzz --cmdline sweep --cpu-vendor intel --timeout 0.5",
            "bootlab vm run --kernel /k --initrd /i --cmdline console=ttyS0 --mem 256 \
             --vcpus 2 --timeout 5 --irqchip split --timeline text --timeline-out /t",
            "bootlab vm run --guest lab --snapshot-at snapshot --snapshot-out /s",
            "bootlab vm run --guest lab --disk /a --disk=/b,rw",
            "bootlab vm run --guest lab --snapshot-at=exec --snapshot-out /s --snapshot-continue",
            "bootlab vm run --guest fuzz --cmdline markers --snapshot-at signal --snapshot-out /s",
            "bootlab vm restore /s",
            "bootlab vm restore /s --snapshot-at exec --snapshot-out /t --snapshot-continue",
            "bootlab vm restore /s --timeout 2 --mem 128 --vcpus 1 --timeline json \
             --timeline-out /t",
        ];
        // Valid, but left to clap by the scanner.
        for line in [
            "bootlab sandbox run -e A=1 -- true",
            "bootlab sandbox run --unshare -net -- true",
            "bootlab sandbox run --hostname= -- true",
        ] {
            assert!(parse_runtime_fast(&argv(line)).is_none(), "{line}");
            assert!(Cli::try_parse_from(argv(line)).is_ok(), "{line}");
        }
        for line in same {
            let args = argv(line);
            let fast = parse_runtime_fast(&args).unwrap_or_else(|| panic!("no fast parse: {line}"));
            let full = Cli::try_parse_from(&args).unwrap().command;
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line}");
        }
        for line in [
            "bootlab sandbox run --help",
            "bootlab sandbox run -h",
            "bootlab sandbox run --version",
            "bootlab sandbox run --no-such-flag -- true",
            "bootlab sandbox run --rootfs /r --bundle /b",
            "bootlab vm run --mem lots",
            "bootlab vm run --mem -1",
            "bootlab vm run --vcpus 4294967296",
            "bootlab vm run --guest nope",
            "bootlab vm run --guest lab --kernel /k",
            "bootlab vm run --guest lab -- extra",
            "bootlab vm run --guest lab --snapshot-at snapshot",
            "bootlab vm run --guest lab --snapshot-out /s",
            "bootlab vm run --guest lab --snapshot-continue",
            "bootlab vm run --guest lab --snapshot-at nope --snapshot-out /s",
            "bootlab vm restore",
            "bootlab vm restore --timeout 1 /s",
            "bootlab vm restore /s extra",
            "bootlab vm restore /s --snapshot-at exec",
            "bootlab vm restore /s --snapshot-continue",
            "bootlab vm restore /s --irqchip split",
            "bootlab sandbox run --memory lots -- true",
            "bootlab sandbox run --timeline xml -- true",
            "bootlab sandbox run --rw --rw -- true",
            "bootlab sandbox run --timeout 1 --timeout 2 -- true",
            "bootlab vm list",
            "bootlab bench --runs 3",
            "bootlab",
        ] {
            assert!(parse_runtime_fast(&argv(line)).is_none(), "{line}");
        }
    }
}
