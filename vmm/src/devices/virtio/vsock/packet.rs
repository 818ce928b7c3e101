//! The virtio-vsock packet header (`struct virtio_vsock_hdr`, virtio 1.2 §5.10.6):
//! 44 little-endian bytes in front of every packet on the RX and TX queues, with
//! the operations, the socket type and the shutdown flags it carries.
//! virtio-bindings 0.2 has no vsock bindings, so the layout is written here once.

/// The CID of the host: where guest connections to the hybrid socket go.
pub const HOST_CID: u64 = 2;

/// The header's size on the queue: the structure is packed.
pub const HEADER_LEN: usize = 44;

/// The only socket type we carry (VIRTIO_VSOCK_TYPE_STREAM).
pub const TYPE_STREAM: u16 = 1;

/// VIRTIO_VSOCK_OP_*: what a packet is.
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const RESPONSE: u16 = 2;
    pub const RST: u16 = 3;
    pub const SHUTDOWN: u16 = 4;
    pub const RW: u16 = 5;
    pub const CREDIT_UPDATE: u16 = 6;
    pub const CREDIT_REQUEST: u16 = 7;
}

/// VIRTIO_VSOCK_SHUTDOWN_*: the `flags` of a SHUTDOWN packet.
pub mod shutdown {
    /// The sender will receive no more.
    pub const RCV: u32 = 1;
    /// The sender will send no more.
    pub const SEND: u32 = 2;
    pub const BOTH: u32 = RCV | SEND;
}

/// A decoded packet header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    /// Payload bytes after the header (RW only).
    pub len: u32,
    pub kind: u16,
    pub op: u16,
    pub flags: u32,
    /// The sender's receive buffer for this connection, in bytes.
    pub buf_alloc: u32,
    /// How many bytes the sender has taken out of that buffer, ever (wrapping).
    pub fwd_cnt: u32,
}

impl Header {
    /// The header from its bytes on the queue.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap_or_default());
        Header {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            kind: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }

    /// The header's bytes on the queue.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.kind.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_has_the_layout_of_virtio_vsock_hdr() {
        let h = Header {
            src_cid: 3,
            dst_cid: HOST_CID,
            src_port: 0x1122_3344,
            dst_port: 1234,
            len: 18,
            kind: TYPE_STREAM,
            op: op::RW,
            flags: shutdown::SEND,
            buf_alloc: 0x1_0000,
            fwd_cnt: 7,
        };
        let b = h.encode();
        assert_eq!(b[0], 3);
        assert_eq!(b[8], 2);
        assert_eq!(&b[16..20], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&b[20..22], &[0xd2, 0x04]);
        assert_eq!(b[24], 18);
        assert_eq!((b[28], b[30]), (1, 5));
        assert_eq!(b[32], 2);
        assert_eq!(&b[36..40], &[0, 0, 1, 0]);
        assert_eq!(b[40], 7);
        assert_eq!(Header::decode(&b), h);
    }
}
