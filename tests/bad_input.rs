//! Bad input to every CLI entry (`vm run`, `vm restore`, `sandbox run` with `--rootfs` and with
//! `--bundle`, `bench`, `report`, `images build`), as one table: each row is one
//! invocation and a text its error must contain. Every row must end with exit code 1,
//! nothing on stdout, no "panicked" anywhere, and exactly one line on stderr:
//! `bootlab: error: ...` (our errors), or, when clap rejected the arguments, clap's
//! `error: ...` line followed only by clap's own hint lines (`  [possible values: ..]`,
//! `  tip: ..`, `Usage: ..`, `For more information, try '--help'.`, blank lines).
//! The text must be in that first line.
//!
//! Rows whose error comes from a step that needs /dev/kvm (kernel loading happens
//! after the VM is opened), root (sandbox set-up inside the child) or the built guest
//! kernel are skipped loudly when that is missing, unless `BOOTLAB_REQUIRE_KVM=1`.
//! Adding a case is one line in [`cases`].

mod common;
use common::is_root;
use test_support::kvm_usable;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a row needs besides the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing: the error comes from argument checks.
    Nothing,
    /// A usable /dev/kvm.
    Kvm,
    /// Root and /bin/busybox (the sandbox gets as far as its child).
    Root,
    /// /dev/kvm and the built guest kernel (guest-images/out/vmlinux).
    Vmlinux,
}
use Needs::*;

/// One row: the arguments, the text the error line must contain, extra environment.
struct Case {
    needs: Needs,
    args: Vec<String>,
    needle: String,
    env: Vec<(&'static str, String)>,
    /// Run as this user and group id instead of ours (rows about privileges).
    uid: Option<u32>,
}

fn c(needs: Needs, args: &[&str], needle: &str) -> Case {
    Case {
        needs,
        args: args.iter().map(|s| s.to_string()).collect(),
        needle: needle.to_owned(),
        env: Vec::new(),
        uid: None,
    }
}

impl Case {
    fn env(mut self, key: &'static str, value: &Path) -> Case {
        self.env.push((key, value.display().to_string()));
        self
    }

    /// The row as the unprivileged user `nobody` (65534).
    fn by_nobody(mut self) -> Case {
        self.uid = Some(65534);
        self
    }
}

/// Files and folders the rows point at, all below one temporary folder.
struct Fixture {
    dir: PathBuf,
    /// The built guest kernel, if there is one.
    vmlinux: Option<PathBuf>,
    /// A tiny busybox rootfs for bundles that get as far as the sandbox's child.
    rootfs: PathBuf,
    /// A snapshot of the lab guest at its snapshot point, if /dev/kvm is usable.
    snapshot: Option<PathBuf>,
    /// A tap held open here, so that it is in use (as root only).
    busy_tap: Option<vmm::tap::Tap>,
}

impl Fixture {
    /// A path below the fixture folder, as a string.
    fn p(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    /// A bundle folder `name` whose config.json is the valid base config changed by `edit`.
    fn bundle(&self, name: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut cfg = self.base_config();
        edit(&mut cfg);
        self.bundle_text(name, &serde_json::to_string_pretty(&cfg).unwrap())
    }

    /// A bundle folder `name` whose config.json is a FIFO (nobody writes to it) or,
    /// with `dir`, a directory.
    fn bundle_odd(&self, name: &str, dir: bool) -> String {
        let folder = self.p(&format!("bundles/{name}"));
        let config = format!("{folder}/config.json");
        std::fs::create_dir_all(&folder).unwrap();
        if dir {
            std::fs::create_dir_all(&config).unwrap();
        } else {
            let c = std::ffi::CString::new(config.clone()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            assert_eq!(rc, 0, "mkfifo {config}");
        }
        folder
    }

    /// A bundle folder `name` whose config.json is `text`.
    fn bundle_text(&self, name: &str, text: &str) -> String {
        self.write(&format!("bundles/{name}/config.json"), text.as_bytes());
        self.p(&format!("bundles/{name}"))
    }

    /// A copy of the lab snapshot in folder `name` (empty without /dev/kvm), its
    /// files then changed by `edit` (given the folder).
    fn snapshot(&self, name: &str, edit: impl FnOnce(&Path)) -> String {
        let dir = self.dir.join("snapshots").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(base) = &self.snapshot {
            for file in [vmm::snapshot::STATE_FILE, vmm::snapshot::MEMORY_FILE] {
                std::fs::copy(base.join(file), dir.join(file)).unwrap();
            }
            edit(&dir);
        }
        dir.display().to_string()
    }

    /// A copy of the lab snapshot whose decoded state is changed by `edit` (and
    /// written back with a valid checksum).
    fn snapshot_state(
        &self,
        name: &str,
        edit: impl FnOnce(&mut vmm::snapshot::Snapshot),
    ) -> String {
        self.snapshot(name, |dir| {
            let path = dir.join(vmm::snapshot::STATE_FILE);
            let mut snap = vmm::snapshot::decode(&std::fs::read(&path).unwrap()).unwrap();
            edit(&mut snap);
            std::fs::write(&path, vmm::snapshot::encode(&snap).unwrap()).unwrap();
        })
    }

    /// A config.json that runs (checked by the baseline row) over the fixture rootfs.
    fn base_config(&self) -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
                "args": ["true"], "env": ["PATH=/bin"], "cwd": "/"},
            "root": {"path": self.rootfs.display().to_string(), "readonly": true},
            "hostname": "bad-input",
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                {"type": "network"}, {"type": "ipc"}]}
        })
    }
}

/// The lab guest ELF with `e_machine` (and optionally class and data bytes) changed.
fn lab_with(class: u8, data: u8, machine: [u8; 2]) -> Vec<u8> {
    let mut elf = vmm::lab::ELF.to_vec();
    elf[4] = class;
    elf[5] = data;
    elf[18..20].copy_from_slice(&machine);
    elf
}

