//! VM-side peers booting the same guests as our monitor: QEMU `-M microvm` and
//! Firecracker, each with the lab guest ELF (through its PVH note) and, as the
//! `-linux` rows, with the Linux kernel, initramfs and command line `bootlab vm run
//! --guest linux` uses on this host. Their phases come from the guest's console
//! lines; their first KVM_RUN cannot be seen from outside, so `vmm` and `kernel` are
//! reported merged (`vmm+kernel`). The `-disk` rows boot the same kernel with its
//! root on the images' rootfs.ext4 over virtio-blk instead of an initramfs, as
//! `bootlab vm run --guest linux --disk` does. Firecracker also restores the lab
//! guest from its own snapshot (`firecracker-lab-restore`), driven through its API
//! socket. The peers that run firmware are in firmware.rs.

use super::{
    kvm_present, version_of, which, RunCtx, Runner, LINUX_EMULATED_TIMEOUT_S,
    LINUX_HARDWARE_TIMEOUT_S,
};
use crate::exec::{ApiCall, ConsoleMap, ExitExpect, RunSpec};
use crate::results::RuntimeKind;
use serde_json::json;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use timeline::event;
use timeline::marker::{Marker, EXIT_PORT};

/// QEMU pauses (does not exit) on an emulation failure: every run is bounded.
const VM_PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds on a Linux boot, as our monitor gets them.
const LINUX_HARDWARE_TIMEOUT: Duration = Duration::from_secs(LINUX_HARDWARE_TIMEOUT_S);
const LINUX_EMULATED_TIMEOUT: Duration = Duration::from_secs(LINUX_EMULATED_TIMEOUT_S);

/// What the `-linux` rows boot: the files and command line of `bootlab vm run
/// --guest linux` on this host, so that every monitor runs the same guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxBoot {
    pub kernel: PathBuf,
    /// The initramfs (not used with a `root_disk`).
    pub initrd: PathBuf,
    /// The whole command line (with a `root_disk`: its `root=` parameters too).
    pub cmdline: String,
    /// The root file system's image, attached read-only as the first virtio-blk
    /// device (/dev/vda), in place of the initramfs. Read-only for every monitor,
    /// so that all runs (the concurrent ones of the sweep too) share the one file
    /// and none can change what the next one boots.
    pub root_disk: Option<PathBuf>,
    /// Values the workload must report (`timeline::measure`), e.g. `seqread.ns`.
    pub measures: Vec<&'static str>,
    /// The guest must see a GenuineIntel CPU (the emulated-KVM configuration).
    pub intel_vendor: bool,
    /// The host's /dev/kvm is emulated: a boot takes about a minute.
    pub emulated: bool,
}

impl LinuxBoot {
    pub(super) fn check(&self) -> Result<(), String> {
        let root = match &self.root_disk {
            Some(disk) => ("root disk", disk),
            None => ("initramfs", &self.initrd),
        };
        for (what, f) in [("kernel", &self.kernel), root] {
            if !f.is_file() {
                return Err(format!("Linux guest {what} {} not built", f.display()));
            }
        }
        Ok(())
    }

    pub(super) fn timeout(&self) -> Duration {
        if self.emulated {
            LINUX_EMULATED_TIMEOUT
        } else {
            LINUX_HARDWARE_TIMEOUT
        }
    }
}

/// What a VM peer's run must show, for the lab guest (`linux` None) or a Linux
/// guest: the three console markers, the Linux workload's measurements, and the
/// Linux boot's timeout.
fn expect_guest(mut spec: RunSpec, linux: Option<&LinuxBoot>) -> RunSpec {
    spec.required = vec![event::INIT_START, event::EXEC, event::DONE];
    spec.required_measures = linux.map_or_else(Vec::new, |l| l.measures.clone());
    spec.timeout = linux.map_or(VM_PEER_TIMEOUT, LinuxBoot::timeout);
    spec
}

/// Guest memory given to every VM peer, MiB (same as our monitor's default).
pub(super) const GUEST_MEM_MIB: u32 = 128;

const MERGED_NOTE: &str = "first KVM_RUN is not observable from outside: vmm and kernel are \
                           reported merged (vmm+kernel); init-start/exec/done = console line arrival";

