//! The QEMU runners against a real QEMU: a PVH stub guest (assembled from
//! tests/fixtures/pvh-stub.S with binutils) prints the marker protocol and exits
//! through isa-debug-exit. `-M microvm` direct boot must be timed with merged
//! `vmm+kernel`; booted through firmware (qboot, and SeaBIOS in the one slow test)
//! it must show a `firmware` phase between `vmm` and `kernel`, from the firmware's
//! own logs.

use bench::exec::execute;
use bench::runners::{which, Firmware, FirmwareGuest, QemuFirmware, QemuMicrovm, RunCtx, Runner};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use timeline::{event, step, FIRMWARE_VM_MODEL, VM_MODEL};

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

/// Boots the stub through `firmware` once and checks the firmware phase; `test` names
/// the test for its skip message.
fn firmware_boot_has_a_firmware_phase(test: &str, firmware: Firmware) {
    use test_support::Need;
    if !test_support::need(
        test,
        &[
            Need::Kvm,
            Need::Tool("qemu-system-x86_64"),
            Need::Tool("as"),
            Need::Tool("ld"),
        ],
    ) {
        return;
    }
    let dir = test_support::TempDir::new("bench-qemu-fw").unwrap();
    let elf = build_stub(dir.path()).expect("the stub assembles");
    let runner = QemuFirmware::new(firmware, FirmwareGuest::Lab(elf));
    runner.check().expect("runner available");
    let spec = runner.spec(RunCtx {
        scratch: dir.path(),
        id: 0,
    });
    let t = execute(runner.name(), &spec);
    assert_eq!(t.error, None, "{t:?}");
    let phases = t.phases(&FIRMWARE_VM_MODEL);
    let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["vmm", "firmware", "kernel", "init", "process", "teardown"],
        "{t:?}"
    );
    assert!(phases[1].duration_ns() > 0, "{t:?}");
    if firmware == Firmware::SeaBios {
        // Its `Booting from ROM...` line falls inside the firmware phase.
        let at = |n: &str| t.event_ns(n).unwrap();
        assert!(at(event::FIRMWARE_START) < at(step::FIRMWARE_BOOT_ENTRY));
        assert!(at(step::FIRMWARE_BOOT_ENTRY) <= at(event::FIRMWARE_HANDOVER));
    }
    // The FIFOs are gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_fifo()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn qboot_boot_of_the_stub_has_a_firmware_phase() {
    firmware_boot_has_a_firmware_phase(
        "qboot_boot_of_the_stub_has_a_firmware_phase",
        Firmware::Qboot,
    );
}

/// The one SeaBIOS run: 9-15 s under an emulated /dev/kvm (SeaBIOS's real-mode code
/// runs in KVM's instruction emulator), about a second on hardware KVM.
#[test]
fn seabios_boot_of_the_stub_has_a_firmware_phase_slow() {
    firmware_boot_has_a_firmware_phase(
        "seabios_boot_of_the_stub_has_a_firmware_phase_slow",
        Firmware::SeaBios,
    );
}
