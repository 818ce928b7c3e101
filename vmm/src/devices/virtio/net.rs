//! virtio-net over a packet descriptor (a tap: [`crate::tap`]): queue 0 receives,
//! queue 1 transmits, and the device offers only VERSION_1 and MAC (no offloads,
//! no mergeable buffers), so every frame the guest sees or sends carries a
//! 12-byte `virtio_net_hdr_v1` that says nothing but `num_buffers = 1`.
//!
//! Transmit is served in the queue notification (the vCPU's MMIO exit): each
//! chain's bytes are gathered into one buffer and written to the tap in one
//! write. Receive is host input: the monitor's event loop polls the tap while the
//! driver has made receive buffers available ([`VirtioDevice::host_fds`]) and
//! hands it to [`VirtioDevice::process_host_event`], which reads frames into the
//! available chains. A frame larger than its chain is dropped (the chain comes
//! back used with nothing in it) and counted, and so is a transmitted frame
//! larger than [`BUF_LEN`]: the chain is sound, only the frame cannot go. A
//! broken chain (it loops or leaves guest memory, a buffer of the wrong
//! direction, less room than the 12-byte header) is the driver's fault: the
//! device is marked DEVICE_NEEDS_RESET. Memory is two frame buffers of
//! [`BUF_LEN`] bytes, made once.

use super::{DeviceError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::memory::GuestMemory;
use crate::tap::VNET_HDR_LEN;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

/// The virtio device type of a network card.
pub const DEVICE_TYPE: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_NET;
/// The queues: receive, then transmit (no control queue, no multiqueue).
pub const RX: usize = 0;
pub const TX: usize = 1;
/// Each queue's largest size.
pub const QUEUE_SIZE: u16 = 256;
/// The most descriptors a chain may have: the queue's size bounds it.
const MAX_CHAIN: usize = QUEUE_SIZE as usize;
/// The largest frame either way: a 64 KiB packet with its Ethernet and VLAN
/// headers, after the virtio-net header.
pub const BUF_LEN: usize = VNET_HDR_LEN + 65_535 + 14 + 4;
/// Offset of `num_buffers` in `virtio_net_hdr_v1`.
const NUM_BUFFERS: usize = 10;
/// The most frames one call of `process_host_event` moves, so that a busy tap
/// cannot keep the device's lock for long.
const RX_BATCH: usize = QUEUE_SIZE as usize;

/// A virtio-net card as the machine's configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The tap to attach to (created if missing), or `None` for a new tap the
    /// kernel names `bootlab%d`.
    pub tap: Option<String>,
    /// The card's MAC address, in its configuration space.
    pub mac: [u8; 6],
}

impl NetConfig {
    /// A locally administered unicast address (02:...) that differs between
    /// processes: "bl" and the low 24 bits of `seed` (e.g. the monitor's pid).
    pub fn mac_for(seed: u32) -> [u8; 6] {
        let [_, a, b, c] = seed.to_be_bytes();
        [0x02, b'b', b'l', a, b, c]
    }
}

/// Frames that went through and frames dropped, each way (reported at debug
/// level when the device goes away).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    pub tx_frames: u64,
    pub tx_dropped: u64,
    pub rx_frames: u64,
    /// Frames larger than the chain they were to go into.
    pub rx_dropped: u64,
}

/// A virtio-net device.
#[derive(Debug)]
pub struct Net {
    /// The tap, or any non-blocking descriptor that reads and writes one frame,
    /// with its header, per call.
    fd: OwnedFd,
    mac: [u8; 6],
    /// Whether the driver may have receive buffers available: set by its
    /// notification of the receive queue, cleared when a read finds none. The
    /// tap is polled only while it is set.
    rx_buffers: bool,
    tx_buf: Vec<u8>,
    rx_buf: Vec<u8>,
    /// A chain's writable buffers (address, length), kept to reuse its space.
    rx_chain: Vec<(GuestAddress, u32)>,
    stats: NetStats,
}

impl Net {
    /// A card with MAC `mac` over the packet descriptor `fd` (non-blocking).
    pub fn new(fd: OwnedFd, mac: [u8; 6]) -> Net {
        Net {
            fd,
            mac,
            rx_buffers: false,
            tx_buf: vec![0; BUF_LEN],
            rx_buf: vec![0; BUF_LEN],
            rx_chain: Vec::with_capacity(MAX_CHAIN),
            stats: NetStats::default(),
        }
    }

