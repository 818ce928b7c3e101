//! A network namespace of a test's own for the `--net` tests (tests/vm_net.rs,
//! the hostile net driver in tests/vm_hostile.rs): made by `unshare` on a thread
//! and held by a descriptor (nothing to clean up, nothing of it touches the
//! host's interfaces), with AF_PACKET sockets in it to capture and send frames on
//! the monitor's tap.

use super::bootlab;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use test_support::Need;

/// The lab guest's ethertype ("local experimental 1").
pub const ETHERTYPE: u16 = 0x88b5;
pub const ETH_HDR: usize = 14;

/// A network namespace of the test's own, with AF_PACKET sockets for the lab
/// guest's ethertype and for ARP, and a datagram socket for interface look-ups,
/// all in it.
pub struct Netns {
    ns: File,
    packet: OwnedFd,
    arp: OwnedFd,
    dgram: OwnedFd,
}

/// ARP's ethertype.
const ETHERTYPE_ARP: u16 = 0x0806;

/// An AF_PACKET socket for frames of `ethertype` whose reads give up after `wait`.
fn packet_socket(ethertype: u16, wait: std::time::Duration) -> OwnedFd {
    let packet = socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        i32::from(ethertype.to_be()),
    );
    let timeout = libc::timeval {
        tv_sec: wait.as_secs().try_into().unwrap(),
        tv_usec: wait.subsec_micros().into(),
    };
    // SAFETY: SO_RCVTIMEO reads one timeval, which `timeout` is.
    check(
        unsafe {
            libc::setsockopt(
                packet.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&timeout).cast(),
                socklen::<libc::timeval>(),
            )
        },
        "SO_RCVTIMEO",
    );
    packet
}

/// The size of `T` as a socket-address or option length.
pub fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap()
}

/// An ifreq naming interface `name`.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain C data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = libc::c_char::from_ne_bytes([s]);
    }
    req
}

pub fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

