//! A virtio-net device behind its MMIO transport, driven register by register the
//! way a guest driver does, over plain guest memory, with a SOCK_SEQPACKET socket
//! pair standing in for the tap (one frame per read and write, like a tap): frames
//! out and in with their headers, a frame too large for its chain, the host
//! descriptor offered only while receive buffers are available, a frame too large
//! for any tap dropped, and malformed chains that must leave the device marked
//! DEVICE_NEEDS_RESET.

use super::mmio::MmioTransport;
use super::net::{Net, BUF_LEN};
use super::test_driver::{TestDriver, NEXT, QSIZE, WRITE};
use super::VIRTIO_F_VERSION_1;
use crate::devices::irq::IrqLine;
use crate::devices::mmio::MmioDevice;
use crate::memory;
use crate::tap::VNET_HDR_LEN;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

const BUFS: u64 = 0x20_0000;
const MAC: [u8; 6] = [2, 0x62, 0x6c, 1, 2, 3];

struct Driver {
    drv: TestDriver,
    /// The host's end of the "tap".
    host: OwnedFd,
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

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array it is given.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Driver {
    fn new() -> Driver {
        let (device, host) = seqpacket_pair();
        let mem = memory::create(32 << 20).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let dev = MmioTransport::new(
            Box::new(Net::new(device, MAC)),
            IrqLine::Irqfd(irq),
            mem.clone(),
        );
        let mut d = Driver {
            drv: TestDriver::new(dev, mem),
            host,
        };
        d.setup();
        d
    }

    /// Negotiates VERSION_1 and MAC and sets both queues up.
    fn setup(&mut self) {
        let features = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC);
        self.drv.start(features, &[u32::from(QSIZE); 2]);
    }

