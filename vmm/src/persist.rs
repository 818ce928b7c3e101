//! Saving and restoring the machine's parts: each component (a vCPU, the VM's
//! in-kernel devices, the device bus) turns its state into a plain value that
//! serde can write, and loads such a value back into a freshly built twin of
//! itself. The snapshot file (`crate::snapshot`) is made of these values.

use crate::error::Error;

/// A component whose state can be saved and loaded back.
pub trait Persist {
    /// The saved state: plain data, no file descriptors or pointers.
    type State;
    /// What saving needs besides the component (e.g. the MSRs to read).
    type Context<'a>;

    /// The component's current state. The component must be quiescent (its vCPUs
    /// out of KVM_RUN).
    fn save(&self, ctx: Self::Context<'_>) -> Result<Self::State, Error>;

    /// Loads `state` into this component, which was just built like the one saved.
    fn restore(&self, state: &Self::State) -> Result<(), Error>;
}
