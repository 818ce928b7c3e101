//! Facts about the host bootlab runs on: CPU, whether /dev/kvm is hardware KVM or
//! emulated (PVM), the kernel, the cgroup layout. Read from /proc and /sys only.
//! The harness records them in every report; `bootlab vm run` asks only
//! [`Virtualization::detect`], to pick the Linux guest that suits the host. What
//! each kind of host can observe: docs/HOSTS.md.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the `kvm_pvm` module shows up when /dev/kvm is PVM (software virtualization).
const PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// What /dev/kvm is on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Virtualization {
    /// VT-x / AMD-V present: guests run natively.
    HardwareKvm,
    /// /dev/kvm without vmx/svm (PVM): ordinary guests run under an instruction
    /// emulator, about 1000x slower; Linux reaches user space only in its 32-bit
    /// configuration (guest-images/kernel/EMULATED-USERSPACE.md).
    EmulatedKvm,
    /// No /dev/kvm.
    NoKvm,
}

/// The cgroup layout of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupLayout {
    V1,
    V2,
    /// v1 hierarchies and a cgroup2 mount side by side.
    Hybrid,
    Unknown,
}

/// Host facts recorded in every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub cpu_model: String,
    pub cpus: usize,
    pub virtualization: Virtualization,
    /// Why `virtualization` was concluded (flags / module seen).
    pub virtualization_evidence: String,
    pub kernel: String,
    pub cgroup: CgroupLayout,
    pub memory_mib: u64,
}

impl HostFacts {
    /// Reads the facts of the running host.
    pub fn detect() -> HostFacts {
        let cpuinfo = read_cpuinfo();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (virtualization, virtualization_evidence) = classify_this_host(&cpuinfo);
        HostFacts {
            cpu_model: cpu_model(&cpuinfo),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            virtualization,
            virtualization_evidence,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            cgroup: cgroup_layout(&mountinfo),
            memory_mib: mem_total_mib(&meminfo),
        }
    }

    /// True when guests run under KVM's instruction emulator here (see
    /// docs/HOSTS.md), or there is no KVM at all.
    pub fn emulated(&self) -> bool {
        self.virtualization != Virtualization::HardwareKvm
    }
}

impl Virtualization {
    /// What /dev/kvm is on this host (reads /proc/cpuinfo and checks two paths).
    pub fn detect() -> Virtualization {
        classify_this_host(&read_cpuinfo()).0
    }
}

fn read_cpuinfo() -> String {
    std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
}

fn classify_this_host(cpuinfo: &str) -> (Virtualization, String) {
    classify_kvm(
        cpuinfo,
        Path::new("/dev/kvm").exists(),
        Path::new(PVM_MODULE).exists(),
    )
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Hardware KVM needs vmx or svm among the CPU flags; a /dev/kvm without them (and
/// with the kvm_pvm module) is emulated.
pub fn classify_kvm(cpuinfo: &str, dev_kvm: bool, pvm_module: bool) -> (Virtualization, String) {
    let hw = cpuinfo.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim() == "flags" && v.split_whitespace().any(|f| f == "vmx" || f == "svm")
        })
    });
    let evidence = format!(
        "/dev/kvm {}; vmx/svm flag {}; {PVM_MODULE} {}",
        if dev_kvm { "present" } else { "absent" },
        if hw { "present" } else { "absent" },
        if pvm_module { "present" } else { "absent" },
    );
    let kind = match (dev_kvm, hw) {
        (false, _) => Virtualization::NoKvm,
        (true, true) => Virtualization::HardwareKvm,
        (true, false) => Virtualization::EmulatedKvm,
    };
    (kind, evidence)
}

/// The cgroup layout from /proc/self/mountinfo (field after " - " is the fs type).
pub fn cgroup_layout(mountinfo: &str) -> CgroupLayout {
    let (mut v1, mut v2) = (false, false);
    for line in mountinfo.lines() {
        let Some((_, post)) = line.split_once(" - ") else {
            continue;
        };
        match post.split_whitespace().next() {
            Some("cgroup") => v1 = true,
            Some("cgroup2") => v2 = true,
            _ => {}
        }
    }
    match (v1, v2) {
        (true, true) => CgroupLayout::Hybrid,
        (true, false) => CgroupLayout::V1,
        (false, true) => CgroupLayout::V2,
        (false, false) => CgroupLayout::Unknown,
    }
}

fn mem_total_mib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_classification() {
        let hw = "model name\t: X\nflags\t\t: fpu vmx sse\n";
        let emu = "model name\t: X\nflags\t\t: fpu sse hypervisor\n";
        assert_eq!(classify_kvm(hw, true, false).0, Virtualization::HardwareKvm);
        let (k, ev) = classify_kvm(emu, true, true);
        assert_eq!(k, Virtualization::EmulatedKvm);
        assert!(ev.contains("kvm_pvm present"), "{ev}");
        assert_eq!(classify_kvm(hw, false, false).0, Virtualization::NoKvm);
        assert_eq!(cpu_model(hw), "X");
    }

    #[test]
    fn cgroup_layouts() {
        let v1 = "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let v2 = "31 25 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_layout(v1), CgroupLayout::V1);
        assert_eq!(cgroup_layout(v2), CgroupLayout::V2);
        assert_eq!(cgroup_layout(&format!("{v1}{v2}")), CgroupLayout::Hybrid);
        assert_eq!(cgroup_layout(""), CgroupLayout::Unknown);
    }

    #[test]
    fn detect_reads_this_host() {
        let h = HostFacts::detect();
        assert!(h.cpus >= 1);
        assert!(!h.kernel.is_empty());
    }
}
