//! The console sink behind the serial port: passes every byte straight to the
//! monitor's stdout and watches for whole lines that carry a marker
//! (`@@bootlab <event>`) or the kernel's "Run /init" line, stamping their arrival.
//! Only the current line is kept, capped, so a guest flooding the port costs no
//! memory. Output is written through, never queued: a reader that stops reading
//! stalls the guest's `out`, not the monitor's memory, and a write interrupted by the
//! monitor's vCPU kick (the VM is stopping) is abandoned, so `--timeout` still ends
//! a VM whose stdout is full.

use super::Recorder;
use std::io::Write;
use std::sync::Arc;
use timeline::event;
use timeline::marker::{Marker, KERNEL_RUN_INIT_LINE};
use timeline::EventSource;

/// Longest line kept for matching; longer lines are passed through unmatched.
const MAX_LINE: usize = 256;

/// Serial output sink.
pub struct Console {
    out: Box<dyn Write + Send>,
    line: Vec<u8>,
    overflow: bool,
    recorder: Arc<Recorder>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("line_len", &self.line.len())
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console writing to `out` and stamping into `recorder`.
    pub fn new(out: Box<dyn Write + Send>, recorder: Arc<Recorder>) -> Self {
        Console {
            out,
            line: Vec::with_capacity(MAX_LINE),
            overflow: false,
            recorder,
        }
    }

    /// The recorder this console stamps into.
    pub fn recorder(&self) -> Arc<Recorder> {
        self.recorder.clone()
    }

    /// Writes `buf` to the output. Output errors (a closed pipe) must not stop the
    /// guest: the bytes are dropped. Unlike `write_all`, an interrupted write is not
    /// retried: the only signal that interrupts it is the kick of a stopping VM.
    fn write_through(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            match self.out.write(buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf = &buf[n.min(buf.len())..],
            }
        }
    }

    fn end_of_line(&mut self) {
        if !self.overflow {
            if let Ok(text) = std::str::from_utf8(&self.line) {
                if let Some(m) = Marker::parse_line(text) {
                    self.recorder.stamp(m.name(), EventSource::Console);
                } else if text.contains(KERNEL_RUN_INIT_LINE) {
                    self.recorder
                        .stamp(event::KERNEL_RUN_INIT, EventSource::Console);
                }
            }
        }
        self.line.clear();
        self.overflow = false;
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_through(buf);
        for &b in buf {
            if b == b'\n' {
                self.end_of_line();
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.overflow = true;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.out.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_markers_and_the_kernel_line_only() {
        let rec = Arc::new(Recorder::default());
        let mut c = Console::new(Box::new(std::io::sink()), rec.clone());
        c.write_all(b"noise\n@@bootlab init-start\r\n[ 1.0] Run /init as init process\n")
            .unwrap();
        c.write_all(&vec![b'x'; 10_000]).unwrap();
        c.write_all(b"@@bootlab exec\n").unwrap(); // tail of an overlong line: ignored
        c.write_all(b"@@bootlab done\n").unwrap();
        let mut t = timeline::Timeline::new("t", 0);
        rec.drain_into(&mut t);
        let names: Vec<_> = t.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [event::INIT_START, event::KERNEL_RUN_INIT, event::DONE]
        );
        assert!(c.line.capacity() <= 2 * MAX_LINE);
    }

    /// A writer that takes `chunk` bytes per call, then fails with `fail`.
    struct Flaky {
        got: Arc<std::sync::Mutex<Vec<u8>>>,
        chunk: usize,
        calls_before_fail: usize,
        fail: std::io::ErrorKind,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.calls_before_fail == 0 {
                return Err(self.fail.into());
            }
            self.calls_before_fail -= 1;
            let n = buf.len().min(self.chunk);
            self.got.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_are_completed_and_interrupted_ones_abandoned() {
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = Flaky {
            got: got.clone(),
            chunk: 3,
            calls_before_fail: 3,
            fail: std::io::ErrorKind::Interrupted,
        };
        let rec = Arc::new(Recorder::default());
        let mut c = Console::new(Box::new(out), rec.clone());
        // Returns (no endless retry of EINTR) and reports every byte as taken.
        assert_eq!(c.write(b"abcdefghijkl").unwrap(), 12);
        assert_eq!(got.lock().unwrap().as_slice(), b"abcdefghi");
        // With the output gone the markers are still stamped, and the writer gets
        // nothing more.
        c.write_all(b"\n@@bootlab done\n").unwrap();
        assert_eq!(got.lock().unwrap().as_slice(), b"abcdefghi");
        let mut t = timeline::Timeline::new("t", 0);
        rec.drain_into(&mut t);
        let names: Vec<_> = t.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [event::DONE]);
    }
}