    /// What went through so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Sends every frame the driver made available on the transmit queue.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = queue.iter(mem)?.next() {
            let head = chain.head_index();
            let (mut len, mut count, mut more, mut oversize) = (0usize, 0usize, true, false);
            for d in chain {
                count += 1;
                if count > MAX_CHAIN {
                    return Err(DeviceError::ChainUnterminated);
                }
                if d.is_write_only() {
                    return Err(DeviceError::BadRequest(
                        "a transmit buffer the device is to write",
                    ));
                }
                // Past BUF_LEN the chain is still walked (it must end) but no
                // longer read.
                match len.checked_add(d.len() as usize) {
                    Some(end) if end <= BUF_LEN && !oversize => {
                        mem.read_slice(&mut self.tx_buf[len..end], d.addr())?;
                        len = end;
                    }
                    _ => oversize = true,
                }
                more = d.has_next();
            }
            // The iterator stops early (no error) at a loop, an index past the
            // table or a table outside memory: the last one still says "next".
            if more {
                return Err(DeviceError::ChainUnterminated);
            }
            if oversize {
                // A sound chain whose frame no tap carries: dropped, as a wire
                // drops it.
                log::debug!("virtio-net: a frame larger than 64 KiB dropped");
                self.stats.tx_dropped += 1;
                queue.add_used(mem, head, 0)?;
                used = true;
                continue;
            }
            if len < VNET_HDR_LEN {
                return Err(DeviceError::BadRequest("a frame shorter than its header"));
            }
            // No offload was offered, so the header has nothing to say to the tap.
            self.tx_buf[..VNET_HDR_LEN].fill(0);
            match write(&self.fd, &self.tx_buf[..len]) {
                Ok(_) => self.stats.tx_frames += 1,
                Err(e) => {
                    log::debug!("virtio-net: a frame not sent: {e}");
                    self.stats.tx_dropped += 1;
                }
            }
            queue.add_used(mem, head, 0)?;
            used = true;
        }
        Ok(used)
    }

    /// Reads frames from the tap into the receive queue's available chains until
    /// either runs out (or [`RX_BATCH`] frames).
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        for _ in 0..RX_BATCH {
            let Some(chain) = queue.iter(mem)?.next() else {
                self.rx_buffers = false;
                break;
            };
            let head = chain.head_index();
            self.rx_chain.clear();
            let mut more = true;
            for d in chain {
                if self.rx_chain.len() == MAX_CHAIN {
                    return Err(DeviceError::ChainUnterminated);
                }
                if !d.is_write_only() {
                    return Err(DeviceError::BadRequest(
                        "a receive buffer the device may not write",
                    ));
                }
                self.rx_chain.push((d.addr(), d.len()));
                more = d.has_next();
            }
            if more {
                return Err(DeviceError::ChainUnterminated);
            }
            let room: u64 = self.rx_chain.iter().map(|&(_, l)| u64::from(l)).sum();
            if room < VNET_HDR_LEN as u64 {
                return Err(DeviceError::BadRequest(
                    "a receive buffer shorter than the virtio-net header",
                ));
            }
            let len = match read(&self.fd, &mut self.rx_buf) {
                Ok(n) if n >= VNET_HDR_LEN => n,
                other => {
                    // Nothing to read (or a runt, or an error): the chain goes back
                    // to the available ring untouched.
                    queue.set_next_avail(queue.next_avail().wrapping_sub(1));
                    match other {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            log::debug!("virtio-net: reading the tap: {e}");
                            break;
                        }
                        Ok(_) => continue,
                    }
                }
            };
            if len as u64 > room {
                self.stats.rx_dropped += 1;
                queue.add_used(mem, head, 0)?;
                used = true;
                continue;
            }
            self.rx_buf[..VNET_HDR_LEN].fill(0);
            self.rx_buf[NUM_BUFFERS..NUM_BUFFERS + 2].copy_from_slice(&1u16.to_le_bytes());
            let mut at = 0;
            for &(addr, l) in &self.rx_chain {
                let end = (at + l as usize).min(len);
                mem.write_slice(&self.rx_buf[at..end], addr)?;
                at = end;
                if at == len {
                    break;
                }
            }
            #[allow(clippy::cast_possible_truncation)] // at most BUF_LEN
            queue.add_used(mem, head, len as u32)?;
            self.stats.rx_frames += 1;
            used = true;
        }
        Ok(used)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        log::debug!("virtio-net: {:?}", self.stats);
    }
}

/// One write of `buf` to `fd`.
fn write(fd: &OwnedFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: writes from a live buffer of `buf.len()` bytes to an open descriptor.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// One read from `fd` into `buf`.
fn read(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: reads into a live, writable buffer of `buf.len()` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC)
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // The configuration space up to what we offer: the MAC address.
        super::read_config_bytes(&self.mac, offset, data);
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        match index {
            RX => {
                // New receive buffers: the event loop polls the tap again.
                self.rx_buffers = true;
                Ok(false)
            }
            TX => self.transmit(queue, mem),
            _ => Ok(false),
        }
    }

    fn reset(&mut self) {
        // The driver's buffers are gone with its queues.
        self.rx_buffers = false;
    }

    fn host_fds(&self) -> Vec<RawFd> {
        if self.rx_buffers {
            vec![self.fd.as_raw_fd()]
        } else {
            Vec::new()
        }
    }

    fn process_host_event(
        &mut self,
        fd: RawFd,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        if fd != self.fd.as_raw_fd() {
            return Ok(false);
        }
        match queues.get_mut(RX).filter(|q| q.ready()) {
            Some(queue) => self.receive(queue, mem),
            None => {
                self.rx_buffers = false;
                Ok(false)
            }
        }
    }
}
