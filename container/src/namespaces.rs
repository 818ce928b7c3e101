//! Which namespaces a sandbox gets, how they are named on the command line and in
//! config.json, and their `CLONE_NEW*` flags.

use crate::{Error, Result};

/// One kind of Linux namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// PID namespace: the workload is PID 1 and sees no host processes.
    Pid,
    /// Mount namespace: required for the pivot_root into the rootfs.
    Mount,
    /// UTS namespace: own hostname.
    Uts,
    /// IPC namespace: own SysV IPC and POSIX message queues.
    Ipc,
    /// Network namespace: only a loopback interface.
    Net,
    /// Cgroup namespace: /proc/self/cgroup is rooted at the sandbox's cgroup.
    Cgroup,
    /// User namespace: the workload's root is mapped to an unprivileged host id.
    User,
}

impl Namespace {
    /// Every namespace, in the order the flags are listed.
    pub const ALL: [Namespace; 7] = [
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Cgroup,
        Namespace::User,
    ];

    /// The `clone(2)` flag that creates this namespace.
    pub const fn clone_flag(self) -> libc::c_int {
        match self {
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::User => libc::CLONE_NEWUSER,
        }
    }

    /// Our short name (command line).
    pub const fn name(self) -> &'static str {
        match self {
            Namespace::Pid => "pid",
            Namespace::Mount => "mount",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::Cgroup => "cgroup",
            Namespace::User => "user",
        }
    }

    /// Parses a namespace name: ours (`net`, `mount`) or the OCI ones (`network`)
    /// and the `/proc/PID/ns` ones (`mnt`).
    pub fn parse(name: &str) -> Result<Namespace> {
        Ok(match name.trim() {
            "pid" => Namespace::Pid,
            "mount" | "mnt" => Namespace::Mount,
            "uts" => Namespace::Uts,
            "ipc" => Namespace::Ipc,
            "net" | "network" => Namespace::Net,
            "cgroup" => Namespace::Cgroup,
            "user" => Namespace::User,
            other => return Err(Error::UnknownNamespace(other.to_owned())),
        })
    }
}

/// A set of namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceSet(u8);

impl NamespaceSet {
    /// No namespace at all.
    pub const fn empty() -> Self {
        NamespaceSet(0)
    }

    /// Every namespace, including the user namespace (`bwrap --unshare-all`).
    pub fn all() -> Self {
        Namespace::ALL.iter().fold(Self::empty(), |s, n| s.with(*n))
    }

    /// The default: every namespace, except the user namespace when running as root
    /// (root needs no id mapping; `--unshare all` or `--unshare +user` adds it).
    pub fn default_for_euid(euid: u32) -> Self {
        if euid == 0 {
            Self::all().without(Namespace::User)
        } else {
            Self::all()
        }
    }

    fn bit(ns: Namespace) -> u8 {
        1 << Namespace::ALL.iter().position(|n| *n == ns).unwrap_or(0)
    }

    /// This set plus `ns`.
    pub fn with(self, ns: Namespace) -> Self {
        NamespaceSet(self.0 | Self::bit(ns))
    }

    /// This set without `ns`.
    pub fn without(self, ns: Namespace) -> Self {
        NamespaceSet(self.0 & !Self::bit(ns))
    }

    /// Whether `ns` is in the set.
    pub fn contains(self, ns: Namespace) -> bool {
        self.0 & Self::bit(ns) != 0
    }

    /// The namespaces in the set.
    pub fn iter(self) -> impl Iterator<Item = Namespace> {
        Namespace::ALL
            .into_iter()
            .filter(move |n| self.contains(*n))
    }

    /// The combined `CLONE_NEW*` flags.
    pub fn clone_flags(self) -> libc::c_int {
        self.iter().fold(0, |f, n| f | n.clone_flag())
    }

    /// Parses a comma-separated list: `all`, `none`, names, or names prefixed with
    /// `-`/`+` to remove from / add to `base` (e.g. `-net`, `+user`). A list that
    /// starts with a plain name replaces the base.
    pub fn parse_list(list: &str, base: NamespaceSet) -> Result<Self> {
        let mut set = base;
        let mut first_plain = true;
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "all" => set = Self::all(),
                "none" => set = Self::empty(),
                _ => {
                    if let Some(n) = item.strip_prefix('-') {
                        set = set.without(Namespace::parse(n)?);
                    } else if let Some(n) = item.strip_prefix('+') {
                        set = set.with(Namespace::parse(n)?);
                    } else {
                        let ns = Namespace::parse(item)?;
                        if first_plain {
                            set = Self::empty();
                            first_plain = false;
                        }
                        set = set.with(ns);
                    }
                    continue;
                }
            }
            first_plain = false;
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse() {
        let base = NamespaceSet::default_for_euid(0);
        assert!(!base.contains(Namespace::User));
        assert!(base.contains(Namespace::Net));
        let s = NamespaceSet::parse_list("pid,mount", base).unwrap();
        assert_eq!(s.iter().count(), 2);
        let s = NamespaceSet::parse_list("-net", base).unwrap();
        assert!(!s.contains(Namespace::Net) && s.contains(Namespace::Pid));
        let s = NamespaceSet::parse_list("all", base).unwrap();
        assert!(s.contains(Namespace::User));
        assert_eq!(
            NamespaceSet::parse_list("none", base).unwrap(),
            NamespaceSet::empty()
        );
        assert!(matches!(
            NamespaceSet::parse_list("pid,bogus", base),
            Err(Error::UnknownNamespace(n)) if n == "bogus"
        ));
        assert_eq!(
            NamespaceSet::all().clone_flags() & libc::CLONE_NEWNET,
            libc::CLONE_NEWNET
        );
    }
}