/// A bzImage of `len` bytes whose setup header says: `setup_sects` setup sectors,
/// boot protocol `version`, `loadflags`, `xloadflags` (Documentation/arch/x86/boot.rst).
fn bzimage(len: usize, setup_sects: u8, version: u16, loadflags: u8, xloadflags: u16) -> Vec<u8> {
    let mut b = vec![0u8; len.max(0x300)];
    b[0x1f1] = setup_sects;
    b[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    b[0x211] = loadflags;
    b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
    b[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
    b.truncate(len);
    b
}

/// Every row, one per line. The needle is what the first error line must contain: the offending
/// path or value, or the name of the flag or field.
#[rustfmt::skip]
fn cases(f: &Fixture) -> Vec<Case> {
    let lab = vmm::lab::ELF;
    let lab_path = f.write("lab.elf", lab);
    let missing = f.p("missing/file");
    let dir = f.p("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let file = f.write("a-file", b"x");
    let empty = f.write("empty", b"");
    let read_only = f.write("read-only.img", &[0; 512]);
    std::fs::set_permissions(&read_only, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    let json_file = f.write("results/bad.json", b"{\"runtimes\": ");
    let images_empty = f.dir.join("images-empty");
    std::fs::create_dir_all(&images_empty).unwrap();
    let images_dir_vmlinux = f.dir.join("images-dir-vmlinux");
    std::fs::create_dir_all(images_dir_vmlinux.join("vmlinux")).unwrap();
    // A sparse 64 GiB file: must be refused by its size, never read.
    let huge = f.dir.join("huge.img");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let huge = huge.display().to_string();
    let initrd_100m = f.dir.join("initrd-100m");
    std::fs::File::create(&initrd_100m)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let initrd_100m = initrd_100m.display().to_string();
    let root_link = f.dir.join("root-link");
    std::os::unix::fs::symlink("/", &root_link).unwrap();
    let root_link = root_link.display().to_string();
    let dangling = f.dir.join("dangling");
    std::os::unix::fs::symlink(f.dir.join("nowhere"), &dangling).unwrap();
    let dangling = dangling.display().to_string();
    let rootfs = f.rootfs.display().to_string();
    // A runtime root with a container folder whose state.json is not JSON, and one
    // owned by another user (chown needs root; without it the row is skipped).
    let state_root = f.p("oci-root");
    f.write("oci-root/broken/state.json", b"{ not json");
    let foreign_root = f.p("oci-foreign-root");
    std::fs::create_dir_all(&foreign_root).unwrap();
    let _ = std::os::unix::fs::chown(&foreign_root, Some(65534), Some(65534));
    let long_cmdline = "a".repeat(5000);
    let long_host = "h".repeat(100);
    let trunc = |at: usize| f.write(&format!("lab-trunc-{at}"), &lab[..at]);

    let vm = |needs: Needs, extra: &[&str], needle: &str| {
        let mut args = vec!["vm", "run"];
        args.extend_from_slice(extra);
        c(needs, &args, needle)
    };
    let sb = |needs: Needs, extra: &[&str], needle: &str| {
        let mut args = vec!["sandbox", "run"];
        args.extend_from_slice(extra);
        c(needs, &args, needle)
    };
    // `report --compare`: a recorded results.json, and copies of it cut short, of
    // another schema version, and naming a runtime bootlab does not know.
    let recorded = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/tests/fixtures/compare/nested-svm.json"),
    )
    .unwrap();
    let good = f.write("compare/good.json", recorded.as_bytes());
    let cut = f.write("compare/cut.json", &recorded.as_bytes()[..recorded.len() / 2]);
    let v2 = f.write(
        "compare/v2.json",
        recorded.replacen("\"schema\":1", "\"schema\":2", 1).as_bytes(),
    );
    let odd = f.write(
        "compare/odd.json",
        recorded.replace("\"qemu-microvm-linux\"", "\"qemu-pc-nonesuch\"").as_bytes(),
    );
    // Every bench row writes (if a check regressed) below the fixture, never to reports/.
    let bench_out = f.p("bench-out");
    let bench = |extra: &[&str], needle: &str| {
        let mut args = vec!["bench", "--no-progress"];
        if !extra.contains(&"--out-root") {
            args.extend(["--out-root", &bench_out]);
        }
        args.extend_from_slice(extra);
        c(Nothing, &args, needle)
    };
    let oci = |name: &str, edit: fn(&mut Value), needle: &str| {
        c(Nothing, &["sandbox", "run", "--bundle", &f.bundle(name, edit)], needle)
    };
    let oci_root = |name: &str, edit: fn(&mut Value), needle: &str| {
        c(Root, &["sandbox", "run", "--bundle", &f.bundle(name, edit)], needle)
    };

    let restore = |needs: Needs, dir: &str, extra: &[&str], needle: &str| {
        let mut args = vec!["vm", "restore", dir];
        args.extend_from_slice(extra);
        c(needs, &args, needle)
    };
    let state_path = |dir: &Path| dir.join(vmm::snapshot::STATE_FILE);
    let memory_path = |dir: &Path| dir.join(vmm::snapshot::MEMORY_FILE);
    let patch = |path: PathBuf, at: u64, bytes: &[u8]| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(bytes, at).unwrap();
    };
    let other_vendor = if vmm::snapshot::host_cpu_vendor() == "AuthenticAMD" { "GenuineIntel" } else { "AuthenticAMD" };
    let open_dir = f.snapshot("open-dir", |d| {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap()
    });
    let snap_ok = f.snapshot("ok", |_| {});

    let mut rows = vec![
        // ---- bootlab vm run: files ----
        vm(Nothing, &["--kernel", &missing], &missing),
        vm(Nothing, &["--kernel", &dir], "is a directory"),
        vm(Nothing, &["--kernel", "/dev/null"], "not a regular file"),
        vm(Nothing, &[], "--kernel"),
        vm(Nothing, &["--guest", "lab", "--kernel", &lab_path], "--kernel"),
        vm(Nothing, &["--guest", "lab", "--initrd", &missing], &missing),
        vm(Nothing, &["--guest", "lab", "--initrd", &dir], "is a directory"),
        vm(Nothing, &["--guest", "lab", "--timeline-out", &dir], &dir),
        vm(Nothing, &["--guest", "lab", "--timeline-out", &missing], &missing),
        // ---- vm run: guest, memory, vCPUs, timeout, timeline ----
        vm(Nothing, &["--guest", "nope"], "nope"),
        vm(Nothing, &["--guest", "linux"], "not built").env("BOOTLAB_IMAGES", &images_empty),
        vm(Nothing, &["--guest", "linux"], "is a directory")
            .env("BOOTLAB_IMAGES", &images_dir_vmlinux),
        vm(Nothing, &["--guest", "lab", "--mem", "0"], "0 MiB"),
        vm(Nothing, &["--guest", "lab", "--mem", "7"], "7 MiB"),
        vm(Nothing, &["--guest", "lab", "--mem", "100000000"], "100000000 MiB"),
        vm(Nothing, &["--guest", "lab", "--mem", "18446744073709551615"], "18446744073709551615"),
        vm(Nothing, &["--guest", "lab", "--mem", "18446744073709551616"], "18446744073709551616"),
        vm(Nothing, &["--guest", "lab", "--mem=-1"], "-1"),
        vm(Nothing, &["--guest", "lab", "--mem", "lots"], "lots"),
        vm(Nothing, &["--guest", "lab", "--vcpus", "0"], "0 vCPUs"),
        vm(Nothing, &["--guest", "lab", "--vcpus", "1000"], "1000 vCPUs"),
        vm(Nothing, &["--guest", "lab", "--vcpus", "4294967296"], "4294967296"),
        vm(Nothing, &["--guest", "lab", "--timeout", "0"], "--timeout 0"),
        vm(Nothing, &["--guest", "lab", "--timeout=-1"], "--timeout -1"),
        vm(Nothing, &["--guest", "lab", "--timeout", "nan"], "--timeout NaN"),
        vm(Nothing, &["--guest", "lab", "--timeout", "inf"], "--timeout inf"),
        vm(Nothing, &["--guest", "lab", "--timeout", "1e300"], "--timeout 1e300"),
        vm(Nothing, &["--guest", "lab", "--timeline", "xml"], "xml"),
        // ---- vm run: kernel images (loaded after /dev/kvm is opened) ----
        vm(Kvm, &["--kernel", &empty], "empty"),
        vm(Kvm, &["--kernel", &file], "no ELF magic"),
        vm(Kvm, &["--kernel", &huge], "no ELF magic"),
        vm(Kvm, &["--kernel", &trunc(1)], "truncated ELF header"),
        vm(Kvm, &["--kernel", &trunc(4)], "truncated ELF header"),
        vm(Kvm, &["--kernel", &trunc(40)], "truncated ELF header"),
        vm(Kvm, &["--kernel", &trunc(63)], "truncated ELF header"),
        vm(Kvm, &["--kernel", &trunc(64)], "truncated: the program headers"),
        vm(Kvm, &["--kernel", &trunc(100)], "truncated: the program headers"),
        vm(Kvm, &["--kernel", &trunc(400)], "truncated"),
        vm(Kvm, &["--kernel", &trunc(700)], "truncated"),
        vm(Kvm, &["--kernel", &trunc(lab.len() / 2)], "truncated"),
        vm(Kvm, &["--kernel", &trunc(lab.len() - 1)], "truncated"),
        vm(Kvm, &["--kernel", &f.write("aarch64.elf", &lab_with(2, 1, [183, 0]))], "AArch64"),
        vm(Kvm, &["--kernel", &f.write("riscv.elf", &lab_with(2, 1, [243, 0]))], "RISC-V"),
        vm(Kvm, &["--kernel", &f.write("i386.elf", &lab_with(1, 1, [3, 0]))], "i386"),
        vm(Kvm, &["--kernel", &f.write("elf32.elf", &lab_with(1, 1, [62, 0]))], "32-bit"),
        vm(Kvm, &["--kernel", &f.write("be.elf", &lab_with(2, 2, [0, 62]))], "big-endian"),
        vm(Kvm, &["--kernel", &f.write("s390.elf", &lab_with(2, 2, [0, 22]))], "s390"),
        vm(Kvm, &["--kernel", &f.write("bz-hdr", &bzimage(1024, 1, 0x20f, 1, 1))], "header only"),
        vm(Kvm, &["--kernel", &f.write("bz-cut", &bzimage(0x220, 1, 0x20f, 1, 1))], "setup header"),
        vm(Kvm, &["--kernel", &f.write("bz-32", &bzimage(4096, 1, 0x20f, 1, 0))], "64-bit"),
        vm(Kvm, &["--kernel", &f.write("bz-old", &bzimage(4096, 1, 0x201, 1, 1))], "too old"),
        vm(Kvm, &["--kernel", &f.write("bz-low", &bzimage(4096, 1, 0x20f, 0, 1))], "zImage"),
        vm(Kvm, &["--guest", "lab", "--mem", "16", "--initrd", &initrd_100m], &initrd_100m),
        vm(Kvm, &["--guest", "lab", "--initrd", &huge], &huge),
        vm(Kvm, &["--guest", "lab", "--cmdline", &long_cmdline], "5000 bytes"),
        vm(Kvm, &["--guest", "lab", "--cmdline", "console=ttyS0 é"], "'é'"),
        // ---- vm run --snapshot-* ----
        vm(Nothing, &["--guest", "lab", "--snapshot-at", "snapshot"], "--snapshot-out"),
        vm(Nothing, &["--guest", "lab", "--snapshot-out", &dir], "--snapshot-at"),
        vm(Nothing, &["--guest", "lab", "--snapshot-at", "nope", "--snapshot-out", &dir], "nope"),
        vm(Nothing, &["--guest", "lab", "--snapshot-at", "snapshot", "--snapshot-out", &file], &file),
        // ---- vm run --disk ----
        vm(Nothing, &["--guest", "lab", "--disk", &missing], &missing),
        vm(Nothing, &["--guest", "lab", "--disk", &format!("{missing},rw")], &missing),
        vm(Nothing, &["--guest", "lab", "--disk", &dir], "is a directory"),
        vm(Nothing, &["--guest", "lab", "--disk", ",rw"], "no image path"),
        vm(Nothing, &["--guest", "lab", "--disk", &format!("{read_only},rw")], "read-only"),
        vm(Nothing, &["--guest", "lab", "--disk", &file, "--snapshot-at", "snapshot", "--snapshot-out", &dir], "cannot be saved"),
        // ---- vm run --vsock ----
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("3,{file}")], "exists"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("0,{dir}/v.sock")], "CID 0 is reserved"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("1,{dir}/v.sock")], "CID 1 is reserved"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("2,{dir}/v.sock")], "CID 2 is reserved"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("4294967296,{dir}/v.sock")], "32 bits"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("three,{dir}/v.sock")], "not a number"),
        vm(Nothing, &["--guest", "lab", "--vsock", "3"], "CID,PATH"),
        vm(Nothing, &["--guest", "lab", "--vsock", "3,"], "no socket path"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("3,{missing}/v.sock")], "no such folder"),
        vm(Nothing, &["--guest", "lab", "--vsock", &format!("3,{dir}/v.sock"), "--snapshot-at", "snapshot", "--snapshot-out", &dir], "cannot be saved"),
        // ---- vm run --net ----
        vm(Nothing, &["--guest", "lab", "--net", "tap=bootlab-too-long0"], "longer than 15 bytes"),
        vm(Nothing, &["--guest", "lab", "--net", "tap=a/b"], "holds one of"),
        vm(Nothing, &["--guest", "lab", "--net", "bridge"], "expected tap"),
        vm(Nothing, &["--guest", "lab", "--net", "tap,ip=10.0.2.15"], "no /PREFIX"),
        vm(Nothing, &["--guest", "lab", "--net", "tap,ip=10.0.2.300/24"], "not an IPv4 address"),
        vm(Nothing, &["--guest", "lab", "--net", "tap", "--snapshot-at", "snapshot", "--snapshot-out", &dir], "--net cannot be saved"),
        vm(Root, &["--guest", "lab", "--net", "tap"], "needs root").by_nobody(),
        vm(Root, &["--guest", "lab", "--net", &format!("tap={}", f.busy_tap.as_ref().map_or("", |t| t.name()))], "in use"),
        vm(Nothing, &["--guest", "lab", "--virtio-notify", "poll"], "invalid value 'poll' for '--virtio-notify"),
        // ---- vm restore: the folder and its files ----
        c(Nothing, &["vm", "restore"], "<DIR>"),
        restore(Nothing, &missing, &[], &missing),
        restore(Nothing, &file, &[], "not a folder"),
        restore(Nothing, &dir, &[], "state"),
        restore(Kvm, &open_dir, &[], "writable by others"),
        restore(Kvm, &f.snapshot("open-state", |d| {
            std::fs::set_permissions(state_path(d), std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap()
        }), &[], "writable by others"),
        restore(Kvm, &f.snapshot("open-memory", |d| {
            std::fs::set_permissions(memory_path(d), std::os::unix::fs::PermissionsExt::from_mode(0o646)).unwrap()
        }), &[], "writable by others"),
        restore(Kvm, &f.snapshot("dir-state", |d| {
            std::fs::remove_file(state_path(d)).unwrap();
            std::fs::create_dir(state_path(d)).unwrap();
        }), &[], "not a regular file"),
        restore(Kvm, &f.snapshot("no-memory", |d| std::fs::remove_file(memory_path(d)).unwrap()), &[], "memory"),
        restore(Kvm, &f.snapshot("foreign", |d| std::fs::write(state_path(d), lab).unwrap()), &[], "not a bootlab snapshot"),
        restore(Kvm, &f.snapshot("empty-state", |d| std::fs::write(state_path(d), b"").unwrap()), &[], "not a bootlab snapshot"),
        restore(Kvm, &f.snapshot("cut-state", |d| {
            let bytes = std::fs::read(state_path(d)).unwrap();
            std::fs::write(state_path(d), &bytes[..bytes.len() / 2]).unwrap();
        }), &[], "truncated"),
        restore(Kvm, &f.snapshot("flipped-state", |d| {
            let mut bytes = std::fs::read(state_path(d)).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(state_path(d), bytes).unwrap();
        }), &[], "checksum"),
        restore(Kvm, &f.snapshot("newer", |d| patch(state_path(d), 8, &(vmm::snapshot::FORMAT_VERSION + 1).to_le_bytes())), &[], "newer"),
        restore(Kvm, &f.snapshot("short-memory", |d| {
            std::fs::OpenOptions::new().write(true).open(memory_path(d)).unwrap().set_len(64 << 20).unwrap();
        }), &[], "67108864 bytes"),
        restore(Kvm, &f.snapshot("changed-memory", |d| {
            // One bit of the first saved page flipped.
            let snap = vmm::snapshot::decode(&std::fs::read(state_path(d)).unwrap()).unwrap();
            let at = snap.memory.runs[0].first * vmm::layout::PAGE_SIZE + 100;
            let mut byte = [0u8];
            std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(memory_path(d)).unwrap(), &mut byte, at).unwrap();
            patch(memory_path(d), at, &[byte[0] ^ 1]);
        }), &[], "memory is corrupted"),
        restore(Kvm, &f.snapshot_state("vendor", |s| s.host.cpu_vendor = other_vendor.into()), &[], other_vendor),
        restore(Kvm, &f.snapshot_state("kvm-api", |s| s.host.kvm_api = 13), &[], "KVM API 13"),
        restore(Kvm, &f.snapshot_state("cpuid", |s| {
            for e in s.vcpus[0].cpuid.iter_mut().filter(|e| e.function == 7 && e.index == 0) {
                e.ebx = u32::MAX;
            }
        }), &[], "CPUID features"),
        restore(Kvm, &snap_ok, &["--mem", "256"], "--mem 256"),
        restore(Kvm, &snap_ok, &["--vcpus", "2"], "--vcpus 2"),
        restore(Kvm, &snap_ok, &["--timeout", "0"], "--timeout 0"),
        restore(Kvm, &snap_ok, &["--timeline-out", &missing], &missing),
        restore(Kvm, &snap_ok, &["--snapshot-at", "exec"], "--snapshot-out"),
        restore(Kvm, &snap_ok, &["--snapshot-at", "exec", "--snapshot-out", &file], &file),
        // ---- bootlab sandbox run --rootfs ----
        sb(Nothing, &["--rootfs", &missing, "--", "true"], &missing),
        sb(Nothing, &["--rootfs", &file, "--", "true"], "not a directory"),
        sb(Nothing, &["--rootfs", &dangling, "--", "true"], &dangling),
        sb(Nothing, &["--rootfs", &root_link, "--", "true"], "host's root"),
        sb(Nothing, &["--rootfs", "/", "--", "true"], "host's root"),
        sb(Nothing, &["--rootfs", &rootfs], "no command"),
        sb(Nothing, &["--rootfs", &rootfs, "--", ""], "no command"),
        sb(Root, &["--rootfs", &rootfs, "--", "/no/such/cmd"], "`/no/such/cmd` not found"),
        sb(Root, &["--rootfs", &rootfs, "--", "no-such-cmd"], "`no-such-cmd` not found"),
        sb(Root, &["--rootfs", &rootfs, "--", "/proc"], "`/proc` not found"),
        sb(Nothing, &["--rootfs", &rootfs, "--unshare", "pid,bogus", "--", "true"], "bogus"),
        sb(Nothing, &["--rootfs", &rootfs, "--unshare=-bogus", "--", "true"], "bogus"),
        sb(Nothing, &["--rootfs", &rootfs, "--unshare", ",", "--", "true"], "--unshare"),
        sb(Nothing, &["--rootfs", &rootfs, "--unshare=-mount", "--", "true"], "--rootfs"),
        sb(Nothing, &["--rootfs", &rootfs, "--timeline", "xml", "--", "true"], "xml"),
        sb(Nothing, &["--rootfs", &rootfs, "--timeline-out", &dir, "--", "true"], &dir),
        sb(Nothing, &["--rootfs", &rootfs, "--timeline-out", &missing, "--", "true"], &missing),
        sb(Nothing, &["--rootfs", &rootfs, "--memory", "0", "--", "true"], "--memory"),
        sb(Nothing, &["--rootfs", &rootfs, "--memory", "1", "--", "true"], "minimum"),
        sb(Nothing, &["--rootfs", &rootfs, "--memory", "lots", "--", "true"], "lots"),
        sb(Nothing, &["--rootfs", &rootfs, "--memory", "99999999999G", "--", "true"], "99999999999G"),
        sb(Nothing, &["--rootfs", &rootfs, "--pids", "0", "--", "true"], "--pids"),
        sb(Nothing, &["--rootfs", &rootfs, "--pids", "99999999", "--", "true"], "99999999"),
        sb(Nothing, &["--rootfs", &rootfs, "--pids=-1", "--", "true"], "-1"),
        sb(Nothing, &["--rootfs", &rootfs, "--cpus=-1", "--", "true"], "--cpus -1"),
        sb(Nothing, &["--rootfs", &rootfs, "--cpus", "0", "--", "true"], "--cpus 0"),
        sb(Nothing, &["--rootfs", &rootfs, "--cpus", "nan", "--", "true"], "--cpus NaN"),
        sb(Nothing, &["--rootfs", &rootfs, "--cpus", "1e300", "--", "true"], "--cpus 1e300"),
        sb(Nothing, &["--rootfs", &rootfs, "--timeout", "0", "--", "true"], "--timeout 0"),
        sb(Nothing, &["--rootfs", &rootfs, "--timeout", "nan", "--", "true"], "--timeout NaN"),
        sb(Nothing, &["--rootfs", &rootfs, "--timeout", "1e19", "--", "true"], "--timeout 1e19"),
        sb(Nothing, &["--rootfs", &rootfs, "--env", "NOEQUALS", "--", "true"], "NOEQUALS"),
        sb(Nothing, &["--rootfs", &rootfs, "--hostname", &long_host, "--", "true"], "--hostname"),
        // ---- sandbox run --bundle: the folder and the file ----
        sb(Nothing, &["--bundle", &missing], &missing),
        sb(Nothing, &["--bundle", &file], "not a directory"),
        sb(Nothing, &["--bundle", &dir], "config.json"),
        sb(Nothing, &["--bundle", &dir, "--rootfs", &rootfs], "--rootfs"),
        sb(Nothing, &["--bundle", &f.bundle_odd("fifo", false)], "not a regular file"),
        sb(Nothing, &["--bundle", &f.bundle_odd("dirconfig", true)], "not a regular file"),
        sb(Nothing, &["--bundle", &f.bundle_text("empty", "")], "EOF"),
        sb(Nothing, &["--bundle", &f.bundle_text("blank", "  \n")], "EOF"),
        sb(Nothing, &["--bundle", &f.bundle_text("cut", "{\"ociVersion\": \"1.0.2\", \"pro")], "EOF"),
        sb(Nothing, &["--bundle", &f.bundle_text("null", "null")], "not a JSON object"),
        sb(Nothing, &["--bundle", &f.bundle_text("array", "[]")], "not a JSON object"),
        sb(Nothing, &["--bundle", &f.bundle_text("nested", &"[".repeat(100_000))], "malformed"),
        sb(Nothing, &["--bundle", &f.bundle_text("dup", "{\"ociVersion\": \"1\", \"ociVersion\": \"2\"}")], "duplicate field `ociVersion`"),
        // ---- config.json: wrong types ----
        oci("args-string", |c| c["process"]["args"] = json!("true"), "expected a sequence"),
        oci("uid-string", |c| c["process"]["user"]["uid"] = json!("0"), "expected u32"),
        oci("uid-negative", |c| c["process"]["user"]["uid"] = json!(-1), "-1"),
        oci("root-number", |c| c["root"]["path"] = json!(5), "expected path string"),
        oci("ns-number", |c| c["linux"]["namespaces"][0]["type"] = json!(1), "malformed config"),
        oci("memory-string", |c| c["linux"]["resources"] = json!({"memory": {"limit": "64M"}}), "expected i64"),
        oci("terminal-string", |c| c["process"]["terminal"] = json!("no"), "expected a boolean"),
        // ---- config.json: missing and unknown fields ----
        oci("no-root", |c| drop(c.as_object_mut().unwrap().remove("root")), "missing field `root`"),
        oci("no-process", |c| drop(c.as_object_mut().unwrap().remove("process")), "missing field `process`"),
        oci("no-version", |c| drop(c.as_object_mut().unwrap().remove("ociVersion")), "missing field `ociVersion`"),
        oci("no-args", |c| drop(c["process"].as_object_mut().unwrap().remove("args")), "missing field `process.args`"),
        oci("no-cwd", |c| drop(c["process"].as_object_mut().unwrap().remove("cwd")), "missing field `cwd`"),
        oci("unknown-top", |c| c["bogusField"] = json!(1), "bogusField"),
        oci("unknown-process", |c| c["process"]["bogus"] = json!(true), "bogus"),
        oci("unknown-linux", |c| c["linux"]["intelRdt"] = json!({"closID": "x"}), "unsupported field `linux.intelRdt`"),
        // ---- config.json: wrong values ----
        oci("ns-bogus", |c| c["linux"]["namespaces"][0]["type"] = json!("bogus"), "bogus"),
        oci("ns-path", |c| c["linux"]["namespaces"][0]["path"] = json!("/proc/1/ns/pid"), "path"),
        oci("cwd-relative", |c| c["process"]["cwd"] = json!("rel"), "`rel`"),
        oci("args-empty", |c| c["process"]["args"] = json!([]), "process.args"),
        oci("args-empty-string", |c| c["process"]["args"] = json!([""]), "no command"),
        oci("arg-nul", |c| c["process"]["args"] = json!(["tr\u{0}ue"]), "NUL"),
        oci("root-empty", |c| c["root"]["path"] = json!(""), "root.path"),
        oci("root-slash", |c| c["root"]["path"] = json!("/"), "host's root"),
        oci("root-missing", |c| c["root"]["path"] = json!("no-such-rootfs"), "no-such-rootfs"),
        oci("terminal", |c| c["process"]["terminal"] = json!(true), "terminal"),
        oci("rlimit-unknown", |c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]), "RLIMIT_BOGUS"),
        oci("rlimit-soft", |c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 100}]), "RLIMIT_NOFILE"),
        oci("cap-unknown", |c| c["process"]["capabilities"] = json!({"bounding": ["CAP_BOGUS"]}), "CAP_BOGUS"),
        oci("memory-negative", |c| c["linux"]["resources"] = json!({"memory": {"limit": -5}}), "-5"),
        oci("memory-tiny", |c| c["linux"]["resources"] = json!({"memory": {"limit": 1}}), "memory.limit"),
        oci("pids-huge", |c| c["linux"]["resources"] = json!({"pids": {"limit": i64::MAX}}), "9223372036854775807"),
        oci("cpu-period-0", |c| c["linux"]["resources"] = json!({"cpu": {"quota": 50000, "period": 0}}), "period 0"),
        oci("cpu-quota-1", |c| c["linux"]["resources"] = json!({"cpu": {"quota": 1}}), "quota 1"),
        oci("devices-access", |c| c["linux"]["resources"] = json!({"devices": [{"allow": true, "access": "rwx"}]}), "access `rwx`"),
        oci("device-outside-dev", |c| c["linux"]["devices"] = json!([{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}]), "not a path below /dev"),
        oci("seccomp-syscall", |c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}), "unknown system call `no_such_call`"),
        oci("seccomp-arch", |c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}), "SCMP_ARCH_VAX"),
        oci("seccomp-foreign-arch", |c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}), "not supported"),
        oci("seccomp-notify", |c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"}), "SCMP_ACT_NOTIFY"),
        oci("sysctl-host", |c| c["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/x"}), "not namespaced"),
        oci("netns-missing", |c| c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "network", "path": "/nonexistent/netns"}]), "/nonexistent/netns"),
        oci("uidmap-no-userns", |c| c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]), "user namespace"),
        oci("hostname-long", |c| c["hostname"] = json!("h".repeat(100)), "hostname"),
        oci("mount-relative", |c| c["mounts"] = json!([{"destination": "rel", "type": "tmpfs", "source": "tmpfs"}]), "rel"),
        oci("mount-dotdot", |c| c["mounts"] = json!([{"destination": "/../../etc", "type": "tmpfs", "source": "tmpfs"}]), "/../../etc"),
        oci("bind-no-source", |c| c["mounts"] = json!([{"destination": "/mnt", "type": "bind", "options": ["bind"]}]), "no source"),
        oci("bind-missing", |c| c["mounts"] = json!([{"destination": "/mnt", "type": "bind", "source": "/no/such/source", "options": ["bind"]}]), "/no/such/source"),
        oci_root("fstype-bogus", |c| c["mounts"] = json!([{"destination": "/mnt", "type": "nosuchfs", "source": "x"}]), "nosuchfs"),
        oci_root("cwd-missing", |c| c["process"]["cwd"] = json!("/no/such/dir"), "/no/such/dir"),
        // ---- bootlab report ----
        c(Nothing, &["report", &missing], &missing),
        c(Nothing, &["report", &dir], "is a directory"),
        c(Nothing, &["report", "/dev/null"], "not a regular file"),
        c(Nothing, &["report", &empty], &empty),
        c(Nothing, &["report", &json_file], &json_file),
        c(Nothing, &["report", &f.write("results/array.json", b"[1, 2]")], "array.json"),
        c(Nothing, &["report", &f.write("results/other.json", b"{\"not\": 1}")], "not a bootlab results.json"),
        c(Nothing, &["report", &f.write("results/ok.json", b"{}"), "--out", &file], &file),
        c(Nothing, &["report"], "RESULTS"),
        c(Nothing, &["report", "--compare", &good], "--compare"),
        c(Nothing, &["report", "--compare", &good, &cut, "--out", &dir], "cut short"),
        c(Nothing, &["report", "--compare", &good, &v2, "--out", &dir], "compare files of one version"),
        c(Nothing, &["report", "--compare", &good, &odd, "--out", &dir], "unknown runtime \"qemu-pc-nonesuch\""),
        c(Nothing, &["report", "--compare", &good, &missing, "--out", &dir], &missing),
        c(Nothing, &["report", &good, "--compare", &good, &good], "cannot be used with"),
        // ---- bootlab bench (all refused before anything runs) ----
        bench(&["--runs", "0"], "--runs"),
        bench(&["--runs", "many"], "many"),
        bench(&["--warmup", "0"], "--warmup"),
        bench(&["--concurrency", "0"], "--concurrency"),
        bench(&["--concurrency", "1000"], "1000"),
        bench(&["--runtimes", "bogus"], "bogus"),
        bench(&["--load", "100000"], "--load 100000 is more than 4x the"),
        bench(&["--load", "-1"], "-1"),
        bench(&["--seqread", "0"], "--seqread"),
        bench(&["--seqread", "100000"], "100000"),
        bench(&["--runtimes", "runc,", "--out-root", &dir], "\"\""),
        bench(&["--name", "a/b"], "a/b"),
        bench(&["--name", "../x"], "../x"),
        bench(&["--runtimes", "nope"], "known: bootlab-vm-lab"),
        bench(&["--name", ""], "--name"),
        bench(&["--name", ".."], "--name"),
        bench(&["--images", &missing], &missing),
        bench(&["--images", &file], &file),
        bench(&["--out-root", &file], &file),
        bench(&["--lab-elf", &missing, "--out-root", &dir], &missing),
        bench(&["--lab-elf", &dir, "--out-root", &dir], "is a directory"),
        bench(&["--lab-elf", &empty, "--out-root", &dir], "empty"),
        bench(&["--lab-elf", &f.p("aarch64.elf"), "--out-root", &dir], "AArch64"),
        bench(&["--firecracker", &missing, "--out-root", &dir], "--firecracker"),
        bench(&["--firecracker", &dir, "--out-root", &dir], "is a directory"),
        // ---- bootlab images build (all refused before the build script runs) ----
        c(Nothing, &["images", "build", "firmware"], "firmware"),
        c(Nothing, &["images", "build", "--out", &file], &file),
        c(Nothing, &["images", "build", "--out", &format!("{file}/sub")], &file),
        c(Nothing, &["bogus-command"], "bogus-command"),
        // ---- bootlab oci (runc's command line; exit status 1 as runc's) ----
        c(Nothing, &["oci", "--root", &state_root, "state", "nope"], "container `nope` does not exist"),
        c(Nothing, &["oci", "--root", &state_root, "start", "nope"], "container `nope` does not exist"),
        c(Nothing, &["oci", "--root", &state_root, "delete", "nope"], "container `nope` does not exist"),
        c(Nothing, &["oci", "--root", &state_root, "kill", "nope"], "container `nope` does not exist"),
        c(Nothing, &["oci", "--root", &state_root, "state", "../x"], "invalid container ID `../x`"),
        c(Nothing, &["oci", "--root", &state_root, "create", "--bundle", &dir, "a/b"], "invalid container ID `a/b`"),
        c(Nothing, &["oci", "--root", &state_root, "kill", "nope", "SIGBOGUS"], "unknown signal `SIGBOGUS`"),
        c(Nothing, &["oci", "--root", &state_root, "kill", "nope", "65"], "signal 65"),
        c(Nothing, &["oci", "--root", &state_root, "state", "broken"], "malformed"),
        c(Nothing, &["oci", "--root", &state_root, "create", "--bundle", &missing, "m"], &missing),
        c(Nothing, &["oci", "--root", &state_root, "create", "--bundle", &dir, "m"], "config.json"),
        c(Nothing, &["oci", "--root", &state_root, "create", "--console-socket", &file, "--bundle", &dir, "m"], "not a socket"),
        c(Nothing, &["oci", "--root", &file, "state", "x"], "a-file"),
        c(Nothing, &["oci", "--systemd-cgroup", "list"], "--systemd-cgroup is not supported"),
        c(Nothing, &["oci", "--log-format", "xml", "list"], "xml"),
        c(Nothing, &["oci"], "no command given"),
        c(Root, &["oci", "--root", &foreign_root, "create", "--bundle", &f.bundle("oci-foreign", |_| {}), "x"], "owned by uid 65534"),
    ];
    if let Some(vmlinux) = &f.vmlinux {
        let real = std::fs::read(vmlinux).unwrap();
        for at in [64, 4096, 1 << 20, real.len() / 2, real.len() - 1] {
            let path = f.write(&format!("vmlinux-trunc-{at}"), &real[..at]);
            rows.push(vm(Vmlinux, &["--kernel", &path], "truncated"));
        }
        let v = vmlinux.display().to_string();
        rows.push(vm(Vmlinux, &["--kernel", &v, "--mem", "8"], "8 MiB"));
        rows.push(vm(Vmlinux, &["--kernel", &v, "--mem", "64", "--initrd", &initrd_100m], &initrd_100m));
    }
    // Real kernels and firmware of other architectures, where Debian's QEMU has them.
    for (path, arch) in [
        ("/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.elf", "RISC-V"),
        ("/usr/share/qemu/s390-ccw.img", "s390"),
        ("/usr/share/qemu/openbios-ppc", "PowerPC"),
    ] {
        if Path::new(path).is_file() {
            rows.push(vm(Kvm, &["--kernel", path], arch));
        }
    }
    rows
}

