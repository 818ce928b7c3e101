//! One vsock stream's protocol state, without any descriptor: who opened it, the
//! credit both sides have (virtio 1.2 §5.10.6.3: `buf_alloc`/`fwd_cnt`), what the
//! guest said it will no longer do, and which control packets we owe it. The
//! muxer moves the bytes; every decision here is a value that unit tests check.

use super::packet::{op, shutdown, Header, HOST_CID, TYPE_STREAM};

/// Bytes of the guest's data we buffer per connection when the host reader is
/// slower than the guest writer: our `buf_alloc`, which bounds what the guest may
/// send before we have forwarded it.
pub const CONN_BUF: u32 = 64 << 10;

/// We tell the guest about freed buffer space once this much was forwarded since
/// the last count it heard (half the buffer: a writer that filled it always gets
/// an update once it has drained).
const CREDIT_UPDATE_THRESHOLD: u32 = CONN_BUF / 2;

/// Where the stream is in its set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A host client's connection: our REQUEST is out, the guest has not answered.
    Connecting,
    /// Data flows.
    Established,
}

/// What the muxer does with a packet the guest sent on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// Nothing beyond the state change (credit, a control packet now owed).
    Nothing,
    /// Write the packet's `len` payload bytes to the host socket.
    Forward(u32),
    /// The guest accepted our REQUEST: tell the host client `OK <port>`.
    Accepted,
    /// The guest will send no more: shut the host socket's write side once the
    /// buffered bytes are out.
    ShutdownHostWrite,
    /// The guest reset the stream (or refused it): drop it without an answer.
    Drop,
    /// The packet breaks the protocol: send RST and drop the stream.
    Reset,
}

/// Which control packets the guest is owed, sent in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Owed {
    request: bool,
    response: bool,
    shutdown: u32,
    credit_update: bool,
    rst: bool,
}

/// A stream between a host port (ours) and a guest port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub guest_cid: u64,
    /// Our side's port (the guest's destination port for a guest connection, an
    /// allocated one for a host client's).
    pub local_port: u32,
    pub peer_port: u32,
    pub phase: Phase,
    /// The guest's receive buffer and how much it has consumed of what we sent.
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Payload bytes we sent the guest, ever (wrapping, as the counters are).
    tx_cnt: u32,
    /// Payload bytes the guest sent us, and how many of them are on the host side.
    rx_cnt: u32,
    fwd_cnt: u32,
    /// The `fwd_cnt` the guest last heard from us.
    fwd_cnt_told: u32,
    /// SHUTDOWN flags the guest sent.
    guest_shut: u32,
    /// The host side reached end of file (we owe or sent SHUTDOWN SEND).
    host_eof: bool,
    owed: Owed,
}

impl Connection {
    fn new(guest_cid: u64, local_port: u32, peer_port: u32, phase: Phase) -> Self {
        Connection {
            guest_cid,
            local_port,
            peer_port,
            phase,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            tx_cnt: 0,
            rx_cnt: 0,
            fwd_cnt: 0,
            fwd_cnt_told: 0,
            guest_shut: 0,
            host_eof: false,
            owed: Owed::default(),
        }
    }

    /// The guest's REQUEST `hdr`, whose host socket is connected: we owe RESPONSE.
    pub fn accept_guest(guest_cid: u64, hdr: &Header) -> Self {
        let mut c = Connection::new(guest_cid, hdr.dst_port, hdr.src_port, Phase::Established);
        c.take_credit(hdr);
        c.owed.response = true;
        c
    }

    /// A host client's connection to guest port `peer_port`: we owe REQUEST.
    pub fn connect_host(guest_cid: u64, local_port: u32, peer_port: u32) -> Self {
        let mut c = Connection::new(guest_cid, local_port, peer_port, Phase::Connecting);
        c.owed.request = true;
        c
    }

    fn take_credit(&mut self, hdr: &Header) {
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = hdr.fwd_cnt;
    }

