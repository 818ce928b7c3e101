//! The host side of the vsock device as Firecracker's "hybrid vsock" defines it:
//! one Unix socket at PATH that the monitor listens on. A host client connects,
//! writes `CONNECT <port>\n`, and once the guest accepts gets `OK <host_port>\n`
//! followed by the stream (a refusal closes the socket). A guest connection to
//! host port P goes to the Unix socket `PATH_P`, which the monitor connects to.
//!
//! Memory is bounded: at most [`MAX_CONNS`] streams and pending clients, each
//! buffering at most [`CONN_BUF`](super::connection::CONN_BUF) bytes of guest data while the host reader is
//! slow (credit flow control keeps the guest below that), and at most
//! [`MAX_ORPHAN_RSTS`] resets owed for unknown streams. PATH is removed when the
//! muxer is dropped (the VM ends or fails to build) and on SIGTERM, SIGINT and
//! SIGHUP ([`super::cleanup`]); a SIGKILLed monitor leaves it.

use super::connection::{reset_reply, Connection, Recv};
use super::packet::{op, Header, HOST_CID, TYPE_STREAM};
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// The most streams (open or being opened) at a time.
pub const MAX_CONNS: usize = 64;
/// The most resets owed to the guest for streams we do not know; more are dropped
/// (the guest then waits for its own timeout).
pub const MAX_ORPHAN_RSTS: usize = 64;
/// The longest `CONNECT <port>\n` line we wait for.
const LINE_MAX: usize = 32;
/// The ports we give host clients' streams, from here up (the guest sees them as
/// the source port).
const HOST_PORT_FIRST: u32 = 1 << 30;

/// A stream's key: our port and the guest's.
pub type Key = (u32, u32);

/// Why the host side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MuxerError {
    #[error("cannot listen on {}: {source}", path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the vsock event descriptors: {0}")]
    Fds(#[source] std::io::Error),
}

/// A host client that has not finished its `CONNECT` line.
#[derive(Debug)]
struct Client {
    sock: UnixStream,
    line: Vec<u8>,
}

/// A stream and its host socket.
#[derive(Debug)]
struct Stream {
    proto: Connection,
    sock: UnixStream,
    /// Guest bytes the host socket had no room for yet (at most CONN_BUF).
    pending: Vec<u8>,
    /// In the flush epoll set (pending is not empty).
    flushing: bool,
    /// Shut the socket's write side once `pending` is out.
    shut_write: bool,
    write_shut: bool,
}

/// What reading a stream's host socket gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRead {
    Data(usize),
    /// Nothing now (or the stream is gone, ended or owed a control packet first).
    Nothing,
}

/// The Unix-socket side of the vsock device.
#[derive(Debug)]
pub struct Muxer {
    guest_cid: u64,
    path: PathBuf,
    listener: UnixListener,
    clients: Vec<Client>,
    streams: BTreeMap<Key, Stream>,
    orphan_rsts: VecDeque<Header>,
    next_port: u32,
    /// Sockets with bytes waiting for room; readable when one of them has room.
    flush: Epoll,
    /// Always readable: stands in the device's descriptor set for "packets are
    /// owed to the guest", which only a call with the RX queue can send.
    owed: EventFd,
    /// PATH removed on a terminating signal while the muxer lives.
    _on_signal: super::cleanup::Registration,
}

