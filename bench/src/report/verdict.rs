//! The verdict at the top of a report: the seed's question ("a VM needs POST →
//! kernel → init → process, a container needs sandbox → process: what does each cost
//! here?") answered in a few sentences with this run's numbers. Decided as a plain
//! value from the summaries ([`Verdict::from_results`]), then rendered as text.

use super::summary::{RuntimeSummary, PROCESS};
use super::svg::fmt_ms;
use crate::host::Virtualization;
use crate::results::{Results, RuntimeStatus};
use crate::stats::{self, Ratio, Summary};

/// One kind of start the verdict names, in the order it names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A container (namespaces, no guest kernel).
    Container,
    /// A microVM booting the lab guest (no firmware: the monitor's set-up is its POST).
    MicroVmLab,
    /// A microVM resuming a Linux guest from a snapshot.
    RestoredLinux,
    /// A microVM booting a Linux kernel cold.
    MicroVmLinux,
    /// A traditional VM: real firmware (SeaBIOS, OVMF, qboot) runs the POST.
    FirmwareVm,
}

impl Role {
    /// All roles, in sentence order.
    pub const ALL: [Role; 5] = [
        Role::Container,
        Role::MicroVmLab,
        Role::RestoredLinux,
        Role::MicroVmLinux,
        Role::FirmwareVm,
    ];

    /// The runtimes that can stand for this role, preferred first (ours, then peers).
    /// Any runtime with a `firmware` phase can also stand for [`Role::FirmwareVm`]
    /// when none of these ran.
    pub fn candidates(self) -> &'static [&'static str] {
        match self {
            Role::Container => &["bootlab-sandbox", "crun", "runc", "bwrap"],
            Role::MicroVmLab => &["bootlab-vm-lab", "firecracker", "qemu-microvm"],
            Role::RestoredLinux => &["bootlab-vm-linux-restore"],
            Role::MicroVmLinux => &[
                "bootlab-vm-linux",
                "firecracker-linux",
                "qemu-microvm-linux",
            ],
            Role::FirmwareVm => &["qemu-pc-seabios", "qemu-q35-ovmf", "qemu-microvm-qboot"],
        }
    }

    /// How the sentence names it.
    pub fn phrase(self) -> &'static str {
        match self {
            Role::Container => "a container",
            Role::MicroVmLab => "a microVM (lab guest)",
            Role::RestoredLinux => "a microVM (Linux, restored from a snapshot)",
            Role::MicroVmLinux => "a microVM (Linux, cold boot)",
            Role::FirmwareVm => "a traditional VM with firmware",
        }
    }
}

/// The numbers of one role's runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub runtime: String,
    /// Spawn to the start of the `process` phase, over successful runs (ns).
    pub to_process: Summary,
    /// The largest phase before `process` and its median (ns).
    pub largest: (String, f64),
    /// `to_process` against the container's (`None` for the container itself or
    /// when no container was measured).
    pub vs_container: Option<Ratio>,
}

/// What the verdict says about one role.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured(Measured),
    /// No candidate ran to its process here; the first candidate listed in the
    /// results with its status word (`skipped`, `missing`, `failed`), if any.
    NotMeasured(Option<(String, &'static str)>),
}

/// The verdict: the host in a few words and one outcome per role.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub host: String,
    pub roles: Vec<(Role, Outcome)>,
    /// With `--load N`: N, and for each measured role's runtime its time to the
    /// process beside the workers and the ratio loaded / quiet.
    pub loaded: Option<(u32, Vec<Loaded>)>,
    /// Each monitor's root-disk boot against its initramfs boot.
    pub disk_costs: Vec<super::disk::DiskCost>,
    /// Ours against each peer in the guest's sequential-read throughput.
    pub reads: Vec<super::disk::ReadRatio>,
}

/// One runtime's time to its process on the loaded host.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub runtime: String,
    pub to_process: Summary,
    pub vs_quiet: Option<Ratio>,
}

fn status_word(s: &RuntimeStatus) -> &'static str {
    match s {
        RuntimeStatus::Ran => "did not reach its process",
        RuntimeStatus::Missing(_) => "missing",
        RuntimeStatus::Failed(_) => "failed",
        RuntimeStatus::Skipped(_) => "skipped",
    }
}

