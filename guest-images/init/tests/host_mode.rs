//! guest-init outside a VM (this test process is not PID 1): runs the argv
//! workload between the console markers and exits with its status. Uses the
//! binary cargo built for this test run (dynamically linked; the static build is
//! checked in images.rs).

mod common;

use std::process::Command;

use timeline::marker::Marker;

fn guest_init() -> Command {
    Command::new(env!("CARGO_BIN_EXE_guest-init"))
}

#[test]
fn hello_is_the_default_workload() {
    let out = guest_init().output().unwrap();
    common::assert_hello_run(&out);
    let out = guest_init().arg("hello").output().unwrap();
    common::assert_hello_run(&out);
}

#[test]
fn program_runs_between_exec_and_done_and_its_status_propagates() {
    let out = guest_init()
        .args(["sh", "-c", "echo workload says hi; exit 7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "stdout:\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "@@bootlab init-start",
            "@@bootlab exec",
            "workload says hi",
            "@@bootlab done"
        ]
    );
}

#[test]
fn a_missing_program_reports_127_and_still_says_done() {
    let out = guest_init()
        .arg("/nonexistent/bootlab-workload")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(common::markers(&stdout), Marker::REQUIRED);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/bootlab-workload"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_killed_workload_reports_128_plus_signal() {
    let out = guest_init()
        .args(["sh", "-c", "kill -9 $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn seqread_reports_what_it_read_between_exec_and_done() {
    let dir = test_support::TempDir::new("guest-init-seqread").unwrap();
    let disk = dir.path().join("disk");
    // Two MiB and a bit; one MiB is asked for.
    std::fs::write(&disk, vec![1u8; (2 << 20) + 4096]).unwrap();
    let out = guest_init()
        .args(["seqread", disk.to_str().unwrap(), "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(lines[..2], ["@@bootlab init-start", "@@bootlab exec"]);
    assert_eq!(lines[3], "@@bootlab done");
    let m = timeline::measure::Measure::parse_line(lines[2]).expect("a measurement");
    assert_eq!(m.name, "seqread");
    assert_eq!(m.get("bytes"), Some(1 << 20));
    assert_eq!(m.get("requests"), Some(256));
    assert!(m.get("ns").is_some_and(|ns| ns > 0), "{stdout}");
    // A device that is not there: a warning, status 1, and still `done`.
    let out = guest_init()
        .args(["seqread", dir.path().join("absent").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("seqread"));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("@@bootlab done\n"));
}