    /// Handles a packet the guest sent on this stream (its ports match).
    pub fn recv(&mut self, hdr: &Header) -> Recv {
        if hdr.kind != TYPE_STREAM {
            return self.reset();
        }
        self.take_credit(hdr);
        match (hdr.op, self.phase) {
            (op::RST, _) => Recv::Drop,
            (op::RESPONSE, Phase::Connecting) => {
                self.phase = Phase::Established;
                Recv::Accepted
            }
            (op::RW, Phase::Established) => {
                let buffered = self.rx_cnt.wrapping_sub(self.fwd_cnt);
                if self.guest_shut & shutdown::SEND != 0
                    || buffered.saturating_add(hdr.len) > CONN_BUF
                {
                    return self.reset();
                }
                self.rx_cnt = self.rx_cnt.wrapping_add(hdr.len);
                Recv::Forward(hdr.len)
            }
            (op::CREDIT_UPDATE, Phase::Established) => Recv::Nothing,
            (op::CREDIT_REQUEST, Phase::Established) => {
                self.owed.credit_update = true;
                Recv::Nothing
            }
            (op::SHUTDOWN, Phase::Established) => {
                self.guest_shut |= hdr.flags & shutdown::BOTH;
                if self.guest_shut & shutdown::SEND != 0 {
                    Recv::ShutdownHostWrite
                } else {
                    Recv::Nothing
                }
            }
            _ => self.reset(),
        }
    }

    fn reset(&mut self) -> Recv {
        self.owed.rst = true;
        Recv::Reset
    }

    /// Both directions are over: the guest will send no more and either will not
    /// receive either or the host has nothing more to send. Once the buffered bytes
    /// are out, the stream ends with our RST (which a Linux guest waits for).
    pub fn finished(&self) -> bool {
        self.guest_shut & shutdown::SEND != 0
            && (self.guest_shut & shutdown::RCV != 0 || self.host_eof)
    }

    /// Ends the stream with RST (after [`Connection::finished`], or a host error).
    pub fn close(&mut self) {
        self.owed.rst = true;
    }

    /// Whether we owe the guest a RST: the stream ends when it is sent.
    pub fn closing(&self) -> bool {
        self.owed.rst
    }

    /// The host side reached end of file: we owe SHUTDOWN SEND.
    pub fn host_eof(&mut self) {
        if !self.host_eof {
            self.host_eof = true;
            self.owed.shutdown |= shutdown::SEND;
        }
    }

    /// Whether the host has reached end of file.
    pub fn host_done(&self) -> bool {
        self.host_eof
    }

    /// `n` of the guest's bytes reached the host socket.
    pub fn forwarded(&mut self, n: u32) {
        self.fwd_cnt = self.fwd_cnt.wrapping_add(n);
        if self.fwd_cnt.wrapping_sub(self.fwd_cnt_told) >= CREDIT_UPDATE_THRESHOLD {
            self.owed.credit_update = true;
        }
    }

    /// How many bytes the guest can take now.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Whether we may read the host socket for the guest now: established, the
    /// host still sending, the guest with room and still receiving.
    pub fn wants_host_data(&self) -> bool {
        self.phase == Phase::Established
            && !self.host_eof
            && !self.owed.rst
            && self.guest_shut & shutdown::RCV == 0
            && self.peer_credit() > 0
    }

    /// Whether a control packet is owed.
    pub fn owes_control(&self) -> bool {
        self.owed != Owed::default()
    }

    /// The next control packet owed, taken off the list.
    pub fn next_control(&mut self) -> Option<Header> {
        let o = &mut self.owed;
        let (op, flags) = if std::mem::take(&mut o.rst) {
            *o = Owed::default();
            (op::RST, 0)
        } else if std::mem::take(&mut o.request) {
            (op::REQUEST, 0)
        } else if std::mem::take(&mut o.response) {
            (op::RESPONSE, 0)
        } else if o.shutdown != 0 {
            (op::SHUTDOWN, std::mem::take(&mut o.shutdown))
        } else if std::mem::take(&mut o.credit_update) {
            (op::CREDIT_UPDATE, 0)
        } else {
            return None;
        };
        Some(self.header(op, flags, 0))
    }

