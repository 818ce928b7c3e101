//! Our runtimes, driven through the `bootlab` CLI itself so that the whole process
//! (argument parsing, set-up, teardown) is measured: `bootlab vm run --guest
//! lab|linux` and `bootlab sandbox run --rootfs R -- /sbin/guest-init hello`. Both
//! write their own timeline (`--timeline-out`), which carries the precise stamps
//! (first KVM_RUN, marker-port exits, the sandbox's execve).

use super::{
    kvm_present, version_of, RunCtx, Runner, Workload, LINUX_EMULATED_TIMEOUT_S,
    LINUX_HARDWARE_TIMEOUT_S,
};
use crate::exec::{ConsoleMap, RunSpec};
use crate::results::RuntimeKind;
use std::path::{Path, PathBuf};
use std::time::Duration;
use timeline::event;

/// Which guest our monitor boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// The tiny lab guest: every phase of the marker protocol in a few instructions.
    Lab,
    /// The Linux kernel + initramfs from guest-images.
    Linux,
}

/// Seconds for a run that should take milliseconds.
const FAST_TIMEOUT_S: u64 = 10;

/// `bootlab vm run --guest ...`.
#[derive(Debug, Clone)]
pub struct BootlabVm {
    pub bin: PathBuf,
    pub guest: Guest,
    /// `--irqchip kernel` (in-kernel PIC/IO-APIC/PIT) instead of the guest's default,
    /// to show what that interrupt controller model costs.
    pub kernel_irqchip: bool,
    /// Host KVM is emulated (PVM): the Linux guest runs its 32-bit configuration,
    /// about a thousand times slower than on hardware KVM.
    pub emulated: bool,
    /// Passed to the child as BOOTLAB_IMAGES.
    pub images: PathBuf,
    /// The Linux guest's root on a virtio-blk disk (the images' rootfs.ext4,
    /// `--disk`) instead of the initramfs.
    pub root_disk: bool,
    /// A whole kernel command line in place of the guest's default (`--cmdline`):
    /// the default's parameters plus a workload's, e.g. `bootlab.workload=seqread`.
    pub cmdline: Option<String>,
    /// Values the workload must report (`timeline::measure`), e.g. `seqread.ns`.
    pub measures: Vec<&'static str>,
}

/// The Linux guest's root disk, in the images folder.
const ROOT_DISK: &str = "rootfs.ext4";

impl BootlabVm {
    fn guest_timeout_s(&self) -> u64 {
        match (self.guest, self.emulated) {
            (Guest::Linux, true) => LINUX_EMULATED_TIMEOUT_S,
            (Guest::Linux, false) => LINUX_HARDWARE_TIMEOUT_S,
            (Guest::Lab, _) => FAST_TIMEOUT_S,
        }
    }
}