fn missing_kernel() -> String {
    "no lab guest ELF to boot (pass --lab-elf PATH or put lab.elf in the images folder)".into()
}

/// `qemu-system-x86_64 -M microvm` booting the lab guest, ended by isa-debug-exit.
/// With `linux` set it is the `qemu-microvm-linux` row.
#[derive(Debug, Clone)]
pub struct QemuMicrovm {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub linux: Option<LinuxBoot>,
}

impl QemuMicrovm {
    pub fn new(kernel: Option<PathBuf>) -> Self {
        QemuMicrovm {
            bin: which("qemu-system-x86_64"),
            kernel,
            linux: None,
        }
    }

    /// The `qemu-microvm-linux` row (`qemu-microvm-disk` with a root disk).
    pub fn linux(linux: LinuxBoot) -> Self {
        QemuMicrovm {
            linux: Some(linux),
            ..QemuMicrovm::new(None)
        }
    }

    /// The `-M` value. With a root disk ACPI is off: QEMU 7.2 adds the
    /// `virtio_mmio.device=` entries the guest finds its disk by to the command line
    /// only then (with ACPI it describes the devices in ACPI tables, which our
    /// guest kernel, built without ACPI, never reads: without the entries it found
    /// no root and the row timed out in the lane).
    fn machine(&self) -> &'static str {
        match &self.linux {
            Some(l) if l.root_disk.is_some() => "microvm,acpi=off",
            _ => "microvm",
        }
    }
}

impl Runner for QemuMicrovm {
    fn name(&self) -> &str {
        match &self.linux {
            Some(l) if l.root_disk.is_some() => "qemu-microvm-disk",
            Some(_) => "qemu-microvm-linux",
            None => "qemu-microvm",
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn check(&self) -> Result<(), String> {
        super::qemu_found(self.bin.as_deref())?;
        kvm_present()?;
        if let Some(linux) = &self.linux {
            return linux.check();
        }
        match &self.kernel {
            Some(k) if k.is_file() => Ok(()),
            Some(k) => Err(format!("lab guest ELF {} not found", k.display())),
            None => Err(missing_kernel()),
        }
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let bin = self
            .bin
            .clone()
            .unwrap_or_else(|| "qemu-system-x86_64".into());
        let cpu = match &self.linux {
            Some(l) if l.intel_vendor => "host,-arch-capabilities,vendor=GenuineIntel",
            _ => "host,-arch-capabilities",
        };
        let mut spec = RunSpec::new(bin, ConsoleMap::Vm)
            .args(["-M", self.machine(), "-enable-kvm", "-cpu", cpu, "-m"])
            .arg(GUEST_MEM_MIB.to_string())
            .args([
                "-nographic",
                "-no-reboot",
                "-nodefaults",
                "-serial",
                "stdio",
                "-kernel",
            ]);
        spec = match &self.linux {
            Some(l) => {
                let spec = spec.arg(&l.kernel);
                let spec = match &l.root_disk {
                    // On the microvm machine a virtio-blk-device sits on a
                    // virtio-mmio transport, which QEMU adds to the command line.
                    Some(disk) => spec
                        .arg("-drive")
                        .arg(qemu_root_drive(disk))
                        .args(["-device", "virtio-blk-device,drive=root"]),
                    None => spec.arg("-initrd").arg(&l.initrd),
                };
                spec.arg("-append").arg(&l.cmdline)
            }
            None => spec.arg(self.kernel.clone().unwrap_or_default()),
        };
        spec = spec
            .args(["-device"])
            .arg(format!("isa-debug-exit,iobase={EXIT_PORT:#x}"));
        // isa-debug-exit ends QEMU with (status << 1) | 1; both guests write 0.
        spec.expect = ExitExpect::Code(1);
        expect_guest(spec, self.linux.as_ref())
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            MERGED_NOTE.into(),
            "-cpu host,-arch-capabilities (else QEMU fails to set MSR 0x10a on PVM hosts)".into(),
            "not firmware-free: QEMU 7.2's microvm always loads its BIOS, qboot (with \
             `-bios /nonexistent` it refuses to start), which loads the `-kernel` and jumps to \
             it; qboot's time, the kernel's loading included, is inside vmm+kernel here \
             and is its own phase in qemu-microvm-qboot"
                .into(),
        ];
        if self.linux.as_ref().is_some_and(|l| l.root_disk.is_some()) {
            notes.push(
                "root disk: `-drive if=none,format=raw,readonly=on` behind a \
                 virtio-blk-device (virtio-mmio), QEMU's defaults otherwise (its \
                 ioeventfd on: QEMU's main-loop thread serves the queue); `-M \
                 microvm,acpi=off`, else QEMU 7.2 puts no `virtio_mmio.device=` on the \
                 command line and the guest kernel (no ACPI) finds no disk"
                    .into(),
            );
        }
        notes
    }
}

/// QEMU's `-drive` value for a read-only raw root disk named `root`. QEMU splits
/// the value at commas: one in the path is doubled, as QEMU's option syntax wants.
fn qemu_root_drive(disk: &Path) -> String {
    let path = disk.to_string_lossy().replace(',', ",,");
    format!("id=root,file={path},format=raw,if=none,readonly=on")
}

/// Firecracker in config-file mode (`--no-api --config-file`, boot timer on). With
/// `linux` set it is the `firecracker-linux` row.
#[derive(Debug, Clone)]
pub struct Firecracker {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub linux: Option<LinuxBoot>,
    config: Option<PathBuf>,
}

impl Firecracker {
    /// `bin` given explicitly (`--firecracker PATH`) or looked up on PATH.
    pub fn new(bin: Option<PathBuf>, kernel: Option<PathBuf>) -> Self {
        Firecracker {
            bin: bin.or_else(|| which("firecracker")),
            kernel,
            linux: None,
            config: None,
        }
    }

