//! guest-init32 (guest-images/init32, the i386 C init for an emulated /dev/kvm)
//! run on the host, outside a VM: the same contract as guest-init's host mode
//! (markers around the workload, its status as the exit code), plus the `hello`
//! personality it has when run through a link named `hello`. Needs the built
//! binary (build.sh init32) and a host kernel that runs i386 programs.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::{images_dir, need};

/// ELF header: 32-bit class, i386 machine.
const ELFCLASS32: u8 = 1;
const EM_386: u16 = 3;

fn binary() -> Option<PathBuf> {
    need(&images_dir().join("guest-init32"), "guest-init32")
}

/// Runs it, or skips when the host cannot run i386 programs.
fn run(bin: &PathBuf, args: &[&str]) -> Option<Output> {
    match Command::new(bin).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            common::skip("this host kernel cannot run i386 programs (no IA32 emulation)");
            None
        }
        Err(e) => panic!("{}: {e}", bin.display()),
    }
}

#[test]
fn is_a_static_i386_elf() {
    let Some(bin) = binary() else { return };
    let bytes = std::fs::read(&bin).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(bytes[4], ELFCLASS32);
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), EM_386);
    // Small enough that the emulated kernel unpacks it in no time.
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
}

#[test]
fn hello_is_the_default_workload() {
    let Some(bin) = binary() else { return };
    let Some(out) = run(&bin, &[]) else { return };
    common::assert_hello_run(&out);
    common::assert_hello_run(&run(&bin, &["hello"]).unwrap());
}

#[test]
fn program_runs_between_exec_and_done_and_its_status_propagates() {
    let Some(bin) = binary() else { return };
    let Some(out) = run(&bin, &["sh", "-c", "echo workload says hi; exit 7"]) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "stdout:\n{stdout}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "@@bootlab init-start",
            "@@bootlab exec",
            "workload says hi",
            "@@bootlab done"
        ]
    );
}

#[test]
fn unknown_programs_give_127_and_signals_128_plus_n() {
    let Some(bin) = binary() else { return };
    let Some(out) = run(&bin, &["/nonexistent/program"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot execute /nonexistent/program"),
        "{out:?}"
    );
    let out = run(&bin, &["sh", "-c", "kill -9 $$"]).unwrap();
    assert_eq!(out.status.code(), Some(128 + 9));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("@@bootlab done\n"), "{stdout}");
}

#[test]
fn named_hello_it_only_prints_the_hello_line() {
    let Some(bin) = binary() else { return };
    if run(&bin, &["--help"]).is_none() {
        return;
    }
    let out = Command::new(&bin).arg0("/bin/hello").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        guest_init::console::HELLO_LINE
    );
}