fn has_firmware(s: &RuntimeSummary) -> bool {
    s.phases
        .iter()
        .any(|(n, _)| n.split('+').any(|c| c == "firmware"))
}

/// The largest phase of `s` that ends before its workload starts.
fn largest_before_process(s: &RuntimeSummary) -> Option<(String, f64)> {
    s.phases
        .iter()
        .take_while(|(n, _)| !n.split('+').any(|c| c == PROCESS))
        .max_by(|a, b| a.1.median.total_cmp(&b.1.median))
        .map(|(n, st)| (n.clone(), st.median))
}

fn measure(s: &RuntimeSummary, container: Option<&RuntimeSummary>) -> Option<Measured> {
    Some(Measured {
        runtime: s.name.clone(),
        to_process: stats::summarize(&s.to_process)?,
        largest: largest_before_process(s)?,
        vs_container: container
            .filter(|c| c.name != s.name)
            .and_then(|c| stats::ratio_of_medians(&s.to_process, &c.to_process)),
    })
}

/// What kind of KVM a host has, in words.
pub fn kvm_text(v: Virtualization) -> &'static str {
    match v {
        Virtualization::HardwareKvm => "hardware KVM",
        Virtualization::EmulatedKvm => "emulated KVM",
        Virtualization::NoKvm => "no KVM",
    }
}

fn host_text(results: &Results) -> String {
    let h = &results.host;
    format!(
        "{}, {}, {} CPUs",
        kvm_text(h.virtualization),
        h.cpu_model,
        h.cpus
    )
}

impl Verdict {
    /// Decides the verdict from `results` and their summaries (as [`super::build`]
    /// computes them).
    pub fn from_results(results: &Results, summaries: &[RuntimeSummary]) -> Verdict {
        let usable = |name: &str| {
            summaries
                .iter()
                .find(|s| s.name == name && !s.to_process.is_empty())
        };
        let pick = |role: Role| -> Option<&RuntimeSummary> {
            let named = role.candidates().iter().find_map(|n| usable(n));
            if role != Role::FirmwareVm {
                return named;
            }
            // The named ones first (a PC with SeaBIOS is the traditional VM; qboot
            // in a microvm is the least of firmware), then any other runtime with a
            // firmware phase: the quickest to its process.
            named.or_else(|| {
                summaries
                    .iter()
                    .filter(|s| has_firmware(s) && !s.to_process.is_empty())
                    .min_by(|a, b| {
                        let m =
                            |s: &RuntimeSummary| stats::summarize(&s.to_process).map(|x| x.median);
                        m(a).partial_cmp(&m(b)).unwrap_or(std::cmp::Ordering::Equal)
                    })
            })
        };
        let container = pick(Role::Container);
        let roles: Vec<(Role, Outcome)> = Role::ALL
            .into_iter()
            .map(|role| {
                let outcome = match pick(role).and_then(|s| measure(s, container)) {
                    Some(m) => Outcome::Measured(m),
                    None => Outcome::NotMeasured(role.candidates().iter().find_map(|n| {
                        results
                            .runtime(n)
                            .map(|r| (r.name.clone(), status_word(&r.status)))
                    })),
                };
                (role, outcome)
            })
            .collect();
        let loaded = (results.method.load > 0).then(|| {
            let under = super::summary::runtimes_under(results, results.method.load);
            let rows = roles
                .iter()
                .filter_map(|(_, o)| match o {
                    Outcome::Measured(m) => Some(m),
                    Outcome::NotMeasured(_) => None,
                })
                .filter_map(|m| {
                    let quiet = summaries.iter().find(|s| s.name == m.runtime)?;
                    let l = under.iter().find(|s| s.name == m.runtime)?;
                    Some(Loaded {
                        runtime: m.runtime.clone(),
                        to_process: stats::summarize(&l.to_process)?,
                        vs_quiet: stats::ratio_of_medians(&l.to_process, &quiet.to_process),
                    })
                })
                .collect();
            (results.method.load, rows)
        });
        Verdict {
            host: host_text(results),
            roles,
            loaded,
            disk_costs: super::disk::costs(summaries),
            reads: super::disk::read_ratios(&super::disk::reads(results)),
        }
    }

    /// The outcome of `role`.
    pub fn get(&self, role: Role) -> Option<&Outcome> {
        self.roles.iter().find(|(r, _)| *r == role).map(|(_, o)| o)
    }

