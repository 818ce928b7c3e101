//! `bootlab vm run --vsock CID,PATH` end to end with the lab guest, which drives
//! the device through its own minimal virtio driver: a guest stream to host port
//! 1234 reaches the test's listener on `PATH_1234` and carries a line both ways; a
//! host client on PATH (`CONNECT <port>`) reaches the guest, which accepts when
//! the reply asked it to listen. PATH is gone when the VM has ended. The packet
//! and stream logic has its unit tests in vmm; bad `--vsock` values are in
//! `bad_input.rs`.

mod common;
use common::{bootlab, kvm_or_skip};
use std::os::unix::process::CommandExt;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use test_support::TempDir;

/// The guest's line on every stream.
const GUEST_LINE: &str = "bootlab lab vsock\n";

fn port_path(path: &Path, port: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!("_{port}"));
    PathBuf::from(p)
}

fn spawn_lab(path: &Path, extra: &[&str]) -> Child {
    bootlab()
        .args(["vm", "run", "--guest", "lab", "--timeout", "20", "--vsock"])
        .arg(format!("3,{}", path.display()))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Listens on `PATH_1234` like a host service: takes one connection, reads the
/// guest's line, answers `reply`, and returns the line and what followed it
/// until the guest closed the stream.
fn host_service(path: &Path, reply: &'static str) -> (JoinHandle<(String, Vec<u8>)>, PathBuf) {
    let at = port_path(path, 1234);
    let listener = UnixListener::bind(&at).unwrap();
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(sock);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        reader.get_mut().write_all(reply.as_bytes()).unwrap();
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        (line, rest)
    });
    (handle, at)
}

/// Ends the service thread even if the guest never connected (the monitor has
/// exited by now), and returns what it saw.
fn finish_service(handle: JoinHandle<(String, Vec<u8>)>, at: &Path) -> (String, Vec<u8>) {
    if !handle.is_finished() {
        // A connection of our own releases a thread still in accept().
        let _ = UnixStream::connect(at);
    }
    handle.join().unwrap()
}

#[test]
fn the_lab_guest_sends_a_line_to_path_1234_and_prints_the_hosts_reply() {
    if !kvm_or_skip("the_lab_guest_sends_a_line_to_path_1234_and_prints_the_hosts_reply") {
        return;
    }
    let dir = TempDir::new("vsock-out").unwrap();
    // A disk first puts the vsock device in the second slot: the guest probes.
    let disk = dir.path().join("d.img");
    std::fs::write(&disk, b"vsock test disk\n".repeat(4096)).unwrap();
    let disk = disk.to_str().unwrap();
    for (chip, extra) in [
        ("split", vec![]),
        ("kernel", vec!["--disk", disk]),
        ("split", vec!["--virtio-notify", "ioeventfd"]),
    ] {
        let path = dir.path().join(format!("v-{chip}-{}.sock", extra.len()));
        let (service, at) = host_service(&path, "hello from the host\n");
        let mut args = vec!["--irqchip", chip];
        args.extend(&extra);
        let out = spawn_lab(&path, &args).wait_with_output().unwrap();
        let (line, rest) = finish_service(service, &at);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{chip}: {text}");
        assert_eq!(line, GUEST_LINE, "{chip}: {text}");
        assert!(rest.is_empty(), "{chip}: the guest sent more: {rest:?}");
        let sent = text.find("lab: vsock sent\n").expect(&text);
        let got = text
            .find("lab: vsock got: hello from the host\n")
            .expect(&text);
        assert!(
            sent < got && got < text.find("@@bootlab done").unwrap(),
            "{text}"
        );
        if extra.contains(&"--disk") {
            assert!(
                text.contains("lab: disk sector 0: vsock test disk\n"),
                "{text}"
            );
        }
        assert!(!path.exists(), "{chip}: {} left behind", path.display());
        std::fs::remove_file(&at).unwrap();
    }
}

#[test]
fn a_host_client_connects_to_the_listening_lab_guest_through_path() {
    if !kvm_or_skip("a_host_client_connects_to_the_listening_lab_guest_through_path") {
        return;
    }
    let dir = TempDir::new("vsock-in").unwrap();
    let path = dir.path().join("v.sock");
    let (service, at) = host_service(&path, "listen\n");
    let mut child = spawn_lab(&path, &[]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    let mut client = None;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
        if line == "lab: vsock listening\n" {
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"CONNECT 77\n").unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            client = Some(String::from_utf8_lossy(&got).into_owned());
        }
    }
    let status = child.wait().unwrap();
    let (line, _) = finish_service(service, &at);
    assert_eq!(status.code(), Some(0), "{text}");
    assert_eq!(line, GUEST_LINE, "{text}");
    assert!(text.contains("lab: vsock got: listen\n"), "{text}");
    let client = client.expect(&text);
    let (ok, stream) = client.split_once('\n').expect(&client);
    let port = ok.strip_prefix("OK ").expect(&client);
    assert!(port.parse::<u32>().is_ok(), "{client}");
    assert_eq!(stream, GUEST_LINE, "{text}");
    assert!(text.contains("lab: vsock accepted\n"), "{text}");
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn a_monitor_ended_by_sigterm_or_sigint_removes_its_socket() {
    if !kvm_or_skip("a_monitor_ended_by_sigterm_or_sigint_removes_its_socket") {
        return;
    }
    let dir = TempDir::new("vsock-signal").unwrap();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let path = dir.path().join(format!("v{sig}.sock"));
        // `bootlab.hold`: the lab guest waits for a console byte that never comes.
        let mut cmd = bootlab();
        // A test run in the background of a non-interactive shell (CI started with
        // `cmd &`) inherits SIGINT ignored, and the monitor rightly keeps an ignored
        // signal ignored: the child gets the default disposition back.
        // SAFETY: only signal(2), which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(sig, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd
            .args(["vm", "run", "--guest", "lab", "--timeout", "20"])
            .args(["--cmdline", "bootlab.hold", "--vsock"])
            .arg(format!("3,{}", path.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line != "@@bootlab snapshot\n" {
            line.clear();
            assert_ne!(
                stdout.read_line(&mut line).unwrap(),
                0,
                "the guest ended early"
            );
        }
        assert!(path.exists(), "{} not made", path.display());
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(sig), "{status:?}");
        assert!(
            !path.exists(),
            "signal {sig}: {} left behind",
            path.display()
        );
    }
}
