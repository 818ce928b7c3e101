//! Deciding whether guest-init is the init of a VM or a workload launcher.
//!
//! Rule: guest-init acts as a VM's init only when it is PID 1 AND `/proc` is not
//! mounted yet. A kernel starts /init with an empty /proc; a container runtime
//! that runs guest-init as PID 1 of a PID namespace has mounted /proc before the
//! exec, so there guest-init launches the workload from argv and exits with its
//! status instead of mounting, writing I/O ports and rebooting.

/// The role guest-init plays in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a VM: mount, read /proc/cmdline, run, end the VM.
    Vm,
    /// Anything else: run the argv workload and exit with its status.
    Host,
}

/// Applies the rule above.
pub fn detect(pid: i32, proc_mounted: bool) -> Mode {
    if pid == 1 && !proc_mounted {
        Mode::Vm
    } else {
        Mode::Host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pid1_without_proc_is_a_vm() {
        assert_eq!(detect(1, false), Mode::Vm);
        assert_eq!(detect(1, true), Mode::Host); // container PID 1
        assert_eq!(detect(4242, false), Mode::Host);
        assert_eq!(detect(4242, true), Mode::Host);
    }
}