    /// The `firecracker-linux` row (`firecracker-linux-disk` with a root disk).
    pub fn linux(bin: Option<PathBuf>, linux: LinuxBoot) -> Self {
        Firecracker {
            linux: Some(linux),
            ..Firecracker::new(bin, None)
        }
    }
}

/// The Firecracker VM config for the Linux guest: its kernel, initramfs and command
/// line, one vCPU, no network; with a root disk that drive (read-only, Firecracker's
/// root device: it adds `root=/dev/vda ro` to the command line, which already says
/// so) in place of the initramfs.
pub fn firecracker_linux_config(linux: &LinuxBoot) -> serde_json::Value {
    match &linux.root_disk {
        Some(disk) => json!({
            "boot-source": {
                "kernel_image_path": linux.kernel,
                "boot_args": linux.cmdline
            },
            "drives": [{
                "drive_id": "root",
                "path_on_host": disk,
                "is_root_device": true,
                "is_read_only": true
            }],
            "machine-config": { "vcpu_count": 1, "mem_size_mib": GUEST_MEM_MIB }
        }),
        None => json!({
            "boot-source": {
                "kernel_image_path": linux.kernel,
                "initrd_path": linux.initrd,
                "boot_args": linux.cmdline
            },
            "drives": [],
            "machine-config": { "vcpu_count": 1, "mem_size_mib": GUEST_MEM_MIB }
        }),
    }
}

/// The lab guest's command line under Firecracker.
const LAB_ARGS: &str = "console=ttyS0 reboot=k panic=1";

/// The lab guest's switch that makes it wait at its snapshot point for a byte on
/// COM1 (vmm/lab-guest/lab.rs); it must come first on the command line.
pub const LAB_HOLD_SWITCH: &str = "bootlab.hold";

/// The Firecracker VM config: the lab guest, one vCPU, no drives, no network.
pub fn firecracker_config(kernel: &Path) -> serde_json::Value {
    lab_config(kernel, LAB_ARGS)
}

fn lab_config(kernel: &Path, boot_args: &str) -> serde_json::Value {
    json!({
        "boot-source": {
            "kernel_image_path": kernel,
            "boot_args": boot_args
        },
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": GUEST_MEM_MIB }
    })
}

impl Runner for Firecracker {
    fn name(&self) -> &str {
        match &self.linux {
            Some(l) if l.root_disk.is_some() => "firecracker-linux-disk",
            Some(_) => "firecracker-linux",
            None => "firecracker",
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn check(&self) -> Result<(), String> {
        self.bin.as_ref().ok_or_else(|| {
            "firecracker not found on PATH (pass --firecracker PATH); not packaged in Debian"
                .to_string()
        })?;
        kvm_present()?;
        if let Some(linux) = &self.linux {
            return linux.check();
        }
        match &self.kernel {
            Some(k) if k.is_file() => Ok(()),
            _ => Err(missing_kernel()),
        }
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let canonical =
            |p: &Path| std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()));
        let (path, config) = match &self.linux {
            Some(l) => {
                let l = LinuxBoot {
                    kernel: canonical(&l.kernel)?,
                    initrd: match l.root_disk {
                        Some(_) => l.initrd.clone(),
                        None => canonical(&l.initrd)?,
                    },
                    root_disk: l.root_disk.as_deref().map(canonical).transpose()?,
                    ..l.clone()
                };
                (
                    scratch.join(format!("{}.json", self.name())),
                    firecracker_linux_config(&l),
                )
            }
            None => {
                let kernel = self.kernel.clone().ok_or_else(missing_kernel)?;
                (
                    scratch.join("firecracker.json"),
                    firecracker_config(&canonical(&kernel)?),
                )
            }
        };
        std::fs::write(&path, config.to_string())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.config = Some(path);
        Ok(())
    }

