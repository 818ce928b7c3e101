//! virtio-vsock with a Unix-socket host side (Firecracker's "hybrid vsock"):
//! stream sockets between the guest (its CID in the configuration space) and
//! host programs that talk to a Unix socket. One file per job: the device and
//! its queues ([`device`]), the packet header ([`packet`]), one stream's
//! protocol state ([`connection`]), the host side ([`muxer`]) and the removal of
//! its socket on a terminating signal ([`cleanup`]).

pub mod cleanup;
pub mod connection;
pub mod device;
pub mod muxer;
pub mod packet;

pub use device::Vsock;

use std::path::PathBuf;

/// A vsock device as the machine's configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockConfig {
    /// The guest's CID (3 and up: 0-2 are reserved, CIDs are 32 bits).
    pub guest_cid: u32,
    /// The Unix socket the monitor listens on; guest connections to host port P go
    /// to `PATH_P`.
    pub path: PathBuf,
}

/// The first CID a guest may have: 0 is the hypervisor, 1 local, 2 the host.
pub const FIRST_GUEST_CID: u32 = 3;

/// Why a CID cannot be a guest's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("CID {0} is reserved (0 is the hypervisor, 1 local, 2 the host)")]
    Reserved(u64),
    #[error("CID {0} does not fit in 32 bits (or is VMADDR_CID_ANY)")]
    TooLarge(u64),
}

/// Checks that `cid` may be a guest's.
pub fn guest_cid(cid: u64) -> Result<u32, CidError> {
    if cid < u64::from(FIRST_GUEST_CID) {
        return Err(CidError::Reserved(cid));
    }
    u32::try_from(cid)
        .ok()
        .filter(|&c| c != u32::MAX)
        .ok_or(CidError::TooLarge(cid))
}

#[cfg(test)]
mod tests;
