//! Virtio devices: what a device offers its transport ([`VirtioDevice`]: its type,
//! features, configuration space and how it serves a queue), the virtio-mmio
//! transport that puts any of them on the MMIO bus ([`mmio`]), and the devices
//! themselves, one file or folder each ([`block`], [`net`], [`vsock`]). Queues are the rust-vmm `virtio-queue`
//! crate's.

pub mod block;
pub mod mmio;
pub mod net;
pub mod vsock;

use crate::memory::GuestMemory;
use std::os::fd::RawFd;
use virtio_queue::Queue;

/// The feature bit every device offers: the virtio 1.x interface (no legacy).
pub const VIRTIO_F_VERSION_1: u32 = virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// Why a device gave up on its driver: the guest broke the virtio contract (a
/// descriptor chain that loops or leaves guest memory, an available index that
/// jumps, ...). The transport then marks the device DEVICE_NEEDS_RESET.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("the queue: {0}")]
    Queue(#[from] virtio_queue::Error),
    #[error("a descriptor chain does not end (it loops or leaves its table)")]
    ChainUnterminated,
    #[error("a malformed request: {0}")]
    BadRequest(&'static str),
    #[error("guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// Copies the bytes of a device's configuration space `config` at `offset` into
/// `data`; bytes beyond its end read as 0 (what every device's
/// [`VirtioDevice::read_config`] answers).
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, d) in data.iter_mut().enumerate() {
        let at = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
        *d = at.and_then(|a| config.get(a)).copied().unwrap_or(0);
    }
}

/// What the virtio-mmio transport needs of a device.
pub trait VirtioDevice: std::fmt::Debug + Send {
    /// The virtio device type (VIRTIO_ID_*).
    fn device_type(&self) -> u32;
    /// The feature bits the device offers (VIRTIO_F_VERSION_1 among them).
    fn features(&self) -> u64;
    /// The largest size of each of its queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads its configuration space at `offset`; bytes beyond it read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves every request the driver made available on `queue` (number `index`).
    /// Returns whether it put anything in the used ring (an interrupt is due).
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError>;
    /// The host descriptors the device waits on (a tap, a listening or connected
    /// socket): the monitor's event loop polls them for input and calls
    /// [`VirtioDevice::process_host_event`] when one is readable. Asked again after
    /// every such call, since the set may change (a new connection). None by default.
    fn host_fds(&self) -> Vec<RawFd> {
        Vec::new()
    }
    /// Serves host-side input on `fd` (one of [`VirtioDevice::host_fds`]), with the
    /// device's queues in queue order. Returns whether it put anything in a used
    /// ring (an interrupt is due). Called only while the driver has the device
    /// running (DRIVER_OK, not failed).
    fn process_host_event(
        &mut self,
        fd: RawFd,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        let _ = (fd, queues, mem);
        Ok(false)
    }
    /// The driver reset the device (status 0): it forgets what it had with the
    /// driver (a vsock device's streams). Nothing by default.
    fn reset(&mut self) {}
}

#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod test_driver;
#[cfg(test)]
mod tests;
