//! A minimal KVM microVM monitor on the rust-vmm crates (see shared/DESIGN.md).
