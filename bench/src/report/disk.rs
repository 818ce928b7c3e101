//! What the root disk costs and how fast a guest reads it: for each monitor that
//! booted the Linux guest both ways, its time to the workload from rootfs.ext4 over
//! virtio-blk against from the initramfs; and, when the root-disk rows ran the
//! sequential-read workload (`bootlab bench --seqread`), the read throughput each
//! guest measured itself, ours against each peer.

use super::summary::RuntimeSummary;
use super::svg::fmt_ms;
use super::Table;
use crate::results::Results;
use crate::runners::seqread;
use crate::stats::{self, Ratio};

/// Each monitor's Linux rows: (initramfs row, root-disk row).
pub const DISK_PAIRS: [(&str, &str); 3] = [
    ("bootlab-vm-linux", "bootlab-vm-linux-disk"),
    ("qemu-microvm-linux", "qemu-microvm-disk"),
    ("firecracker-linux", "firecracker-linux-disk"),
];

/// One monitor's disk boot against its initramfs boot.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskCost {
    pub initramfs: String,
    pub disk: String,
    /// Medians of spawn to the workload's start (ns).
    pub initramfs_ns: f64,
    pub disk_ns: f64,
    /// disk / initramfs, to the workload's start.
    pub ratio: Ratio,
}

/// One runtime's sequential reads, as its guest measured them.
#[derive(Debug, Clone, PartialEq)]
pub struct Reads {
    pub runtime: String,
    pub ours: bool,
    /// MiB/s of each run that reported the read.
    pub mib_s: Vec<f64>,
    /// Bytes read (the median run's; every run reads the same).
    pub bytes: u64,
}

/// Ours against a peer, in read throughput: above 1, ours reads faster.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRatio {
    pub ours: String,
    pub peer: String,
    pub ratio: Ratio,
}

/// The pairs of [`DISK_PAIRS`] with both rows measured to their workload.
pub fn costs(summaries: &[RuntimeSummary]) -> Vec<DiskCost> {
    let to_process = |name: &str| {
        summaries
            .iter()
            .find(|s| s.name == name && !s.to_process.is_empty())
            .map(|s| &s.to_process)
    };
    DISK_PAIRS
        .iter()
        .filter_map(|(initramfs, disk)| {
            let (a, b) = (to_process(disk)?, to_process(initramfs)?);
            Some(DiskCost {
                initramfs: (*initramfs).into(),
                disk: (*disk).into(),
                initramfs_ns: stats::summarize(b)?.median,
                disk_ns: stats::summarize(a)?.median,
                ratio: stats::ratio_of_medians(a, b)?,
            })
        })
        .collect()
}

/// Every runtime whose successful quiet runs reported sequential reads, in results
/// order.
pub fn reads(results: &Results) -> Vec<Reads> {
    results
        .runtimes
        .iter()
        .filter_map(|r| {
            let runs: Vec<(u64, u64)> = results
                .runs_of(&r.name)
                .filter(|run| !run.failed())
                .filter_map(|run| {
                    let m = &run.timeline.measured;
                    Some((*m.get(seqread::BYTES)?, *m.get(seqread::NS)?))
                })
                .filter(|(b, ns)| *b > 0 && *ns > 0)
                .collect();
            let mib_s: Vec<f64> = runs
                .iter()
                .map(|(b, ns)| *b as f64 / f64::from(1u32 << 20) / (*ns as f64 / 1e9))
                .collect();
            let mut bytes: Vec<u64> = runs.iter().map(|(b, _)| *b).collect();
            bytes.sort_unstable();
            Some(Reads {
                runtime: r.name.clone(),
                ours: r.ours,
                bytes: *bytes.get(bytes.len() / 2)?,
                mib_s,
            })
        })
        .collect()
}

/// Ours against each peer that read too.
pub fn read_ratios(reads: &[Reads]) -> Vec<ReadRatio> {
    let mut out = Vec::new();
    for ours in reads.iter().filter(|r| r.ours) {
        for peer in reads.iter().filter(|r| !r.ours) {
            if let Some(ratio) = stats::ratio_of_medians(&ours.mib_s, &peer.mib_s) {
                out.push(ReadRatio {
                    ours: ours.runtime.clone(),
                    peer: peer.runtime.clone(),
                    ratio,
                });
            }
        }
    }
    out
}

fn ratio_text(r: &Ratio) -> [String; 2] {
    [
        format!("{:.3}", r.value),
        format!("{:.3}–{:.3}", r.ci[0], r.ci[1]),
    ]
}

