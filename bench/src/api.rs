//! One HTTP/1.1 request to a runtime's API over its Unix socket (Firecracker's:
//! pause, snapshot create and load), written by hand: the request line, `Host`,
//! `Content-Type`, `Content-Length` and a JSON body. Of the answer only the status
//! and, on an error, the body are read.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use timeline::now_ns;

/// How often the socket is tried while the runtime has not yet created it.
const CONNECT_RETRY: Duration = Duration::from_micros(50);
/// Bytes of an answer read at most (Firecracker's are a few hundred).
const ANSWER_MAX: usize = 16 * 1024;

/// The bytes of `METHOD path` with `body` as its JSON payload.
pub fn request(method: &str, path: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of an answer and its body, once the answer is complete: `None`
/// while more bytes are needed, `Err` when it is not HTTP.
pub fn parse_answer(bytes: &[u8]) -> Result<Option<(u16, &[u8])>, String> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        if bytes.len() >= 5 && !bytes.starts_with(b"HTTP/") {
            return Err(not_http(bytes));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| not_http(bytes))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map_or(Ok(0), |(_, v)| v.trim().parse::<usize>())
        .map_err(|_| "an HTTP answer with a bad Content-Length".to_string())?;
    let body = &bytes[end + 4..];
    Ok((body.len() >= length).then(|| (status, &body[..length])))
}

fn not_http(bytes: &[u8]) -> String {
    let start = &bytes[..bytes.len().min(40)];
    format!("not an HTTP answer: {:?}", String::from_utf8_lossy(start))
}

/// When the runtime took a request: its connection, and its answer (CLOCK_MONOTONIC
/// ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub connected_ns: u64,
    pub answered_ns: u64,
}

/// Sends `request` to the API socket at `socket` once it accepts connections and
/// waits for the answer, all before `deadline`; gives up waiting for the socket
/// when `gone` says the runtime has exited. `Ok` for a 2xx status; otherwise the
/// status and the answer's body (Firecracker's `fault_message`).
pub fn call(
    socket: &Path,
    request: &[u8],
    deadline: Instant,
    gone: &dyn Fn() -> bool,
) -> Result<Answered, String> {
    let what = || {
        let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
        String::from_utf8_lossy(line)
            .trim_end_matches(" HTTP/1.1")
            .to_string()
    };
    let (mut stream, connected_ns) = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break (s, now_ns()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("API socket {}: {e}", socket.display()));
            }
            Err(_) if gone() => {
                return Err(format!(
                    "the runtime exited before its API socket {} accepted",
                    socket.display()
                ));
            }
            Err(_) => std::thread::sleep(CONNECT_RETRY),
        }
    };
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{}: no answer in time", what()))
    };
    stream
        .set_write_timeout(Some(left()?))
        .and_then(|()| stream.write_all(request))
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| format!("{}: {e}", what()))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{}: {e}", what())),
        };
        answer.extend_from_slice(&buf[..n]);
        let parsed = parse_answer(&answer).map_err(|e| format!("{}: {e}", what()))?;
        match parsed {
            Some((code, _)) if (200..300).contains(&code) => {
                return Ok(Answered {
                    connected_ns,
                    answered_ns: now_ns(),
                });
            }
            Some((code, body)) => {
                let body = String::from_utf8_lossy(body);
                return Err(format!("{} answered {code}: {}", what(), body.trim()));
            }
            None if n == 0 || answer.len() > ANSWER_MAX => {
                return Err(format!("{}: the answer ended early", what()));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::net::UnixListener;

    #[test]
    fn request_bytes_are_a_whole_http_request() {
        let r = request("PATCH", "/vm", &json!({"state": "Paused"}));
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "PATCH /vm HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: 18\r\n\r\n\
             {\"state\":\"Paused\"}"
        );
    }

    #[test]
    fn answers_are_parsed_when_complete() {
        assert_eq!(parse_answer(b"HTTP/1.1 204 No Content\r\n"), Ok(None));
        assert_eq!(
            parse_answer(b"HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\n\r\n"),
            Ok(Some((204, &b""[..])))
        );
        let err = b"HTTP/1.1 400 \r\nContent-Length: 22\r\n\r\n{\"fault_message\":\"no\"}";
        assert_eq!(parse_answer(&err[..err.len() - 3]), Ok(None));
        assert_eq!(
            parse_answer(err),
            Ok(Some((400, &b"{\"fault_message\":\"no\"}"[..])))
        );
        assert!(parse_answer(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_answer(b"hello").is_err());
    }

    #[test]
    fn a_call_waits_for_the_socket_and_reports_the_fault() {
        let dir = std::env::temp_dir().join(format!("bench-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let server = {
            let sock = sock.clone();
            std::thread::spawn(move || {
                // Created a little after the client started trying.
                std::thread::sleep(Duration::from_millis(20));
                let l = UnixListener::bind(&sock).unwrap();
                let mut got = Vec::new();
                for answer in [
                    &b"HTTP/1.1 204 \r\n\r\n"[..],
                    b"HTTP/1.1 400 \r\nContent-Length: 22\r\n\r\n{\"fault_message\":\"no\"}",
                ] {
                    let (mut s, _) = l.accept().unwrap();
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).unwrap();
                    got.push(buf[..n].to_vec());
                    s.write_all(answer).unwrap();
                }
                got
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let req = request("PUT", "/snapshot/load", &json!({"resume_vm": true}));
        let took = call(&sock, &req, deadline, &|| false).unwrap();
        assert!(took.connected_ns <= took.answered_ns);
        let err = call(&sock, &req, deadline, &|| false).unwrap_err();
        assert!(
            err.contains("PUT /snapshot/load answered 400") && err.contains("fault_message"),
            "{err}"
        );
        assert_eq!(server.join().unwrap(), [req.clone(), req]);
        // Nobody listening: an error once the deadline passed.
        std::fs::remove_file(&sock).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(call(&sock, b"GET / HTTP/1.1\r\n\r\n", soon, &|| false)
            .unwrap_err()
            .contains("api.sock"));
        // Nobody will: the runtime is gone, no need to wait for the deadline.
        let later = Instant::now() + Duration::from_secs(60);
        let t = Instant::now();
        let err = call(&sock, b"GET / HTTP/1.1\r\n\r\n", later, &|| true).unwrap_err();
        assert!(err.contains("exited before"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(dir);
    }
}
