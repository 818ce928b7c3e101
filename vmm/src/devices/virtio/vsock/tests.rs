//! The vsock device behind its MMIO transport, driven the way a guest driver
//! does over plain guest memory (no KVM), with a host program on the Unix
//! socket: both directions of a stream, and the packets that must reset a stream
//! or mark the device DEVICE_NEEDS_RESET.

use super::*;

#[test]
fn guest_cids_are_three_up_to_below_two_to_the_32_minus_one() {
    assert_eq!(guest_cid(3), Ok(3));
    assert_eq!(guest_cid(u64::from(u32::MAX) - 1), Ok(u32::MAX - 1));
    for reserved in [0, 1, 2] {
        assert_eq!(guest_cid(reserved), Err(CidError::Reserved(reserved)));
    }
    for large in [u64::from(u32::MAX), 1 << 32, u64::MAX] {
        assert_eq!(guest_cid(large), Err(CidError::TooLarge(large)));
    }
}

use super::packet::{op, shutdown, Header, HEADER_LEN, HOST_CID, TYPE_STREAM};
use crate::devices::irq::IrqLine;
use crate::devices::mmio::MmioDevice;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::test_driver::{ring, TestDriver, QSIZE, STATUS};
use crate::devices::virtio::VIRTIO_F_VERSION_1;
use crate::memory;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use test_support::TempDir;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

const CID: u32 = 3;
/// RX buffers, one page each, and the TX packet.
const RX_BUFS: u64 = 0x20_0000;
const TX_BUF: u64 = 0x30_0000;
const RX_BUF_LEN: u32 = 4096;

struct Guest {
    drv: TestDriver,
    used_seen: u16,
    dir: TempDir,
    path: PathBuf,
}

impl std::ops::Deref for Guest {
    type Target = TestDriver;
    fn deref(&self) -> &TestDriver {
        &self.drv
    }
}

impl std::ops::DerefMut for Guest {
    fn deref_mut(&mut self) -> &mut TestDriver {
        &mut self.drv
    }
}