    /// The header of `len` payload bytes for the guest (counted as sent).
    pub fn data_header(&mut self, len: u32) -> Header {
        self.tx_cnt = self.tx_cnt.wrapping_add(len);
        self.header(op::RW, 0, len)
    }

    fn header(&mut self, op: u16, flags: u32, len: u32) -> Header {
        // Every packet tells the guest our count: an owed update is then paid.
        self.fwd_cnt_told = self.fwd_cnt;
        self.owed.credit_update = false;
        Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.local_port,
            dst_port: self.peer_port,
            len,
            kind: TYPE_STREAM,
            op,
            flags,
            buf_alloc: CONN_BUF,
            fwd_cnt: self.fwd_cnt,
        }
    }
}

/// The RST that answers a guest packet for a stream we do not know (never a RST
/// for a RST).
pub fn reset_reply(hdr: &Header) -> Option<Header> {
    (hdr.op != op::RST).then_some(Header {
        src_cid: hdr.dst_cid,
        dst_cid: hdr.src_cid,
        src_port: hdr.dst_port,
        dst_port: hdr.src_port,
        len: 0,
        kind: TYPE_STREAM,
        op: op::RST,
        flags: 0,
        buf_alloc: 0,
        fwd_cnt: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: u64 = 3;

    fn from_guest(op: u16, len: u32, buf_alloc: u32, fwd_cnt: u32) -> Header {
        Header {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port: 5000,
            dst_port: 1234,
            len,
            kind: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc,
            fwd_cnt,
        }
    }

    fn guest_conn() -> Connection {
        let mut c = Connection::accept_guest(GUEST, &from_guest(op::REQUEST, 0, 4096, 0));
        assert_eq!(c.next_control().map(|h| h.op), Some(op::RESPONSE));
        c
    }

    #[test]
    fn a_guest_request_is_answered_with_response_on_the_same_ports() {
        let mut c = Connection::accept_guest(GUEST, &from_guest(op::REQUEST, 0, 4096, 0));
        let r = c.next_control().unwrap();
        assert_eq!((r.op, r.src_port, r.dst_port), (op::RESPONSE, 1234, 5000));
        assert_eq!(
            (r.src_cid, r.dst_cid, r.buf_alloc),
            (HOST_CID, GUEST, CONN_BUF)
        );
        assert_eq!(c.next_control(), None);
        assert!(c.wants_host_data());
    }

    #[test]
    fn a_host_client_waits_for_the_guests_response_before_data() {
        let mut c = Connection::connect_host(GUEST, 1 << 30, 1234);
        assert_eq!(c.next_control().map(|h| h.op), Some(op::REQUEST));
        assert!(!c.wants_host_data());
        // Data before the answer breaks the protocol.
        let mut early = c.clone();
        assert_eq!(early.recv(&from_guest(op::RW, 4, 4096, 0)), Recv::Reset);
        assert_eq!(early.next_control().map(|h| h.op), Some(op::RST));
        assert_eq!(
            c.recv(&from_guest(op::RESPONSE, 0, 4096, 0)),
            Recv::Accepted
        );
        assert!(c.wants_host_data());
        // A guest that refuses resets the stream.
        let mut refused = Connection::connect_host(GUEST, 1 << 30, 1234);
        assert_eq!(refused.recv(&from_guest(op::RST, 0, 0, 0)), Recv::Drop);
    }

    #[test]
    fn the_guest_may_send_up_to_our_buffer_and_no_more() {
        let mut c = guest_conn();
        assert_eq!(
            c.recv(&from_guest(op::RW, CONN_BUF - 10, 4096, 0)),
            Recv::Forward(CONN_BUF - 10)
        );
        assert_eq!(c.recv(&from_guest(op::RW, 10, 4096, 0)), Recv::Forward(10));
        assert_eq!(c.recv(&from_guest(op::RW, 1, 4096, 0)), Recv::Reset);
        assert_eq!(c.next_control().map(|h| h.op), Some(op::RST));
        assert_eq!(c.next_control(), None);
    }

    #[test]
    fn forwarding_half_the_buffer_owes_a_credit_update_with_the_count() {
        let mut c = guest_conn();
        c.recv(&from_guest(op::RW, CONN_BUF, 4096, 0));
        c.forwarded(CONN_BUF / 2 - 1);
        assert!(!c.owes_control());
        c.forwarded(1);
        let u = c.next_control().unwrap();
        assert_eq!((u.op, u.fwd_cnt), (op::CREDIT_UPDATE, CONN_BUF / 2));
        // Room again: the guest may send what was forwarded.
        assert_eq!(
            c.recv(&from_guest(op::RW, CONN_BUF / 2, 4096, 0)),
            Recv::Forward(CONN_BUF / 2)
        );
    }

    #[test]
    fn a_credit_request_is_answered() {
        let mut c = guest_conn();
        assert_eq!(
            c.recv(&from_guest(op::CREDIT_REQUEST, 0, 4096, 0)),
            Recv::Nothing
        );
        assert_eq!(c.next_control().map(|h| h.op), Some(op::CREDIT_UPDATE));
    }

    #[test]
    fn we_send_the_guest_no_more_than_its_buffer_allows() {
        let mut c = guest_conn();
        assert_eq!(c.peer_credit(), 4096);
        let h = c.data_header(4000);
        assert_eq!((h.op, h.len), (op::RW, 4000));
        assert_eq!(c.peer_credit(), 96);
        c.data_header(96);
        assert!(!c.wants_host_data());
        // The guest consumed 1000 bytes.
        c.recv(&from_guest(op::CREDIT_UPDATE, 0, 4096, 1000));
        assert_eq!(c.peer_credit(), 1000);
        // A guest that shrinks its buffer below what is in flight has no room,
        // not a negative one.
        c.recv(&from_guest(op::CREDIT_UPDATE, 0, 10, 0));
        assert_eq!(c.peer_credit(), 0);
    }

    #[test]
    fn the_counters_wrap() {
        let mut c = guest_conn();
        c.recv(&from_guest(op::CREDIT_UPDATE, 0, 4096, u32::MAX - 9));
        c.tx_cnt = u32::MAX - 9;
        c.data_header(20);
        assert_eq!(c.peer_credit(), 4076);
    }

    #[test]
    fn shutdowns_end_the_stream_once_both_directions_are_over() {
        let mut c = guest_conn();
        let mut shut = from_guest(op::SHUTDOWN, 0, 4096, 0);
        shut.flags = shutdown::SEND;
        assert_eq!(c.recv(&shut), Recv::ShutdownHostWrite);
        assert!(!c.finished());
        // Data after the guest said it sends no more.
        assert_eq!(c.clone().recv(&from_guest(op::RW, 1, 4096, 0)), Recv::Reset);
        c.host_eof();
        assert!(c.finished());
        let s = c.next_control().unwrap();
        assert_eq!((s.op, s.flags), (op::SHUTDOWN, shutdown::SEND));
        // A full shutdown from the guest finishes it at once.
        let mut d = guest_conn();
        shut.flags = shutdown::BOTH;
        assert_eq!(d.recv(&shut), Recv::ShutdownHostWrite);
        assert!(d.finished() && !d.wants_host_data());
        d.close();
        assert_eq!(d.next_control().map(|h| h.op), Some(op::RST));
        assert_eq!(d.next_control(), None);
    }

    #[test]
    fn odd_packets_reset_the_stream() {
        for op in [op::REQUEST, op::RESPONSE, 99] {
            let mut c = guest_conn();
            assert_eq!(c.recv(&from_guest(op, 0, 4096, 0)), Recv::Reset, "op {op}");
        }
        let mut dgram = from_guest(op::RW, 1, 4096, 0);
        dgram.kind = 2;
        assert_eq!(guest_conn().recv(&dgram), Recv::Reset);
    }

    #[test]
    fn unknown_streams_get_a_reset_but_a_reset_gets_nothing() {
        let r = reset_reply(&from_guest(op::RW, 1, 0, 0)).unwrap();
        assert_eq!(
            (r.op, r.src_port, r.dst_port, r.dst_cid),
            (op::RST, 1234, 5000, GUEST)
        );
        assert_eq!(reset_reply(&from_guest(op::RST, 0, 0, 0)), None);
    }
}