fn socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> OwnedFd {
    // SAFETY: socket() has no memory arguments.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) };
    check(fd, "socket");
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl Netns {
    pub fn new() -> Netns {
        std::thread::spawn(|| {
            // SAFETY: moves only this thread into a new network namespace.
            check(unsafe { libc::unshare(libc::CLONE_NEWNET) }, "unshare");
            let ns = File::open("/proc/thread-self/ns/net").unwrap();
            let packet = packet_socket(ETHERTYPE, std::time::Duration::from_secs(30));
            let arp = packet_socket(ETHERTYPE_ARP, std::time::Duration::from_millis(50));
            let dgram = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            Netns {
                ns,
                packet,
                arp,
                dgram,
            }
        })
        .join()
        .unwrap()
    }

    /// `bootlab vm run --guest lab --net NET EXTRA...` in the namespace, stdout and
    /// stderr piped.
    pub fn spawn_lab(&self, net: &str, extra: &[&str]) -> Child {
        let mut args = vec!["--guest", "lab", "--timeout", "60", "--net", net];
        args.extend(extra);
        self.spawn_vm(&args)
    }

    /// `bootlab vm run ARGS...` in the namespace, stdout and stderr piped.
    pub fn spawn_vm(&self, args: &[&str]) -> Child {
        let ns = self.ns.as_raw_fd();
        let mut cmd = bootlab();
        cmd.args(["vm", "run"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setns is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    /// The index of interface `name` in the namespace, if it exists.
    pub fn ifindex(&self, name: &str) -> Option<i32> {
        let mut req = ifreq(name);
        // SAFETY: SIOCGIFINDEX fills one ifreq, which `req` is.
        let rc = unsafe { libc::ioctl(self.dgram.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
        // SAFETY: an int member of zeroed (or SIOCGIFINDEX-written) plain data.
        let index = unsafe { req.ifr_ifru.ifru_ifindex };
        (rc == 0).then_some(index)
    }

    /// The next frame of the lab guest's ethertype: its bytes and the interface
    /// it came in on.
    pub fn recv(&self) -> (Vec<u8>, i32) {
        let mut buf = vec![0u8; 2048];
        // SAFETY: sockaddr_ll is plain C data.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = socklen::<libc::sockaddr_ll>();
        // SAFETY: reads into live buffers of the lengths given.
        let n = unsafe {
            libc::recvfrom(
                self.packet.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                std::ptr::from_mut(&mut from).cast(),
                &mut len,
            )
        };
        check(
            n.try_into().unwrap_or(-1),
            "recvfrom (no frame from the guest)",
        );
        buf.truncate(usize::try_from(n).unwrap());
        (buf, from.sll_ifindex)
    }

    /// [`Netns::recv`], if a frame comes within `wait`.
    pub fn recv_within(&self, wait: std::time::Duration) -> Option<(Vec<u8>, i32)> {
        let mut pfd = libc::pollfd {
            fd: self.packet.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: polls one pollfd, which `pfd` is.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        (n > 0).then(|| self.recv())
    }

    /// Sends `payload` to `dst` on interface `ifindex`, in a frame of the lab
    /// guest's ethertype.
    pub fn send(&self, ifindex: i32, dst: &[u8], payload: &[u8]) {
        let mut frame = dst[..6].to_vec();
        frame.extend([0x02, 0, 0, 0, 0, 0x01]);
        frame.extend(ETHERTYPE.to_be_bytes());
        frame.extend(payload);
        // SAFETY: sockaddr_ll is plain C data.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
        to.sll_protocol = ETHERTYPE.to_be();
        to.sll_ifindex = ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&dst[..6]);
        // SAFETY: sends from live buffers of the lengths given.
        let n = unsafe {
            libc::sendto(
                self.packet.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&to).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
        check(n.try_into().unwrap_or(-1), "sendto");
    }

    /// Asks on interface `ifindex` (broadcast) who has IPv4 address `ip`.
    pub fn arp_ask(&self, ifindex: i32, ip: [u8; 4]) {
        let me = [0x02, 0, 0, 0, 0, 0x01];
        let mut frame = vec![0xff; 6];
        frame.extend(me);
        frame.extend(ETHERTYPE_ARP.to_be_bytes());
        // Ethernet, IPv4, 6- and 4-byte addresses, a request.
        frame.extend([0, 1, 0x08, 0, 6, 4, 0, 1]);
        frame.extend(me);
        frame.extend([10, 0, 2, 1]);
        frame.extend([0; 6]);
        frame.extend(ip);
        // SAFETY: sockaddr_ll is plain C data.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
        to.sll_protocol = ETHERTYPE_ARP.to_be();
        to.sll_ifindex = ifindex;
        // SAFETY: sends from live buffers of the lengths given; a failure (the tap
        // not up yet) only means this question is not asked.
        unsafe {
            libc::sendto(
                self.arp.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&to).cast(),
                socklen::<libc::sockaddr_ll>(),
            )
        };
    }

    /// The MAC address of an ARP reply for `ip` that arrives within the ARP
    /// socket's wait, if one does.
    pub fn arp_answer(&self, ip: [u8; 4]) -> Option<[u8; 6]> {
        let mut buf = [0u8; 128];
        // SAFETY: reads into a live buffer of its own length.
        let n = unsafe { libc::recv(self.arp.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let frame = &buf[..usize::try_from(n).ok()?];
        // A reply (opcode 2) whose sender protocol address is `ip`.
        (frame.len() >= 42 && frame[20..22] == [0, 2] && frame[28..32] == ip)
            .then(|| frame[22..28].try_into().unwrap())
    }

    /// Turns IPv6 off for interfaces made from now on in the namespace, so that
    /// a new tap sends its guest nothing of its own (router solicitations,
    /// multicast listener reports): only the test's frames.
    pub fn without_ipv6(&self) {
        let ns = self.ns.try_clone().unwrap();
        std::thread::spawn(move || {
            // SAFETY: moves only this thread into the test's namespace.
            check(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                "setns",
            );
            // /proc/sys/net is the namespace of the thread that opens it.
            std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").unwrap();
        })
        .join()
        .unwrap();
    }

    /// Makes a persistent tap `name` in the namespace (gone with the namespace).
    pub fn persistent_tap(&self, name: &str) {
        let ns = self.ns.try_clone().unwrap();
        let name = name.to_owned();
        std::thread::spawn(move || {
            // SAFETY: moves only this thread into the test's namespace.
            check(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                "setns",
            );
            let tun = File::options()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .unwrap();
            let mut req = ifreq(&name);
            req.ifr_ifru.ifru_flags = i16::try_from(libc::IFF_TAP | libc::IFF_NO_PI).unwrap();
            // SAFETY: TUNSETIFF reads and writes one ifreq; TUNSETPERSIST takes an int.
            unsafe {
                check(
                    libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req),
                    "TUNSETIFF",
                );
                check(
                    libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1),
                    "TUNSETPERSIST",
                );
            }
        })
        .join()
        .unwrap();
    }
}

pub fn needs(test: &str) -> bool {
    test_support::need(
        test,
        &[
            Need::Kvm,
            Need::Root,
            Need::Path("/dev/net/tun".as_ref(), "the kernel's tun module"),
        ],
    )
}
