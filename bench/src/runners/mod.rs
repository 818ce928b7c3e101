//! The runtimes under test behind one trait. A runner knows how to start one
//! instance (a [`RunSpec`]), whether it can run here at all, and which phases it
//! cannot expose; [`crate::exec::execute`] does the timing for all of them alike.

mod engines;
mod firmware;
mod floors;
mod oci;
mod ours;
mod peers;
pub mod seqread;
mod vms;

pub use engines::{Engine, EngineRow, EngineRuntime, ENGINE_DIR_PREFIX};
pub use firmware::{Firmware, FirmwareGuest, QemuFirmware};
pub use floors::{KvmFloor, SandboxFloor};
pub use oci::{Oci, OciFlavor};
pub use ours::{BootlabSandbox, BootlabVm, BootlabVmRestore, Guest};
pub use peers::{Bwrap, ForkExec};
pub use vms::{Firecracker, FirecrackerRestore, LinuxBoot, QemuMicrovm, LAB_HOLD_SWITCH};

use crate::exec::RunSpec;
use crate::results::{RuntimeKind, Unobservable};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Per-run context handed to [`Runner::spec`].
#[derive(Debug, Clone, Copy)]
pub struct RunCtx<'a> {
    /// A private scratch directory of the bench session.
    pub scratch: &'a Path,
    /// Unique id of this run in the session.
    pub id: u64,
}

impl RunCtx<'_> {
    /// Where a runtime of ours writes its timeline for this run.
    pub fn timeline_path(&self, runtime: &str) -> PathBuf {
        self.scratch
            .join(format!("{runtime}-{}.timeline.json", self.id))
    }
}

/// The workload every runtime runs: a program inside the shared rootfs.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The rootfs tree (guest-images/out/rootfs).
    pub rootfs: PathBuf,
    /// Program and arguments, as seen inside the rootfs.
    pub argv: Vec<String>,
}

impl Workload {
    /// `/sbin/guest-init hello` in `rootfs`.
    pub fn guest_init(rootfs: impl Into<PathBuf>) -> Self {
        Workload {
            rootfs: rootfs.into(),
            argv: vec!["/sbin/guest-init".into(), "hello".into()],
        }
    }

    /// The program's path on the host.
    pub fn host_program(&self) -> PathBuf {
        self.rootfs.join(self.argv[0].trim_start_matches('/'))
    }

    /// Why this workload cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.rootfs.is_dir() {
            return Err(format!(
                "rootfs {} not found (build it with `bootlab images build` or set BOOTLAB_IMAGES)",
                self.rootfs.display()
            ));
        }
        let prog = self.host_program();
        if !prog.is_file() {
            return Err(format!("workload {} not found", prog.display()));
        }
        Ok(())
    }
}

/// One runtime under test.
pub trait Runner: Send + Sync {
    /// Short unique name (`bootlab-vm-lab`, `runc`, ...).
    fn name(&self) -> &str;
    /// Container unless said otherwise.
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }
    /// One of ours rather than a peer (peers unless said otherwise).
    fn ours(&self) -> bool {
        false
    }
    /// `Err(reason)` when the runtime is not available on this host.
    fn check(&self) -> Result<(), String>;
    /// One-time set-up in the session's scratch dir (e.g. an OCI bundle).
    fn prepare(&mut self, _scratch: &Path) -> Result<(), String> {
        Ok(())
    }
    /// Undoes `prepare` at the end of the session (a daemon stopped, a store
    /// removed); also what dropping the runner does.
    fn teardown(&mut self) {}
    /// How to start one instance.
    fn spec(&self, ctx: RunCtx<'_>) -> RunSpec;
    /// Version of the runtime binary, first line of its `--version`.
    fn version(&self) -> Option<String>;
    /// Phases this runtime cannot expose on this host, with the reason.
    fn unobservable(&self) -> Vec<Unobservable> {
        Vec::new()
    }
    /// How this runtime's phases are attributed.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// First line of `program args...` output (stdout, else stderr), if it runs.
pub fn version_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let line = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .to_owned();
    (!line.is_empty()).then_some(line)
}

/// Seconds any monitor gets to boot the Linux guest to its end: on an emulated host
/// (there boot, init and workload take about 40-70 s at low load, minutes under load)
/// and on hardware KVM (~0.2 s natively, ~5-15 s in the nested-SVM lane, where the
/// hardware itself is emulated).
pub const LINUX_EMULATED_TIMEOUT_S: u64 = 600;
pub const LINUX_HARDWARE_TIMEOUT_S: u64 = 120;

/// The note of every microVM row: it runs no firmware, so its timeline has no
/// `firmware` phase (docs/ARCHITECTURE.md, "The phase model").
pub const NO_FIRMWARE_NOTE: &str = "no firmware: the `firmware` phase is absent; `vmm` \
                                    (spawn -> the guest's first instruction) is its whole POST";

/// The QEMU binary a QEMU row found, or why the row cannot run.
pub fn qemu_found(bin: Option<&Path>) -> Result<&Path, String> {
    bin.ok_or_else(|| {
        "qemu-system-x86_64 not found on PATH (Debian package qemu-system-x86)".to_string()
    })
}

/// The check every VM runtime makes first: `Err` when /dev/kvm is not there.
pub fn kvm_present() -> Result<(), String> {
    if Path::new("/dev/kvm").exists() {
        Ok(())
    } else {
        Err("/dev/kvm not present".into())
    }
}

/// `name` resolved through $PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The scratch directory of a session, under the system temp dir.
pub fn scratch_dir(tag: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("bootlab-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
