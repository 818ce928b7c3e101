//! virtio-blk over a raw image file: read, write, flush and get-id, one queue.
//! Every request is checked against the image's size before it touches the
//! file; data moves between the file and guest memory directly (no buffer in the
//! monitor, whatever lengths the guest claims). A read-only disk answers writes
//! with an I/O error and offers VIRTIO_BLK_F_RO.

use super::{DeviceError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::memory::GuestMemory;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// The virtio device type of a block device.
pub const DEVICE_TYPE: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
/// Bytes per sector: the unit of the capacity and of request offsets.
pub const SECTOR_SIZE: u64 = 512;
/// The queue's largest size.
pub const QUEUE_SIZE: u16 = 256;
/// Size of the request header (type, reserved, sector).
const HEADER_LEN: u32 = 16;
/// The most descriptors a request may have: the queue's size bounds the chain.
const MAX_CHAIN: usize = QUEUE_SIZE as usize;

/// A disk as the machine's configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// The raw image.
    pub path: std::path::PathBuf,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

impl DiskConfig {
    /// Opens the image (for writing too unless read-only) and returns it with its
    /// length. Only regular files are images.
    pub fn open(&self) -> std::io::Result<(File, u64)> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(&self.path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        // root may open any file for writing: the mode bits still say what the
        // owner meant.
        if !self.read_only && meta.permissions().readonly() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the file is read-only (no write permission bit set)",
            ));
        }
        Ok((file, meta.len()))
    }
}

/// A virtio-blk device.
#[derive(Debug)]
pub struct Block {
    file: File,
    read_only: bool,
    /// The image's size, in whole sectors.
    sectors: u64,
    /// What GET_ID answers (at most 20 bytes, no NUL needed at full length).
    id: Vec<u8>,
}

impl Block {
    /// A device over `file`, whose length is `len` bytes (a tail shorter than a
    /// sector is not reachable).
    pub fn new(file: File, len: u64, read_only: bool, id: &str) -> Self {
        let mut id = id.as_bytes().to_vec();
        id.truncate(VIRTIO_BLK_ID_BYTES as usize);
        Block {
            file,
            read_only,
            sectors: len / SECTOR_SIZE,
            id,
        }
    }

