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