    fn spec(&self, _ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| "firecracker".into());
        let mut spec = RunSpec::new(bin, ConsoleMap::Vm)
            .args([
                "--no-api",
                "--boot-timer",
                "--level",
                "Off",
                "--config-file",
            ])
            .arg(self.config.clone().unwrap_or_default());
        // Firecracker has no exit port: the run ends at the guest's `done` line.
        spec.kill_on = Some(event::DONE);
        spec.expect = ExitExpect::Any;
        expect_guest(spec, self.linux.as_ref())
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![
            MERGED_NOTE.into(),
            "no exit port: killed at the guest's `done` line, so teardown is the kill".into(),
            super::NO_FIRMWARE_NOTE.into(),
            "logging off (`--level Off`): its log lines share stdout with the serial console \
             and, written from its main thread while the guest prints, cut a marker line in \
             two (3 of 100 runs lost `init-start` that way before)"
                .into(),
        ]
    }
}

/// Firecracker restoring the lab guest from a Full snapshot of its own
/// (`firecracker-lab-restore`). Firecracker cannot save a machine at a port write,
/// so the snapshot is taken in `prepare` with the guest held at its snapshot point
/// ([`LAB_HOLD_SWITCH`]): paused through the API (PATCH /vm) once the `snapshot`
/// line arrived, saved (PUT /snapshot/create), killed. Each run starts
/// `firecracker --api-sock S`, sends PUT /snapshot/load with `resume_vm` and writes
/// the byte that releases the guest on Firecracker's stdin, its serial input.
#[derive(Debug, Clone)]
pub struct FirecrackerRestore {
    pub bin: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    /// The folder holding Firecracker's `state` and `mem` files, once prepared.
    pub snapshot: Option<PathBuf>,
}

/// What releases the held guest after a load (any byte does).
const RELEASE: &[u8] = b"\n";

impl FirecrackerRestore {
    /// `bin` given explicitly (`--firecracker PATH`) or looked up on PATH.
    pub fn new(bin: Option<PathBuf>, kernel: Option<PathBuf>) -> Self {
        FirecrackerRestore {
            bin: bin.or_else(|| which("firecracker")),
            kernel,
            snapshot: None,
        }
    }

