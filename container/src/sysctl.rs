//! `linux.sysctl` of a bundle: kernel parameters set inside the sandbox's own
//! namespaces (podman `--sysctl`, Kubernetes' safe sysctls).
//!
//! Only parameters that belong to a namespace the sandbox has (made or joined) are
//! accepted, as in runc: the IPC ones (`kernel.msg*`, `kernel.sem`, `kernel.shm*`,
//! `fs.mqueue.*`) with an IPC namespace, `net.*` with a network namespace,
//! `kernel.hostname`/`kernel.domainname` with a UTS namespace. Anything else would
//! change the host's kernel and is an error.
//!
//! The child writes them through `/proc/sys` before its rootfs set-up: a sysctl
//! file acts on the namespaces of the task that opens it, so the host's procfs
//! (still mounted then) reaches the sandbox's own values, whatever the bundle
//! mounts on /proc, and before `/proc/sys` is made read-only.

use crate::namespaces::Namespace;
use crate::sys::cpath;
use std::ffi::CString;

/// The IPC namespace's parameters (ipc/ipc_sysctl.c).
const IPC_KEYS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace `key` belongs to, if any.
fn namespace_of(key: &str) -> Option<Namespace> {
    if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(Namespace::Ipc)
    } else if key.starts_with("net.") {
        Some(Namespace::Net)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(Namespace::Uts)
    } else {
        None
    }
}

/// The sysctls to write, as (`/proc/sys/...` path, value).
pub type Plan = Vec<(CString, Vec<u8>)>;

/// Checks every `(key, value)` against the namespaces the sandbox has (`has`) and
/// makes the plan. Keys are dotted (`net.ipv4.ip_forward`) or slashed.
pub fn plan(
    sysctls: &[(String, String)],
    has: impl Fn(Namespace) -> bool,
) -> std::result::Result<Plan, String> {
    sysctls
        .iter()
        .map(|(key, value)| {
            let dotted = key.replace('/', ".");
            if dotted.split('.').any(|p| p.is_empty() || p == "..") || dotted.contains("..") {
                return Err(format!("linux.sysctl: `{key}` is not a parameter name"));
            }
            match namespace_of(&dotted) {
                None => Err(format!(
                    "linux.sysctl: `{key}` is not namespaced; setting it would change the host"
                )),
                Some(ns) if !has(ns) => Err(format!(
                    "linux.sysctl: `{key}` needs the sandbox's own {} namespace",
                    ns.name()
                )),
                Some(_) => {
                    let path = format!("/proc/sys/{}", dotted.replace('.', "/"));
                    let path = cpath(std::path::Path::new(&path))
                        .map_err(|e| format!("linux.sysctl: `{key}`: {e}"))?;
                    Ok((path, value.as_bytes().to_vec()))
                }
            }
        })
        .collect()
}

/// Writes the plan (in the child).
pub fn apply(plan: &Plan) -> std::result::Result<(), String> {
    for (path, value) in plan {
        crate::sys::write_cfile(path, value)
            .map_err(|e| format!("writing sysctl {}: {e}", path.to_string_lossy()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn namespaced_keys_become_paths() {
        let p = plan(
            &[
                kv("net.ipv4.ip_forward", "1"),
                kv("kernel/shmmax", "65536"),
                kv("fs.mqueue.msg_max", "5"),
            ],
            |_| true,
        )
        .unwrap();
        assert_eq!(p[0].0.to_str().unwrap(), "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(p[1].0.to_str().unwrap(), "/proc/sys/kernel/shmmax");
        assert_eq!(p[2].1, b"5");
    }

    #[test]
    fn host_wide_or_unowned_keys_are_refused() {
        let e = plan(&[kv("kernel.core_pattern", "|/evil")], |_| true).unwrap_err();
        assert!(e.contains("not namespaced"), "{e}");
        let e = plan(&[kv("net.ipv4.ip_forward", "1")], |ns| ns != Namespace::Net).unwrap_err();
        assert!(e.contains("own net namespace"), "{e}");
        let e = plan(&[kv("net.ipv4..conf", "1")], |_| true).unwrap_err();
        assert!(e.contains("not a parameter name"), "{e}");
        let e = plan(&[kv("net/../../kernel/core_pattern", "1")], |_| true).unwrap_err();
        assert!(e.contains("not a parameter name"), "{e}");
    }
}
