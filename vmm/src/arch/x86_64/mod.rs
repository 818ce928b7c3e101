//! x86-64: the PC memory layout and the MP table (modules laid out as Firecracker's
//! `arch/x86_64`).

pub mod layout;
pub mod mptable;
