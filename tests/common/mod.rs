//! Helpers shared by the CLI integration tests in tests/*.rs (each test binary
//! includes this module with `mod common;` and uses what it needs).
#![allow(dead_code)]

use std::process::Command;

/// The `bootlab` binary under test, without a harness spawn time in its environment.
pub fn bootlab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bootlab"));
    c.env_remove("BOOTLAB_SPAWN_NS");
    c
}

/// Whether CI asked for every KVM/root test to run (`BOOTLAB_REQUIRE_KVM=1`).
pub fn required() -> bool {
    std::env::var("BOOTLAB_REQUIRE_KVM").as_deref() == Ok("1")
}

/// Whether /dev/kvm can be used; skips loudly, or fails when CI requires KVM.
pub fn kvm_or_skip(test: &str) -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        if required() {
            panic!("{test}: /dev/kvm is not usable and BOOTLAB_REQUIRE_KVM=1");
        }
        eprintln!("SKIP {test}: /dev/kvm is not usable here");
    }
    ok
}

/// Whether this test process runs as root.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}
