//! The console sink behind the serial port: passes every byte straight to the
//! monitor's stdout and watches for whole lines that carry a marker
//! (`@@bootlab <event>`) or the kernel's "Run /init" line, stamping their arrival.
//! Only the current line is kept, capped, so a guest flooding the port costs no
//! memory.

use super::Recorder;
use std::io::Write;
use std::sync::Arc;
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

    fn end_of_line(&mut self) {
        if !self.overflow {
            if let Ok(text) = std::str::from_utf8(&self.line) {
                if let Some(m) = Marker::parse_line(text) {
                    self.recorder.stamp(m.name(), EventSource::Console);
                } else if text.contains(KERNEL_RUN_INIT_LINE) {
                    self.recorder.stamp("kernel-run-init", EventSource::Console);
                }
            }
        }
        self.line.clear();
        self.overflow = false;
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Output errors (a closed pipe) must not stop the guest.
        let _ = self.out.write_all(buf);
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
        assert_eq!(names, ["init-start", "kernel-run-init", "done"]);
        assert!(c.line.capacity() <= 2 * MAX_LINE);
    }
}