/// Checks one row's outcome; returns what is wrong.
fn check(case: &Case, out: &Output) -> Result<(), String> {
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if err.contains("panicked") || stdout.contains("panicked") {
        return Err(format!("panicked: {err}"));
    }
    if out.status.code() != Some(1) {
        return Err(format!("exit {:?} (want 1); stderr: {err}", out.status));
    }
    if !stdout.is_empty() {
        return Err(format!("wrote to stdout: {stdout}"));
    }
    let lines: Vec<&str> = err.lines().collect();
    let first = lines.first().copied().unwrap_or_default();
    let message = if first.starts_with("bootlab: error: ") {
        if lines.len() != 1 {
            return Err(format!("{} lines on stderr: {err}", lines.len()));
        }
        first.to_owned()
    } else if first.starts_with("error: ") {
        // clap: "error: MESSAGE", where a message ending in ':' lists what it means on
        // indented lines ("  <RESULTS>"), then only clap's hints.
        let listed = if first.ends_with(':') {
            lines[1..]
                .iter()
                .take_while(|l| l.starts_with("  ") && !l.starts_with("  tip: "))
                .count()
        } else {
            0
        };
        let hint = |l: &&str| {
            l.is_empty()
                || l.starts_with("  [possible values: ")
                || l.starts_with("  tip: ")
                || l.starts_with("Usage: ")
                || *l == "For more information, try '--help'."
        };
        if let Some(extra) = lines[1 + listed..].iter().find(|l| !hint(l)) {
            return Err(format!("clap error with an extra line {extra:?}: {err}"));
        }
        lines[..1 + listed].join(" ")
    } else {
        return Err(format!("not an error line: {err:?}"));
    };
    if !message.contains(&case.needle) {
        return Err(format!("{:?} not in the error: {message}", case.needle));
    }
    Ok(())
}

