//! The virtio-vsock device: its three queues (RX 0, TX 1, EVENT 2), its
//! configuration space (the guest's CID), packets moved between the queues and
//! the muxer. TX packets are served in the vCPU's notification; what the guest is
//! owed in reply (RESPONSE, RST, credit) and data from host sockets go out from
//! the monitor's device event loop, which alone calls with the RX queue.
//!
//! A chain that is not a packet (loops, leaves guest memory, has buffers of the
//! wrong direction or no room for a header) is a [`DeviceError`]; a header that
//! breaks the protocol (a payload longer than its buffers, more data than the
//! credit allows) resets its stream.

use super::connection::CONN_BUF;
use super::muxer::{HostRead, Key, Muxer, MuxerError};
use super::packet::{op, Header, HEADER_LEN};
use super::VsockConfig;
use crate::devices::virtio::{DeviceError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::memory::GuestMemory;
use std::os::fd::RawFd;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress};

/// The virtio device type of a socket device.
pub const DEVICE_TYPE: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK;
/// The queues, in order.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
pub const EVENT_QUEUE: usize = 2;
/// Each queue's largest size.
pub const QUEUE_SIZE: u16 = 256;
/// The most descriptors in a chain: the queue's size bounds it.
const MAX_CHAIN: usize = QUEUE_SIZE as usize;
/// The most packets one readable host socket gives the guest per event (the loop
/// is level-triggered: it comes back for the rest).
const PACKETS_PER_EVENT: usize = 16;

/// A virtio-vsock device.
#[derive(Debug)]
pub struct Vsock {
    cid: u64,
    muxer: Muxer,
    /// The guest had no receive buffer when we had something for it; cleared when
    /// it notifies the RX queue.
    rx_starved: bool,
    /// One packet's payload on its way (CONN_BUF bytes, allocated at the first
    /// packet: not part of the machine's build).
    scratch: Vec<u8>,
    descs: Vec<Descriptor>,
}

impl Vsock {
    /// A device for the guest `config.guest_cid`, listening at `config.path`.
    pub fn new(config: &VsockConfig) -> Result<Vsock, MuxerError> {
        let cid = u64::from(config.guest_cid);
        Ok(Vsock {
            cid,
            muxer: Muxer::new(cid, &config.path)?,
            rx_starved: false,
            scratch: Vec::new(),
            descs: Vec::with_capacity(4),
        })
    }

    /// Serves every packet on the TX queue.
    fn serve_tx(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        self.scratch.resize(CONN_BUF as usize, 0);
        let mut used = false;
        while let Some(chain) = queue.iter(mem)?.next() {
            let head = chain.head_index();
            collect(chain, &mut self.descs)?;
            if self.descs.iter().any(Descriptor::is_write_only) {
                return Err(DeviceError::BadRequest(
                    "a writable buffer in a vsock TX chain",
                ));
            }
            let total = total_len(&self.descs);
            if total < HEADER_LEN as u64 {
                return Err(DeviceError::BadRequest(
                    "a vsock packet shorter than its header",
                ));
            }
            let mut raw = [0u8; HEADER_LEN];
            gather(&self.descs, mem, 0, &mut raw)?;
            let hdr = Header::decode(&raw);
            // A payload must lie in the chain and fit a stream's buffer (more
            // would break the credit anyway).
            let len = hdr.len as usize;
            let fits = hdr.op != op::RW
                || (u64::from(hdr.len) <= total - HEADER_LEN as u64 && len <= self.scratch.len());
            let payload = if hdr.op == op::RW && fits {
                gather(
                    &self.descs,
                    mem,
                    HEADER_LEN as u64,
                    &mut self.scratch[..len],
                )?;
                &self.scratch[..len]
            } else {
                &[]
            };
            queue.add_used(mem, head, 0)?;
            used = true;
            if fits {
                self.muxer.guest_packet(&hdr, payload);
            } else {
                self.muxer.malformed(&hdr);
            }
        }
        Ok(used)
    }

    /// Gives the guest the control packets it is owed while it has buffers.
    fn send_control(&mut self, rx: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        while self.muxer.owes_guest() {
            let Some((head, _)) = self.pop_rx(rx, mem)? else {
                break;
            };
            let Some(hdr) = self.muxer.next_control() else {
                rx.go_to_previous_position();
                break;
            };
            scatter(&self.descs, mem, 0, &hdr.encode())?;
            #[allow(clippy::cast_possible_truncation)] // 44
            rx.add_used(mem, head, HEADER_LEN as u32)?;
            used = true;
        }
        Ok(used)
    }

    /// Moves what stream `key`'s host socket has into the guest's buffers, as far
    /// as its credit and buffers go.
    fn send_data(
        &mut self,
        key: Key,
        rx: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        self.scratch.resize(CONN_BUF as usize, 0);
        let mut used = false;
        for _ in 0..PACKETS_PER_EVENT {
            let credit = self.muxer.credit(key);
            if credit == 0 {
                break;
            }
            let Some((head, room)) = self.pop_rx(rx, mem)? else {
                break;
            };
            let room = room - HEADER_LEN as u64;
            let want = u64::from(credit).min(room).min(self.scratch.len() as u64);
            #[allow(clippy::cast_possible_truncation)] // at most CONN_BUF
            let want = want as usize;
            let n = match self.muxer.read_host(key, &mut self.scratch[..want]) {
                HostRead::Data(n) if n > 0 => n,
                _ => {
                    rx.go_to_previous_position();
                    break;
                }
            };
            #[allow(clippy::cast_possible_truncation)] // at most CONN_BUF
            let Some(hdr) = self.muxer.data_header(key, n as u32) else {
                rx.go_to_previous_position();
                break;
            };
            scatter(&self.descs, mem, 0, &hdr.encode())?;
            scatter(&self.descs, mem, HEADER_LEN as u64, &self.scratch[..n])?;
            #[allow(clippy::cast_possible_truncation)] // at most CONN_BUF + 44
            rx.add_used(mem, head, (HEADER_LEN + n) as u32)?;
            used = true;
        }
        Ok(used)
    }

