//! A minimal KVM microVM monitor on the rust-vmm crates (see docs/ARCHITECTURE.md).
//!
//! [`VmConfig`] describes a machine (kernel, initrd, command line, memory, vCPUs,
//! timeout); [`run`] (or [`Vm::build`] then [`Vm::run`]) builds it on /dev/kvm, boots
//! it, runs it to its end and returns a [`VmOutcome`] with the exit reason and the
//! monitor's own [`timeline::Timeline`] events. [`Vm::snapshot_at`] saves the
//! machine at a guest marker or on a signal; [`Vm::restore`] builds it again from
//! that snapshot, in a fresh process, ready to run on.
//!
//! One module per job (memory, boot, vcpu, devices, snapshot, vm; x86 specifics
//! under `arch`): see docs/ARCHITECTURE.md for what each holds and where a new
//! device goes.

pub mod arch;
pub mod boot;
pub mod cpuid_cache;
pub mod device_manager;
pub mod devices;
pub mod error;
mod event_loop;
pub mod exit;
pub mod lab;
pub mod memory;
pub mod persist;
pub mod snapshot;
pub mod tap;
pub mod vcpu;
pub mod vm;

/// The layout and the MP table keep their paths of before the `arch` module.
pub use arch::x86_64::{layout, mptable};
pub use error::{CmdlineError, Error, MemoryError};
pub use snapshot::RestoreOptions;
pub use vm::{
    run, CpuVendor, DeviceSpec, DiskConfig, ExitReason, IrqChipKind, KernelSource, NetConfig,
    QueueNotify, SnapshotPoint, SnapshotRequest, Vm, VmConfig, VmOutcome, VsockConfig,
    SNAPSHOT_SIGNAL,
};
