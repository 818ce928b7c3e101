//! What guest-init writes: marker lines of the protocol (`timeline::marker`), the
//! built-in workload's line, and how a wait status becomes an exit code.

use crate::marker::Marker;

/// The one line the built-in `hello` workload prints.
pub const HELLO_LINE: &str = "hello from bootlab guest-init\n";

/// Exit code reported when the workload could not be started (as a shell does).
pub const EXIT_NOT_RUN: u8 = 127;

/// A marker's console line (`@@bootlab <event>\n`) in a fixed buffer: no
/// allocation, so it is usable at any point in PID 1.
#[derive(Debug, Clone, Copy)]
pub struct MarkerLine {
    buf: [u8; 32],
    len: usize,
}

impl MarkerLine {
    /// Formats the line for `marker`.
    pub fn new(marker: Marker) -> MarkerLine {
        let mut buf = [0u8; 32];
        let len = marker.format_line(&mut buf);
        MarkerLine { buf, len }
    }

    /// The bytes to write, newline included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The exit code for a `waitpid` status: the exit status, or 128 + signal number
/// for a workload killed by a signal (as a shell reports it).
pub fn exit_code(wait_status: libc::c_int) -> u8 {
    if libc::WIFEXITED(wait_status) {
        // The exit status is 8 bits wide.
        u8::try_from(libc::WEXITSTATUS(wait_status) & 0xff).unwrap_or(EXIT_NOT_RUN)
    } else if libc::WIFSIGNALED(wait_status) {
        128u8.wrapping_add(u8::try_from(libc::WTERMSIG(wait_status) & 0x7f).unwrap_or(0))
    } else {
        EXIT_NOT_RUN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines_are_the_protocol_lines() {
        assert_eq!(
            MarkerLine::new(Marker::InitStart).as_bytes(),
            b"@@bootlab init-start\n"
        );
        assert_eq!(
            MarkerLine::new(Marker::Exec).as_bytes(),
            b"@@bootlab exec\n"
        );
        assert_eq!(
            MarkerLine::new(Marker::Done).as_bytes(),
            b"@@bootlab done\n"
        );
        for m in Marker::ALL {
            let line = MarkerLine::new(m);
            let line = std::str::from_utf8(line.as_bytes()).unwrap();
            assert_eq!(Marker::parse_line(line), Some(m));
        }
    }

    #[test]
    fn hello_is_one_line_and_not_a_marker() {
        assert_eq!(HELLO_LINE.lines().count(), 1);
        assert!(HELLO_LINE.ends_with('\n'));
        assert_eq!(Marker::parse_line(HELLO_LINE), None);
    }

    #[test]
    fn wait_statuses_map_like_a_shell() {
        // Encodings as the kernel reports them: exit code in bits 8..15, the
        // terminating signal in bits 0..6.
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(255 << 8), 255);
        assert_eq!(exit_code(libc::SIGKILL), 128 + 9);
        assert_eq!(exit_code(libc::SIGSEGV | 0x80), 128 + 11); // with core dump
    }
}