/// Runs the binary with a wall-clock limit (a row that boots or runs something by
/// mistake must fail, not hang the suite).
fn run(args: &[String], env: &[(&str, String)], uid: Option<u32>, images: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootlab"));
    if let Some(id) = uid {
        std::os::unix::process::CommandExt::uid(&mut cmd, id);
        std::os::unix::process::CommandExt::gid(&mut cmd, id);
    }
    let mut child = cmd
        .args(args)
        .env("BOOTLAB_IMAGES", images)
        .env_remove("BOOTLAB_SPAWN_NS")
        .env_remove("RUST_BACKTRACE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running bootlab");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait_with_output().unwrap()
}

/// Saves the lab guest at its snapshot point into `dir/snap-base`; checks that it
/// restores (the base every snapshot row damages is valid).
fn lab_snapshot(dir: &Path, images: &Path) -> PathBuf {
    let snap = dir.join("snap-base");
    let s = snap.display().to_string();
    let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let out = run(
        &args(&[
            "vm",
            "run",
            "--guest",
            "lab",
            "--snapshot-at",
            "snapshot",
            "--snapshot-out",
            &s,
        ]),
        &[],
        None,
        images,
    );
    assert_eq!(out.status.code(), Some(0), "lab snapshot: {out:?}");
    let out = run(&args(&["vm", "restore", &s]), &[], None, images);
    assert_eq!(out.status.code(), Some(0), "lab restore: {out:?}");
    snap
}

