//! Every event and step name a timeline can hold, as it appears in results.json.
//! Code stamps and reads events through these constants, so a misspelt name is a
//! compile error rather than a phase that silently merges with its neighbour.

use crate::marker::Marker;

/// Events that bound phases (see the phase models) and a few the reports read.
pub mod event {
    use super::Marker;

    /// The harness spawned the runtime process: time zero of a run.
    pub const SPAWN: &str = "spawn";
    /// Our monitor's first KVM_RUN (after a restore: the first one after loading).
    pub const FIRST_KVM_RUN: &str = "first-kvm-run";
    /// A VM's firmware gave its first sign of life (its first debug-console line).
    pub const FIRMWARE_START: &str = "firmware-start";
    /// A VM's firmware announced it hands over to the boot loader or kernel.
    pub const FIRMWARE_HANDOVER: &str = "firmware-handover";
    /// The kernel's first console line (a printk line), behind firmware output.
    pub const KERNEL_CONSOLE: &str = "kernel-console";
    /// The kernel's "Run /init as init process" console line.
    pub const KERNEL_RUN_INIT: &str = "kernel-run-init";
    /// Marker: guest init started.
    pub const INIT_START: &str = Marker::InitStart.name();
    /// Marker: the guest's snapshot point, right before its workload.
    pub const SNAPSHOT: &str = Marker::Snapshot.name();
    /// Marker: the workload's execve.
    pub const EXEC: &str = Marker::Exec.name();
    /// Marker: the workload finished.
    pub const DONE: &str = Marker::Done.name();
    /// The runtime process exited (or the run ended).
    pub const EXIT: &str = "exit";
    /// In a container, guest-init's own `exec` line (its `init-start` line is the
    /// workload's start there).
    pub const WORKLOAD_EXEC: &str = "workload-exec";
    /// Firecracker's boot-timer write (value 123).
    pub const BOOT_TIMER: &str = "boot-timer";
    /// Our monitor finished writing a snapshot.
    pub const SNAPSHOT_SAVED: &str = "snapshot-saved";

    /// Every event name, for checks and documentation.
    pub const ALL: [&str; 14] = [
        SPAWN,
        FIRST_KVM_RUN,
        FIRMWARE_START,
        FIRMWARE_HANDOVER,
        KERNEL_CONSOLE,
        KERNEL_RUN_INIT,
        INIT_START,
        SNAPSHOT,
        EXEC,
        DONE,
        EXIT,
        WORKLOAD_EXEC,
        BOOT_TIMER,
        SNAPSHOT_SAVED,
    ];
}

/// Set-up steps a runtime of ours stamps inside a phase: shown in the text timeline
/// and kept in results.json, never phase boundaries.
pub mod step {
    /// `bootlab vm run`'s `main` began.
    pub const VMM_MAIN: &str = "vmm.main";
    pub const VMM_KVM_OPEN: &str = "vmm.kvm-open";
    pub const VMM_VM_CREATED: &str = "vmm.vm-created";
    pub const VMM_MEMORY_REGISTERED: &str = "vmm.memory-registered";
    pub const VMM_IRQCHIP: &str = "vmm.irqchip";
    pub const VMM_PIT: &str = "vmm.pit";
    pub const VMM_CPUID: &str = "vmm.cpuid";
    pub const VMM_KERNEL_LOADED: &str = "vmm.kernel-loaded";
    pub const VMM_VCPUS_CONFIGURED: &str = "vmm.vcpus-configured";
    /// `bootlab vm restore`'s `main` began.
    pub const RESTORE_MAIN: &str = "restore.main";
    pub const RESTORE_STATE_READ: &str = "restore.state-read";
    pub const RESTORE_MEMORY_MAPPED: &str = "restore.memory-mapped";
    pub const RESTORE_DEVICES: &str = "restore.devices";
    pub const RESTORE_VCPUS: &str = "restore.vcpus";
    /// `bootlab sandbox run`'s `main` began.
    pub const SANDBOX_MAIN: &str = "sandbox-main";
    pub const SANDBOX_CLONE: &str = "sandbox-clone";
    pub const SANDBOX_CHILD: &str = "sandbox-child";
    pub const SANDBOX_ROOTFS: &str = "sandbox-rootfs";
    pub const SANDBOX_NET: &str = "sandbox-net";
    pub const SANDBOX_SECURITY: &str = "sandbox-security";
    /// The harness's connection to a runtime's API socket was accepted (a
    /// Firecracker snapshot load).
    pub const API_CONNECTED: &str = "api.connected";
    /// The runtime answered the harness's API request.
    pub const API_ANSWERED: &str = "api.answered";
    /// SeaBIOS's `Booting from ...` debug-console line: it jumps to the boot entry
    /// (with `-kernel`, QEMU's option ROM, which then loads the kernel).
    pub const FIRMWARE_BOOT_ENTRY: &str = "firmware.boot-entry";
}

#[cfg(test)]
mod tests {
    use super::{event, step};

    /// The names are results.json's vocabulary: reports written before and after
    /// must keep meaning the same thing, so each string is pinned here.
    #[test]
    fn names_are_the_results_json_strings() {
        assert_eq!(
            event::ALL,
            [
                "spawn",
                "first-kvm-run",
                "firmware-start",
                "firmware-handover",
                "kernel-console",
                "kernel-run-init",
                "init-start",
                "snapshot",
                "exec",
                "done",
                "exit",
                "workload-exec",
                "boot-timer",
                "snapshot-saved",
            ]
        );
        let steps = [
            (step::VMM_MAIN, "vmm.main"),
            (step::VMM_KVM_OPEN, "vmm.kvm-open"),
            (step::VMM_VM_CREATED, "vmm.vm-created"),
            (step::VMM_MEMORY_REGISTERED, "vmm.memory-registered"),
            (step::VMM_IRQCHIP, "vmm.irqchip"),
            (step::VMM_PIT, "vmm.pit"),
            (step::VMM_CPUID, "vmm.cpuid"),
            (step::VMM_KERNEL_LOADED, "vmm.kernel-loaded"),
            (step::VMM_VCPUS_CONFIGURED, "vmm.vcpus-configured"),
            (step::RESTORE_MAIN, "restore.main"),
            (step::RESTORE_STATE_READ, "restore.state-read"),
            (step::RESTORE_MEMORY_MAPPED, "restore.memory-mapped"),
            (step::RESTORE_DEVICES, "restore.devices"),
            (step::RESTORE_VCPUS, "restore.vcpus"),
            (step::SANDBOX_MAIN, "sandbox-main"),
            (step::SANDBOX_CLONE, "sandbox-clone"),
            (step::SANDBOX_CHILD, "sandbox-child"),
            (step::SANDBOX_ROOTFS, "sandbox-rootfs"),
            (step::SANDBOX_NET, "sandbox-net"),
            (step::SANDBOX_SECURITY, "sandbox-security"),
            (step::API_CONNECTED, "api.connected"),
            (step::API_ANSWERED, "api.answered"),
            (step::FIRMWARE_BOOT_ENTRY, "firmware.boot-entry"),
        ];
        for (constant, wire) in steps {
            assert_eq!(constant, wire);
        }
    }
}
