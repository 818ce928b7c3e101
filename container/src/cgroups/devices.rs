//! Device access rules (`linux.resources.devices`) for the v1 `devices` controller.
//!
//! The rules are applied in order after a deny-all, then the devices every
//! container needs are allowed, as runc does: mknod of any node (access to it is
//! still checked), null, zero, full, random, urandom, tty, the pty multiplexer and
//! the ptys. Engines write one rule, deny everything (`{"allow": false, "access":
//! "rwm"}`), so what a container can open is that default set plus what an
//! engine allowed (`podman --device`).
//!
//! On a cgroup2-only host the kernel enforces device rules with an eBPF program
//! attached to the cgroup (`BPF_CGROUP_DEVICE`), which bootlab does not load yet;
//! there a deny-all is met by construction instead: the sandbox's /dev holds only
//! the default and listed nodes, and `CAP_MKNOD` is removed from the workload
//! ([`v2_by_construction`]); a deny of particular devices is refused. On this
//! project's hybrid hosts the v1 controller is mounted and used.

/// One rule: allow or deny `access` (`r`, `w`, `m`) to a device type and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `a` (all), `c` or `b`; `None` = all.
    pub kind: Option<char>,
    /// Major number; `None` = any.
    pub major: Option<i64>,
    /// Minor number; `None` = any.
    pub minor: Option<i64>,
    /// Access: some of `rwm`; empty = `rwm`.
    pub access: String,
}

impl Rule {
    fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow: true,
            kind: Some(kind),
            major,
            minor,
            access: access.into(),
        }
    }

    /// Checks the fields; one-line reason when wrong.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !matches!(self.kind, None | Some('a' | 'c' | 'b')) {
            return Err(format!(
                "linux.resources.devices: type `{}` is not a, c or b",
                self.kind.unwrap_or('?')
            ));
        }
        if self.access.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
            return Err(format!(
                "linux.resources.devices: access `{}` is not made of r, w, m",
                self.access
            ));
        }
        if self.major.is_some_and(|m| m < 0) || self.minor.is_some_and(|m| m < 0) {
            return Err("linux.resources.devices: a negative device number".into());
        }
        Ok(())
    }

    /// Whether this rule denies every device (what engines write).
    pub fn is_deny_all(&self) -> bool {
        !self.allow
            && matches!(self.kind, None | Some('a'))
            && self.major.is_none()
            && self.minor.is_none()
            && (self.access.is_empty() || ["r", "w", "m"].iter().all(|a| self.access.contains(a)))
    }

    /// The `devices.allow`/`devices.deny` file and line (`c 1:3 rwm`).
    pub fn v1_line(&self) -> (&'static str, String) {
        let num = |n: Option<i64>| n.map_or("*".to_owned(), |n| n.to_string());
        let access = if self.access.is_empty() {
            "rwm"
        } else {
            &self.access
        };
        let line = match self.kind.unwrap_or('a') {
            'a' => "a".to_owned(),
            k => format!("{k} {}:{} {access}", num(self.major), num(self.minor)),
        };
        (
            if self.allow {
                "devices.allow"
            } else {
                "devices.deny"
            },
            line,
        )
    }
}

/// The devices every container may use, allowed after the bundle's rules (runc's
/// list without /dev/tty's tun: mknod of anything, null, zero, full, random,
/// urandom, tty, ptmx, the ptys).
pub fn default_allowed() -> Vec<Rule> {
    vec![
        Rule::allow('c', None, None, "m"),
        Rule::allow('b', None, None, "m"),
        Rule::allow('c', Some(1), Some(3), "rwm"),
        Rule::allow('c', Some(1), Some(5), "rwm"),
        Rule::allow('c', Some(1), Some(7), "rwm"),
        Rule::allow('c', Some(1), Some(8), "rwm"),
        Rule::allow('c', Some(1), Some(9), "rwm"),
        Rule::allow('c', Some(5), Some(0), "rwm"),
        Rule::allow('c', Some(5), Some(2), "rwm"),
        Rule::allow('c', Some(136), None, "rwm"),
    ]
}

/// The writes for a v1 `devices` cgroup: deny all, the rules, the default set.
pub fn v1_writes(rules: &[Rule]) -> Vec<(&'static str, String)> {
    let deny_all = Rule {
        allow: false,
        kind: Some('a'),
        major: None,
        minor: None,
        access: String::new(),
    };
    std::iter::once(&deny_all)
        .chain(rules)
        .map(Rule::v1_line)
        .chain(default_allowed().iter().map(Rule::v1_line))
        .collect()
}

/// What a cgroup2-only host (no device controller without eBPF) can do with the
/// rules: `Ok(true)` when the last word is a deny-all (met by construction: the
/// caller removes `CAP_MKNOD`), `Ok(false)` when nothing is denied in the end, an
/// error for a deny of particular devices, which only the controller could enforce.
pub fn v2_by_construction(rules: &[Rule]) -> std::result::Result<bool, String> {
    let mut denied_all = false;
    for r in rules {
        let everything =
            matches!(r.kind, None | Some('a')) && r.major.is_none() && r.minor.is_none();
        match (r.allow, everything) {
            (false, true) => denied_all = true,
            (true, true) => denied_all = false,
            (true, false) => {}
            (false, false) if denied_all => {}
            (false, false) => {
                let (_, line) = r.v1_line();
                return Err(format!(
                    "linux.resources.devices: denying `{line}` needs the v1 devices controller (this host has cgroup2 only)"
                ));
            }
        }
    }
    Ok(denied_all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_deny_all_then_defaults() {
        let engine = Rule {
            allow: false,
            kind: None,
            major: None,
            minor: None,
            access: "rwm".into(),
        };
        assert!(engine.is_deny_all());
        let w = v1_writes(&[engine, Rule::allow('c', Some(10), Some(229), "rw")]);
        assert_eq!(w[0], ("devices.deny", "a".to_owned()));
        assert_eq!(w[1], ("devices.deny", "a".to_owned()));
        assert_eq!(w[2], ("devices.allow", "c 10:229 rw".to_owned()));
        assert!(w.contains(&("devices.allow", "c 1:3 rwm".to_owned())));
        assert!(w.contains(&("devices.allow", "c 136:* rwm".to_owned())));
        assert!(!Rule::allow('c', None, None, "m").is_deny_all());
    }

    #[test]
    fn bad_rules_are_refused() {
        let mut r = Rule::allow('x', None, None, "rw");
        assert!(r.check().unwrap_err().contains("type `x`"));
        r.kind = Some('c');
        r.access = "rwx".into();
        assert!(r.check().unwrap_err().contains("access `rwx`"));
    }

    #[test]
    fn cgroup2_only_hosts_take_deny_all_by_construction() {
        let deny_all = Rule {
            allow: false,
            kind: None,
            major: None,
            minor: None,
            access: "rwm".into(),
        };
        let fuse = Rule::allow('c', Some(10), Some(229), "rwm");
        assert_eq!(
            v2_by_construction(&[deny_all.clone(), fuse.clone()]),
            Ok(true)
        );
        assert_eq!(v2_by_construction(&[]), Ok(false));
        let mut all = fuse.clone();
        all.kind = Some('a');
        all.major = None;
        all.minor = None;
        assert_eq!(v2_by_construction(&[deny_all, all]), Ok(false));
        let mut deny_fuse = fuse;
        deny_fuse.allow = false;
        let e = v2_by_construction(&[deny_fuse]).unwrap_err();
        assert!(e.contains("denying `c 10:229 rwm`"), "{e}");
    }
}