const BUSYBOX: &str = "/bin/busybox";

/// A busybox rootfs: /bin/busybox with `true` and `sh`, and the mount points.
fn tiny_rootfs(root: &Path) {
    for d in ["bin", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    if Path::new(BUSYBOX).exists() {
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for applet in ["true", "sh"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
}

#[test]
fn every_bad_input_gets_one_clear_line_and_exit_1() {
    // Removed when the test ends, also when it fails.
    let tmp =
        test_support::TempDir::new_in(Some(Path::new(env!("CARGO_TARGET_TMPDIR"))), "bad-input")
            .unwrap();
    let dir = tmp.to_path_buf();
    let images = std::env::var_os("BOOTLAB_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out"));
    let vmlinux = Some(images.join("vmlinux")).filter(|p| p.is_file());
    let snapshot = kvm_usable().then(|| lab_snapshot(&dir, &images));
    let busy_tap = is_root().then(|| {
        let name = format!("blbusy{}", std::process::id() % 100_000);
        vmm::tap::Tap::open(Some(&name)).expect("a tap to hold")
    });
    let f = Fixture {
        rootfs: dir.join("rootfs"),
        vmlinux,
        dir,
        snapshot,
        busy_tap,
    };
    tiny_rootfs(&f.rootfs);
    let have = |n: Needs| match n {
        Nothing => true,
        Kvm => kvm_usable(),
        Root => is_root() && Path::new(BUSYBOX).exists(),
        Vmlinux => kvm_usable() && f.vmlinux.is_some(),
    };
    let missing: Vec<Needs> = [Kvm, Root, Vmlinux]
        .into_iter()
        .filter(|n| !have(*n))
        .collect();
    if !missing.is_empty() {
        let msg = format!("bad-input rows needing {missing:?} are skipped (no /dev/kvm, not root, no busybox or no guest-images/out/vmlinux)");
        test_support::skip("every_bad_input_gets_one_clear_line_and_exit_1", &msg);
    }

    // The fixture is valid where it should be: the base bundle and the lab ELF run.
    if have(Root) {
        let ok = f.bundle("base", |_| {});
        let out = run(
            &["sandbox".into(), "run".into(), "--bundle".into(), ok],
            &[],
            None,
            &f.dir,
        );
        assert_eq!(out.status.code(), Some(0), "base bundle: {out:?}");
    }
    if have(Kvm) {
        let lab = f.write("lab-ok.elf", vmm::lab::ELF);
        let out = run(
            &["vm".into(), "run".into(), "--kernel".into(), lab],
            &[],
            None,
            &f.dir,
        );
        assert_eq!(out.status.code(), Some(0), "lab ELF: {out:?}");
    }

    let rows = cases(&f);
    let (mut ran, mut skipped, mut failures) = (0, 0, Vec::new());
    let images_empty = f.dir.join("images-empty");
    for case in &rows {
        if !have(case.needs) {
            skipped += 1;
            continue;
        }
        ran += 1;
        let out = run(&case.args, &case.env, case.uid, &images_empty);
        if let Err(why) = check(case, &out) {
            failures.push(format!("bootlab {}: {why}", case.args.join(" ")));
        }
    }
    let per = |cmd: &str| rows.iter().filter(|r| r.args[0] == cmd).count();
    eprintln!(
        "bad input: {} rows ({} vm, {} sandbox, {} bench, {} report, {} images, {} oci), {ran} run, {skipped} skipped, {} failed",
        rows.len(),
        per("vm"),
        per("sandbox"),
        per("bench"),
        per("report"),
        per("images"),
        per("oci"),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
