//! `--compare` on two recorded results files (reports/reference and reports/nested-svm,
//! cut to their first five rounds): the hosts side by side with every median and ratio
//! as each file gives it alone, and each bad input refused with its own error.

use bench::report::{self, compare};
use bench::results::Results;
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/compare");
const KNOWN: [&str; 17] = [
    "bootlab-vm-lab",
    "bootlab-vm-lab-kernel-irqchip",
    "bootlab-vm-lab-restore",
    "bootlab-vm-linux-restore",
    "bootlab-vm-linux",
    "bootlab-sandbox",
    "fork-exec",
    "sandbox-floor",
    "bwrap",
    "runc",
    "crun",
    "kvm-floor",
    "qemu-microvm",
    "qemu-microvm-linux",
    "firecracker",
    "firecracker-lab-restore",
    "firecracker-linux",
];

fn fixtures() -> Vec<PathBuf> {
    ["emulated.json", "nested-svm.json"]
        .iter()
        .map(|f| Path::new(DIR).join(f))
        .collect()
}

fn temp_dir(tag: &str) -> test_support::TempDir {
    test_support::TempDir::new(&format!("compare-{tag}")).unwrap()
}

#[test]
fn two_hosts_stand_side_by_side_with_each_files_own_medians() {
    let paths = fixtures();
    let all = compare::load_all(&paths, &KNOWN).unwrap();
    let alone: Vec<Results> = paths.iter().map(|p| report::load(p).unwrap()).collect();
    assert_eq!(all, alone);
    let hosts: Vec<(PathBuf, Results)> = paths.iter().cloned().zip(all).collect();
    let c = compare::build(&hosts);
    let table = |title: &str| {
        c.tables
            .iter()
            .find(|t| t.title.starts_with(title))
            .unwrap()
    };
    let facts = table("Hosts");
    let row =
        |t: &report::Table, first: &str| t.rows.iter().find(|r| r[0] == first).unwrap().clone();
    assert_eq!(row(facts, "KVM"), ["KVM", "emulated KVM", "hardware KVM"]);
    assert_eq!(row(facts, "CPU")[2], "AMD EPYC Processor (2 CPUs)");
    // Each host's medians are the ones its own report shows; B / A is their quotient.
    let whole = table("Whole run per host");
    let own = |i: usize, rt: &str| {
        let rep = report::build(&hosts[i].1);
        rep.summaries
            .iter()
            .find(|s| s.name == rt)
            .and_then(|s| s.total.clone())
    };
    for rt in ["bootlab-vm-lab", "firecracker", "qemu-microvm"] {
        let (a, b) = (own(0, rt).unwrap(), own(1, rt).unwrap());
        let r = row(whole, rt);
        assert!(
            r[1].starts_with(&format!("{} (", report::svg::fmt_ms(a.median))),
            "{r:?}"
        );
        assert!(
            r[2].starts_with(&format!("{} (", report::svg::fmt_ms(b.median))),
            "{r:?}"
        );
        assert!(
            r[3].starts_with(&format!("{:.2} (", b.median / a.median)),
            "{r:?}"
        );
    }
    // A runtime measured on one host only has dashes on the other.
    assert_eq!(row(whole, "bootlab-sandbox")[2], "–");
    assert_eq!(row(whole, "bootlab-vm-linux")[1], "–");
    // Both verdicts, and both documents written.
    assert_eq!(c.verdicts.len(), 2);
    let dir = temp_dir("write");
    compare::write(&c, &dir).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("**A.** On this host (emulated KVM"), "{md}");
    assert!(md.contains("**B.** On this host (hardware KVM"), "{md}");
    assert!(std::fs::read_to_string(dir.join("report.html"))
        .unwrap()
        .contains("<td>hardware KVM</td>"));
}

#[test]
fn cut_mixed_version_and_unknown_runtime_files_are_refused() {
    let paths = fixtures();
    let dir = temp_dir("bad");
    let text = std::fs::read_to_string(&paths[1]).unwrap();
    let cut = dir.join("cut.json");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let e = compare::load_all(&[paths[0].clone(), cut.clone()], &KNOWN).unwrap_err();
    assert!(
        matches!(&e, bench::Error::Truncated(p, 1, _) if *p == cut),
        "{e}"
    );
    assert!(e.to_string().contains("cut short"), "{e}");

    let v2 = dir.join("v2.json");
    std::fs::write(&v2, text.replacen("\"schema\":1", "\"schema\":2", 1)).unwrap();
    let e = compare::load_all(&[paths[0].clone(), v2.clone()], &KNOWN).unwrap_err();
    assert!(
        matches!(&e, bench::Error::MixedSchemas { other, first_schema: Some(1), other_schema: Some(2), .. } if *other == v2),
        "{e}"
    );
    // Both of a version this bootlab does not read.
    let e = compare::load_all(&[v2.clone(), v2.clone()], &KNOWN).unwrap_err();
    assert!(matches!(&e, bench::Error::Schema(p, 2) if *p == v2), "{e}");

    let odd = dir.join("odd.json");
    std::fs::write(
        &odd,
        text.replace("\"qemu-microvm-linux\"", "\"qemu-pc-nonesuch\""),
    )
    .unwrap();
    let e = compare::load_all(&[paths[0].clone(), odd.clone()], &KNOWN).unwrap_err();
    assert!(
        matches!(&e, bench::Error::UnknownRuntime(p, n) if *p == odd && n == "qemu-pc-nonesuch"),
        "{e}"
    );
}
