//! The guest's network address from the kernel command line: `bootlab.ip=ADDR/PREFIX`
//! (an IPv4 address and prefix length, given by `bootlab vm run --net
//! ...,ip=ADDR/PREFIX`), which guest-init puts on eth0 before it brings the link up
//! (`sys::interface_up`). Pure parsing and the ifreq bytes the ioctls take.

/// The interface the monitor's network card appears as.
pub const INTERFACE: &core::ffi::CStr = c"eth0";

/// An IPv4 address with its prefix length (1 to 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: [u8; 4],
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// `A.B.C.D/P`, or `None` for anything else.
    pub fn parse(value: &str) -> Option<Ipv4Cidr> {
        let (addr, prefix) = value.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (1..=32).contains(p))?;
        let mut octets = [0u8; 4];
        let mut parts = addr.split('.');
        for o in &mut octets {
            *o = parts.next()?.parse().ok()?;
        }
        parts.next().is_none().then_some(Ipv4Cidr {
            addr: octets,
            prefix,
        })
    }

    /// The netmask of the prefix length.
    pub fn netmask(&self) -> [u8; 4] {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        bits.to_be_bytes()
    }
}

/// The size of `struct ifreq` on x86-64: a 16-byte name and a 24-byte union.
pub const IFREQ_LEN: usize = 40;
/// Where the union (an address, or the flags) starts in an ifreq.
const IFREQ_UNION: usize = 16;
/// AF_INET, as `sockaddr_in.sin_family` holds it.
const AF_INET: u16 = 2;

/// An ifreq naming `name` (at most 15 bytes) with nothing in its union.
pub fn ifreq(name: &[u8]) -> [u8; IFREQ_LEN] {
    let mut req = [0u8; IFREQ_LEN];
    for (d, s) in req.iter_mut().zip(name.iter().take(IFREQ_UNION - 1)) {
        *d = *s;
    }
    req
}

/// An ifreq naming `name` whose union is the `sockaddr_in` of `addr` (for
/// SIOCSIFADDR and SIOCSIFNETMASK).
pub fn ifreq_addr(name: &[u8], addr: [u8; 4]) -> [u8; IFREQ_LEN] {
    let mut req = ifreq(name);
    req[IFREQ_UNION..IFREQ_UNION + 2].copy_from_slice(&AF_INET.to_ne_bytes());
    req[IFREQ_UNION + 4..IFREQ_UNION + 8].copy_from_slice(&addr);
    req
}

/// The flags (a C short) in an ifreq's union, and the ifreq with them replaced.
pub fn ifreq_flags(req: &[u8; IFREQ_LEN]) -> i16 {
    i16::from_ne_bytes([req[IFREQ_UNION], req[IFREQ_UNION + 1]])
}

pub fn with_flags(mut req: [u8; IFREQ_LEN], flags: i16) -> [u8; IFREQ_LEN] {
    req[IFREQ_UNION..IFREQ_UNION + 2].copy_from_slice(&flags.to_ne_bytes());
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_prefixes_parse_and_give_their_netmask() {
        let ip = Ipv4Cidr::parse("10.0.2.15/24").unwrap();
        assert_eq!((ip.addr, ip.prefix), ([10, 0, 2, 15], 24));
        assert_eq!(ip.netmask(), [255, 255, 255, 0]);
        assert_eq!(Ipv4Cidr::parse("1.2.3.4/32").unwrap().netmask(), [255; 4]);
        assert_eq!(
            Ipv4Cidr::parse("1.2.3.4/1").unwrap().netmask(),
            [128, 0, 0, 0]
        );
        assert_eq!(
            Ipv4Cidr::parse("1.2.3.4/20").unwrap().netmask(),
            [255, 255, 240, 0]
        );
        for bad in [
            "",
            "10.0.2.15",
            "10.0.2/24",
            "10.0.2.15.1/24",
            "10.0.2.256/24",
            "1.2.3.4/0",
            "1.2.3.4/33",
            "a.b.c.d/8",
        ] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ifreqs_hold_the_name_then_a_sockaddr_in_or_the_flags() {
        let req = ifreq_addr(b"eth0", [10, 0, 2, 15]);
        assert_eq!(&req[..5], b"eth0\0");
        assert_eq!(&req[16..24], &[2, 0, 0, 0, 10, 0, 2, 15]);
        assert!(req[24..].iter().all(|&b| b == 0));
        let up = with_flags(ifreq(b"eth0"), 0x1003);
        assert_eq!(ifreq_flags(&up), 0x1003);
        assert_eq!(
            ifreq(b"a-name-longer-than-15")[15],
            0,
            "the name stays terminated"
        );
    }
}
