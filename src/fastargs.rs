//! A scanner for the argument lists that a benchmark passes again and again
//! (`bootlab sandbox run ...`, `bootlab vm run ...`), so that those starts skip clap.
//!
//! Building clap's parser for one subcommand and matching took about 0.15 ms of a
//! start on our hosts, most of it first touches of clap's code and data: a tenth of
//! a sandbox's set-up. The scanner takes what is plainly valid: long options of a
//! known name, `--name value` or `--name=value`, each at most once unless it is
//! repeatable, then `--` and the command. Anything else (short options, unknown
//! names, a missing or empty value, a value that starts with `-` without `=`,
//! non-UTF-8 text, a repeat) makes it give up, and clap parses the whole command
//! line as usual, with its help and error messages. A test compares the scanner's
//! result with clap's on a set of command lines, and checks which ones it leaves to
//! clap.

use std::ffi::OsString;
use std::str::FromStr;

/// The options of one subcommand that the scanner knows.
pub struct Known<'a> {
    /// Options without a value.
    pub flags: &'a [&'a str],
    /// Options with one value.
    pub valued: &'a [&'a str],
    /// Valued options that may be given more than once.
    pub repeatable: &'a [&'a str],
}

/// A scanned argument list: options by name (without the leading `--`), and what
/// came after `--`.
#[derive(Debug)]
pub struct Scan<'a> {
    opts: Vec<(&'a str, Option<&'a str>)>,
    /// The arguments after `--`.
    pub rest: Vec<String>,
}

/// Scans `args` (what follows the subcommand's name) against `known`, or gives up.
pub fn scan<'a>(args: &'a [OsString], known: &Known<'_>) -> Option<Scan<'a>> {
    let mut opts: Vec<(&str, Option<&str>)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg.to_str()?;
        if arg == "--" {
            let rest = it
                .map(|a| a.to_str().map(str::to_owned))
                .collect::<Option<_>>()?;
            return Some(Scan { opts, rest });
        }
        let body = arg.strip_prefix("--")?;
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let value = if known.flags.contains(&name) {
            if inline.is_some() {
                return None;
            }
            None
        } else if known.valued.contains(&name) {
            let v = match inline {
                Some(v) => v,
                None => it.next()?.to_str().filter(|v| !v.starts_with('-'))?,
            };
            if v.is_empty() {
                return None;
            }
            Some(v)
        } else {
            return None;
        };
        if opts.iter().any(|(n, _)| *n == name) && !known.repeatable.contains(&name) {
            return None;
        }
        opts.push((name, value));
    }
    Some(Scan {
        opts,
        rest: Vec::new(),
    })
}

impl Scan<'_> {
    /// Whether the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The value of `name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .find_map(|(n, v)| (*n == name).then_some(*v).flatten())
    }

    /// Every value of a repeatable option, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.opts
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| v.map(str::to_owned))
            .collect()
    }

    /// The value of `name` through `parse`: `Some(None)` when not given, `None` when
    /// it does not parse (the caller then gives up).
    pub fn parsed_with<T, E>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match self.value(name) {
            None => Some(None),
            Some(v) => parse(v).ok().map(Some),
        }
    }

    /// [`Scan::parsed_with`] through `FromStr`, as clap's default parsers do.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Option<Option<T>> {
        self.parsed_with(name, T::from_str)
    }

    /// [`Scan::parsed_with`] for a `value_enum` option, matched as clap matches it
    /// (exact names and aliases).
    pub fn parsed_enum<T: clap::ValueEnum>(&self, name: &str) -> Option<Option<T>> {
        self.parsed_with(name, |v| T::from_str(v, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: Known = Known {
        flags: &["rw"],
        valued: &["rootfs", "env"],
        repeatable: &["env"],
    };

    fn args(line: &str) -> Vec<OsString> {
        line.split(' ').map(Into::into).collect()
    }

    #[test]
    fn takes_plain_long_options_and_the_command() {
        let a = args("--rootfs /r --env A=1 --rw --env=B=2 -- sh -c x");
        let s = scan(&a, &KNOWN).expect("scanned");
        assert_eq!(s.value("rootfs"), Some("/r"));
        assert!(s.flag("rw"));
        assert_eq!(s.values("env"), ["A=1", "B=2"]);
        assert_eq!(s.rest, ["sh", "-c", "x"]);
        assert_eq!(
            s.parsed::<u32>("rootfs"),
            None,
            "a value that does not parse"
        );
        assert_eq!(s.parsed::<u32>("absent"), Some(None));
    }

    #[test]
    fn gives_up_on_anything_else() {
        for line in [
            "-e A=1",
            "--rootfs",
            "--rootfs=",
            "--rootfs -x",
            "--rw=yes",
            "--rootfs /a --rootfs /b",
            "--rw --rw",
            "--unknown 1",
            "--help",
            "positional",
        ] {
            assert!(scan(&args(line), &KNOWN).is_none(), "{line}");
        }
        let non_utf8 = vec![OsString::from("--rootfs"), non_utf8()];
        assert!(scan(&non_utf8, &KNOWN).is_none());
    }

    fn non_utf8() -> OsString {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(vec![0xff, 0xfe])
    }
}
