//! The exit port: a guest ends the VM with a status by writing one byte to it (same
//! address as QEMU's isa-debug-exit, so one guest ends itself under both).

/// The exit port (see `timeline::marker::EXIT_PORT`).
pub const PORT: u16 = timeline::marker::EXIT_PORT;
