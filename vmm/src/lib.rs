//! A minimal KVM microVM monitor on the rust-vmm crates (see shared/DESIGN.md).
//!
//! [`VmConfig`] describes a machine (kernel, initrd, command line, memory, vCPUs,
//! timeout); [`run`] (or [`Vm::build`] then [`Vm::run`]) builds it on /dev/kvm, boots
//! it, runs it to its end and returns a [`VmOutcome`] with the exit reason and the
//! monitor's own [`timeline::Timeline`] events. Layout: `layout` (every guest-physical address in one place), `memory`
//! (guest RAM and the e820 map), `boot` (kernel, initrd, command line, PVH start
//! info, zero page), `mptable` (SMP), `vcpu` (register set-up and the run loop), `exit` (how a run ended),
//! `cpuid_cache` (KVM's supported CPUID table kept between runs), `devices/` (one file
//! per device), `vm` (putting it together).

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

pub use error::Error;
pub use snapshot::RestoreOptions;
pub use vm::{
    run, CpuVendor, ExitReason, IrqChipKind, KernelSource, SnapshotPoint, SnapshotRequest, Vm,
    VmConfig, VmOutcome, SNAPSHOT_SIGNAL,
};