    /// Boots the held lab guest with `config` and saves it into `dir` once its
    /// `snapshot` line arrived; Firecracker is killed (by its pid) either way.
    fn take(bin: &Path, config: &Path, dir: &Path) -> Result<(), String> {
        let sock = dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let mut child = Command::new(bin)
            .arg("--api-sock")
            .arg(&sock)
            .arg("--config-file")
            .arg(config)
            .args(["--level", "Off"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let deadline = Instant::now() + VM_PEER_TIMEOUT;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(m @ (Marker::Snapshot | Marker::Exec)) = Marker::parse_line(&line) {
                        let _ = tx.send(m);
                    }
                }
            });
        }
        let saved = rx
            .recv_timeout(VM_PEER_TIMEOUT)
            .ok()
            .filter(|m| *m == Marker::Snapshot)
            .ok_or_else(|| {
                "the lab guest never reached its snapshot point under Firecracker".to_string()
            })
            .and_then(|_| {
                let pause = crate::api::request("PATCH", "/vm", &json!({"state": "Paused"}));
                crate::api::call(&sock, &pause, deadline, &|| false)?;
                let create = crate::api::request(
                    "PUT",
                    "/snapshot/create",
                    &json!({
                        "snapshot_type": "Full",
                        "snapshot_path": dir.join("state"),
                        "mem_file_path": dir.join("mem")
                    }),
                );
                crate::api::call(&sock, &create, deadline, &|| false).map(drop)
            })
            .and_then(|()| {
                // A held guest prints nothing more until it is released.
                if rx.try_iter().any(|m| m == Marker::Exec) {
                    return Err(format!(
                        "the lab guest ran past its snapshot point: it does not know \
                         `{LAB_HOLD_SWITCH}` (a lab ELF older than this bootlab?)"
                    ));
                }
                Ok(())
            });
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&sock);
        saved
    }

    /// The request that loads the snapshot in `dir` and resumes the VM.
    pub fn load_request(dir: &Path) -> Vec<u8> {
        crate::api::request(
            "PUT",
            "/snapshot/load",
            &json!({
                "snapshot_path": dir.join("state"),
                "mem_backend": { "backend_type": "File", "backend_path": dir.join("mem") },
                "resume_vm": true
            }),
        )
    }
}

impl Runner for FirecrackerRestore {
    fn name(&self) -> &str {
        "firecracker-lab-restore"
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::RestoredVm
    }

