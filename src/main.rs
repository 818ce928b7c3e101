//! `bootlab`: the command-line front of the workspace. Thin: it parses arguments with
//! clap and hands each subcommand to its module under `cmd/`, which calls the
//! libraries (`vmm`, `container`, `bench`) and turns their errors into messages.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Regenerate report.md and report.html from a results.json.
    Report(cmd::report::ReportArgs),
    /// Build the guest images (kernel, initramfs, rootfs).
    #[command(subcommand)]
    Images(cmd::images::ImagesCommand),
}

fn main() -> ExitCode {
    timeline::clock::mark_main_entry();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error: clap's message (the error line, possibly the valid values
        // and its usage hint), then exit code 1 like every other bad input.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(cmd::EXIT_ERROR);
        }
    };
    let result = match cli.command {
        Command::Vm(c) => cmd::vm::run(c),
        Command::Sandbox(c) => cmd::sandbox::run(c),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Images(c) => cmd::images::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("bootlab: error: {e:#}");
            ExitCode::from(cmd::EXIT_ERROR)
        }
    }
}