/// The report's tables: the disk's cost, then the reads (each only when measured).
pub fn tables(results: &Results, summaries: &[RuntimeSummary]) -> Vec<Table> {
    let mut out = Vec::new();
    let costs = costs(summaries);
    if !costs.is_empty() {
        let mut t = Table::new(
            "What the root disk costs (ms)",
            &[
                "monitor's rows",
                "to process, initramfs",
                "to process, root disk",
                "disk / initramfs",
                "95% CI",
            ],
        );
        t.intro.push(
            "The same kernel and guest-init, once from the initramfs and once with its root \
             on rootfs.ext4 over virtio-blk (read-only): medians of spawn to the workload's \
             start (its `exec`), compared within each monitor. Above 1: the disk boot is \
             slower."
                .into(),
        );
        for c in &costs {
            let [ratio, ci] = ratio_text(&c.ratio);
            t.rows.push(vec![
                format!("{} / {}", c.disk, c.initramfs),
                fmt_ms(c.initramfs_ns),
                fmt_ms(c.disk_ns),
                ratio,
                ci,
            ]);
        }
        out.push(t);
    }
    let reads = reads(results);
    if !reads.is_empty() {
        let mut t = Table::new(
            "Sequential reads in the guest (seqread)",
            &[
                "runtime",
                "n",
                "bytes",
                "MiB/s median",
                "95% CI",
                "ms median",
            ],
        );
        t.intro.push(
            "guest-init's `seqread` workload on the root-disk rows: 4 KiB O_DIRECT reads of \
             /dev/vda from its start, timed by the guest's own CLOCK_MONOTONIC (the same \
             kernel under every monitor, so the console's speed is not counted). Above 1 \
             in the ratios: ours reads faster."
                .into(),
        );
        for r in &reads {
            let Some(s) = stats::summarize(&r.mib_s) else {
                continue;
            };
            let ms = r.bytes as f64 / f64::from(1u32 << 20) / s.median * 1e3;
            t.rows.push(vec![
                r.runtime.clone(),
                s.n.to_string(),
                r.bytes.to_string(),
                format!("{:.1}", s.median),
                format!("{:.1}–{:.1}", s.median_ci[0], s.median_ci[1]),
                format!("{ms:.1}"),
            ]);
        }
        out.push(t);
        let ratios = read_ratios(&reads);
        if !ratios.is_empty() {
            let mut r = Table::new(
                "Sequential reads: ours / peer (throughput)",
                &["ours", "peer", "ratio", "95% CI"],
            );
            for x in &ratios {
                let [ratio, ci] = ratio_text(&x.ratio);
                r.rows.push(vec![x.ours.clone(), x.peer.clone(), ratio, ci]);
            }
            out.push(r);
        }
    }
    out
}

/// The verdict's sentence on the disk, when anything of it was measured.
pub fn sentence(costs: &[DiskCost], reads: &[ReadRatio]) -> Option<String> {
    let factor = super::verdict::factor;
    let mut parts = Vec::new();
    if !costs.is_empty() {
        let each: Vec<String> = costs
            .iter()
            .map(|c| {
                format!(
                    "{} {}x its initramfs boot (95% CI {}–{})",
                    c.disk,
                    factor(c.ratio.value),
                    factor(c.ratio.ci[0]),
                    factor(c.ratio.ci[1])
                )
            })
            .collect();
        parts.push(format!(
            "Booting from the root disk to the workload takes {}",
            each.join(", ")
        ));
    }
    if !reads.is_empty() {
        let each: Vec<String> = reads
            .iter()
            .map(|r| {
                format!(
                    "{}x {}'s (95% CI {}–{})",
                    factor(r.ratio.value),
                    r.peer,
                    factor(r.ratio.ci[0]),
                    factor(r.ratio.ci[1])
                )
            })
            .collect();
        let ours = &reads[0].ours;
        parts.push(format!(
            "{ours}'s guest reads its disk sequentially (4 KiB O_DIRECT) at {}",
            each.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| format!("{}.", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, to_process: &[f64]) -> RuntimeSummary {
        RuntimeSummary {
            name: name.into(),
            kind: crate::results::RuntimeKind::Vm,
            ours: name.starts_with("bootlab"),
            ok: to_process.len(),
            failed: 0,
            phases: Vec::new(),
            total: None,
            samples: Default::default(),
            attribution: Default::default(),
            totals: Vec::new(),
            to_process: to_process.to_vec(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn each_monitor_is_compared_with_itself_only() {
        let s = [
            summary("bootlab-vm-linux", &[100.0, 110.0, 90.0]),
            summary("bootlab-vm-linux-disk", &[150.0, 165.0, 135.0]),
            summary("qemu-microvm-disk", &[300.0]),
            summary("firecracker-linux", &[200.0]),
            summary("firecracker-linux-disk", &[]),
        ];
        let c = costs(&s);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].disk, "bootlab-vm-linux-disk");
        assert!((c[0].ratio.value - 1.5).abs() < 1e-9);
        let text = sentence(&c, &[]).unwrap();
        assert!(
            text.starts_with("Booting from the root disk to the workload takes bootlab-vm-linux-disk 1.50x its initramfs boot (95% CI "),
            "{text}"
        );
        assert_eq!(sentence(&[], &[]), None);
    }

    #[test]
    fn read_ratios_put_ours_over_each_peer() {
        let r = |name: &str, ours: bool, mib_s: &[f64]| Reads {
            runtime: name.into(),
            ours,
            mib_s: mib_s.to_vec(),
            bytes: 8 << 20,
        };
        let reads = [
            r("bootlab-vm-linux-disk", true, &[40.0, 42.0, 38.0]),
            r("qemu-microvm-disk", false, &[20.0, 21.0, 19.0]),
            r("firecracker-linux-disk", false, &[]),
        ];
        let x = read_ratios(&reads);
        assert_eq!(x.len(), 1);
        assert_eq!(
            (x[0].ours.as_str(), x[0].peer.as_str()),
            ("bootlab-vm-linux-disk", "qemu-microvm-disk")
        );
        assert!((x[0].ratio.value - 2.0).abs() < 1e-9);
        let text = sentence(&[], &x).unwrap();
        assert!(
            text.starts_with("bootlab-vm-linux-disk's guest reads its disk sequentially (4 KiB O_DIRECT) at 2.00x qemu-microvm-disk's (95% CI "),
            "{text}"
        );
    }
}