    /// What the host reads from its end, if a frame is there.
    fn host_read(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; BUF_LEN];
        // SAFETY: reads into a live buffer of its own length.
        let n = unsafe { libc::read(self.host.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    fn host_write(&self, frame: &[u8]) {
        // SAFETY: writes from a live buffer of its own length.
        let n = unsafe { libc::write(self.host.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        assert_eq!(usize::try_from(n).ok(), Some(frame.len()));
    }

    /// Serves the device's host descriptors the way the event loop does; returns
    /// how many there were.
    fn serve_host(&self) -> usize {
        let fds = self.dev.host_fds();
        for &fd in &fds {
            self.dev.host_event(fd);
        }
        fds.len()
    }
}

/// A frame as a tap carries it: a header with something in it (the device must
/// replace it), then an Ethernet frame of `len` bytes whose bytes count up.
fn tap_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0xee; VNET_HDR_LEN];
    f.extend((0..len).map(|i| u8::try_from(i % 251).unwrap()));
    f
}

#[test]
fn the_card_is_a_network_device_with_its_mac_in_the_configuration_space() {
    let d = Driver::new();
    assert_eq!(d.r(8), 1, "VIRTIO_ID_NET");
    d.w(0x14, 0);
    assert_eq!(d.r(0x10), 1 << 5, "MAC only, below bit 32");
    d.w(0x14, 1);
    assert_eq!(d.r(0x10), 1, "VERSION_1");
    let mut mac = [0u8; 8];
    d.dev.read(0x100, &mut mac);
    assert_eq!(&mac[..6], &MAC);
    assert_eq!(&mac[6..], &[0, 0], "nothing past the MAC");
}

#[test]
fn a_transmitted_chain_reaches_the_tap_as_one_frame_with_an_empty_header() {
    let mut d = Driver::new();
    // The header and the frame's start in one buffer, the rest in a second.
    let frame = tap_frame(100);
    d.mem.write_slice(&frame, GuestAddress(BUFS)).unwrap();
    d.desc(1, 0, BUFS, 40, NEXT, 1);
    d.desc(1, 1, BUFS + 40, 72, 0, 0);
    d.submit(1, 0);
    let got = d.host_read().expect("a frame on the tap");
    assert_eq!(got.len(), frame.len());
    assert_eq!(&got[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
    assert_eq!(&got[VNET_HDR_LEN..], &frame[VNET_HDR_LEN..]);
    assert_eq!(d.used(1, 0), (1, 0, 0));
    assert!(d.host_read().is_none(), "one frame only");
    assert!(!d.needs_reset());
}

#[test]
fn received_frames_fill_available_chains_and_the_tap_is_polled_only_while_there_are_some() {
    let mut d = Driver::new();
    d.host_write(&tap_frame(60));
    assert_eq!(
        d.serve_host(),
        0,
        "no receive buffers yet: the tap is not polled"
    );
    // Two chains: one of 2 x 64 bytes, one of 1600.
    d.desc(0, 0, BUFS, 64, WRITE | NEXT, 1);
    d.desc(0, 1, BUFS + 64, 64, WRITE, 0);
    d.desc(0, 2, BUFS + 0x1000, 1600, WRITE, 0);
    d.submit(0, 0);
    d.submit(0, 2);
    assert_eq!(d.serve_host(), 1);
    let (idx, id, len) = d.used(0, 0);
    assert_eq!((idx, id, len), (1, 0, 72));
    let mut got = vec![0u8; 72];
    d.mem.read_slice(&mut got, GuestAddress(BUFS)).unwrap();
    let mut want = tap_frame(60);
    want[..VNET_HDR_LEN].fill(0);
    want[10] = 1; // num_buffers
    assert_eq!(got, want);
    // Nothing more to read: the second chain stays available, the tap polled.
    assert_eq!(d.serve_host(), 1);
    assert_eq!(d.used(0, 0).0, 1);
    d.host_write(&tap_frame(1500));
    assert_eq!(d.serve_host(), 1);
    assert_eq!(d.used(0, 1), (2, 2, 1512));
    // Both chains used: the tap leaves the set until the driver adds one.
    d.host_write(&tap_frame(10));
    assert_eq!(d.serve_host(), 0);
    d.desc(0, 3, BUFS + 0x2000, 100, WRITE, 0);
    d.submit(0, 3);
    assert_eq!(d.serve_host(), 1);
    assert_eq!(d.used(0, 2), (3, 3, 22));
    assert!(!d.needs_reset());
}

#[test]
fn a_frame_larger_than_its_chain_is_dropped_and_the_next_one_delivered() {
    let mut d = Driver::new();
    d.desc(0, 0, BUFS, 100, WRITE, 0);
    d.desc(0, 1, BUFS + 0x1000, 100, WRITE, 0);
    d.submit(0, 0);
    d.submit(0, 1);
    d.host_write(&tap_frame(200));
    d.host_write(&tap_frame(50));
    d.serve_host();
    assert_eq!(d.used(0, 0), (2, 0, 0), "the large one: used, empty");
    assert_eq!(d.used(0, 1), (2, 1, 62));
    assert!(!d.needs_reset());
}

#[test]
fn a_device_not_running_or_failed_offers_no_host_descriptor() {
    let mut d = Driver::new();
    d.desc(0, 0, BUFS, 100, WRITE, 0);
    d.submit(0, 0);
    assert_eq!(d.dev.host_fds().len(), 1);
    d.w(0x70, 0);
    assert!(d.dev.host_fds().is_empty(), "after a reset");
    d.setup();
    // A receive chain the device may not write: the driver's fault.
    d.desc(0, 0, BUFS, 100, 0, 0);
    d.submit(0, 0);
    d.host_write(&tap_frame(20));
    d.serve_host();
    assert!(d.needs_reset());
    assert!(d.dev.host_fds().is_empty(), "once failed");
}

#[test]
fn malformed_transmit_chains_get_the_device_marked_needs_reset() {
    type Attack = fn(&mut Driver);
    let attacks: [(&str, Attack); 4] = [
        ("a chain that loops", |d| {
            d.desc(1, 0, BUFS, 64, NEXT, 1);
            d.desc(1, 1, BUFS, 64, NEXT, 0);
            d.submit(1, 0);
        }),
        ("a buffer the device is to write", |d| {
            d.desc(1, 0, BUFS, 64, WRITE, 0);
            d.submit(1, 0);
        }),
        ("a frame shorter than its header", |d| {
            d.desc(1, 0, BUFS, 4, 0, 0);
            d.submit(1, 0);
        }),
        ("a buffer outside guest memory", |d| {
            d.desc(1, 0, 1 << 40, 64, 0, 0);
            d.submit(1, 0);
        }),
    ];
    for (what, attack) in attacks {
        let mut d = Driver::new();
        attack(&mut d);
        assert!(d.needs_reset(), "{what}: not marked");
        assert!(d.host_read().is_none(), "{what}: something was sent");
        d.setup();
        assert!(!d.needs_reset(), "{what}: reset");
    }
}

#[test]
fn a_frame_larger_than_64_kib_is_dropped_and_the_next_one_sent() {
    let mut d = Driver::new();
    d.desc(1, 0, BUFS, 0x1_0000, NEXT, 1);
    d.desc(1, 1, BUFS, 0x1_0000, 0, 0);
    d.submit(1, 0);
    assert_eq!(d.used(1, 0), (1, 0, 0), "used, nothing sent");
    assert!(d.host_read().is_none(), "the large frame was sent");
    assert!(!d.needs_reset());
    d.desc(1, 2, BUFS, u32::try_from(VNET_HDR_LEN).unwrap() + 60, 0, 0);
    d.submit(1, 2);
    assert_eq!(d.used(1, 1), (2, 2, 0));
    assert_eq!(d.host_read().map(|f| f.len()), Some(VNET_HDR_LEN + 60));
    assert!(!d.needs_reset());
}

#[test]
fn a_receive_chain_without_room_for_the_header_gets_the_device_marked() {
    let mut d = Driver::new();
    d.desc(
        0,
        0,
        BUFS,
        u32::try_from(VNET_HDR_LEN).unwrap() - 1,
        WRITE,
        0,
    );
    d.submit(0, 0);
    d.host_write(&tap_frame(20));
    d.serve_host();
    assert!(d.needs_reset());
    assert_eq!(
        d.used_idx(0),
        0,
        "a chain of a failed device came back used"
    );
}