impl Guest {
    fn new() -> Guest {
        let dir = TempDir::new("virtio-vsock").unwrap();
        let path = dir.path().join("v.sock");
        let vsock = Vsock::new(&VsockConfig {
            guest_cid: CID,
            path: path.clone(),
        })
        .unwrap();
        let mem = memory::create(32 << 20).unwrap();
        let irq = IrqLine::Irqfd(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let mut g = Guest {
            drv: TestDriver::new(MmioTransport::new(Box::new(vsock), irq, mem.clone()), mem),
            used_seen: 0,
            dir,
            path,
        };
        g.setup();
        g
    }

    fn setup(&mut self) {
        self.drv
            .start(1 << VIRTIO_F_VERSION_1, &[u32::from(QSIZE); 3]);
        assert_eq!(self.r(STATUS), 15, "DRIVER_OK");
    }

    /// Writes descriptor `i` of queue `q`, a chain of one.
    fn desc(&self, q: usize, i: u16, addr: u64, len: u32, flags: u16) {
        self.drv.desc(q, i, addr, len, flags, 0);
    }

    /// Gives the device RX buffers (descriptors i of queue 0) and notifies it.
    fn rx_buffers(&mut self, n: u16) {
        for _ in 0..n {
            let i = self.avail[0] % QSIZE;
            let addr = RX_BUFS + u64::from(i) * u64::from(RX_BUF_LEN);
            self.desc(0, i, addr, RX_BUF_LEN, 2);
            self.make_available(0, i);
        }
        self.notify(0);
    }

    /// Sends one packet on the TX queue (one descriptor: header and payload).
    fn send(&mut self, hdr: &Header, payload: &[u8]) {
        let mut bytes = hdr.encode().to_vec();
        bytes.extend_from_slice(payload);
        self.send_raw(&bytes);
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.mem.write_slice(bytes, GuestAddress(TX_BUF)).unwrap();
        let i = self.avail[1] % QSIZE;
        self.desc(1, i, TX_BUF, u32::try_from(bytes.len()).unwrap(), 0);
        self.make_available(1, i);
        self.notify(1);
    }

    /// Serves the host side the way the monitor's loop does, until nothing is
    /// readable.
    fn pump(&self) {
        for _ in 0..100 {
            let fds = self.dev.host_fds();
            let mut pfds: Vec<libc::pollfd> = fds
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let n = libc::nfds_t::try_from(pfds.len()).unwrap();
            // SAFETY: `pfds` holds `n` valid pollfds for the call.
            if unsafe { libc::poll(pfds.as_mut_ptr(), n, 20) } <= 0 {
                return;
            }
            for p in pfds.iter().filter(|p| p.revents != 0) {
                self.dev.host_event(p.fd);
            }
        }
        panic!("the host side stays readable: the loop would spin");
    }

    /// The packets the device put in the RX queue since the last call.
    fn received(&mut self) -> Vec<(Header, Vec<u8>)> {
        let used_ring = ring(0).2;
        let idx: u16 = self.mem.read_obj(GuestAddress(used_ring + 2)).unwrap();
        let mut out = Vec::new();
        while self.used_seen != idx {
            let slot = u64::from(self.used_seen % QSIZE);
            let id: u32 = self
                .mem
                .read_obj(GuestAddress(used_ring + 4 + 8 * slot))
                .unwrap();
            let len: u32 = self
                .mem
                .read_obj(GuestAddress(used_ring + 8 + 8 * slot))
                .unwrap();
            let addr = RX_BUFS + u64::from(id) * u64::from(RX_BUF_LEN);
            let mut raw = [0u8; HEADER_LEN];
            self.mem.read_slice(&mut raw, GuestAddress(addr)).unwrap();
            let hdr = Header::decode(&raw);
            let mut data = vec![0u8; len as usize - HEADER_LEN];
            self.mem
                .read_slice(&mut data, GuestAddress(addr + HEADER_LEN as u64))
                .unwrap();
            assert_eq!(data.len(), hdr.len as usize);
            out.push((hdr, data));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }

    fn ops(&mut self) -> Vec<u16> {
        self.received().iter().map(|(h, _)| h.op).collect()
    }
}

fn to_host(op: u16, src_port: u32, dst_port: u32, len: u32) -> Header {
    Header {
        src_cid: u64::from(CID),
        dst_cid: HOST_CID,
        src_port,
        dst_port,
        len,
        kind: TYPE_STREAM,
        op,
        flags: 0,
        buf_alloc: 64 << 10,
        fwd_cnt: 0,
    }
}

fn listen_on_port(g: &Guest, port: u32) -> UnixListener {
    let mut p = g.path.clone().into_os_string();
    p.push(format!("_{port}"));
    UnixListener::bind(p).unwrap()
}

#[test]
fn the_register_page_identifies_a_socket_device_with_the_guests_cid() {
    let g = Guest::new();
    assert_eq!(g.r(8), 19, "VIRTIO_ID_VSOCK");
    let mut cid = [0u8; 8];
    g.dev.read(0x100, &mut cid);
    assert_eq!(u64::from_le_bytes(cid), u64::from(CID));
    assert!(g.path.exists(), "the monitor listens at PATH");
}

#[test]
fn a_guest_stream_reaches_path_port_both_ways_and_ends_with_rst() {
    let mut g = Guest::new();
    let listener = listen_on_port(&g, 1234);
    g.rx_buffers(4);
    g.send(&to_host(op::REQUEST, 5000, 1234, 0), &[]);
    let (mut host, _) = listener.accept().unwrap();
    g.pump();
    let got = g.received();
    assert_eq!(got.len(), 1);
    let r = got[0].0;
    assert_eq!((r.op, r.src_port, r.dst_port), (op::RESPONSE, 1234, 5000));
    assert_eq!((r.src_cid, r.dst_cid), (HOST_CID, u64::from(CID)));

    g.send(&to_host(op::RW, 5000, 1234, 18), b"bootlab lab vsock\n");
    let mut line = [0u8; 18];
    host.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"bootlab lab vsock\n");

    host.write_all(b"hello guest\n").unwrap();
    g.pump();
    let got = g.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].0.op, &got[0].1[..]),
        (op::RW, &b"hello guest\n"[..])
    );

    let mut shut = to_host(op::SHUTDOWN, 5000, 1234, 0);
    shut.flags = shutdown::BOTH;
    g.send(&shut, &[]);
    g.pump();
    assert_eq!(g.ops(), [op::RST]);
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the host sees the end of the stream");
}

#[test]
fn a_guest_request_to_a_port_nobody_listens_on_is_reset() {
    let mut g = Guest::new();
    g.rx_buffers(2);
    g.send(&to_host(op::REQUEST, 5000, 4321, 0), &[]);
    g.pump();
    assert_eq!(g.ops(), [op::RST]);
}

#[test]
fn a_host_listener_that_does_not_accept_gets_requests_reset_not_waited_for() {
    let mut g = Guest::new();
    let path = {
        let mut p = g.path.clone().into_os_string();
        p.push("_1234");
        PathBuf::from(p)
    };
    // A listener with the smallest backlog that nobody accepts on: a blocking
    // connect would hang (here the test, in a VM the vCPU) once it is full.
    let listener = UnixListener::bind(&path).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&listener);
    // SAFETY: listen again on our own socket, with a backlog of 0.
    assert_eq!(unsafe { libc::listen(raw, 0) }, 0);
    g.rx_buffers(8);
    let mut ops = Vec::new();
    for port in 0..8 {
        g.send(&to_host(op::REQUEST, 6000 + port, 1234, 0), &[]);
        g.pump();
        ops.extend(g.ops());
    }
    assert!(ops.contains(&op::RESPONSE), "{ops:?}");
    assert!(ops.contains(&op::RST), "the full backlog refuses: {ops:?}");
}