    /// Serves one request; returns the status byte for the driver and how many
    /// bytes the device wrote into the request's buffers (the status byte aside).
    fn serve(&mut self, descs: &[Descriptor], mem: &GuestMemory) -> Result<(u8, u32), DeviceError> {
        let (Some(header), Some(status)) = (descs.first(), descs.last()) else {
            return Err(DeviceError::BadRequest("an empty chain"));
        };
        if descs.len() < 2 || header.is_write_only() || header.len() < HEADER_LEN {
            return Err(DeviceError::BadRequest("no readable request header"));
        }
        if !status.is_write_only() || status.len() < 1 {
            return Err(DeviceError::BadRequest("no writable status byte"));
        }
        let kind: u32 = mem.read_obj(header.addr())?;
        let sector: u64 = mem.read_obj(checked(header.addr(), 8)?)?;
        let data = &descs[1..descs.len() - 1];
        let status = match kind {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
                let write = kind == VIRTIO_BLK_T_OUT;
                if data.iter().any(|d| d.is_write_only() == write) {
                    return Err(DeviceError::BadRequest(
                        "a data buffer of the wrong direction",
                    ));
                }
                // A buffer outside guest RAM (past its end, in the MMIO gap, or
                // wrapping around) is the driver's fault, not an I/O error.
                if !data
                    .iter()
                    .all(|d| mem.check_range(d.addr(), d.len() as usize))
                {
                    return Err(DeviceError::BadRequest(
                        "a data buffer outside guest memory",
                    ));
                }
                if write && self.read_only {
                    return Ok((status_byte(VIRTIO_BLK_S_IOERR), 0));
                }
                let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
                let Some(start) = self.range(sector, total) else {
                    return Ok((status_byte(VIRTIO_BLK_S_IOERR), 0));
                };
                if self.transfer(data, start, write, mem).is_err() {
                    return Ok((status_byte(VIRTIO_BLK_S_IOERR), 0));
                }
                let written = if write {
                    0
                } else {
                    u32::try_from(total).unwrap_or(u32::MAX)
                };
                return Ok((status_byte(VIRTIO_BLK_S_OK), written));
            }
            VIRTIO_BLK_T_FLUSH => match self.file.sync_data() {
                Ok(()) => VIRTIO_BLK_S_OK,
                Err(_) => VIRTIO_BLK_S_IOERR,
            },
            VIRTIO_BLK_T_GET_ID => {
                let Some(buf) = data.first().filter(|d| d.is_write_only()) else {
                    return Err(DeviceError::BadRequest("no buffer for the id"));
                };
                let n = self.id.len().min(buf.len() as usize);
                mem.write_slice(&self.id[..n], buf.addr())?;
                if n < buf.len() as usize {
                    mem.write_obj(0u8, checked(buf.addr(), n as u64)?)?;
                }
                #[allow(clippy::cast_possible_truncation)] // at most 20
                return Ok((status_byte(VIRTIO_BLK_S_OK), n as u32));
            }
            _ => VIRTIO_BLK_S_UNSUPP,
        };
        Ok((status_byte(status), 0))
    }

    /// The byte offset of `len` bytes at `sector`, if they lie inside the image.
    fn range(&self, sector: u64, len: u64) -> Option<u64> {
        let start = sector.checked_mul(SECTOR_SIZE)?;
        let end = start.checked_add(len)?;
        (len.is_multiple_of(SECTOR_SIZE) && end <= self.sectors * SECTOR_SIZE).then_some(start)
    }

    /// Moves the data buffers' bytes to (`write`) or from the image at `start`.
    fn transfer(
        &mut self,
        data: &[Descriptor],
        start: u64,
        write: bool,
        mem: &GuestMemory,
    ) -> Result<(), DeviceError> {
        self.file
            .seek(SeekFrom::Start(start))
            .map_err(|_| DeviceError::BadRequest("seek"))?;
        for d in data {
            let len = d.len() as usize;
            if write {
                mem.write_all_volatile_to(d.addr(), &mut self.file, len)?;
            } else {
                mem.read_exact_volatile_from(d.addr(), &mut self.file, len)?;
            }
        }
        Ok(())
    }
}

/// A status code as the byte the driver reads.
#[allow(clippy::cast_possible_truncation)] // the codes are 0, 1, 2
fn status_byte(code: u32) -> u8 {
    code as u8
}

fn checked(addr: GuestAddress, off: u64) -> Result<GuestAddress, DeviceError> {
    addr.0
        .checked_add(off)
        .map(GuestAddress)
        .ok_or(DeviceError::BadRequest("an address overflows"))
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only {
            1 << VIRTIO_BLK_F_RO
        } else {
            0
        };
        (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_BLK_F_FLUSH) | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // The configuration space up to what we offer: the capacity in sectors.
        let config = self.sectors.to_le_bytes();
        super::read_config_bytes(&config, offset, data);
    }

    fn process_queue(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        let mut descs = Vec::with_capacity(4);
        while let Some(chain) = queue.iter(mem)?.next() {
            let head = chain.head_index();
            descs.clear();
            for d in chain {
                if descs.len() == MAX_CHAIN {
                    return Err(DeviceError::ChainUnterminated);
                }
                descs.push(d);
            }
            // The iterator stops early (no error) at a loop, an index past the
            // table or a table outside memory: the last one still says "next".
            if descs.last().is_none_or(|d| d.has_next()) {
                return Err(DeviceError::ChainUnterminated);
            }
            let (status, written) = self.serve(&descs, mem)?;
            if let Some(s) = descs.last() {
                mem.write_obj(status, s.addr())?;
            }
            queue.add_used(mem, head, written.saturating_add(1))?;
            used = true;
        }
        Ok(used)
    }
}
