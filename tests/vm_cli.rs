//! `bootlab vm run` end to end, through the built binary: the lab guest's markers and
//! timeline, SMP, the exit codes, and (once, slowly) the Linux guest running its
//! init and workload. Bad input is tested in `bad_input.rs`.

mod common;
use common::{bootlab, kvm_or_skip};

use std::path::{Path, PathBuf};
use std::process::Output;
use test_support::TempDir;
use timeline::{event, step, Timeline, VM_MODEL};

/// A fresh temporary folder for one test, removed when dropped.
fn tmp(tag: &str) -> TempDir {
    TempDir::new(&format!("vmtest-{tag}")).unwrap()
}

fn run_lab(extra: &[&str]) -> (Output, Timeline) {
    run_lab_env(extra, &[])
}

/// `bootlab vm run --guest lab EXTRA` with these environment variables set.
fn run_lab_env(extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (Output, Timeline) {
    let dir = tmp("lab");
    let out_path = dir.join("timeline.json");
    let out = bootlab()
        .args([
            "vm",
            "run",
            "--guest",
            "lab",
            "--timeout",
            "20",
            "--timeline-out",
        ])
        .arg(&out_path)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&out_path).unwrap_or_default();
    let t = serde_json::from_str(&json).unwrap_or_default();
    (out, t)
}

#[test]
fn lab_guest_walks_every_phase_in_order() {
    if !kvm_or_skip("lab_guest_walks_every_phase_in_order") {
        return;
    }
    // Both interrupt-controller models: split (the lab guest's default) and the
    // in-kernel one with its PIT, which the monitor stamps when it creates it.
    for chip in ["split", "kernel"] {
        let (out, t) = run_lab(&["--irqchip", chip]);
        check_lab_run(&out, &t);
        let has_pit = t.events.iter().any(|e| e.name == step::VMM_PIT);
        assert_eq!(has_pit, chip == "kernel", "{chip}: {t:?}");
    }
}

fn check_lab_run(out: &Output, t: &Timeline) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hello from the lab guest"), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("@@bootlab"))
        .collect();
    assert_eq!(
        lines,
        [
            "@@bootlab init-start",
            "@@bootlab snapshot",
            "@@bootlab exec",
            "@@bootlab done"
        ]
    );
    // The monitor stamped the marker-port writes, in order, after the first KVM_RUN.
    let at = |name: &str| {
        t.events
            .iter()
            .find(|e| e.name == name && e.source == timeline::EventSource::Monitor)
            .unwrap_or_else(|| panic!("no monitor event {name} in {t:?}"))
            .t_ns
    };
    let seq = [
        at(event::FIRST_KVM_RUN),
        at(event::INIT_START),
        at(event::SNAPSHOT),
        at(event::EXEC),
        at(event::DONE),
    ];
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
    assert!(t.spawn_ns > 0 && t.spawn_ns < seq[0]);
    let phases: Vec<String> = t.phases(&VM_MODEL).into_iter().map(|p| p.name).collect();
    assert_eq!(phases, ["vmm", "kernel", "init", "process", "teardown"]);
    assert_eq!(t.exit_code, Some(0));
}

/// The lab guest under a CPUID cache folder of its own (`BOOTLAB_CPUID_CACHE`).
fn run_lab_cached(dir: &Path) -> (Output, Timeline) {
    run_lab_env(&[], &[("BOOTLAB_CPUID_CACHE", dir.as_os_str())])
}

/// KVM's CPUID table is written to the cache on the first run and read on the next;
/// a damaged file is replaced. Every run boots the guest, also with the cache off.
#[test]
fn cpuid_cache_is_written_read_and_repaired() {
    if !kvm_or_skip("cpuid_cache_is_written_read_and_repaired") {
        return;
    }
    let tmp = tmp("cpuid-cache");
    // A folder the cache has to create.
    let dir = tmp.join("cache");
    let file = dir.join(vmm::cpuid_cache::CACHE_FILE);
    let (out, t) = run_lab_cached(&dir);
    check_lab_run(&out, &t);
    let first = std::fs::read(&file).expect("cache written by the first run");
    let inode = |f: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(f).unwrap());
    let first_inode = inode(&file);
    let (out, t) = run_lab_cached(&dir);
    check_lab_run(&out, &t);
    // A rewrite renames a new file over the old one: the same inode means it was read.
    assert_eq!(inode(&file), first_inode, "read, not rewritten");
    std::fs::write(&file, b"BLCPUID1 not a table").unwrap();
    let (out, t) = run_lab_cached(&dir);
    check_lab_run(&out, &t);
    // Rewritten from KVM: the same key and entries, though a table can differ in the
    // APIC ID of the host CPU that ran the ioctl (leaf 1 EBX, leaf 0xB EDX; the
    // monitor sets those per vCPU anyway).
    let repaired = std::fs::read(&file).unwrap();
    assert_eq!(repaired.len(), first.len(), "a damaged file is replaced");
    let key_end = 12 + u32::from_le_bytes(first[8..12].try_into().unwrap()) as usize;
    assert_eq!(repaired[..key_end], first[..key_end], "same key");

    // With the cache off the table comes from KVM (which folder `off` leaves alone is
    // the unit test's `the_environment_names_or_disables_the_folder`).
    let (out, t) = run_lab_env(&[], &[("BOOTLAB_CPUID_CACHE", "off".as_ref())]);
    check_lab_run(&out, &t);
}

