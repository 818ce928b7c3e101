//! Typed errors of the monitor. Every variant names what was wrong and, where there
//! is one, the file.

use std::path::PathBuf;

/// Errors building or running a microVM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open /dev/kvm: {0} (is KVM enabled and are you allowed to use it?)")]
    KvmOpen(#[source] kvm_ioctls::Error),
    #[error("KVM API version {0} is not supported (expected 12)")]
    KvmApiVersion(i32),
    #[error("KVM ioctl {op} failed: {source}")]
    Kvm {
        op: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("guest memory of {mib} MiB is out of range: {why}")]
    MemorySize { mib: u64, why: String },
    #[error("{0} vCPUs is out of range (1..={1})")]
    VcpuCount(u32, u32),
    #[error("cannot allocate guest memory: {0}")]
    GuestMemory(String),
    #[error("cannot read {path}: {source}")]
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
    #[error("kernel command line is invalid: {0}")]
    Cmdline(String),
    #[error("writing boot data into guest memory failed: {0}")]
    BootData(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("snapshot {path}: {why}")]
    SnapshotFile { path: PathBuf, why: String },
    #[error("cannot start a vCPU thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { op, source }
    }
}
