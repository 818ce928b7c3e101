//! A virtio-blk device behind its MMIO transport, driven register by register the
//! way a guest driver does, over plain guest memory (no KVM needed): good
//! requests, and the hostile ones that must leave the device marked
//! DEVICE_NEEDS_RESET without a panic.

use super::block::{Block, DiskConfig, SECTOR_SIZE};
use super::mmio::{MmioTransport, MAGIC, VERSION};
use super::test_driver::{TestDriver, NEXT, WRITE};
use super::VIRTIO_F_VERSION_1;
use crate::devices::irq::IrqLine;
use crate::devices::mmio::MmioDevice;
use crate::memory;
use test_support::TempDir;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

/// Queue 0's available ring.
const AVAIL: u64 = super::test_driver::RINGS + 0x1000;
const HDR: u64 = 0x10_3000;
const STATUS_BYTE: u64 = 0x10_3100;
const DATA: u64 = 0x10_4000;

struct Driver {
    drv: TestDriver,
    irq: EventFd,
    _dir: TempDir,
    image: std::path::PathBuf,
}

impl std::ops::Deref for Driver {
    type Target = TestDriver;
    fn deref(&self) -> &TestDriver {
        &self.drv
    }
}

impl std::ops::DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut TestDriver {
        &mut self.drv
    }
}

impl Driver {
    /// A driver for a 64 KiB image whose sector n starts with the byte n.
    fn new(read_only: bool) -> Driver {
        let dir = TempDir::new("virtio-blk").unwrap();
        let image = dir.path().join("disk.img");
        let mut bytes = vec![0u8; 64 << 10];
        for (n, s) in bytes.chunks_mut(512).enumerate() {
            s[0] = u8::try_from(n).unwrap();
        }
        std::fs::write(&image, &bytes).unwrap();
        let disk = DiskConfig {
            path: image.clone(),
            read_only,
        };
        let (file, len) = disk.open().unwrap();
        let mem = memory::create(32 << 20).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let line = IrqLine::Irqfd(irq.try_clone().unwrap());
        let block = Block::new(file, len, read_only, "test-disk");
        Driver {
            drv: TestDriver::new(MmioTransport::new(Box::new(block), line, mem.clone()), mem),
            irq,
            _dir: dir,
            image,
        }
    }

    /// Negotiates VERSION_1 and sets queue 0 up with `size` entries.
    fn setup(&mut self, size: u32) {
        self.drv.start(1 << VIRTIO_F_VERSION_1, &[size]);
    }

    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.drv.desc(0, i, addr, len, flags, next);
    }

    /// Makes chain `head` available and notifies queue 0.
    fn submit(&mut self, head: u16) {
        self.drv.submit(0, head);
    }

    /// A three-descriptor request of `kind` at `sector` with `len` data bytes.
    fn request(&mut self, kind: u32, sector: u64, len: u32) -> u8 {
        self.mem.write_obj(kind, GuestAddress(HDR)).unwrap();
        self.mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
        self.mem
            .write_obj(0xffu8, GuestAddress(STATUS_BYTE))
            .unwrap();
        let data_flags = if kind == 1 { NEXT } else { NEXT | WRITE };
        self.desc(0, HDR, 16, NEXT, 1);
        self.desc(1, DATA, len, data_flags, 2);
        self.desc(2, STATUS_BYTE, 1, WRITE, 0);
        self.submit(0);
        self.mem.read_obj(GuestAddress(STATUS_BYTE)).unwrap()
    }

    fn used_idx(&self) -> u16 {
        self.drv.used_idx(0)
    }
}

#[test]
fn the_register_page_identifies_a_block_device_of_the_image_size() {
    let d = Driver::new(true);
    assert_eq!((d.r(0), d.r(4), d.r(8)), (MAGIC, VERSION, 2));
    assert_eq!(d.r(0x34), 256, "QueueNumMax");
    d.w(0x14, 1);
    assert_eq!(d.r(0x10) & 1, 1, "VERSION_1 offered");
    d.w(0x14, 0);
    assert_ne!(d.r(0x10) & (1 << 5), 0, "read-only offered");
    let mut cap = [0u8; 8];
    d.dev.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), (64 << 10) / SECTOR_SIZE);
}

#[test]
fn reads_writes_flush_and_get_id_reach_the_image() {
    let mut d = Driver::new(false);
    d.setup(8);
    assert_eq!(d.request(0, 3, 1024), 0, "read sectors 3-4");
    let mut got = [0u8; 1024];
    d.mem.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    assert_eq!((got[0], got[512]), (3, 4));
    assert_eq!(d.irq.read().unwrap(), 1, "one interrupt");
    assert_eq!(d.r(0x60) & 1, 1, "used-buffer interrupt status");
    d.w(0x64, 1);
    assert_eq!(d.r(0x60), 0);

    d.mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(d.request(1, 5, 512), 0, "write sector 5");
    assert_eq!(d.request(4, 0, 0), 0, "flush");
    let image = std::fs::read(&d.image).unwrap();
    assert_eq!(&image[5 * 512..6 * 512], &[0xab; 512][..]);

    assert_eq!(d.request(8, 0, 20), 0, "get id");
    let mut id = [0u8; 9];
    d.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"test-disk");
    assert_eq!(d.used_idx(), 4);
    assert!(!d.needs_reset());
}

