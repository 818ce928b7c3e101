//! Capabilities: the documented default set, name parsing (config.json uses
//! `CAP_*` names), and applying the sets in the child (bounding drop, capset,
//! ambient) with raw `prctl`/`capset`, which needs no extra crate.
//!
//! # Default set
//! Docker's default set minus `CAP_MKNOD`, `CAP_NET_RAW`, `CAP_SYS_CHROOT` and
//! `CAP_SETFCAP`: `CAP_CHOWN`, `CAP_DAC_OVERRIDE`, `CAP_FOWNER`, `CAP_FSETID`,
//! `CAP_KILL`, `CAP_SETGID`, `CAP_SETUID`, `CAP_SETPCAP`, `CAP_NET_BIND_SERVICE`,
//! `CAP_AUDIT_WRITE`. Enough for a root workload to manage its own files and users,
//! nothing that administers the machine (no `CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`,
//! `CAP_NET_ADMIN`, `CAP_SYS_MODULE`, ...). Inheritable and ambient are empty.

use crate::sys::{cvt, cvt_long};
use std::io;

/// Capability names, index = capability number (linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The default capability set (see the module documentation), by name.
pub const DEFAULT: [&str; 10] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_AUDIT_WRITE",
];

/// A capability's number from its name (`CAP_SYS_ADMIN` or `sys_admin`).
pub fn from_name(name: &str) -> Option<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES
        .iter()
        .position(|n| *n == full)
        .and_then(|i| u32::try_from(i).ok())
}

/// Bit mask of a list of capability names; unknown names are returned as errors.
pub fn mask_of<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<u64, String> {
    names.into_iter().try_fold(0u64, |m, n| {
        from_name(n)
            .map(|c| m | 1 << c)
            .ok_or_else(|| format!("unknown capability `{n}`"))
    })
}

/// The five capability sets of the workload, as bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

/// `CAP_MKNOD`'s number (linux/capability.h).
pub const CAP_MKNOD: u32 = 27;

impl CapSets {
    /// These sets with capability `cap` removed from each.
    pub fn without(self, cap: u32) -> Self {
        let bit = 1u64 << cap;
        CapSets {
            bounding: self.bounding & !bit,
            effective: self.effective & !bit,
            permitted: self.permitted & !bit,
            inheritable: self.inheritable & !bit,
            ambient: self.ambient & !bit,
        }
    }

    /// The default set in bounding, effective and permitted; nothing inheritable.
    pub fn default_set() -> Self {
        let m = default_mask();
        CapSets {
            bounding: m,
            effective: m,
            permitted: m,
            inheritable: 0,
            ambient: 0,
        }
    }
}

/// Bit mask of [`DEFAULT`].
pub fn default_mask() -> u64 {
    mask_of(DEFAULT).unwrap_or(0)
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every capability not in `sets.bounding` from the bounding set. Needs
/// `CAP_SETPCAP`, so it runs before any uid change.
pub fn drop_bounding(sets: &CapSets) -> io::Result<()> {
    for cap in 0..64u32 {
        if sets.bounding & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes an integer capability number.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Keeps the permitted set across the uid change that may follow.
pub fn keep_caps() -> io::Result<()> {
    // SAFETY: PR_SET_KEEPCAPS takes an integer argument.
    cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }).map(drop)
}

/// Sets effective, permitted and inheritable (plus the ambient caps, which must be
/// inheritable) with capset(2), then the ambient set.
pub fn apply(sets: &CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // capset takes each set as two 32-bit words: dropping the high half is the point.
    #[allow(clippy::cast_possible_truncation)]
    let split = |m: u64| (m as u32, (m >> 32) as u32);
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    // Raising an ambient capability needs it inheritable too (capabilities(7)).
    let (i0, i1) = split(sets.inheritable | sets.ambient);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: header and the two-element data array have the kernel's v3 layout and
    // live for the duration of the call.
    cvt_long(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })?;
    // SAFETY: PR_CAP_AMBIENT operations take integer arguments.
    cvt(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    for cap in 0..64u32 {
        if sets.ambient & (1 << cap) != 0 {
            // SAFETY: as above.
            cvt(unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_removes_one_capability_everywhere() {
        let all = mask_of(["CAP_MKNOD", "CAP_KILL"]).unwrap();
        let s = CapSets {
            bounding: all,
            effective: all,
            permitted: all,
            inheritable: all,
            ambient: all,
        }
        .without(CAP_MKNOD);
        assert_eq!(s.bounding, mask_of(["CAP_KILL"]).unwrap());
        assert_eq!(s.ambient, s.bounding);
        assert_eq!(mask_of(["CAP_MKNOD"]).unwrap(), 1 << CAP_MKNOD);
    }

    #[test]
    fn names_and_default_mask() {
        assert_eq!(from_name("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(from_name("net_bind_service"), Some(10));
        assert_eq!(from_name("CAP_NOPE"), None);
        let m = default_mask();
        assert_eq!(m.count_ones(), u32::try_from(DEFAULT.len()).unwrap());
        assert_eq!(m & (1 << 21), 0, "no CAP_SYS_ADMIN by default");
        assert!(mask_of(["CAP_KILL", "CAP_BOGUS"]).is_err());
    }
}