#[test]
fn lab_guest_with_two_vcpus() {
    if !kvm_or_skip("lab_guest_with_two_vcpus") {
        return;
    }
    let (out, t) = run_lab(&["--vcpus", "2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.event_ns(event::DONE).is_some());
}

#[test]
fn timeline_text_goes_to_stderr() {
    if !kvm_or_skip("timeline_text_goes_to_stderr") {
        return;
    }
    let out = bootlab()
        .args(["vm", "run", "--guest", "lab", "--timeline", "text"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("phase vmm"), "{err}");
    assert!(err.contains("phase process"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("phase"));
}

#[test]
fn timeout_ends_a_guest_that_never_stops() {
    if !kvm_or_skip("timeout_ends_a_guest_that_never_stops") {
        return;
    }
    // A PVH guest that spins forever: "jmp ." patched over the lab guest's entry.
    let mut spin = vmm::lab::ELF.to_vec();
    let off = 0xb0; // file offset of the entry (0x100000), see lab.ld's single PT_LOAD
    assert_eq!(
        u32::from_le_bytes(spin[24..28].try_into().unwrap()),
        0x10_0000
    );
    spin[off] = 0xeb;
    spin[off + 1] = 0xfe;
    let dir = tmp("spin");
    let path = dir.join("spin.elf");
    std::fs::write(&path, &spin).unwrap();
    let started = std::time::Instant::now();
    let out = bootlab()
        .args([
            "vm",
            "run",
            "--kernel",
            path.to_str().unwrap(),
            "--timeout",
            "0.5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("timeout"));
    assert!(started.elapsed().as_secs() < 10);
}

/// The one slow test: boots the real Linux guest built by guest-images/build.sh with
/// `bootlab vm run --guest linux` (on an emulated /dev/kvm: the 32-bit init with an
/// Intel CPUID vendor) and checks that init runs the workload end to end: the
/// built-in hello's line between the three markers, in order, every VM phase
/// observed, and a clean end. About 30-60 s on a quiet emulated-KVM host, minutes on
/// a loaded one; seconds on hardware KVM.
#[test]
fn linux_guest_runs_init_and_workload_slow() {
    if !kvm_or_skip("linux_guest_runs_init_and_workload_slow") {
        return;
    }
    let images = std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"));
    let vmlinux = images.join("vmlinux");
    if !test_support::need(
        "linux_guest_runs_init_and_workload_slow",
        &[test_support::Need::Path(
            &vmlinux,
            "run guest-images/build.sh",
        )],
    ) {
        return;
    }
    let dir = tmp("linux");
    let out_path = dir.join("timeline.json");
    let started = std::time::Instant::now();
    let out = bootlab()
        .env("BOOTLAB_IMAGES", &images)
        .args([
            "vm",
            "run",
            "--guest",
            "linux",
            "--timeout",
            "600",
            "--timeline-out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || {
        format!(
            "exit {:?}\nstdout tail: {}\nstderr: {}",
            out.status.code(),
            &stdout[stdout.len().saturating_sub(3000)..],
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // In protocol order, each on its own line after the previous one.
    if let Some(want) = test_support::missing_in_order(&stdout, &test_support::LINUX_RUN_LINES) {
        panic!("{want:?} missing or out of order\n{}", context());
    }
    assert_eq!(out.status.code(), Some(0), "{}", context());
    let t: Timeline = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert!(t.unobserved(&VM_MODEL).is_empty(), "{t:?}\n{}", context());
    let phases = t.phases(&VM_MODEL);
    let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["vmm", "kernel", "init", "process", "teardown"],
        "{t:?}"
    );
    for p in &phases[1..4] {
        assert!(p.duration_ns() > 0, "empty phase {p:?} in {t:?}");
    }
    let ms = |i: usize| phases[i].duration_ns() as f64 / 1e6;
    eprintln!(
        "linux guest: vmm {:.2} ms, kernel {:.0} ms, init {:.1} ms, process {:.1} ms, \
         teardown {:.1} ms; whole run {:.1} s",
        ms(0),
        ms(1),
        ms(2),
        ms(3),
        ms(4),
        started.elapsed().as_secs_f64()
    );
}