#[test]
fn requests_past_the_image_or_writes_to_a_read_only_disk_fail_with_an_io_error() {
    let mut d = Driver::new(true);
    d.setup(8);
    assert_eq!(d.request(0, 127, 512), 0, "the last sector");
    assert_eq!(d.request(0, 127, 1024), 1, "one past the end");
    assert_eq!(
        d.request(0, u64::MAX / 256, 512),
        1,
        "an offset that overflows"
    );
    assert_eq!(d.request(0, 0, 100), 1, "not whole sectors");
    assert_eq!(d.request(1, 0, 512), 1, "write to a read-only disk");
    assert_eq!(d.request(99, 0, 0), 2, "unsupported");
    assert!(!d.needs_reset(), "an I/O error is not the driver's fault");
    assert_eq!(d.used_idx(), 6);
}

/// Each hostile driver action marks the device DEVICE_NEEDS_RESET; after a reset
/// the same device serves a good request again.
#[test]
fn hostile_drivers_get_the_device_marked_needs_reset_and_a_reset_recovers_it() {
    type Attack = fn(&mut Driver);
    let attacks: [(&str, Attack); 8] = [
        ("a chain that loops", |d| {
            d.desc(0, HDR, 16, NEXT, 1);
            d.desc(1, DATA, 512, NEXT | WRITE, 0);
            d.submit(0);
        }),
        ("a next index past the table", |d| {
            d.desc(0, HDR, 16, NEXT, 200);
            d.submit(0);
        }),
        ("a header outside guest memory", |d| {
            d.desc(0, 1 << 40, 16, NEXT, 1);
            d.desc(1, STATUS_BYTE, 1, WRITE, 0);
            d.submit(0);
        }),
        ("a data buffer in the MMIO gap", |d| {
            d.mem.write_obj(0u32, GuestAddress(HDR)).unwrap();
            d.desc(0, HDR, 16, NEXT, 1);
            d.desc(1, crate::layout::MMIO_GAP_START, 512, NEXT | WRITE, 2);
            d.desc(2, STATUS_BYTE, 1, WRITE, 0);
            d.submit(0);
        }),
        ("a length that runs past the end of memory", |d| {
            d.mem.write_obj(0u32, GuestAddress(HDR)).unwrap();
            d.desc(0, HDR, 16, NEXT, 1);
            d.desc(1, DATA, 0xffff_fe00, NEXT | WRITE, 2);
            d.desc(2, STATUS_BYTE, 1, WRITE, 0);
            d.submit(0);
        }),
        ("an available index that jumps", |d| {
            d.mem.write_obj(1000u16, GuestAddress(AVAIL + 2)).unwrap();
            d.w(0x50, 0);
        }),
        ("a queue size that is not a power of two", |d| {
            d.w(0x44, 0);
            d.w(0x38, 7);
        }),
        ("a queue size above the maximum", |d| {
            d.w(0x44, 0);
            d.w(0x38, 512);
        }),
    ];
    let mut d = Driver::new(true);
    for (what, attack) in attacks {
        d.setup(8);
        attack(&mut d);
        assert!(d.needs_reset(), "{what}: not marked");
        let _ = d.irq.read();
        // No service while marked, then a reset recovers the device.
        d.setup(8);
        assert!(!d.needs_reset(), "{what}: reset");
        assert_eq!(d.request(0, 1, 512), 0, "{what}: served after the reset");
    }
}

#[test]
fn a_notification_storm_and_a_reset_before_the_notify_are_harmless() {
    let mut d = Driver::new(true);
    d.setup(8);
    for _ in 0..100_000 {
        d.w(0x50, 0);
    }
    assert!(!d.needs_reset());
    assert_eq!(d.used_idx(), 0);
    // A request made available, then the device reset before its notify: no
    // service until the driver sets it up again.
    d.desc(0, HDR, 16, NEXT, 1);
    d.desc(1, DATA, 512, NEXT | WRITE, 2);
    d.desc(2, STATUS_BYTE, 1, WRITE, 0);
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    d.w(0x70, 0);
    d.w(0x50, 0);
    assert_eq!((d.used_idx(), d.r(0x70)), (0, 0));
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 2)).unwrap();
    d.setup(8);
    assert_eq!(d.request(0, 2, 512), 0);
}