impl Runner for BootlabVm {
    fn name(&self) -> &str {
        match (self.guest, self.kernel_irqchip) {
            (Guest::Lab, false) => "bootlab-vm-lab",
            (Guest::Lab, true) => "bootlab-vm-lab-kernel-irqchip",
            (Guest::Linux, _) if self.root_disk => "bootlab-vm-linux-disk",
            (Guest::Linux, _) => "bootlab-vm-linux",
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    fn ours(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), String> {
        kvm_present()?;
        if self.guest == Guest::Linux {
            let root = if self.root_disk {
                ROOT_DISK
            } else {
                "initramfs.cpio.gz"
            };
            for f in ["vmlinux", root] {
                if !self.images.join(f).is_file() {
                    return Err(format!("{} not built", self.images.join(f).display()));
                }
            }
        }
        Ok(())
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let out = ctx.timeline_path(self.name());
        let guest = match self.guest {
            Guest::Lab => "lab",
            Guest::Linux => "linux",
        };
        let mut spec = RunSpec::new(&self.bin, ConsoleMap::Vm)
            .args(["vm", "run", "--guest", guest, "--timeout"])
            .arg(self.guest_timeout_s().to_string())
            .arg("--timeline-out")
            .arg(&out);
        if self.kernel_irqchip {
            spec = spec.args(["--irqchip", "kernel"]);
        }
        if self.root_disk {
            spec = spec.arg("--disk").arg(self.images.join(ROOT_DISK));
        }
        if let Some(cmdline) = &self.cmdline {
            spec = spec.arg("--cmdline").arg(cmdline);
        }
        spec.required_measures = self.measures.clone();
        spec.env
            .push(("BOOTLAB_IMAGES".into(), self.images.clone().into()));
        spec.timeline_out = Some(out);
        spec.timeout = Duration::from_secs(self.guest_timeout_s() + 5);
        spec.required = vec![
            event::FIRST_KVM_RUN,
            event::INIT_START,
            event::EXEC,
            event::DONE,
        ];
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(&self.bin, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "first-kvm-run and marker-port writes stamped by our monitor at the VM exit".into(),
            super::NO_FIRMWARE_NOTE.into(),
        ]
    }
}

/// `bootlab vm restore DIR` of a guest saved at its snapshot point (right before
/// its workload). The lab guest's snapshot is taken once per session, in
/// `prepare`. The Linux guest's takes a whole boot (about a minute on an emulated
/// host), so it is kept in a cache folder whose key covers everything the
/// snapshot depends on: the bootlab binary (its monitor, snapshot format and
/// the guest's command line), the kernel and initramfs, and the host's kernel.
#[derive(Debug, Clone)]
pub struct BootlabVmRestore {
    pub bin: PathBuf,
    pub guest: Guest,
    /// Passed to the child as BOOTLAB_IMAGES (Linux guest).
    pub images: PathBuf,
    /// Host KVM is emulated (PVM): the Linux guest uses the 32-bit initramfs.
    pub emulated: bool,
    /// Where Linux snapshots are kept (`$BOOTLAB_CACHE/snapshots`).
    pub cache: PathBuf,
    /// The snapshot folder, once prepared.
    pub snapshot: Option<PathBuf>,
}

/// The cache root, as guest-images/build.sh uses it for kernels.
fn cache_root() -> PathBuf {
    std::env::var_os("BOOTLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/bootlab"))
}

impl BootlabVmRestore {
    pub fn new(bin: PathBuf, guest: Guest, images: PathBuf, emulated: bool) -> Self {
        BootlabVmRestore {
            bin,
            guest,
            images,
            emulated,
            cache: cache_root().join("snapshots"),
            snapshot: None,
        }
    }

    /// The Linux guest's initramfs on this kind of host (as `bootlab vm run` picks it).
    fn initramfs(&self) -> &'static str {
        if self.emulated {
            "initramfs32.cpio"
        } else {
            "initramfs.cpio.gz"
        }
    }

    /// The cache key of the Linux snapshot: a hash of the files and facts it
    /// depends on.
    fn linux_key(&self) -> Result<String, String> {
        use std::hash::Hasher;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in [
            self.bin.clone(),
            self.images.join("vmlinux"),
            self.images.join(self.initramfs()),
        ] {
            let bytes =
                std::fs::read(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            h.write(&bytes);
        }
        h.write(crate::host::HostFacts::detect().kernel.as_bytes());
        h.write_u8(self.emulated as u8);
        Ok(format!("{:016x}", h.finish()))
    }

    /// Takes a snapshot with `bootlab vm run --guest GUEST --snapshot-at snapshot`
    /// into `dir`.
    fn take(&self, dir: &Path, timeout_s: u64) -> Result<(), String> {
        let guest = match self.guest {
            Guest::Lab => "lab",
            Guest::Linux => "linux",
        };
        let out = std::process::Command::new(&self.bin)
            .args(["vm", "run", "--guest", guest, "--timeout"])
            .arg(timeout_s.to_string())
            .args(["--snapshot-at", "snapshot", "--snapshot-out"])
            .arg(dir)
            .env("BOOTLAB_IMAGES", &self.images)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "taking the {guest} snapshot failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if !dir.join("state").is_file() {
            return Err(format!(
                "the {guest} guest never reached its snapshot point (guest images older \
                 than bootlab.snapshot? rebuild them)"
            ));
        }
        Ok(())
    }
}

impl Runner for BootlabVmRestore {
    fn name(&self) -> &str {
        match self.guest {
            Guest::Lab => "bootlab-vm-lab-restore",
            Guest::Linux => "bootlab-vm-linux-restore",
        }
    }

    fn kind(&self) -> RuntimeKind {
        RuntimeKind::RestoredVm
    }

    fn ours(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), String> {
        kvm_present()?;
        if self.guest == Guest::Linux {
            for f in ["vmlinux", self.initramfs()] {
                if !self.images.join(f).is_file() {
                    return Err(format!("{} not built", self.images.join(f).display()));
                }
            }
        }
        Ok(())
    }

