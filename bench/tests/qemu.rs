//! The QEMU `-M microvm` runner against a real QEMU: a PVH stub guest (assembled
//! from tests/fixtures/pvh-stub.S with binutils) prints the marker protocol and exits
//! through isa-debug-exit; the runner must time it with merged `vmm+kernel`.

use bench::exec::execute;
use bench::runners::{which, QemuMicrovm, RunCtx, Runner};
use std::path::{Path, PathBuf};
use std::process::Command;
use timeline::VM_MODEL;

const STUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pvh-stub.S");

fn skip_or_fail(why: &str) {
    test_support::skip("qemu_microvm_boots_the_pvh_stub_and_is_timed", why);
}

/// Assembles and links the stub into `dir`; `None` without binutils.
fn build_stub(dir: &Path) -> Option<PathBuf> {
    let obj = dir.join("pvh.o");
    let elf = dir.join("pvh.elf");
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    let assembled = ok(Command::new("as").args(["--32", "-o"]).arg(&obj).arg(STUB));
    let linked = assembled
        && ok(Command::new("ld")
            .args([
                "-m",
                "elf_i386",
                "-Ttext=0x100000",
                "--section-start=.note.Xen=0x100800",
                "-o",
            ])
            .arg(&elf)
            .arg(&obj));
    linked.then_some(elf)
}

#[test]
fn qemu_microvm_boots_the_pvh_stub_and_is_timed() {
    if !Path::new("/dev/kvm").exists() {
        skip_or_fail("/dev/kvm not present");
        return;
    }
    if which("qemu-system-x86_64").is_none() {
        skip_or_fail("qemu-system-x86_64 not installed (Debian package qemu-system-x86)");
        return;
    }
    let dir = test_support::TempDir::new("bench-qemu").unwrap();
    let Some(elf) = build_stub(dir.path()) else {
        skip_or_fail("binutils (as, ld) not installed");
        return;
    };
    let runner = QemuMicrovm::new(Some(elf));
    runner.check().expect("runner available");
    for id in 0..2 {
        let spec = runner.spec(RunCtx {
            scratch: dir.path(),
            id,
        });
        let t = execute(runner.name(), &spec);
        assert_eq!(t.error, None, "{t:?}");
        assert_eq!(t.exit_code, Some(1), "isa-debug-exit status (0 << 1) | 1");
        let names: Vec<String> = t.phases(&VM_MODEL).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["vmm+kernel", "init", "process", "teardown"]);
    }
    // Without a guest ELF the runner says so instead of running.
    let missing = QemuMicrovm::new(None).check().unwrap_err();
    assert!(missing.contains("--lab-elf"), "{missing}");
}
