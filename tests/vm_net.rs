//! `bootlab vm run --net` end to end with the lab guest, whose own virtio-net driver
//! sends one broadcast frame (ethertype 0x88b5, `bootlab lab frame`) and prints the
//! payload of the first such frame it receives. Each test runs the monitor in a
//! network namespace of its own (made by `unshare` on a thread, held by a
//! descriptor: nothing to clean up, and nothing of it touches the host's
//! interfaces), captures the guest's frame on the tap with an AF_PACKET socket
//! made in that namespace, answers it, and checks what the guest printed and
//! that a tap the monitor made is gone afterwards, also when the monitor is killed.
//! Needs root, KVM and /dev/net/tun; bad `--net` values are in bad_input.rs.

mod common;
use common::bootlab;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use test_support::Need;

/// The lab guest's ethertype ("local experimental 1").
const ETHERTYPE: u16 = 0x88b5;
const ETH_HDR: usize = 14;

/// A network namespace of the test's own, with AF_PACKET sockets for the lab
/// guest's ethertype and for ARP, and a datagram socket for interface look-ups,
/// all in it.
struct Netns {
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
fn socklen<T>() -> libc::socklen_t {
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

fn check(rc: libc::c_int, what: &str) {
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
    fn new() -> Netns {
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
    fn spawn_lab(&self, net: &str, extra: &[&str]) -> Child {
        let mut args = vec!["--guest", "lab", "--timeout", "60", "--net", net];
        args.extend(extra);
        self.spawn_vm(&args)
    }

    /// `bootlab vm run ARGS...` in the namespace, stdout and stderr piped.
    fn spawn_vm(&self, args: &[&str]) -> Child {
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
    fn ifindex(&self, name: &str) -> Option<i32> {
        let mut req = ifreq(name);
        // SAFETY: SIOCGIFINDEX fills one ifreq, which `req` is.
        let rc = unsafe { libc::ioctl(self.dgram.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
        // SAFETY: an int member of zeroed (or SIOCGIFINDEX-written) plain data.
        let index = unsafe { req.ifr_ifru.ifru_ifindex };
        (rc == 0).then_some(index)
    }

    /// The next frame of the lab guest's ethertype: its bytes and the interface
    /// it came in on.
    fn recv(&self) -> (Vec<u8>, i32) {
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

    /// Sends `payload` to `dst` on interface `ifindex`, in a frame of the lab
    /// guest's ethertype.
    fn send(&self, ifindex: i32, dst: &[u8], payload: &[u8]) {
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
    fn arp_ask(&self, ifindex: i32, ip: [u8; 4]) {
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
    fn arp_answer(&self, ip: [u8; 4]) -> Option<[u8; 6]> {
        let mut buf = [0u8; 128];
        // SAFETY: reads into a live buffer of its own length.
        let n = unsafe { libc::recv(self.arp.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let frame = &buf[..usize::try_from(n).ok()?];
        // A reply (opcode 2) whose sender protocol address is `ip`.
        (frame.len() >= 42 && frame[20..22] == [0, 2] && frame[28..32] == ip)
            .then(|| frame[22..28].try_into().unwrap())
    }

    /// Makes a persistent tap `name` in the namespace (gone with the namespace).
    fn persistent_tap(&self, name: &str) {
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

fn needs(test: &str) -> bool {
    test_support::need(
        test,
        &[
            Need::Kvm,
            Need::Root,
            Need::Path("/dev/net/tun".as_ref(), "the kernel's tun module"),
        ],
    )
}

/// Runs the lab guest with `--net NET` in `ns`: receives its frame, answers it, and
/// returns the frame, the interface it came on, the guest's stdout and stderr.
fn exchange(ns: &Netns, net: &str, answer: &str) -> (Vec<u8>, i32, String, String) {
    exchange_with(ns, net, &[], answer)
}

/// [`exchange`] with more `vm run` arguments.
fn exchange_with(
    ns: &Netns,
    net: &str,
    extra: &[&str],
    answer: &str,
) -> (Vec<u8>, i32, String, String) {
    let child = ns.spawn_lab(net, extra);
    let (frame, ifindex) = ns.recv();
    ns.send(ifindex, &frame[6..12], answer.as_bytes());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    (frame, ifindex, stdout, stderr)
}

/// The guest's frame: broadcast, from a locally administered "bl" MAC, our payload.
fn check_guest_frame(frame: &[u8]) {
    assert_eq!(&frame[..6], &[0xff; 6], "broadcast");
    assert_eq!(&frame[6..9], &[0x02, b'b', b'l'], "the card's MAC");
    assert_eq!(&frame[12..14], &ETHERTYPE.to_be_bytes());
    assert_eq!(&frame[ETH_HDR..], b"bootlab lab frame\n");
}

#[test]
fn the_lab_guest_sends_and_receives_a_frame_through_a_tap_it_made_which_then_goes() {
    let test = "the_lab_guest_sends_and_receives_a_frame_through_a_tap_it_made_which_then_goes";
    if !needs(test) {
        return;
    }
    let ns = Netns::new();
    let answer = format!("hello from the host {}\n", std::process::id());
    let (frame, ifindex, stdout, _) = exchange(&ns, "tap=bltest0", &answer);
    check_guest_frame(&frame);
    assert_eq!(ns.ifindex("bltest0"), None, "the tap outlived the VM");
    assert!(ifindex > 0);
    let sent = stdout.find("lab: net sent\n").expect(&stdout);
    let got = stdout
        .find(&format!("lab: net got: {answer}"))
        .expect(&stdout);
    assert!(
        sent < got && got < stdout.find("@@bootlab done").unwrap(),
        "{stdout}"
    );

    // A tap the kernel names: the monitor says which, and it goes too.
    let (frame, _, stdout, stderr) = exchange(&ns, "tap", "again\n");
    check_guest_frame(&frame);
    assert!(stdout.contains("lab: net got: again\n"), "{stdout}");
    let name = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bootlab: tap "))
        .and_then(|l| l.split_whitespace().next())
        .expect(&stderr)
        .to_owned();
    assert!(name.starts_with("bootlab"), "{stderr}");
    assert_eq!(ns.ifindex(&name), None, "{name} outlived the VM");

    // Queue notifications through ioeventfds: the event loop serves both queues.
    let extra = ["--virtio-notify", "ioeventfd"];
    let (frame, _, stdout, _) = exchange_with(&ns, "tap=bltest1", &extra, "by eventfd\n");
    check_guest_frame(&frame);
    assert!(stdout.contains("lab: net got: by eventfd\n"), "{stdout}");
}

#[test]
fn a_persistent_tap_is_used_and_kept() {
    let test = "a_persistent_tap_is_used_and_kept";
    if !needs(test) {
        return;
    }
    let ns = Netns::new();
    ns.persistent_tap("blkept0");
    let index = ns.ifindex("blkept0").expect("the persistent tap");
    let (frame, ifindex, stdout, _) = exchange(&ns, "tap=blkept0", "kept\n");
    check_guest_frame(&frame);
    assert_eq!(ifindex, index, "the frame came on the given tap");
    assert!(stdout.contains("lab: net got: kept\n"), "{stdout}");
    assert_eq!(ns.ifindex("blkept0"), Some(index), "the tap is gone");
}

#[test]
fn a_tap_the_monitor_made_goes_when_the_monitor_is_killed() {
    let test = "a_tap_the_monitor_made_goes_when_the_monitor_is_killed";
    if !needs(test) {
        return;
    }
    let ns = Netns::new();
    let mut child = ns.spawn_lab("tap=blkill0", &[]);
    // The guest's frame says the tap is up and the guest waits for an answer.
    let (frame, _) = ns.recv();
    check_guest_frame(&frame);
    assert!(ns.ifindex("blkill0").is_some());
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        !out.contains("@@bootlab done"),
        "the guest ended on its own: {out}"
    );
    // The kernel removes a tap with its last descriptor, a moment after the exit.
    let gone = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        ns.ifindex("blkill0").is_none()
    });
    assert!(gone, "blkill0 outlived the killed monitor");
}

/// The slow one: a Linux guest (guest-init32 on an emulated /dev/kvm, guest-init
/// on hardware) with `--net tap=NAME,ip=10.0.2.15/24` answers ARP for that address
/// on the tap: guest-init gave eth0 the address from `bootlab.ip=` and frames went
/// both ways. The questions are asked from the moment the tap exists; the tap
/// holds them until the guest's driver makes receive buffers available (when eth0
/// comes up), so even a guest that ends at once answers. Minutes on an
/// emulated-KVM host (about 2 here), seconds on hardware.
#[test]
fn a_linux_guest_takes_its_address_from_the_net_option_and_answers_arp_slow() {
    let test = "a_linux_guest_takes_its_address_from_the_net_option_and_answers_arp_slow";
    let images = std::env::var_os("BOOTLAB_IMAGES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-images/out")
        });
    let vmlinux = images.join("vmlinux");
    if !needs(test)
        || !test_support::need(test, &[Need::Path(&vmlinux, "run guest-images/build.sh")])
    {
        return;
    }
    let ns = Netns::new();
    let ip = [10, 0, 2, 15];
    let mut child = ns.spawn_vm(&[
        "--guest",
        "linux",
        "--timeout",
        "900",
        "--net",
        "tap=blslow0,ip=10.0.2.15/24",
    ]);
    let mut answer = None;
    while answer.is_none() && child.try_wait().unwrap().is_none() {
        if let Some(index) = ns.ifindex("blslow0") {
            ns.arp_ask(index, ip);
        }
        answer = ns.arp_answer(ip);
    }
    // An answer may have come just before the guest ended.
    for _ in 0..10 {
        answer = answer.or_else(|| ns.arp_answer(ip));
    }
    let out = child.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{console}");
    assert!(console.contains(" bootlab.ip=10.0.2.15/24 "), "{console}");
    let mac = answer.unwrap_or_else(|| panic!("no ARP reply from 10.0.2.15:\n{console}"));
    assert_eq!(&mac[..3], &[0x02, b'b', b'l'], "the card's MAC");
    assert_eq!(ns.ifindex("blslow0"), None, "the tap outlived the VM");
}
