//! AppArmor for the workload (`process.apparmorProfile`): the profile is put on the
//! process's next execve through the kernel's `exec` attribute, as the workload
//! starts. Engines write a profile only on hosts where AppArmor is enabled; on a host
//! without it a requested profile is refused up front (no silent unconfined run).

use std::io::Write;

/// The kernel's switch for AppArmor: `Y` when the module is loaded and enabled.
const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
/// The per-process attribute that sets the profile of the next execve (kernels with
/// the LSM stacking interface), and the older shared one.
const EXEC_ATTR: &str = "/proc/self/attr/apparmor/exec";
const EXEC_ATTR_OLD: &str = "/proc/self/attr/exec";

/// Whether AppArmor is enabled on this host, from the text of [`ENABLED`].
pub fn enabled_in(text: Option<&str>) -> bool {
    text.is_some_and(|t| t.trim_start().starts_with('Y'))
}

/// Whether AppArmor is enabled on this host.
pub fn enabled() -> bool {
    enabled_in(std::fs::read_to_string(ENABLED).ok().as_deref())
}

/// What is written to the exec attribute to confine the next execve in `profile`.
pub fn exec_request(profile: &str) -> Vec<u8> {
    format!("exec {profile}").into_bytes()
}

/// Asks for `request` (from [`exec_request`]) on this process's next execve. Runs in
/// the sandbox's child, after its `/proc` is mounted and before its capabilities are
/// dropped; one write, no allocation.
pub fn change_on_exec(request: &[u8]) -> std::io::Result<()> {
    let mut f = match std::fs::OpenOptions::new().write(true).open(EXEC_ATTR) {
        Ok(f) => f,
        Err(_) => std::fs::OpenOptions::new()
            .write(true)
            .open(EXEC_ATTR_OLD)?,
    };
    f.write_all(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_only_with_a_y() {
        assert!(enabled_in(Some("Y\n")));
        assert!(!enabled_in(Some("N\n")));
        assert!(!enabled_in(None));
    }

    #[test]
    fn the_request_names_the_profile() {
        assert_eq!(
            exec_request("containers-default-0.50.1"),
            b"exec containers-default-0.50.1"
        );
    }
}