    fn check(&self) -> Result<(), String> {
        Firecracker {
            bin: self.bin.clone(),
            kernel: self.kernel.clone(),
            linux: None,
            config: None,
        }
        .check()
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let bin = self.bin.clone().ok_or("firecracker not found")?;
        let kernel = self.kernel.clone().ok_or_else(missing_kernel)?;
        let kernel =
            std::fs::canonicalize(&kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
        let dir = scratch.join("firecracker-lab-snapshot");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("vm.json");
        let held = lab_config(&kernel, &format!("{LAB_HOLD_SWITCH} {LAB_ARGS}"));
        std::fs::write(&config, held.to_string())
            .map_err(|e| format!("{}: {e}", config.display()))?;
        Self::take(&bin, &config, &dir)?;
        self.snapshot = Some(dir);
        Ok(())
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let bin = self.bin.clone().unwrap_or_else(|| "firecracker".into());
        let socket = ctx.scratch.join(format!("{}-{}.sock", self.name(), ctx.id));
        let dir = self
            .snapshot
            .clone()
            .unwrap_or_else(|| ctx.scratch.join("firecracker-lab-snapshot"));
        let mut spec = RunSpec::new(bin, ConsoleMap::Vm)
            .arg("--api-sock")
            .arg(&socket)
            .args(["--level", "Off"]);
        spec.api = Some(ApiCall {
            socket,
            request: Self::load_request(&dir),
            stdin: RELEASE.to_vec(),
        });
        spec.kill_on = Some(event::DONE);
        spec.expect = ExitExpect::Any;
        spec.required = vec![event::EXEC, event::DONE];
        spec.timeout = VM_PEER_TIMEOUT;
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(self.bin.as_ref()?, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "Firecracker's own Full snapshot of the lab guest, taken once per session: \
             booted with `bootlab.hold` first on its command line the guest waits at its \
             snapshot marker for a COM1 byte; paused (PATCH /vm) after the `snapshot` line \
             arrived, saved (PUT /snapshot/create), killed"
                .into(),
            "each run: `firecracker --api-sock S --level Off`; the harness sends PUT \
             /snapshot/load (resume_vm) as soon as the socket accepts (tried every 50 µs), \
             waits for the answer and writes one byte on Firecracker's stdin (the serial \
             input) to release the guest"
                .into(),
            "first KVM_RUN is not observable from outside: restore ends at the guest's `exec` \
             line, so it also holds the resume, the release byte and the guest's path to that \
             line (ours count them in process); exec/done = console line arrival"
                .into(),
            "no exit port: killed at the guest's `done` line, so teardown is the kill; \
             logging off (its log lines share stdout with the console)"
                .into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RunCtx<'static> {
        RunCtx {
            scratch: Path::new("/scratch"),
            id: 3,
        }
    }

    fn linux(emulated: bool) -> LinuxBoot {
        LinuxBoot {
            kernel: "/img/vmlinux".into(),
            initrd: "/img/initramfs.cpio.gz".into(),
            cmdline: "console=ttyS0 reboot=k panic=-1".into(),
            intel_vendor: emulated,
            emulated,
            root_disk: None,
            measures: Vec::new(),
        }
    }

    #[test]
    fn qemu_linux_row_boots_the_same_kernel_initramfs_and_cmdline() {
        let mut q = QemuMicrovm::linux(linux(false));
        q.bin = Some("/usr/bin/qemu-system-x86_64".into());
        assert_eq!(q.name(), "qemu-microvm-linux");
        let s = q.spec(ctx());
        let args: Vec<String> = s
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-kernel"), "/img/vmlinux");
        assert_eq!(after("-initrd"), "/img/initramfs.cpio.gz");
        assert_eq!(after("-append"), "console=ttyS0 reboot=k panic=-1");
        assert_eq!(after("-cpu"), "host,-arch-capabilities");
        assert_eq!(after("-device"), "isa-debug-exit,iobase=0x501");
        assert_eq!(s.expect, ExitExpect::Code(1));
        assert_eq!(s.timeout, LINUX_HARDWARE_TIMEOUT);
        // On an emulated host: the Intel vendor and the long bound.
        let e = QemuMicrovm::linux(linux(true)).spec(ctx());
        assert!(e
            .command_line()
            .contains("-cpu host,-arch-capabilities,vendor=GenuineIntel"));
        assert_eq!(e.timeout, LINUX_EMULATED_TIMEOUT);
        // The lab row is unchanged.
        let lab = QemuMicrovm::new(Some("/r/lab.elf".into()));
        assert_eq!(lab.name(), "qemu-microvm");
        assert!(!lab.spec(ctx()).command_line().contains("-initrd"));
    }

    #[test]
    fn qemu_disk_row_boots_the_same_kernel_from_the_read_only_root_disk() {
        let mut q = QemuMicrovm::linux(LinuxBoot {
            root_disk: Some("/img/rootfs.ext4".into()),
            cmdline: "console=ttyS0 root=/dev/vda ro bootlab.workload=seqread".into(),
            measures: vec!["seqread.ns"],
            ..linux(false)
        });
        q.bin = Some("/usr/bin/qemu-system-x86_64".into());
        assert_eq!(q.name(), "qemu-microvm-disk");
        let s = q.spec(ctx());
        let line = s.command_line();
        assert!(line.contains(" -M microvm,acpi=off "), "{line}");
        assert!(
            line.contains(
                " -kernel /img/vmlinux -drive id=root,file=/img/rootfs.ext4,format=raw,\
                 if=none,readonly=on -device virtio-blk-device,drive=root -append \
                 console=ttyS0 root=/dev/vda ro bootlab.workload=seqread "
            ),
            "{line}"
        );
        assert!(!line.contains("-initrd"), "{line}");
        assert_eq!(s.required_measures, ["seqread.ns"]);
        assert!(q.notes().iter().any(|n| n.contains("readonly=on")));
        // A comma in the path is doubled, as QEMU's option syntax wants.
        assert_eq!(
            qemu_root_drive(Path::new("/a,b/r.ext4")),
            "id=root,file=/a,,b/r.ext4,format=raw,if=none,readonly=on"
        );
        // Without the image the row cannot run, and says which file is missing.
        let missing = LinuxBoot {
            kernel: std::env::current_exe().unwrap(),
            root_disk: Some("/no/rootfs.ext4".into()),
            ..linux(false)
        };
        assert!(missing
            .check()
            .unwrap_err()
            .contains("root disk /no/rootfs.ext4 not built"));
    }

    #[test]
    fn firecracker_disk_row_gives_the_image_as_its_read_only_root_device() {
        let dir = std::env::temp_dir().join(format!("bootlab-fc-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (k, d) = (dir.join("vmlinux"), dir.join("rootfs.ext4"));
        std::fs::write(&k, b"k").unwrap();
        std::fs::write(&d, b"d").unwrap();
        let mut fc = Firecracker::linux(
            Some("/fc".into()),
            LinuxBoot {
                kernel: k.clone(),
                initrd: "/not/used".into(),
                root_disk: Some(d.clone()),
                measures: vec!["seqread.ns"],
                ..linux(false)
            },
        );
        assert_eq!(fc.name(), "firecracker-linux-disk");
        fc.prepare(&dir).unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("firecracker-linux-disk.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["boot-source"].get("initrd_path"), None);
        assert_eq!(
            cfg["drives"],
            json!([{"drive_id": "root", "path_on_host": d, "is_root_device": true,
                    "is_read_only": true}])
        );
        assert_eq!(fc.spec(ctx()).required_measures, ["seqread.ns"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn firecracker_linux_row_writes_a_config_with_the_initramfs() {
        let dir = std::env::temp_dir().join(format!("bootlab-fc-linux-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (k, i) = (dir.join("vmlinux"), dir.join("initramfs.cpio.gz"));
        std::fs::write(&k, b"k").unwrap();
        std::fs::write(&i, b"i").unwrap();
        let mut fc = Firecracker::linux(
            Some("/fc".into()),
            LinuxBoot {
                kernel: k.clone(),
                initrd: i.clone(),
                ..linux(false)
            },
        );
        assert_eq!(fc.name(), "firecracker-linux");
        fc.prepare(&dir).unwrap();
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("firecracker-linux.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["boot-source"]["kernel_image_path"], json!(k));
        assert_eq!(cfg["boot-source"]["initrd_path"], json!(i));
        assert_eq!(
            cfg["boot-source"]["boot_args"],
            "console=ttyS0 reboot=k panic=-1"
        );
        assert_eq!(cfg["machine-config"]["mem_size_mib"], GUEST_MEM_MIB);
        let s = fc.spec(ctx());
        // Its log would share stdout with the console and cut marker lines.
        assert!(s.command_line().contains(" --level Off "));
        assert_eq!(s.kill_on, Some("done"));
        assert_eq!(s.timeout, LINUX_HARDWARE_TIMEOUT);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn firecracker_restore_loads_its_snapshot_through_the_api() {
        let mut fc = FirecrackerRestore::new(Some("/fc".into()), Some("/r/lab.elf".into()));
        assert_eq!(fc.name(), "firecracker-lab-restore");
        assert_eq!(fc.kind(), RuntimeKind::RestoredVm);
        fc.snapshot = Some("/scratch/fc-snap".into());
        let s = fc.spec(ctx());
        assert_eq!(
            s.command_line(),
            "/fc --api-sock /scratch/firecracker-lab-restore-3.sock --level Off"
        );
        let api = s.api.as_ref().expect("an API call");
        assert_eq!(
            api.socket,
            Path::new("/scratch/firecracker-lab-restore-3.sock")
        );
        assert_eq!(api.stdin, b"\n");
        let body = "{\"mem_backend\":{\"backend_path\":\"/scratch/fc-snap/mem\",\
                    \"backend_type\":\"File\"},\"resume_vm\":true,\
                    \"snapshot_path\":\"/scratch/fc-snap/state\"}";
        assert_eq!(
            String::from_utf8(api.request.clone()).unwrap(),
            format!(
                "PUT /snapshot/load HTTP/1.1\r\nHost: localhost\r\n\
                 Accept: application/json\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        );
        assert_eq!(s.kill_on, Some(event::DONE));
        assert_eq!(s.expect, ExitExpect::Any);
        assert_eq!(s.required, [event::EXEC, event::DONE]);
        assert_eq!(s.timeout, VM_PEER_TIMEOUT);
        // Without a binary it is unavailable, with the reason.
        let none = FirecrackerRestore {
            bin: None,
            ..fc.clone()
        };
        assert!(none.check().unwrap_err().contains("firecracker not found"));
        // The held guest's command line starts with the switch.
        let cfg = lab_config(Path::new("/k"), &format!("{LAB_HOLD_SWITCH} {LAB_ARGS}"));
        assert!(cfg["boot-source"]["boot_args"]
            .as_str()
            .unwrap()
            .starts_with("bootlab.hold "));
    }
}
