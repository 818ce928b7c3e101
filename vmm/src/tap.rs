//! A tap device (/dev/net/tun) as the host side of a virtio-net device: opened
//! non-blocking, one Ethernet frame per read or write, each preceded by a 12-byte
//! `virtio_net_hdr_v1` (IFF_VNET_HDR with TUNSETVNETHDRSZ), so frames move between
//! the tap and the guest's buffers without re-framing. A tap that this open
//! creates (a kernel-chosen `bootlab%d`, or a name that did not exist) is not
//! persistent: the kernel removes it with its last descriptor, also when the
//! monitor is killed. The link is set up (IFF_UP) once attached.
//!
//! Creating a tap is the kernel's work, not ours (ftrace, 2026-12-06): TUNSETIFF
//! about 0.31 ms (the netdev's sysfs entries and uevent, its IPv4 and IPv6 state),
//! IFF_UP about 0.10 ms (IPv6 addrconf); our other calls about 0.035 ms. Attaching
//! to an existing tap skips the registration (README: Network).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// The longest interface name Linux takes: IFNAMSIZ (16) less its NUL.
pub const NAME_MAX: usize = libc::IFNAMSIZ - 1;
/// The name pattern of a tap the kernel names (`%d`: the first free number).
pub const KERNEL_NAMED: &str = "bootlab%d";
/// The length of the header before each frame: `virtio_net_hdr_v1`.
pub const VNET_HDR_LEN: usize =
    std::mem::size_of::<virtio_bindings::virtio_net::virtio_net_hdr_v1>();

/// Why a tap could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap name `{name}`: {why}")]
    BadName { name: String, why: &'static str },
    #[error("tap {name}: needs root (CAP_NET_ADMIN) to create or attach a tap")]
    NotPermitted {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("tap {name} is in use by another process")]
    Busy { name: String },
    #[error("tap {name}: {what}")]
    Setup {
        name: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Checks `name` the way the kernel does (dev_valid_name) and refuses `%`, which
/// would make the kernel pick a number.
pub fn check_name(name: &str) -> Result<(), TapError> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.len() > NAME_MAX {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("not a name")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == b'%' || b.is_ascii_whitespace() || b == 0)
    {
        Some("holds one of / : % or a blank")
    } else {
        None
    };
    match why {
        Some(why) => Err(TapError::BadName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// An open tap.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Attaches to tap `name` (creating it if it does not exist), or creates a tap
    /// the kernel names with `None`; sets the link up.
    pub fn open(name: Option<&str>) -> Result<Tap, TapError> {
        if let Some(n) = name {
            check_name(n)?;
        }
        let shown = name.unwrap_or(KERNEL_NAMED).to_owned();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| denied_or(&shown, "open /dev/net/tun", e))?;
        let mut req = ifreq(name.unwrap_or(KERNEL_NAMED));
        // The flags are a C short in the request's union.
        #[allow(clippy::cast_possible_truncation)] // 0x5002 fits
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        req.ifr_ifru.ifru_flags = flags;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is and outlives the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EBUSY) => TapError::Busy { name: shown },
                _ => denied_or(&shown, "TUNSETIFF", e),
            });
        }
        let name = name_of(&req);
        let hdr_len = libc::c_int::try_from(VNET_HDR_LEN).unwrap_or(12);
        // SAFETY: TUNSETVNETHDRSZ reads one int, which `hdr_len` is.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(setup(&name, "TUNSETVNETHDRSZ", io::Error::last_os_error()));
        }
        set_up(&name)?;
        Ok(Tap { file, name })
    }

    /// The interface's name (the kernel's choice for a `bootlab%d` tap).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl From<Tap> for OwnedFd {
    fn from(tap: Tap) -> OwnedFd {
        tap.file.into()
    }
}

fn setup(name: &str, what: &'static str, source: io::Error) -> TapError {
    TapError::Setup {
        name: name.to_owned(),
        what,
        source,
    }
}

/// EPERM and EACCES say the caller may not have a tap; other errors are what they say.
fn denied_or(name: &str, what: &'static str, e: io::Error) -> TapError {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => TapError::NotPermitted {
            name: name.to_owned(),
            source: e,
        },
        _ => setup(name, what, e),
    }
}

/// An ifreq naming `name` (at most IFNAMSIZ - 1 bytes, checked by the callers).
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain C data (a name array and a union of integers and
    // addresses), for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(NAME_MAX)) {
        *d = libc::c_char::from_ne_bytes([s]);
    }
    req
}

/// The name the kernel wrote back into `req`.
fn name_of(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sets interface `name` up (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP), through
/// a datagram socket of the caller's network namespace.
fn set_up(name: &str) -> Result<(), TapError> {
    // SAFETY: socket() has no memory arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(setup(name, "socket", io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFFLAGS fills the flags of one ifreq, which `req` is.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(setup(name, "SIOCGIFFLAGS", io::Error::last_os_error()));
    }
    // SAFETY: the union's flags member is the one SIOCGIFFLAGS wrote.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    #[allow(clippy::cast_possible_truncation)] // IFF_UP is 1
    let up = libc::IFF_UP as libc::c_short;
    req.ifr_ifru.ifru_flags = flags | up;
    // SAFETY: SIOCSIFFLAGS reads one ifreq, which `req` is.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(denied_or(name, "SIOCSIFFLAGS", io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_the_kernel_does() {
        for ok in ["tap0", "a", "bootlab-123456", "x".repeat(15).as_str()] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "tap%d", &"x".repeat(16)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("tap name `{bad}`")), "{e}");
        }
    }
}
