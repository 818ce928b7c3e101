//! A minimal KVM microVM monitor on the rust-vmm crates (see docs/ARCHITECTURE.md).
//!
//! [`VmConfig`] describes a machine (kernel, initrd, command line, memory, vCPUs,
//! timeout); [`run`] (or [`Vm::build`] then [`Vm::run`]) builds it on /dev/kvm, boots
//! it, runs it to its end and returns a [`VmOutcome`] with the exit reason and the
//! monitor's own [`timeline::Timeline`] events. [`Vm::snapshot_at`] saves the
//! machine at a guest marker or on a signal; [`Vm::restore`] builds it again from
//! that snapshot, in a fresh process, ready to run on.
//!
//! One module per job (layout, memory, boot, vcpu, devices, snapshot, vm): see
//! docs/ARCHITECTURE.md for what each holds and where a new device goes.

pub mod boot;
pub mod cpuid_cache;
pub mod devices;
pub mod error;
pub mod exit;
pub mod lab;
pub mod layout;
pub mod memory;
pub mod mptable;
pub mod persist;
pub mod snapshot;
pub mod vcpu;
pub mod vm;

pub use error::{CmdlineError, Error, MemoryError};
pub use snapshot::RestoreOptions;
pub use vm::{
    run, CpuVendor, ExitReason, IrqChipKind, KernelSource, SnapshotPoint, SnapshotRequest, Vm,
    VmConfig, VmOutcome, SNAPSHOT_SIGNAL,
};
