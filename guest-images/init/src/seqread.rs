//! The built-in `seqread` workload: read the first MiB of a block device in
//! [`REQUEST`]-byte requests with O_DIRECT (every request goes to the device, none
//! to the page cache), time the loop with the guest's CLOCK_MONOTONIC and print a
//! measurement line (`timeline::measure`: `@@bootlab-measure seqread bytes=
//! requests= ns=`). `bootlab.workload=seqread bootlab.args=DEVICE,MIB` in a VM
//! (defaults /dev/vda and [`DEFAULT_MIB`]); it stops early at the device's end.
//! What `bootlab bench --seqread MIB` compares between monitors.

use alloc::ffi::CString;
use alloc::string::String;

use crate::measure::{format_line, MAX_LINE};
use crate::sys::{self, Errno, SysResult};

/// The workload's name, for `bootlab.workload=` and its measurement line.
pub const NAME: &str = "seqread";
/// Bytes per read request.
pub const REQUEST: usize = 4096;
/// The device read when none is named.
pub const DEFAULT_DEVICE: &str = "/dev/vda";
/// MiB read when no size is named.
pub const DEFAULT_MIB: u64 = 64;

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqRead {
    pub device: String,
    /// At most this many bytes (the device may end first).
    pub limit: u64,
}

impl SeqRead {
    /// From the workload's arguments `[DEVICE [MIB]]`; a size that is not a whole
    /// number of MiB falls back to the default (PID 1 must not die on a typo).
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> SeqRead {
        let device = args
            .first()
            .map(AsRef::as_ref)
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DEVICE);
        let mib = args
            .get(1)
            .and_then(|m| m.as_ref().parse::<u64>().ok())
            .filter(|m| *m > 0)
            .unwrap_or(DEFAULT_MIB);
        SeqRead {
            device: device.into(),
            limit: mib.saturating_mul(1 << 20),
        }
    }
}

/// What one pass read and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub bytes: u64,
    pub requests: u64,
    pub ns: u64,
}

impl Outcome {
    /// The measurement line (with its newline) into `buf`; returns its length.
    pub fn line(&self, buf: &mut [u8; MAX_LINE]) -> usize {
        format_line(
            NAME,
            &[
                ("bytes", self.bytes),
                ("requests", self.requests),
                ("ns", self.ns),
            ],
            buf,
        )
    }
}

/// One request's buffer: O_DIRECT wants it aligned to the device's logical block
/// (512 bytes or more); a page covers every device.
#[repr(C, align(4096))]
struct Block([u8; REQUEST]);

/// Reads as [`SeqRead`] says; the clock runs from the first request to the last
/// answer (opening the device is not timed).
pub fn run(spec: &SeqRead) -> SysResult<Outcome> {
    let path = CString::new(spec.device.as_bytes()).map_err(|_| Errno(libc::EINVAL))?;
    let fd = sys::open_direct(&path)?;
    let mut block = Block([0; REQUEST]);
    let (mut bytes, mut requests) = (0u64, 0u64);
    let start = sys::monotonic_ns();
    let result = loop {
        if bytes >= spec.limit {
            break Ok(());
        }
        match sys::read(&fd, &mut block.0) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                bytes += n as u64;
                requests += 1;
            }
            Err(e) => break Err(e),
        }
    };
    let ns = sys::monotonic_ns().saturating_sub(start);
    result.map(|()| Outcome {
        bytes,
        requests,
        ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_device_and_the_mib() {
        assert_eq!(
            SeqRead::from_args::<&str>(&[]),
            SeqRead {
                device: "/dev/vda".into(),
                limit: DEFAULT_MIB << 20
            }
        );
        assert_eq!(
            SeqRead::from_args(&["/dev/vdb", "8"]),
            SeqRead {
                device: "/dev/vdb".into(),
                limit: 8 << 20
            }
        );
        for bad in ["0", "x", "-1", ""] {
            assert_eq!(
                SeqRead::from_args(&["/dev/vdb", bad]).limit,
                DEFAULT_MIB << 20
            );
        }
    }

    #[test]
    fn the_line_is_a_measurement() {
        let mut buf = [0u8; MAX_LINE];
        let o = Outcome {
            bytes: 8192,
            requests: 2,
            ns: 12345,
        };
        let n = o.line(&mut buf);
        let line = core::str::from_utf8(&buf[..n]).unwrap();
        let m = crate::measure::Measure::parse_line(line).unwrap();
        assert_eq!(m.name, NAME);
        assert_eq!(
            (m.get("bytes"), m.get("requests"), m.get("ns")),
            (Some(8192), Some(2), Some(12345))
        );
    }

    #[test]
    fn reads_whole_requests_up_to_the_limit_or_the_end() {
        let dir = test_support::TempDir::new("seqread").unwrap();
        let file = dir.path().join("disk");
        std::fs::write(&file, vec![7u8; 3 * REQUEST + 512]).unwrap();
        let device = file.to_str().unwrap().to_owned();
        let all = run(&SeqRead {
            device: device.clone(),
            limit: 1 << 20,
        })
        .unwrap();
        assert_eq!((all.bytes, all.requests), (3 * REQUEST as u64 + 512, 4));
        let two = run(&SeqRead {
            device,
            limit: 2 * REQUEST as u64,
        })
        .unwrap();
        assert_eq!((two.bytes, two.requests), (2 * REQUEST as u64, 2));
        let none = run(&SeqRead {
            device: dir.path().join("absent").to_str().unwrap().into(),
            limit: 1,
        });
        assert_eq!(none, Err(Errno(libc::ENOENT)));
    }
}
