//! Typed errors of the monitor. Every variant names what was wrong and, where there
//! is one, the file.

use std::path::PathBuf;

/// Errors building or running a microVM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open /dev/kvm (is KVM enabled and are you allowed to use it?)")]
    KvmOpen(#[source] kvm_ioctls::Error),
    #[error("KVM API version {0} is not supported (expected 12)")]
    KvmApiVersion(i32),
    #[error("KVM ioctl {op} failed")]
    Kvm {
        op: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("guest memory of {mib} MiB is out of range: {why}")]
    MemorySize { mib: u64, why: String },
    #[error("{0} vCPUs is out of range (1..={1})")]
    VcpuCount(u32, u32),
    #[error("cannot set up guest memory")]
    GuestMemory(#[source] MemoryError),
    #[error("cannot read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a kernel image: {why} (expected an x86-64 ELF vmlinux or a bzImage)")]
    BadKernel { path: PathBuf, why: String },
    #[error("initrd {path} ({size} bytes) does not fit in guest memory below {limit:#x}")]
    InitrdTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("kernel command line is invalid")]
    Cmdline(#[source] CmdlineError),
    #[error("writing {what} into guest memory failed")]
    BootData {
        what: &'static str,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    #[error("cannot load initrd {path} into guest memory")]
    InitrdLoad {
        path: PathBuf,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    #[error("the e820 map has {0} entries, more than the boot protocol holds")]
    E820Entries(usize),
    #[error("cannot build the {what} list for KVM")]
    KvmList {
        what: &'static str,
        #[source]
        source: vmm_sys_util::fam::Error,
    },
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("snapshot: cannot give the restored serial port its interrupt line")]
    SerialLine(#[source] std::io::Error),
    #[error("snapshot: cannot load the serial port's state")]
    SerialState(#[source] vm_superio::serial::Error<std::io::Error>),
    #[error("snapshot {path}: {why}")]
    SnapshotFile { path: PathBuf, why: String },
    #[error("snapshot {path}")]
    SnapshotIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the snapshot state")]
    SnapshotEncode(#[source] postcard::Error),
    #[error("cannot start a vCPU thread")]
    Thread(#[source] std::io::Error),
    #[error("the monitor's event loop")]
    EventLoop(#[source] std::io::Error),
    #[error("cannot open the disk {}", path.display())]
    Disk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tap(#[from] crate::tap::TapError),
    #[error("cannot set up a device: {0}")]
    Device(String),
    #[error("cannot place the devices")]
    DevicePlan(#[source] crate::device_manager::PlanError),
}

/// What went wrong mapping guest memory (a fresh boot's anonymous RAM, or a
/// snapshot's memory file) or finding it again for KVM.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("mapping the RAM ranges")]
    Ranges(#[source] vm_memory::mmap::FromRangesError),
    #[error("mapping the memory file")]
    Map(#[source] vm_memory::mmap::MmapRegionError),
    #[error("a region at {0:#x} overflows the address space")]
    Overflow(u64),
    #[error("assembling the regions")]
    Regions(#[source] vm_memory::GuestRegionCollectionError),
    #[error("finding a region's host address")]
    HostAddress(#[source] vm_memory::GuestMemoryError),
    #[error("reserving {0} bytes of 2 MiB-aligned address space")]
    Reserve(usize, #[source] std::io::Error),
}

/// Why a kernel command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("{len} bytes long, at most {max} fit")]
    TooLong { len: usize, max: usize },
    #[error("it contains {0:?}; only printable ASCII is allowed")]
    NotPrintable(char),
    #[error("rejected by the command-line builder")]
    Builder(#[source] linux_loader::cmdline::Error),
    #[error("cannot write it into guest memory")]
    Load(#[source] linux_loader::loader::Error),
}

impl Error {
    pub(crate) fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { op, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message chain as the CLI prints it (`{:#}` of anyhow: each source
    /// after a colon).
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            out.push_str(": ");
            out.push_str(&s.to_string());
            next = s.source();
        }
        out
    }

    /// A wrapped reason is the error's source, not part of its own message, so the
    /// CLI's line names it exactly once.
    #[test]
    fn reasons_are_sources_and_appear_once_in_the_chain() {
        let e = Error::Cmdline(CmdlineError::TooLong {
            len: 5000,
            max: 4095,
        });
        assert!(matches!(
            std::error::Error::source(&e).and_then(|s| s.downcast_ref::<CmdlineError>()),
            Some(CmdlineError::TooLong { len: 5000, .. })
        ));
        assert_eq!(
            chain(&e),
            "kernel command line is invalid: 5000 bytes long, at most 4095 fit"
        );
        let e = crate::snapshot::read_state(std::path::Path::new("/nonexistent")).unwrap_err();
        assert!(
            matches!(&e, Error::SnapshotIo { path, source }
                if path.ends_with(crate::snapshot::STATE_FILE)
                    && source.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
        let text = chain(&e);
        let cause = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
        assert_eq!(text, format!("snapshot /nonexistent/state: {cause}"));
        let e = Error::ReadFile {
            path: "/k".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let cause = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
        assert_eq!(chain(&e), format!("cannot read /k: {cause}"));
        let e = Error::GuestMemory(MemoryError::Overflow(0x1000));
        assert_eq!(
            chain(&e),
            "cannot set up guest memory: a region at 0x1000 overflows the address space"
        );
    }
}