#[test]
fn a_host_client_connects_to_a_guest_port_and_gets_ok_then_the_stream() {
    let mut g = Guest::new();
    g.rx_buffers(4);
    let mut client = UnixStream::connect(&g.path).unwrap();
    client.write_all(b"CONNECT 52\n").unwrap();
    g.pump();
    let got = g.received();
    assert_eq!(got.len(), 1);
    let req = got[0].0;
    assert_eq!(
        (req.op, req.dst_port, req.dst_cid),
        (op::REQUEST, 52, u64::from(CID))
    );
    let host_port = req.src_port;

    g.send(&to_host(op::RESPONSE, 52, host_port, 0), &[]);
    let mut ok = [0u8; 14];
    client.read_exact(&mut ok).unwrap();
    assert_eq!(
        std::str::from_utf8(&ok).unwrap(),
        format!("OK {host_port}\n")
    );

    client.write_all(b"ping").unwrap();
    g.pump();
    let got = g.received();
    assert_eq!((got[0].0.op, &got[0].1[..]), (op::RW, &b"ping"[..]));
    g.send(&to_host(op::RW, 52, host_port, 4), b"pong");
    let mut pong = [0u8; 4];
    client.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"pong");

    // The client closes: the guest hears SHUTDOWN, and its own ends the stream.
    drop(client);
    g.pump();
    let got = g.received();
    assert_eq!(
        (got[0].0.op, got[0].0.flags),
        (op::SHUTDOWN, shutdown::SEND)
    );
    let mut shut = to_host(op::SHUTDOWN, 52, host_port, 0);
    shut.flags = shutdown::BOTH;
    g.send(&shut, &[]);
    g.pump();
    assert_eq!(g.ops(), [op::RST]);
}

#[test]
fn a_guest_that_refuses_a_host_client_closes_its_socket() {
    let mut g = Guest::new();
    g.rx_buffers(2);
    let mut client = UnixStream::connect(&g.path).unwrap();
    client.write_all(b"CONNECT 52\n").unwrap();
    g.pump();
    let req = g.received()[0].0;
    g.send(&to_host(op::RST, 52, req.src_port, 0), &[]);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // A client without a CONNECT line is dropped too.
    let mut bad = UnixStream::connect(&g.path).unwrap();
    bad.write_all(b"HELLO\n").unwrap();
    g.pump();
    bad.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(g.received().is_empty(), "the guest heard of neither");
}

#[test]
fn without_rx_buffers_the_host_side_waits_instead_of_spinning() {
    let mut g = Guest::new();
    let mut client = UnixStream::connect(&g.path).unwrap();
    client.write_all(b"CONNECT 52\n").unwrap();
    // pump() panics if the descriptors stay readable.
    g.pump();
    assert!(g.received().is_empty());
    g.rx_buffers(1);
    g.pump();
    assert_eq!(g.ops(), [op::REQUEST]);
}

#[test]
fn protocol_breaks_reset_the_stream() {
    let mut g = Guest::new();
    let listener = listen_on_port(&g, 1234);
    g.rx_buffers(6);
    g.send(&to_host(op::REQUEST, 5000, 1234, 0), &[]);
    let _host = listener.accept().unwrap();
    g.pump();
    assert_eq!(g.ops(), [op::RESPONSE]);
    // A payload longer than the packet's buffers.
    g.send(&to_host(op::RW, 5000, 1234, 100), b"short");
    g.pump();
    assert_eq!(g.ops(), [op::RST]);
    // Data on a stream nobody opened.
    g.send(&to_host(op::RW, 5001, 1234, 1), b"x");
    g.pump();
    assert_eq!(g.ops(), [op::RST]);
    // A reset of an unknown stream gets no answer.
    g.send(&to_host(op::RST, 5002, 1234, 0), &[]);
    g.pump();
    assert!(g.received().is_empty());
    assert!(!g.needs_reset(), "the protocol's faults are the streams'");
}

#[test]
fn a_tx_chain_shorter_than_a_header_marks_the_device_needs_reset() {
    let mut g = Guest::new();
    g.send_raw(&[0u8; HEADER_LEN - 1]);
    assert!(g.needs_reset());
    assert!(
        g.dev.host_fds().is_empty(),
        "a failed device waits for nothing"
    );
}

#[test]
fn the_socket_file_goes_with_the_device() {
    let Guest { drv, path, dir, .. } = Guest::new();
    drop(drv);
    assert!(!path.exists());
    drop(dir);
}