    /// The next RX chain, with its room in bytes (at least a header's), into
    /// `self.descs`; `None` marks the guest starved.
    fn pop_rx(
        &mut self,
        rx: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<Option<(u16, u64)>, DeviceError> {
        if !rx.ready() {
            self.rx_starved = true;
            return Ok(None);
        }
        let Some(chain) = rx.iter(mem)?.next() else {
            self.rx_starved = true;
            return Ok(None);
        };
        let head = chain.head_index();
        collect(chain, &mut self.descs)?;
        if !self.descs.iter().all(Descriptor::is_write_only) {
            return Err(DeviceError::BadRequest(
                "a readable buffer in a vsock RX chain",
            ));
        }
        let room = total_len(&self.descs);
        if room < HEADER_LEN as u64 {
            return Err(DeviceError::BadRequest(
                "a vsock RX buffer shorter than a header",
            ));
        }
        Ok(Some((head, room)))
    }
}

/// The descriptors of `chain` into `out`, which must end.
fn collect<M>(
    chain: virtio_queue::DescriptorChain<M>,
    out: &mut Vec<Descriptor>,
) -> Result<(), DeviceError>
where
    M: std::ops::Deref,
    M::Target: vm_memory::GuestMemory,
{
    out.clear();
    for d in chain {
        if out.len() == MAX_CHAIN {
            return Err(DeviceError::ChainUnterminated);
        }
        out.push(d);
    }
    // The iterator stops early (no error) at a loop, an index past the table or a
    // table outside memory: the last one still says "next".
    if out.last().is_none_or(Descriptor::has_next) {
        return Err(DeviceError::ChainUnterminated);
    }
    Ok(())
}

fn total_len(descs: &[Descriptor]) -> u64 {
    descs.iter().map(|d| u64::from(d.len())).sum()
}

/// The part of `descs` that holds bytes `at..at+len` of the chain's buffer, one
/// guest range at a time.
fn ranges(
    descs: &[Descriptor],
    at: u64,
    len: usize,
) -> impl Iterator<Item = (GuestAddress, usize)> + '_ {
    let mut skip = at;
    let mut left = len as u64;
    descs.iter().filter_map(move |d| {
        let dlen = u64::from(d.len());
        if skip >= dlen {
            skip -= dlen;
            return None;
        }
        let take = (dlen - skip).min(left);
        let addr = d.addr().checked_add(skip)?;
        skip = 0;
        left -= take;
        #[allow(clippy::cast_possible_truncation)] // at most a descriptor's u32 length
        (take > 0).then_some((addr, take as usize))
    })
}

/// Reads `buf.len()` bytes of the chain's buffer from offset `at`.
fn gather(
    descs: &[Descriptor],
    mem: &GuestMemory,
    at: u64,
    buf: &mut [u8],
) -> Result<(), DeviceError> {
    let mut done = 0;
    for (addr, n) in ranges(descs, at, buf.len()) {
        mem.read_slice(&mut buf[done..done + n], addr)?;
        done += n;
    }
    if done == buf.len() {
        Ok(())
    } else {
        Err(DeviceError::BadRequest("a vsock buffer ends early"))
    }
}

/// Writes `buf` into the chain's buffer at offset `at`.
fn scatter(
    descs: &[Descriptor],
    mem: &GuestMemory,
    at: u64,
    buf: &[u8],
) -> Result<(), DeviceError> {
    let mut done = 0;
    for (addr, n) in ranges(descs, at, buf.len()) {
        mem.write_slice(&buf[done..done + n], addr)?;
        done += n;
    }
    if done == buf.len() {
        Ok(())
    } else {
        Err(DeviceError::BadRequest("a vsock buffer ends early"))
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 3]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // struct virtio_vsock_config: the guest's CID, 64 bits.
        let config = self.cid.to_le_bytes();
        crate::devices::virtio::read_config_bytes(&config, offset, data);
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        match index {
            RX_QUEUE => {
                self.rx_starved = false;
                self.send_control(queue, mem)
            }
            TX_QUEUE => self.serve_tx(queue, mem),
            // We send no events (a transport reset only follows a snapshot restore,
            // which a machine with vsock does not do).
            _ => Ok(false),
        }
    }

    fn host_fds(&self) -> Vec<RawFd> {
        self.muxer.host_fds(self.rx_starved)
    }

    fn process_host_event(
        &mut self,
        fd: RawFd,
        queues: &mut [Queue],
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        let Some(rx) = queues.get_mut(RX_QUEUE) else {
            return Ok(false);
        };
        let mut used = false;
        if let Some(key) = self.muxer.host_input(fd) {
            used |= self.send_data(key, rx, mem)?;
        }
        used |= self.send_control(rx, mem)?;
        Ok(used)
    }

    fn reset(&mut self) {
        self.muxer.reset();
        self.rx_starved = false;
    }
}
