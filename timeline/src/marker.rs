//! The marker protocol (docs/ARCHITECTURE.md, "The marker protocol"): how a guest or a
//! workload announces its phases. Each event is sent two ways at once:
//! a console line `@@bootlab <event>` and, inside a VM, a one-byte write of the
//! event's code to [`MARKER_PORT`].
//!
//! guest-init compiles this very file into its std-free build (`#[path]` module in
//! guest-images/init/src/lib.rs): keep it `core`-only outside `#[cfg(test)]`.

/// Prefix of every console marker line; the event name follows it.
pub const CONSOLE_PREFIX: &str = "@@bootlab ";

/// I/O port the guest writes a one-byte [`Marker::code`] to. Our monitor stamps the
/// VM exit of that write. Chosen outside every legacy PC device range (and away from
/// 0x80, which Linux uses for I/O delays) so that peers simply ignore it.
pub const MARKER_PORT: u16 = 0x0b1a;

/// I/O port through which a guest ends the VM with a status: the monitor exits with
/// the byte written. Same address as QEMU's `isa-debug-exit` default (iobase 0x501),
/// so one guest can end itself under both; QEMU reports `(value << 1) | 1`.
pub const EXIT_PORT: u16 = 0x501;

/// Value a guest writes to Firecracker's boot-timer device to mark "boot done".
pub const FIRECRACKER_BOOT_TIMER_MAGIC: u8 = 123;

/// The Linux kernel's console line when it hands over to init; marks `kernel -> init`
/// when init itself cannot announce (docs/HOSTS.md, "PVM").
pub const KERNEL_RUN_INIT_LINE: &str = "Run /init as init process";

/// The events of the protocol, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    /// Guest init (PID 1) has started.
    InitStart,
    /// Init is set up and about to start the workload: the point where a snapshot
    /// is taken (`bootlab vm run --snapshot-at snapshot`), so that a restored run is
    /// restore -> workload.
    Snapshot,
    /// Init is about to execve the workload.
    Exec,
    /// The workload has finished.
    Done,
}

impl Marker {
    /// The markers every guest run announces, in order (`snapshot` only when
    /// the guest is asked to offer a snapshot point, which the lab guest always does).
    pub const REQUIRED: [Marker; 3] = [Marker::InitStart, Marker::Exec, Marker::Done];

    /// All markers, in protocol order.
    pub const ALL: [Marker; 4] = [
        Marker::InitStart,
        Marker::Snapshot,
        Marker::Exec,
        Marker::Done,
    ];

    /// The event name used on the console and in timelines.
    pub const fn name(self) -> &'static str {
        match self {
            Marker::InitStart => "init-start",
            Marker::Snapshot => "snapshot",
            Marker::Exec => "exec",
            Marker::Done => "done",
        }
    }

    /// The byte written to [`MARKER_PORT`].
    pub const fn code(self) -> u8 {
        match self {
            Marker::InitStart => 1,
            Marker::Exec => 2,
            Marker::Done => 3,
            Marker::Snapshot => 4,
        }
    }

    /// The marker for a byte written to [`MARKER_PORT`].
    pub fn from_code(code: u8) -> Option<Marker> {
        Marker::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The marker called `name` (`init-start`, `snapshot`, `exec`, `done`).
    pub fn from_name(name: &str) -> Option<Marker> {
        Marker::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The marker named by a console line, if the line is one (surrounding
    /// whitespace and a trailing `\r` from a serial console are ignored).
    pub fn parse_line(line: &str) -> Option<Marker> {
        let rest = line.trim().strip_prefix(CONSOLE_PREFIX.trim_end())?;
        Marker::from_name(rest.trim())
    }

    /// Writes the console line for this marker (with its newline) into `buf`,
    /// returning the number of bytes written. No allocation: usable from PID 1.
    pub fn format_line(self, buf: &mut [u8; 32]) -> usize {
        let mut n = 0;
        for b in CONSOLE_PREFIX
            .bytes()
            .chain(self.name().bytes())
            .chain(core::iter::once(b'\n'))
        {
            buf[n] = b;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for m in Marker::ALL {
            assert_eq!(Marker::from_code(m.code()), Some(m));
        }
        assert_eq!(Marker::from_code(0), None);
        assert_eq!(Marker::from_code(5), None);
        assert_eq!(Marker::from_name("snapshot"), Some(Marker::Snapshot));
        assert_eq!(Marker::from_name("nothing"), None);
    }

    #[test]
    fn console_lines_round_trip() {
        let mut buf = [0u8; 32];
        for m in Marker::ALL {
            let n = m.format_line(&mut buf);
            let line = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(line.ends_with('\n'));
            assert_eq!(Marker::parse_line(line), Some(m));
        }
        assert_eq!(
            Marker::parse_line("@@bootlab init-start\r"),
            Some(Marker::InitStart)
        );
        assert_eq!(Marker::parse_line("@@bootlab nothing"), None);
        assert_eq!(Marker::parse_line("hello @@bootlab exec"), None);
    }
}
