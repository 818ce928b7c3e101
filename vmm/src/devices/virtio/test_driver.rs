//! A guest-side virtio-mmio driver for the devices' unit tests: it drives a
//! device's transport register by register over plain guest memory (no KVM), the
//! way a guest driver does, with every queue's rings at a fixed place. The block,
//! net and vsock tests build their requests on top of it.

use super::mmio::MmioTransport;
use crate::devices::mmio::MmioDevice;
use crate::memory::GuestMemory;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio as reg;
use vm_memory::{Bytes, GuestAddress};

pub const STATUS: u64 = reg::VIRTIO_MMIO_STATUS as u64;
pub const QUEUE_NOTIFY: u64 = reg::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
/// Descriptor flags.
pub const NEXT: u16 = 1;
pub const WRITE: u16 = 2;
/// Queue q's rings start at RINGS + q * RING_STRIDE: descriptors, then the
/// available ring a page later, then the used ring a page after that.
pub const RINGS: u64 = 0x10_0000;
pub const RING_STRIDE: u64 = 0x1_0000;
/// The entries the driver's rings hold (the queue size it asks for by default).
pub const QSIZE: u16 = 8;

/// Queue `q`'s (descriptor table, available ring, used ring).
pub fn ring(q: usize) -> (u64, u64, u64) {
    let base = RINGS + RING_STRIDE * q as u64;
    (base, base + 0x1000, base + 0x2000)
}

/// A device's transport and the guest memory it reaches, with the driver's
/// available index of each queue.
pub struct TestDriver {
    pub dev: MmioTransport,
    pub mem: GuestMemory,
    pub avail: Vec<u16>,
}

impl TestDriver {
    pub fn new(dev: MmioTransport, mem: GuestMemory) -> TestDriver {
        TestDriver {
            dev,
            mem,
            avail: Vec::new(),
        }
    }

    pub fn w(&self, offset: u64, v: u32) {
        self.dev.write(offset, &v.to_le_bytes());
    }

    pub fn r(&self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Resets the device, negotiates `features`, sets up one queue per entry of
    /// `sizes` with that many entries, and sets DRIVER_OK. FEATURES_OK must stick;
    /// a refused queue size is left to the caller to check (NEEDS_RESET).
    pub fn start(&mut self, features: u64, sizes: &[u32]) {
        let ack = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        self.w(STATUS, 0);
        self.w(STATUS, ack);
        for sel in 0..2u32 {
            self.w(reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL as u64, sel);
            #[allow(clippy::cast_possible_truncation)] // each half, on purpose
            self.w(
                reg::VIRTIO_MMIO_DRIVER_FEATURES as u64,
                (features >> (32 * sel)) as u32,
            );
        }
        self.w(STATUS, ack | VIRTIO_CONFIG_S_FEATURES_OK);
        assert_ne!(
            self.r(STATUS) & VIRTIO_CONFIG_S_FEATURES_OK,
            0,
            "FEATURES_OK"
        );
        for (q, &size) in sizes.iter().enumerate() {
            let (desc, avail, used) = ring(q);
            self.w(reg::VIRTIO_MMIO_QUEUE_SEL as u64, u32::try_from(q).unwrap());
            self.w(reg::VIRTIO_MMIO_QUEUE_NUM as u64, size);
            self.w(
                reg::VIRTIO_MMIO_QUEUE_DESC_LOW as u64,
                u32::try_from(desc).unwrap(),
            );
            self.w(
                reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW as u64,
                u32::try_from(avail).unwrap(),
            );
            self.w(
                reg::VIRTIO_MMIO_QUEUE_USED_LOW as u64,
                u32::try_from(used).unwrap(),
            );
            self.w(reg::VIRTIO_MMIO_QUEUE_READY as u64, 1);
        }
        self.w(
            STATUS,
            ack | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK,
        );
        self.avail = vec![0; sizes.len()];
    }

    /// Writes descriptor `i` of queue `q`.
    pub fn desc(&self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = ring(q).0 + 16 * u64::from(i);
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Puts chain `head` in queue `q`'s available ring, without notifying.
    pub fn make_available(&mut self, q: usize, head: u16) {
        let avail = ring(q).1;
        let slot = u64::from(self.avail[q] % QSIZE);
        self.mem
            .write_obj(head, GuestAddress(avail + 4 + 2 * slot))
            .unwrap();
        self.avail[q] = self.avail[q].wrapping_add(1);
        self.mem
            .write_obj(self.avail[q], GuestAddress(avail + 2))
            .unwrap();
    }

    pub fn notify(&self, q: usize) {
        self.w(QUEUE_NOTIFY, u32::try_from(q).unwrap());
    }

    /// Makes chain `head` of queue `q` available and notifies the queue.
    pub fn submit(&mut self, q: usize, head: u16) {
        self.make_available(q, head);
        self.notify(q);
    }

    /// Queue `q`'s used index.
    pub fn used_idx(&self, q: usize) -> u16 {
        self.mem.read_obj(GuestAddress(ring(q).2 + 2)).unwrap()
    }

    /// Used ring entry `n` of queue `q`: (used index, id, length).
    pub fn used(&self, q: usize, n: u64) -> (u16, u32, u32) {
        let used = ring(q).2;
        let id = self.mem.read_obj(GuestAddress(used + 4 + 8 * n)).unwrap();
        let len = self.mem.read_obj(GuestAddress(used + 8 + 8 * n)).unwrap();
        (self.used_idx(q), id, len)
    }

    pub fn needs_reset(&self) -> bool {
        self.r(STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET != 0
    }
}
