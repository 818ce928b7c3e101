//! How a VM run ended. Its own module so that the vCPU run loop (`vcpu`) and the
//! machine that drives it (`vm`) both use it without importing each other.

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest reset or shut the machine down.
    Reset,
    /// The guest wrote a status to the exit port.
    GuestExit(u8),
    /// Every vCPU halted.
    Halted,
    TripleFault,
    InternalError {
        suberror: u32,
        rip: u64,
        code: Vec<u8>,
    },
    FailEntry(u64),
    Timeout,
    RunError(String),
    /// The guest reached the snapshot point ([`crate::Vm::snapshot_at`]) and the
    /// machine was saved; the run ends here unless asked to go on.
    Snapshotted,
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Reset => write!(f, "guest reset/shutdown"),
            ExitReason::GuestExit(s) => write!(f, "guest exited with status {s}"),
            ExitReason::Halted => write!(f, "all vCPUs halted"),
            ExitReason::TripleFault => write!(f, "triple fault (KVM_EXIT_SHUTDOWN)"),
            ExitReason::InternalError {
                suberror,
                rip,
                code,
            } => {
                write!(
                    f,
                    "KVM internal error, suberror {suberror}{} at rip {rip:#x}, code:",
                    if *suberror == 1 {
                        " (emulation failure)"
                    } else {
                        ""
                    }
                )?;
                for b in code {
                    write!(f, " {b:02x}")?;
                }
                Ok(())
            }
            ExitReason::FailEntry(r) => write!(f, "VM entry failed, hardware reason {r:#x}"),
            ExitReason::Timeout => write!(f, "timeout"),
            ExitReason::RunError(e) => write!(f, "KVM_RUN failed: {e}"),
            ExitReason::Snapshotted => write!(f, "saved at the snapshot point"),
        }
    }
}