impl Muxer {
    /// Listens at `path`, for the guest `guest_cid`.
    pub fn new(guest_cid: u64, path: &Path) -> Result<Muxer, MuxerError> {
        let listener = UnixListener::bind(path)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| MuxerError::Listen {
                path: path.to_owned(),
                source,
            })?;
        // From here on, dropping the muxer removes the socket file.
        let muxer = |flush, owed| Muxer {
            guest_cid,
            path: path.to_owned(),
            listener,
            clients: Vec::new(),
            streams: BTreeMap::new(),
            orphan_rsts: VecDeque::new(),
            next_port: HOST_PORT_FIRST,
            flush,
            owed,
            _on_signal: super::cleanup::register(path),
        };
        let flush = Epoll::new();
        let owed = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC);
        let (flush, owed) = match (flush, owed) {
            (Ok(f), Ok(o)) => (f, o),
            (Err(e), _) | (_, Err(e)) => {
                let _ = std::fs::remove_file(path);
                return Err(MuxerError::Fds(e));
            }
        };
        let m = muxer(flush, owed);
        m.owed.write(1).map_err(MuxerError::Fds)?;
        Ok(m)
    }

    /// The descriptors with input we can take now. With `rx_starved` (the guest
    /// has no receive buffers) only those that need none: new clients, their
    /// CONNECT lines, and sockets with room for guest bytes.
    pub fn host_fds(&self, rx_starved: bool) -> Vec<RawFd> {
        let mut fds = Vec::new();
        if self.clients.len() + self.streams.len() < MAX_CONNS {
            fds.push(self.listener.as_raw_fd());
        }
        fds.extend(self.clients.iter().map(|c| c.sock.as_raw_fd()));
        if self.streams.values().any(|s| s.flushing) {
            fds.push(self.flush.as_raw_fd());
        }
        if !rx_starved {
            if self.owes_guest() {
                fds.push(self.owed.as_raw_fd());
            }
            fds.extend(
                self.streams
                    .values()
                    .filter(|s| s.proto.wants_host_data())
                    .map(|s| s.sock.as_raw_fd()),
            );
        }
        fds
    }

    /// Whether control packets are owed to the guest.
    pub fn owes_guest(&self) -> bool {
        !self.orphan_rsts.is_empty() || self.streams.values().any(|s| s.proto.owes_control())
    }

    /// The next control packet for the guest; a stream whose RST this is ends.
    pub fn next_control(&mut self) -> Option<Header> {
        if let Some(h) = self.orphan_rsts.pop_front() {
            return Some(h);
        }
        let key = *self.streams.iter().find(|(_, s)| s.proto.owes_control())?.0;
        let hdr = self.streams.get_mut(&key)?.proto.next_control()?;
        if hdr.op == op::RST {
            self.remove(key);
        }
        Some(hdr)
    }

    /// Input on `fd`: new clients, CONNECT lines and room for pending bytes are
    /// served here; a stream's socket is returned for the device to read into the
    /// guest's buffers.
    pub fn host_input(&mut self, fd: RawFd) -> Option<Key> {
        if fd == self.listener.as_raw_fd() {
            self.accept();
        } else if fd == self.flush.as_raw_fd() {
            self.flush_ready();
        } else if let Some(i) = self.clients.iter().position(|c| c.sock.as_raw_fd() == fd) {
            self.client_input(i);
        } else {
            return self
                .streams
                .iter()
                .find(|(_, s)| s.sock.as_raw_fd() == fd)
                .map(|(k, _)| *k);
        }
        None
    }

    /// How many bytes stream `key` may give the guest now.
    pub fn credit(&self, key: Key) -> u32 {
        self.streams
            .get(&key)
            .filter(|s| s.proto.wants_host_data())
            .map_or(0, |s| s.proto.peer_credit())
    }

    /// Reads stream `key`'s host socket into `buf`. End of file owes the guest a
    /// SHUTDOWN, an error a RST.
    pub fn read_host(&mut self, key: Key, buf: &mut [u8]) -> HostRead {
        let Some(s) = self.streams.get_mut(&key) else {
            return HostRead::Nothing;
        };
        match s.sock.read(buf) {
            Ok(0) => {
                s.proto.host_eof();
                self.settle(key);
                HostRead::Nothing
            }
            Ok(n) => HostRead::Data(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                HostRead::Nothing
            }
            Err(e) => {
                log::debug!("vsock: stream {key:?}: reading the host socket: {e}");
                s.proto.close();
                HostRead::Nothing
            }
        }
    }

    /// The header of `n` bytes just read from stream `key`.
    pub fn data_header(&mut self, key: Key, n: u32) -> Option<Header> {
        Some(self.streams.get_mut(&key)?.proto.data_header(n))
    }

    /// A packet the guest sent, with its payload (RW only).
    pub fn guest_packet(&mut self, hdr: &Header, payload: &[u8]) {
        if hdr.src_cid != self.guest_cid || hdr.dst_cid != HOST_CID {
            log::debug!(
                "vsock: a packet from cid {} to cid {} dropped",
                hdr.src_cid,
                hdr.dst_cid
            );
            return;
        }
        let key = (hdr.dst_port, hdr.src_port);
        let Some(s) = self.streams.get_mut(&key) else {
            if hdr.op == op::REQUEST && hdr.kind == TYPE_STREAM {
                self.connect_guest(hdr);
            } else {
                self.orphan_reset(hdr);
            }
            return;
        };
        match s.proto.recv(hdr) {
            Recv::Forward(n) => match payload.get(..n as usize) {
                Some(bytes) => Self::write_host(&self.flush, key, s, bytes),
                None => s.proto.close(),
            },
            Recv::Accepted => {
                let ok = format!("OK {}\n", s.proto.local_port);
                // A fresh socket has room for one short line.
                if send(&s.sock, ok.as_bytes()).ok() != Some(ok.len()) {
                    s.proto.close();
                }
            }
            Recv::ShutdownHostWrite => s.shut_write = true,
            Recv::Drop => {
                self.remove(key);
                return;
            }
            Recv::Reset | Recv::Nothing => {}
        }
        self.settle(key);
    }

    /// A guest packet too broken to read (its payload is not in its buffers):
    /// the stream, if any, is reset.
    pub fn malformed(&mut self, hdr: &Header) {
        match self.streams.get_mut(&(hdr.dst_port, hdr.src_port)) {
            Some(s) => s.proto.close(),
            None => self.orphan_reset(hdr),
        }
    }

    /// The guest reset the device: every stream and client goes.
    pub fn reset(&mut self) {
        let keys: Vec<Key> = self.streams.keys().copied().collect();
        for k in keys {
            self.remove(k);
        }
        self.clients.clear();
        self.orphan_rsts.clear();
    }

    fn orphan_reset(&mut self, hdr: &Header) {
        if self.orphan_rsts.len() < MAX_ORPHAN_RSTS {
            self.orphan_rsts.extend(reset_reply(hdr));
        } else {
            log::debug!("vsock: too many resets owed; one dropped");
        }
    }

    /// The guest's REQUEST: connect to `PATH_<port>` and answer RESPONSE, or RST.
    fn connect_guest(&mut self, hdr: &Header) {
        if self.clients.len() + self.streams.len() >= MAX_CONNS {
            log::debug!("vsock: too many streams; guest request refused");
            self.orphan_reset(hdr);
            return;
        }
        let mut target = self.path.clone().into_os_string();
        target.push(format!("_{}", hdr.dst_port));
        match connect_nonblocking(Path::new(&target)) {
            Ok(sock) => {
                let proto = Connection::accept_guest(self.guest_cid, hdr);
                self.streams
                    .insert((hdr.dst_port, hdr.src_port), Stream::new(proto, sock));
            }
            Err(e) => {
                log::debug!("vsock: guest connection to {target:?}: {e}");
                self.orphan_reset(hdr);
            }
        }
    }

    fn accept(&mut self) {
        while self.clients.len() + self.streams.len() < MAX_CONNS {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            sock,
                            line: Vec::new(),
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    /// Reads client `i`'s CONNECT line a byte at a time (what follows the line is
    /// the stream's and stays in the socket).
    fn client_input(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let mut byte = [0u8; 1];
        let line = loop {
            match c.sock.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break Some(std::mem::take(&mut c.line)),
                Ok(1) if c.line.len() < LINE_MAX => c.line.push(byte[0]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                _ => break None, // end of file, an error, or a line too long
            }
        };
        let client = self.clients.swap_remove(i);
        let Some(port) = line.as_deref().and_then(parse_connect) else {
            log::debug!("vsock: a host client without a CONNECT line dropped");
            return;
        };
        let local = self.free_port();
        let proto = Connection::connect_host(self.guest_cid, local, port);
        self.streams
            .insert((local, port), Stream::new(proto, client.sock));
    }

    /// A host port no stream uses.
    fn free_port(&mut self) -> u32 {
        loop {
            let p = self.next_port;
            self.next_port = p.checked_add(1).unwrap_or(HOST_PORT_FIRST);
            if !self.streams.keys().any(|(local, _)| *local == p) {
                return p;
            }
        }
    }

    /// Writes guest bytes to the stream's socket, keeping what does not fit.
    fn write_host(flush: &Epoll, key: Key, s: &mut Stream, bytes: &[u8]) {
        let mut sent = 0;
        if s.pending.is_empty() {
            match send(&s.sock, bytes) {
                Ok(n) => sent = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("vsock: stream {key:?}: writing the host socket: {e}");
                    s.proto.close();
                    return;
                }
            }
        }
        #[allow(clippy::cast_possible_truncation)] // at most CONN_BUF
        s.proto.forwarded(sent as u32);
        if sent < bytes.len() {
            s.pending.extend_from_slice(&bytes[sent..]);
            if !s.flushing {
                let ev = EpollEvent::new(EventSet::OUT, u64::from(key.0) << 32 | u64::from(key.1));
                match flush.ctl(ControlOperation::Add, s.sock.as_raw_fd(), ev) {
                    Ok(()) => s.flushing = true,
                    Err(_) => s.proto.close(),
                }
            }
        }
    }

    /// Writes the pending bytes of every stream whose socket has room.
    fn flush_ready(&mut self) {
        let mut events = [EpollEvent::default(); 16];
        let n = self.flush.wait(0, &mut events).unwrap_or(0);
        for ev in &events[..n] {
            #[allow(clippy::cast_possible_truncation)] // the two halves, on purpose
            let key = ((ev.data() >> 32) as u32, ev.data() as u32);
            let Some(s) = self.streams.get_mut(&key) else {
                continue;
            };
            match send(&s.sock, &s.pending) {
                Ok(n) => {
                    s.pending.drain(..n);
                    #[allow(clippy::cast_possible_truncation)] // at most CONN_BUF
                    s.proto.forwarded(n as u32);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    s.pending.clear();
                    s.proto.close();
                }
            }
            self.settle(key);
        }
    }

    /// After a change on stream `key`: leave the flush set when nothing is
    /// pending, shut the host's write side once asked and drained, and end the
    /// stream with RST once both directions are over.
    fn settle(&mut self, key: Key) {
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        if !s.pending.is_empty() {
            return;
        }
        if s.flushing {
            let _ = self.flush.ctl(
                ControlOperation::Delete,
                s.sock.as_raw_fd(),
                EpollEvent::default(),
            );
            s.flushing = false;
        }
        if s.shut_write && !s.write_shut {
            let _ = s.sock.shutdown(std::net::Shutdown::Write);
            s.write_shut = true;
        }
        if s.proto.finished() {
            s.proto.close();
        }
    }

    fn remove(&mut self, key: Key) {
        if let Some(s) = self.streams.remove(&key) {
            if s.flushing {
                let _ = self.flush.ctl(
                    ControlOperation::Delete,
                    s.sock.as_raw_fd(),
                    EpollEvent::default(),
                );
            }
        }
    }
}