    fn prepare(&mut self, scratch: &Path) -> Result<(), String> {
        let dir = match self.guest {
            Guest::Lab => {
                let dir = scratch.join("lab-snapshot");
                self.take(&dir, FAST_TIMEOUT_S)?;
                dir
            }
            Guest::Linux => {
                let dir = self.cache.join(format!("linux-{}", self.linux_key()?));
                if !dir.join("state").is_file() {
                    // Taken beside the cache entry and renamed into place, so a
                    // session never sees half a snapshot.
                    std::fs::create_dir_all(&self.cache)
                        .map_err(|e| format!("cannot create {}: {e}", self.cache.display()))?;
                    let tmp = self
                        .cache
                        .join(format!(".linux-tmp-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&tmp);
                    let taken = self.take(&tmp, LINUX_EMULATED_TIMEOUT_S);
                    let placed = taken.and_then(|()| {
                        std::fs::rename(&tmp, &dir).or_else(|e| {
                            // Another session placed it first: use theirs.
                            if dir.join("state").is_file() {
                                Ok(())
                            } else {
                                Err(format!("cannot place {}: {e}", dir.display()))
                            }
                        })
                    });
                    let _ = std::fs::remove_dir_all(&tmp);
                    placed?;
                }
                dir
            }
        };
        self.snapshot = Some(dir);
        Ok(())
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let out = ctx.timeline_path(self.name());
        let dir = self
            .snapshot
            .clone()
            .unwrap_or_else(|| ctx.scratch.join("lab-snapshot"));
        let mut spec = RunSpec::new(&self.bin, ConsoleMap::Vm)
            .args(["vm", "restore"])
            .arg(&dir)
            .arg("--timeout")
            .arg(FAST_TIMEOUT_S.to_string())
            .arg("--timeline-out")
            .arg(&out);
        spec.timeline_out = Some(out);
        spec.timeout = Duration::from_secs(FAST_TIMEOUT_S + 5);
        spec.required = vec![event::FIRST_KVM_RUN, event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(&self.bin, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        let taken = match self.guest {
            Guest::Lab => "once per session",
            Guest::Linux => "once and cached",
        };
        vec![format!(
            "restored from a snapshot taken {taken} at the guest's snapshot marker; \
             restore ends at the first KVM_RUN after the state is loaded"
        )]
    }
}

/// `bootlab sandbox run --rootfs R -- WORKLOAD`.
#[derive(Debug, Clone)]
pub struct BootlabSandbox {
    pub bin: PathBuf,
    pub workload: Workload,
}

impl Runner for BootlabSandbox {
    fn name(&self) -> &str {
        "bootlab-sandbox"
    }

    fn ours(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), String> {
        self.workload.check()
    }

    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec {
        let out = ctx.timeline_path(self.name());
        let mut spec = RunSpec::new(&self.bin, ConsoleMap::Container)
            .args(["sandbox", "run", "--rootfs"])
            .arg(&self.workload.rootfs)
            .arg("--timeline-out")
            .arg(&out)
            .arg("--")
            .args(&self.workload.argv);
        spec.timeline_out = Some(out);
        spec.required = vec![event::EXEC, event::DONE];
        spec
    }

    fn version(&self) -> Option<String> {
        version_of(&self.bin, &["--version"])
    }

    fn notes(&self) -> Vec<String> {
        vec!["exec stamped by the sandbox right before the workload's execve".into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ExitExpect;

    fn ctx() -> RunCtx<'static> {
        RunCtx {
            scratch: Path::new("/scratch"),
            id: 7,
        }
    }

    fn vm(guest: Guest, emulated: bool) -> BootlabVm {
        BootlabVm {
            bin: "/b/bootlab".into(),
            guest,
            kernel_irqchip: false,
            emulated,
            images: "/img".into(),
            root_disk: false,
            cmdline: None,
            measures: Vec::new(),
        }
    }

    #[test]
    fn vm_command_follows_the_cli_contract() {
        let s = vm(Guest::Lab, true).spec(ctx());
        assert_eq!(
            s.command_line(),
            "/b/bootlab vm run --guest lab --timeout 10 --timeline-out \
             /scratch/bootlab-vm-lab-7.timeline.json"
        );
        assert_eq!(
            s.timeline_out.as_deref(),
            Some(Path::new("/scratch/bootlab-vm-lab-7.timeline.json"))
        );
        assert_eq!(s.expect, ExitExpect::Code(0));
        assert!(s.required.contains(&event::DONE));
        assert!(vm(Guest::Lab, true).unobservable().is_empty());
        let k = BootlabVm {
            kernel_irqchip: true,
            ..vm(Guest::Lab, true)
        };
        assert_eq!(k.name(), "bootlab-vm-lab-kernel-irqchip");
        assert!(k
            .spec(ctx())
            .command_line()
            .ends_with("bootlab-vm-lab-kernel-irqchip-7.timeline.json --irqchip kernel"));
    }

    #[test]
    fn linux_guest_requires_the_whole_protocol_on_both_kinds_of_host() {
        for emulated in [true, false] {
            let r = vm(Guest::Linux, emulated);
            let s = r.spec(ctx());
            assert_eq!(s.expect, ExitExpect::Code(0));
            assert_eq!(
                s.required,
                [
                    event::FIRST_KVM_RUN,
                    event::INIT_START,
                    event::EXEC,
                    event::DONE
                ]
            );
            assert!(r.unobservable().is_empty());
        }
        // The emulated host gets the long timeout.
        let slow = vm(Guest::Linux, true).spec(ctx());
        assert!(slow.command_line().contains("--guest linux --timeout 600"));
        // The root on the disk: the same protocol, the images' rootfs.ext4.
        let disk = BootlabVm {
            root_disk: true,
            ..vm(Guest::Linux, false)
        };
        assert_eq!(disk.name(), "bootlab-vm-linux-disk");
        let s = disk.spec(ctx());
        assert!(
            s.command_line()
                .ends_with("bootlab-vm-linux-disk-7.timeline.json --disk /img/rootfs.ext4"),
            "{}",
            s.command_line()
        );
        assert_eq!(s.required.len(), 4);
        assert!(s.required_measures.is_empty());
        assert!(disk.check().is_err(), "no /img here");
        // A workload on the disk: its command line whole, its values required.
        let seq = BootlabVm {
            cmdline: Some("root=/dev/vda bootlab.workload=seqread".into()),
            measures: vec!["seqread.ns"],
            ..disk
        };
        let s = seq.spec(ctx());
        assert!(
            s.command_line().ends_with(
                "--disk /img/rootfs.ext4 --cmdline root=/dev/vda bootlab.workload=seqread"
            ),
            "{}",
            s.command_line()
        );
        assert_eq!(s.required_measures, ["seqread.ns"]);
    }

    #[test]
    fn restore_command_follows_the_cli_contract() {
        let mut r = BootlabVmRestore::new("/b/bootlab".into(), Guest::Lab, "/img".into(), true);
        assert_eq!(r.kind(), RuntimeKind::RestoredVm);
        r.snapshot = Some("/scratch/lab-snapshot".into());
        let s = r.spec(ctx());
        assert_eq!(
            s.command_line(),
            "/b/bootlab vm restore /scratch/lab-snapshot --timeout 10 --timeline-out \
             /scratch/bootlab-vm-lab-restore-7.timeline.json"
        );
        assert_eq!(s.expect, ExitExpect::Code(0));
        assert_eq!(s.required, [event::FIRST_KVM_RUN, event::EXEC, event::DONE]);
        // A binary that cannot run fails the preparation with a reason.
        let mut bad =
            BootlabVmRestore::new("/no/such/bootlab".into(), Guest::Lab, "/img".into(), true);
        assert!(bad
            .prepare(Path::new("/tmp"))
            .unwrap_err()
            .contains("/no/such/bootlab"));
        // The Linux guest's snapshot needs the images, and is keyed by its files.
        let linux = BootlabVmRestore::new("/b/bootlab".into(), Guest::Linux, "/img".into(), true);
        assert_eq!(linux.name(), "bootlab-vm-linux-restore");
        assert!(linux.linux_key().unwrap_err().contains("/b/bootlab"));
    }

    #[test]
    fn sandbox_command_follows_the_cli_contract() {
        let r = BootlabSandbox {
            bin: "/b/bootlab".into(),
            workload: Workload::guest_init("/img/rootfs"),
        };
        assert_eq!(
            r.spec(ctx()).command_line(),
            "/b/bootlab sandbox run --rootfs /img/rootfs --timeline-out \
             /scratch/bootlab-sandbox-7.timeline.json -- /sbin/guest-init hello"
        );
        assert!(r
            .check()
            .unwrap_err()
            .contains("rootfs /img/rootfs not found"));
    }
}