    /// The verdict as plain sentences (Markdown and HTML escape it themselves).
    pub fn sentences(&self) -> Vec<String> {
        let mut starts = Vec::new();
        let mut missing = Vec::new();
        for (role, outcome) in &self.roles {
            match outcome {
                Outcome::Measured(m) => starts.push(format!(
                    "{}{} {}{} ({})",
                    role.phrase(),
                    if starts.is_empty() {
                        " runs its process"
                    } else {
                        ""
                    },
                    duration(m.to_process.median),
                    if starts.is_empty() {
                        " after spawn"
                    } else {
                        ""
                    },
                    m.runtime
                )),
                Outcome::NotMeasured(Some((name, word))) => {
                    missing.push(format!("{} ({name} {word})", role.phrase()))
                }
                Outcome::NotMeasured(None) => {
                    missing.push(format!("{} (none in this run)", role.phrase()))
                }
            }
        }
        let mut out = Vec::new();
        if starts.is_empty() {
            out.push(format!(
                "On this host ({}) none of the containers and VMs the verdict compares reached its process: see the Runtimes table.",
                self.host
            ));
        } else {
            out.push(format!(
                "On this host ({}) {}.",
                self.host,
                join_and(&starts)
            ));
        }
        let pays: Vec<String> = self
            .roles
            .iter()
            .filter_map(|(role, o)| match o {
                Outcome::Measured(m) if *role != Role::Container => {
                    let ratio = m.vs_container.as_ref().map_or(String::new(), |r| {
                        format!(
                            "{}x the container's time (95% CI {}–{}), ",
                            factor(r.value),
                            factor(r.ci[0]),
                            factor(r.ci[1])
                        )
                    });
                    Some(format!(
                        "{}: {ratio}largest phase `{}` {}",
                        m.runtime,
                        m.largest.0,
                        duration(m.largest.1)
                    ))
                }
                _ => None,
            })
            .collect();
        if !pays.is_empty() {
            let container = match self.get(Role::Container) {
                Some(Outcome::Measured(c)) => format!(
                    " (the container's: `{}` {})",
                    c.largest.0,
                    duration(c.largest.1)
                ),
                _ => String::new(),
            };
            out.push(format!(
                "The VM pays for what runs before its process{container}: {}.",
                pays.join("; ")
            ));
        }
        if let Some((n, rows)) = self.loaded.as_ref().filter(|(_, r)| !r.is_empty()) {
            let parts: Vec<String> = rows
                .iter()
                .map(|l| {
                    let ratio = l.vs_quiet.as_ref().map_or(String::new(), |r| {
                        format!(
                            ", {}x quiet (95% CI {}–{})",
                            factor(r.value),
                            factor(r.ci[0]),
                            factor(r.ci[1])
                        )
                    });
                    format!("{} {}{ratio}", l.runtime, duration(l.to_process.median))
                })
                .collect();
            out.push(format!(
                "Beside {n} CPU-bound workers (--load {n}) the same starts take: {}.",
                parts.join("; ")
            ));
        }
        out.extend(super::disk::sentence(&self.disk_costs, &self.reads));
        if !missing.is_empty() {
            out.push(format!("Not measured here: {}.", join_and(&missing)));
        }
        out
    }
}

/// `ms` below a second, `s` above: the verdict's numbers at a readable scale.
pub fn duration(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.1} s", ns / 1e9)
    } else {
        format!("{} ms", fmt_ms(ns))
    }
}

/// A ratio with three significant figures or its whole part: 1.54, 15.4, 7807.
pub fn factor(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}; and {last}", init.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_switch_to_seconds_at_one_second() {
        assert_eq!(duration(2_090_000.0), "2.09 ms");
        assert_eq!(duration(999_000_000.0), "999 ms");
        assert_eq!(duration(58_600_000_000.0), "58.6 s");
    }

    #[test]
    fn factors_keep_three_figures_or_their_whole_part() {
        assert_eq!(factor(1.5412), "1.54");
        assert_eq!(factor(15.44), "15.4");
        assert_eq!(factor(7807.15), "7807");
    }

    #[test]
    fn parts_are_joined_with_a_final_and() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_and(&p(&["a"])), "a");
        assert_eq!(join_and(&p(&["a", "b", "c"])), "a; b; and c");
    }
}