impl Stream {
    fn new(proto: Connection, sock: UnixStream) -> Stream {
        Stream {
            proto,
            sock,
            pending: Vec::new(),
            flushing: false,
            shut_write: false,
            write_shut: false,
        }
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The port of a `CONNECT <port>` line (the newline taken off).
pub fn parse_connect(line: &[u8]) -> Option<u32> {
    let line = std::str::from_utf8(line).ok()?;
    let port = line.strip_prefix("CONNECT ")?.trim_end_matches('\r');
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Connects a non-blocking stream socket to the Unix socket at `path`. A Unix
/// socket connects at once or fails at once: a listener whose backlog is full
/// gives EAGAIN rather than stalling the vCPU that sent the guest's request.
fn connect_nonblocking(path: &Path) -> std::io::Result<UnixStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    #[allow(clippy::cast_possible_truncation)] // AF_UNIX is 1
    {
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    }
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = libc::c_char::from_ne_bytes([*s]);
    }
    // SAFETY: socket takes no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    #[allow(clippy::cast_possible_truncation)] // sockaddr_un is 110 bytes
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, alive for the call.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(UnixStream::from(fd))
}

/// Sends without blocking and without SIGPIPE on a closed peer.
fn send(sock: &UnixStream, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `bytes` is a live buffer of its length; the descriptor is the
    // socket's own.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_line_names_a_port_and_nothing_else() {
        assert_eq!(parse_connect(b"CONNECT 1234"), Some(1234));
        assert_eq!(parse_connect(b"CONNECT 52\r"), Some(52));
        assert_eq!(parse_connect(b"CONNECT 4294967295"), Some(u32::MAX));
        for bad in [
            &b"CONNECT"[..],
            b"CONNECT ",
            b"CONNECT -1",
            b"CONNECT 4294967296",
            b"connect 1",
            b"CONNECT 1 2",
            b"CONNECT +1",
            b"\xff",
        ] {
            assert_eq!(parse_connect(bad), None, "{bad:?}");
        }
    }
}
