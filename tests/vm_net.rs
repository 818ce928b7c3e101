//! `bootlab vm run --net` end to end with the lab guest, whose own virtio-net driver
//! sends one broadcast frame (ethertype 0x88b5, `bootlab lab frame`) and prints the
//! payload of the first such frame it receives. Each test runs the monitor in a
//! network namespace of its own (tests/common/netns.rs: made by `unshare` on a thread, held by a
//! descriptor: nothing to clean up, and nothing of it touches the host's
//! interfaces), captures the guest's frame on the tap with an AF_PACKET socket
//! made in that namespace, answers it, and checks what the guest printed and
//! that a tap the monitor made is gone afterwards, also when the monitor is killed.
//! Needs root, KVM and /dev/net/tun; bad `--net` values are in bad_input.rs.

mod common;
use common::netns::{needs, Netns, ETHERTYPE, ETH_HDR};

use std::io::Read;
use test_support::Need;

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
