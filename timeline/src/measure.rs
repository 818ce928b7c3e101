//! A workload's own measurement, reported on the console beside the markers: one
//! line `@@bootlab-measure NAME KEY=VALUE...` with unsigned integer values (the
//! guest's sequential-read workload prints `@@bootlab-measure seqread bytes=N
//! requests=R ns=T`). The harness keeps each value as `NAME.KEY` with the run; what
//! the guest timed with its own clock is then compared between monitors that run
//! the same guest, where a host-side stamp would also count each monitor's console.
//!
//! guest-init compiles this very file into its std-free build (`#[path]` module in
//! guest-images/init/src/lib.rs): keep it `core`-only outside `#[cfg(test)]`.

/// Prefix of a measurement line; the measurement's name and its values follow.
pub const MEASURE_PREFIX: &str = "@@bootlab-measure ";

/// The longest line [`format_line`] writes.
pub const MAX_LINE: usize = 160;

/// One measurement line, parsed (borrowing the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure<'a> {
    /// What was measured (`seqread`).
    pub name: &'a str,
    /// The `KEY=VALUE` words, unparsed.
    fields: &'a str,
}

impl<'a> Measure<'a> {
    /// The measurement a console line carries, if the line is one (surrounding
    /// whitespace and a serial console's `\r` are ignored). A line without a name
    /// is not one.
    pub fn parse_line(line: &'a str) -> Option<Measure<'a>> {
        let rest = line.trim().strip_prefix(MEASURE_PREFIX)?.trim_start();
        let (name, fields) = rest.split_once(' ').unwrap_or((rest, ""));
        (!name.is_empty() && !name.contains('=')).then_some(Measure { name, fields })
    }

    /// Its values, in line order; words that are not `KEY=UNSIGNED` are skipped.
    pub fn values(&self) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.fields.split_whitespace().filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k, v.parse().ok()?)).filter(|(k, _)| !k.is_empty())
        })
    }

    /// The value of `key`, if the line has one.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.values().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Writes the line for measurement `name` with `values` (and its newline) into
/// `buf`, returning its length; values that do not fit are left out. No
/// allocation: usable from PID 1.
pub fn format_line(name: &str, values: &[(&str, u64)], buf: &mut [u8; MAX_LINE]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8], n: &mut usize| -> bool {
        // One byte is kept for the newline.
        if *n + bytes.len() >= MAX_LINE {
            return false;
        }
        buf[*n..*n + bytes.len()].copy_from_slice(bytes);
        *n += bytes.len();
        true
    };
    put(MEASURE_PREFIX.as_bytes(), &mut n);
    put(name.as_bytes(), &mut n);
    for (key, value) in values {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = *value;
        loop {
            i -= 1;
            // v % 10 < 10: the cast cannot truncate.
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let mark = n;
        let whole = put(b" ", &mut n)
            && put(key.as_bytes(), &mut n)
            && put(b"=", &mut n)
            && put(&digits[i..], &mut n);
        if !whole {
            n = mark;
            break;
        }
    }
    buf[n] = b'\n';
    n + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut buf = [0u8; MAX_LINE];
        let n = format_line(
            "seqread",
            &[("bytes", 8_347_648), ("requests", 2038), ("ns", 0)],
            &mut buf,
        );
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            line,
            "@@bootlab-measure seqread bytes=8347648 requests=2038 ns=0\n"
        );
        let m = Measure::parse_line(line).unwrap();
        assert_eq!(m.name, "seqread");
        assert_eq!(
            m.values().collect::<Vec<_>>(),
            [("bytes", 8_347_648), ("requests", 2038), ("ns", 0)]
        );
        assert_eq!(m.get("ns"), Some(0));
        assert_eq!(m.get("nope"), None);
        let max = format_line("x", &[("v", u64::MAX)], &mut buf);
        assert!(std::str::from_utf8(&buf[..max])
            .unwrap()
            .ends_with(" v=18446744073709551615\n"));
    }

    #[test]
    fn other_lines_and_bad_words_are_not_measurements() {
        assert_eq!(Measure::parse_line("@@bootlab done"), None);
        assert_eq!(Measure::parse_line("@@bootlab-measure "), None);
        assert_eq!(Measure::parse_line("@@bootlab-measure a=1"), None);
        assert_eq!(
            Measure::parse_line("x @@bootlab-measure seqread ns=1"),
            None
        );
        let m = Measure::parse_line("@@bootlab-measure seqread ns=-1 =3 bytes=x ok=7\r").unwrap();
        assert_eq!(m.values().collect::<Vec<_>>(), [("ok", 7)]);
        assert_eq!(
            Measure::parse_line("@@bootlab-measure seqread")
                .unwrap()
                .get("ns"),
            None
        );
    }

    #[test]
    fn values_that_do_not_fit_are_left_out_whole() {
        let mut buf = [0u8; MAX_LINE];
        let long = "k".repeat(MAX_LINE);
        let n = format_line("seqread", &[("ns", 5), (&long, 1), ("bytes", 2)], &mut buf);
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(line, "@@bootlab-measure seqread ns=5\n");
    }
}
