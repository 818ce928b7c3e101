//! Reports from the fixed results.json fixture: every runtime and phase is in the
//! Markdown, the HTML's SVG charts are valid XML, statistics match hand-computed
//! values, and the HTML renders to a non-blank screenshot in headless Chromium.

use bench::report;
use bench::results::Results;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.json");
/// Cold boot, restores and the sandbox: three runs each, totals picked by hand.
const RESTORE_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/restore-results.json"
);

fn fixture() -> Results {
    report::load(Path::new(FIXTURE)).expect("fixture loads")
}

fn temp_dir(tag: &str) -> test_support::TempDir {
    test_support::TempDir::new(&format!("bench-test-{tag}")).unwrap()
}

fn skip(why: &str) {
    test_support::skip("html_renders_in_headless_chromium", why);
}

fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("closed svg") + start + "</svg>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

#[test]
fn markdown_lists_every_runtime_phase_and_reason() {
    let r = fixture();
    let md = report::markdown(&report::build(&r));
    for rt in &r.runtimes {
        assert!(
            md.contains(&rt.name),
            "runtime {} missing from report",
            rt.name
        );
    }
    for phase in [
        "vmm",
        "kernel",
        "init",
        "process",
        "teardown",
        "sandbox",
        "vmm+kernel",
    ] {
        assert!(
            md.contains(&format!("| {phase} |")),
            "phase {phase} missing"
        );
    }
    // Failed and missing peers appear with their reason.
    assert!(md.contains("cgroups in hybrid mode not supported"));
    assert!(md.contains("firecracker not found on PATH"));
    // Unobservable phases of the Linux guest are marked, with the reason.
    assert!(md.contains("n/o"));
    assert!(md.contains("unobservable: emulated KVM"));
    assert!(md.contains("timed out after 10.0 s"));
}

#[test]
fn statistics_match_hand_computed_fixture_values() {
    let r = fixture();
    let rep = report::build(&r);
    let medians = rep
        .tables
        .iter()
        .find(|t| t.title.starts_with("Medians"))
        .unwrap();
    let col = |name: &str| medians.header.iter().position(|h| h == name).unwrap();
    let row = |rt: &str| medians.rows.iter().find(|row| row[0] == rt).unwrap();
    // bootlab-vm-lab: vmm 1.2..1.6 ms -> 1.40; kernel 0.8 (monitor stamp beats the
    // console); init 0.3; process 0.3; teardown 0.4 (runtime exit beats harness);
    // total = spawn to the harness's exit, 3.1..3.5 -> 3.30.
    let lab = row("bootlab-vm-lab");
    assert_eq!(lab[col("vmm")], "1.40");
    assert_eq!(lab[col("kernel")], "0.800");
    assert_eq!(lab[col("init")], "0.300");
    assert_eq!(lab[col("process")], "0.300");
    assert_eq!(lab[col("teardown")], "0.400");
    assert_eq!(lab[col("total")], "3.30");
    // QEMU: merged vmm+kernel 30..34 with round 3 timed out: {30,32,34,33} -> 32.5.
    assert_eq!(row("qemu-microvm")[col("vmm+kernel")], "32.5");
    assert_eq!(row("bootlab-vm-linux")[col("init")], "n/o");
    // Ratio ours/peer of the total: 3.3 / median{36,38,40,39}=38.5 -> 0.086.
    let ratios = rep
        .tables
        .iter()
        .find(|t| t.title.starts_with("Ratios"))
        .unwrap();
    let total = ratios
        .rows
        .iter()
        .find(|r| r[0] == "bootlab-vm-lab" && r[1] == "qemu-microvm" && r[2] == "total")
        .unwrap();
    assert_eq!(total[3], "0.086");
    // Phases stamped differently (our runtime's clock vs a peer's console) are not
    // compared; the sandbox's own process phase is not compared with runc's.
    assert!(!ratios
        .rows
        .iter()
        .any(|r| r[0] == "bootlab-sandbox" && r[1] == "runc" && r[2] != "total"));
    assert!(ratios
        .rows
        .iter()
        .any(|r| r[0] == "bootlab-sandbox" && r[1] == "runc" && r[2] == "total"));
    let runtimes = rep.tables.iter().find(|t| t.title == "Runtimes").unwrap();
    let q = runtimes
        .rows
        .iter()
        .find(|r| r[0] == "qemu-microvm")
        .unwrap();
    assert_eq!(q[4], "4 / 1");
}

#[test]
fn cold_restored_and_container_stand_side_by_side_per_guest() {
    let r = report::load(Path::new(RESTORE_FIXTURE)).expect("fixture loads");
    let rep = report::build(&r);
    let t = rep
        .tables
        .iter()
        .find(|t| t.title.starts_with("Cold vs restored vs container"))
        .unwrap();
    let rows: Vec<Vec<&str>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    // Totals: lab cold {3.0,3.2,3.4}, our restore {1.5,1.6,1.7}, Firecracker's
    // {8.0,8.2,7.8}, sandbox {0.8,0.9,1.0}, Linux restore {40,44,42}; the Linux cold
    // boot was skipped, so its group has no cold ratio.
    assert_eq!(
        rows,
        [
            [
                "lab",
                "bootlab-vm-lab",
                "cold boot",
                "3.20",
                "3.00–3.40",
                "1.000",
                "3.556"
            ],
            [
                "lab",
                "bootlab-vm-lab-restore",
                "restore",
                "1.60",
                "1.50–1.70",
                "0.500",
                "1.778"
            ],
            [
                "lab",
                "firecracker-lab-restore",
                "restore",
                "8.00",
                "7.80–8.20",
                "2.500",
                "8.889"
            ],
            [
                "lab",
                "bootlab-sandbox",
                "container",
                "0.900",
                "0.800–1.00",
                "0.281",
                "1.000"
            ],
            [
                "linux",
                "bootlab-vm-linux-restore",
                "restore",
                "42.0",
                "40.0–44.0",
                "–",
                "46.667"
            ],
            [
                "linux",
                "bootlab-sandbox",
                "container",
                "0.900",
                "0.800–1.00",
                "–",
                "1.000"
            ],
        ]
    );
    // Firecracker's restore is seen from outside: its exec line ends restore.
    let medians = rep
        .tables
        .iter()
        .find(|t| t.title.starts_with("Medians"))
        .unwrap();
    let col = |name: &str| medians.header.iter().position(|h| h == name).unwrap();
    let fc = medians
        .rows
        .iter()
        .find(|r| r[0] == "firecracker-lab-restore")
        .unwrap();
    assert_eq!(
        (fc[col("restore")].as_str(), fc[col("process")].as_str()),
        ("5.00", "0.200")
    );
    // The older fixture has no restore: the lab's cold boot and the sandbox; its
    // Linux guest ran only to the kernel's end, which is no whole run.
    let old = report::build(&fixture());
    let t = old
        .tables
        .iter()
        .find(|t| t.title.starts_with("Cold vs restored"))
        .unwrap();
    let names: Vec<_> = t.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(names, ["bootlab-vm-lab", "bootlab-sandbox"]);
}

#[test]
fn html_charts_are_valid_svg() {
    let r = fixture();
    let html = report::html(&report::build(&r));
    let charts = svgs(&html);
    assert_eq!(charts.len(), 4, "seed bars, phase bars, CDF, concurrency");
    for svg in &charts {
        let doc = roxmltree::Document::parse(svg).expect("valid SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }
    let segments = |svg: &str| -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("rect"))
            .filter_map(|n| n.children().find(|c| c.has_tag_name("title")))
            .filter_map(|t| t.text().map(str::to_owned))
            .collect()
    };
    // The seed's picture: up to the end of the process, VMs first, containers last;
    // the Linux guest, whose process is not observable here, has no bar.
    let seed: Vec<String> = segments(charts[0])
        .iter()
        .map(|t| t.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        seed,
        [
            "bootlab-vm-lab vmm",
            "bootlab-vm-lab kernel",
            "bootlab-vm-lab init",
            "bootlab-vm-lab process",
            "qemu-microvm vmm+kernel",
            "qemu-microvm init",
            "qemu-microvm process",
            "bootlab-sandbox sandbox",
            "bootlab-sandbox process",
            "runc sandbox",
            "runc process",
        ]
    );
    // The same phase has the same colour in both bar charts.
    assert!(charts[0].contains("fill=\"#4e79a7\"><title>bootlab-vm-lab vmm"));
    assert!(charts[1].contains("fill=\"#4e79a7\"><title>bootlab-vm-lab vmm"));
    // vm-lab 5 phases, vm-linux 2, sandbox 3, runc 3, qemu 4.
    assert_eq!(segments(charts[1]).len(), 17);
    for rt in ["bootlab-vm-lab", "bootlab-sandbox", "runc", "qemu-microvm"] {
        assert!(charts[1].contains(rt) && charts[2].contains(rt), "{rt}");
    }
    let conc = roxmltree::Document::parse(charts[3]).unwrap();
    assert_eq!(
        conc.descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count(),
        9
    );
}

#[test]
fn write_and_reload_round_trips() {
    let r = fixture();
    let dir = temp_dir("roundtrip");
    let files = report::write_all(&r, &dir).unwrap();
    assert_eq!(files.len(), 3);
    let back = report::load(&dir.join("results.json")).unwrap();
    assert_eq!(back, r);
    let md1 = std::fs::read_to_string(dir.join("report.md")).unwrap();
    report::write_reports(&back, &dir).unwrap();
    assert_eq!(md1, std::fs::read_to_string(dir.join("report.md")).unwrap());
    let other = dir.join("other.json");
    std::fs::write(&other, b"{\"not\": 1}").unwrap();
    let e = report::load(&other).unwrap_err();
    assert!(
        matches!(&e, bench::Error::Results(p, _) if *p == other),
        "{e}"
    );
    let e = report::load(Path::new("/nonexistent/results.json")).unwrap_err();
    assert!(
        matches!(&e, bench::Error::Io(_, io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e}"
    );
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| bench::runners::which(n))
}

#[test]
fn html_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        skip("chromium not installed (scripts/deps.sh installs it)");
        return;
    };
    let dir = temp_dir("chromium");
    report::write_all(&fixture(), &dir).unwrap();
    let shot = dir.join("shot.png");
    let profile = dir.join("profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .expect("chromium runs");
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let luma: Vec<f64> = px
        .chunks(channels)
        .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0)
        .collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let var = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
    assert!(var > 100.0, "screenshot looks blank (variance {var:.1})");
    // The charts are drawn: pixels of the `vmm` phase color (#4e79a7) are on screen.
    let vmm = px
        .chunks(channels)
        .filter(|p| p[0] == 0x4e && p[1] == 0x79 && p[2] == 0xa7)
        .count();
    assert!(
        vmm > 200,
        "phase bars not visible ({vmm} vmm-colored pixels)"
    );
}

/// The median by hand: sorted sample, middle value or the mean of the two middle ones.
fn hand_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Spawn to the start of the `process` phase of each successful run of `runtime`,
/// read straight from the recorded timelines.
fn to_process(r: &Results, runtime: &str) -> Vec<f64> {
    let model = r.runtime(runtime).unwrap().kind.model();
    r.runs_of(runtime)
        .filter(|run| run.timeline.error.is_none())
        .filter_map(|run| {
            run.timeline
                .phases(model)
                .into_iter()
                .find(|p| p.name == "process")
                .map(|p| p.start_ns as f64)
        })
        .collect()
}

#[test]
fn the_verdicts_numbers_are_the_medians_of_results_json() {
    use report::verdict::{duration, Outcome, Role};
    for path in [FIXTURE, RESTORE_FIXTURE] {
        let r = report::load(Path::new(path)).unwrap();
        let rep = report::build(&r);
        let text = rep.verdict.sentences().join(" ");
        let md = report::markdown(&rep);
        assert!(md.starts_with(&format!("# {}\n\n## Verdict\n\n{text}", rep.title)));
        let container = hand_median(to_process(&r, "bootlab-sandbox"));
        let mut measured = 0;
        for (role, outcome) in &rep.verdict.roles {
            let Outcome::Measured(m) = outcome else {
                continue;
            };
            measured += 1;
            let median = hand_median(to_process(&r, &m.runtime));
            assert_eq!(m.to_process.median, median, "{path}: {role:?}");
            assert!(text.contains(&duration(median)), "{text}");
            assert!(text.contains(&format!("({})", m.runtime)), "{text}");
            if *role == Role::Container {
                assert_eq!(m.runtime, "bootlab-sandbox");
                assert!(m.vs_container.is_none());
            } else {
                let ratio = m.vs_container.as_ref().expect("a ratio to the container");
                assert_eq!(ratio.value, median / container);
                assert!(ratio.ci[0] <= ratio.value && ratio.value <= ratio.ci[1]);
                assert!(text.contains(&format!(
                    "{}x the container's time",
                    report::verdict::factor(ratio.value)
                )));
            }
        }
        assert!(measured >= 2, "{path}: {text}");
    }
    // By hand for the first fixture: vm-lab's exec (monitor) at 2.3..2.7 ms -> 2.50 ms;
    // the sandbox's (its own stamp beats the console's) at 0.9..1.1 ms -> 1.00 ms.
    let rep = report::build(&fixture());
    let Some(Outcome::Measured(lab)) = rep.verdict.get(Role::MicroVmLab) else {
        panic!("lab measured: {:?}", rep.verdict);
    };
    assert_eq!(
        (lab.runtime.as_str(), lab.largest.0.as_str()),
        ("bootlab-vm-lab", "vmm")
    );
    assert!((lab.to_process.median - 2.5e6).abs() < 2.0, "{lab:?}");
    assert!((lab.vs_container.as_ref().unwrap().value - 2.5).abs() < 1e-5);
}

#[test]
fn the_verdict_names_what_was_not_measured_and_why() {
    use report::verdict::{Outcome, Role};
    let mut r = fixture();
    // No container ran, and the lab guest's monitor is gone: Firecracker is missing,
    // so QEMU stands for the lab microVM.
    r.runs.retain(|run| {
        !["bootlab-sandbox", "runc", "bootlab-vm-lab"].contains(&run.timeline.runtime.as_str())
    });
    r.runtimes.retain(|rt| rt.name != "bootlab-vm-lab");
    let v = report::build(&r).verdict;
    let text = v.sentences().join(" ");
    assert!(
        matches!(v.get(Role::Container), Some(Outcome::NotMeasured(Some((n, "did not reach its process")))) if n == "bootlab-sandbox"),
        "{v:?}"
    );
    assert!(
        matches!(v.get(Role::MicroVmLab), Some(Outcome::Measured(m)) if m.runtime == "qemu-microvm" && m.vs_container.is_none()),
        "{v:?}"
    );
    assert!(
        text.contains("a container (bootlab-sandbox did not reach its process)"),
        "{text}"
    );
    assert!(
        text.contains("a traditional VM with firmware (none in this run)"),
        "{text}"
    );
    assert!(!text.contains("container's time"), "{text}");
    // Nothing at all: one sentence that says so.
    r.runs.clear();
    let text = report::build(&r).verdict.sentences().join(" ");
    assert!(
        text.contains("none of the containers and VMs the verdict compares reached its process"),
        "{text}"
    );
}

/// Renames runtime `from` to `to` in the runtimes and every run.
fn rename(r: &mut Results, from: &str, to: &str) {
    for rt in r.runtimes.iter_mut().filter(|rt| rt.name == from) {
        rt.name = to.into();
    }
    for run in r.runs.iter_mut().filter(|run| run.timeline.runtime == from) {
        run.timeline.runtime = to.into();
    }
    for b in r.concurrency.iter_mut().filter(|b| b.runtime == from) {
        b.runtime = to.into();
    }
}

/// In the page, after the charts: for every runtime label (`text.runtime`) of every
/// SVG, whether its box as laid out lies inside the SVG's viewBox; one line each
/// (`ok` or `clipped`, the chart's number, the label) in `<pre id="clip-check">`.
const CLIP_CHECK: &str = r#"<script>
const out = [];
document.querySelectorAll('svg').forEach((svg, i) => {
  const vb = svg.viewBox.baseVal;
  svg.querySelectorAll('text.runtime').forEach(t => {
    const b = t.getBBox();
    const inside = b.width > 0 && b.x >= vb.x - 0.5 && b.x + b.width <= vb.x + vb.width + 0.5;
    out.push((inside ? 'ok' : 'clipped') + ' ' + i + ' ' + t.textContent);
  });
});
const pre = document.createElement('pre');
pre.id = 'clip-check';
pre.textContent = '\n' + out.join('\n') + '\n';
document.body.appendChild(pre);
</script>"#;

/// A label drawn where the charts drew it before their margin followed the labels:
/// right-aligned at x = 162. The checker must call it clipped.
const OLD_MARGIN_CONTROL: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" \
    height=\"40\" viewBox=\"0 0 900 40\"><text class=\"runtime\" x=\"162\" y=\"20\" \
    font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"end\">bootlab-vm-lab-kernel-irqchip</text></svg>";

#[test]
fn no_runtime_label_is_cut_off_in_headless_chromium() {
    let Some(browser) = chromium() else {
        test_support::skip(
            "no_runtime_label_is_cut_off_in_headless_chromium",
            "chromium not installed (scripts/deps.sh installs it)",
        );
        return;
    };
    let mut r = fixture();
    rename(&mut r, "bootlab-vm-lab", "bootlab-vm-lab-kernel-irqchip");
    let long = "a-runtime-with-a-name-far-longer-than-any-bootlab-knows-today";
    rename(&mut r, "runc", long);
    let html = report::html(&report::build(&r));
    let page = html.replace(
        "</body>",
        &format!("<figure>{OLD_MARGIN_CONTROL}</figure>{CLIP_CHECK}</body>"),
    );
    let dir = temp_dir("clip");
    let file = dir.join("report.html");
    std::fs::write(&file, page).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let Some(start) = dom.find("<pre id=\"clip-check\">") else {
        panic!("no check output: {}", String::from_utf8_lossy(&out.stderr));
    };
    let lines: Vec<&str> = dom[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("</pre>"))
        .collect();
    let charts = svgs(&html).len();
    let control = format!("clipped {charts} bootlab-vm-lab-kernel-irqchip");
    assert!(
        lines.contains(&control.as_str()),
        "the checker did not catch the old margin: {lines:#?}"
    );
    let checked: Vec<&&str> = lines.iter().filter(|l| **l != control).collect();
    let clipped: Vec<&&&str> = checked.iter().filter(|l| !l.starts_with("ok ")).collect();
    assert!(clipped.is_empty(), "labels cut off: {clipped:#?}");
    for name in ["bootlab-vm-lab-kernel-irqchip", long, "bootlab-sandbox"] {
        // Both bar charts and the CDF's legend, at least.
        let n = checked.iter().filter(|l| l.contains(name)).count();
        assert!(n >= 3, "{name} checked {n} times: {checked:#?}");
    }
}

/// The fixture plus a VM with firmware (`qemu-pc-seabios`, three runs by hand: the
/// firmware 40..60 ms, its longest phase) for the verdict and the seed's picture.
fn with_firmware_vm() -> Results {
    use bench::results::{RunRecord, RuntimeInfo, RuntimeKind, RuntimeStatus};
    use timeline::{event, EventSource, Timeline};
    let mut r = fixture();
    r.runtimes.push(RuntimeInfo {
        name: "qemu-pc-seabios".into(),
        kind: RuntimeKind::FirmwareVm,
        ours: false,
        version: None,
        command: String::new(),
        status: RuntimeStatus::Ran,
        unobservable: Vec::new(),
        notes: Vec::new(),
    });
    let ms = 1_000_000;
    for (round, fw) in [(0u32, 40u64), (1, 50), (2, 60)] {
        let spawn = 1_000 * ms;
        let mut t = Timeline::new("qemu-pc-seabios", spawn);
        // vmm 10 ms, firmware `fw`, kernel 20, init 5, process 1, teardown 4.
        for (name, at, source) in [
            (event::SPAWN, 0, EventSource::Harness),
            (event::FIRMWARE_START, 10, EventSource::Console),
            (event::FIRMWARE_HANDOVER, 10 + fw, EventSource::Console),
            (event::INIT_START, 30 + fw, EventSource::Console),
            (event::EXEC, 35 + fw, EventSource::Console),
            (event::DONE, 36 + fw, EventSource::Console),
            (event::EXIT, 40 + fw, EventSource::Harness),
        ] {
            t.push(name, spawn + at * ms, source);
        }
        r.runs.push(RunRecord {
            round,
            load: 0,
            timeline: t,
        });
    }
    r
}

#[test]
fn a_vm_with_firmware_gets_its_place_colour_and_verdict() {
    use report::verdict::{Outcome, Role};
    let r = with_firmware_vm();
    let rep = report::build(&r);
    // The verdict names it, its time to the process (35 + 50 ms) and its firmware.
    let Some(Outcome::Measured(m)) = rep.verdict.get(Role::FirmwareVm) else {
        panic!("{:?}", rep.verdict);
    };
    assert_eq!(m.runtime, "qemu-pc-seabios");
    assert_eq!(m.to_process.median, 85e6);
    assert_eq!((m.largest.0.as_str(), m.largest.1), ("firmware", 50e6));
    let text = rep.verdict.sentences().join(" ");
    assert!(
        text.contains("a traditional VM with firmware 85.0 ms (qemu-pc-seabios)"),
        "{text}"
    );
    assert!(text.contains("largest phase `firmware` 50.0 ms"), "{text}");
    // Medians: firmware between vmm and kernel.
    let medians = rep
        .tables
        .iter()
        .find(|t| t.title.starts_with("Medians"))
        .unwrap();
    let at = |c: &str| medians.header.iter().position(|h| h == c).unwrap();
    assert!(at("vmm") < at("firmware") && at("firmware") < at("kernel"));
    // The seed's picture: vmm, firmware, kernel, init, process in the firmware colour.
    let html = report::html(&rep);
    let seed = svgs(&html)[0];
    let tag = "<title>qemu-pc-seabios ";
    let fw: Vec<&str> = seed
        .match_indices(tag)
        .map(|(i, _)| {
            let rest = &seed[i + tag.len()..];
            &rest[..rest.find(':').unwrap()]
        })
        .collect();
    assert_eq!(fw, ["vmm", "firmware", "kernel", "init", "process"]);
    assert!(seed.contains("fill=\"#edc948\"><title>qemu-pc-seabios firmware"));
}

#[test]
fn a_loaded_run_is_reported_beside_the_quiet_one() {
    // Every run again with two workers beside it, each event twice as far from the spawn.
    let mut r = fixture();
    r.method.load = 2;
    let loaded: Vec<_> = r
        .runs
        .iter()
        .map(|run| {
            let mut run = run.clone();
            run.load = 2;
            let spawn = run.timeline.spawn_ns;
            for e in &mut run.timeline.events {
                e.t_ns = spawn + 2 * (e.t_ns - spawn);
            }
            run
        })
        .collect();
    r.runs.extend(loaded);
    let rep = report::build(&r);
    // The quiet tables are those of the fixture alone.
    let quiet = report::build(&fixture());
    let medians = |rep: &report::Report| {
        rep.tables
            .iter()
            .find(|t| t.title.starts_with("Medians"))
            .unwrap()
            .rows
            .clone()
    };
    assert_eq!(medians(&rep), medians(&quiet));
    // The verdict: the loaded medians of results.json and 2x the quiet ones.
    let (n, rows) = rep.verdict.loaded.as_ref().expect("loaded verdict");
    assert_eq!(*n, 2);
    assert!(!rows.is_empty());
    for l in rows {
        let hand = hand_median(
            r.runs_under(&l.runtime, 2)
                .filter(|run| run.timeline.error.is_none())
                .filter_map(|run| {
                    let model = r.runtime(&l.runtime).unwrap().kind.model();
                    run.timeline
                        .phases(model)
                        .into_iter()
                        .find(|p| p.name == "process")
                        .map(|p| p.start_ns as f64)
                })
                .collect(),
        );
        assert_eq!(l.to_process.median, hand, "{}", l.runtime);
        assert!((l.vs_quiet.as_ref().unwrap().value - 2.0).abs() < 1e-6);
    }
    let text = rep.verdict.sentences().join(" ");
    assert!(
        text.contains("Beside 2 CPU-bound workers (--load 2)"),
        "{text}"
    );
    assert!(
        text.contains("bootlab-sandbox 2.00 ms, 2.00x quiet"),
        "{text}"
    );
    // The quiet/loaded table: whole runs 2x slower.
    let t = rep
        .tables
        .iter()
        .find(|t| t.title.starts_with("Quiet vs loaded: 2"))
        .unwrap();
    let lab = t
        .rows
        .iter()
        .find(|row| row[0] == "bootlab-vm-lab")
        .unwrap();
    assert_eq!(lab[5], "2.000");
    assert!(rep
        .tables
        .iter()
        .any(|t| t.title.starts_with("Ratios ours / peer, quiet and loaded")));
}

#[test]
fn the_root_disks_cost_and_the_guests_reads_are_reported_with_their_ratios() {
    let mut r = fixture();
    r.runtimes.retain(|rt| rt.name != "bootlab-vm-linux");
    r.runs
        .retain(|run| run.timeline.runtime != "bootlab-vm-linux");
    // The lab rows stand in: bootlab-vm-lab as the initramfs boot, a copy of it whose
    // guest starts its workload 2.5 ms later (its exec at 2.3..2.7 ms, median 2.5)
    // as the root-disk boot, and QEMU as the peer's root-disk row.
    rename(&mut r, "bootlab-vm-lab", "bootlab-vm-linux");
    rename(&mut r, "qemu-microvm", "qemu-microvm-disk");
    let mut info = r.runtime("bootlab-vm-linux").unwrap().clone();
    info.name = "bootlab-vm-linux-disk".into();
    r.runtimes.push(info);
    let mut disk_runs: Vec<_> = r.runs_of("bootlab-vm-linux").cloned().collect();
    for run in &mut disk_runs {
        let tl = &mut run.timeline;
        tl.runtime = "bootlab-vm-linux-disk".into();
        let exec = tl.event_ns("exec").unwrap();
        for e in tl.events.iter_mut().filter(|e| e.t_ns >= exec) {
            e.t_ns += 2_500_000;
        }
        // 8 MiB in 100 ms: 80 MiB/s.
        tl.measured.insert("seqread.bytes".into(), 8 << 20);
        tl.measured.insert("seqread.ns".into(), 100_000_000);
    }
    r.runs.extend(disk_runs);
    for run in r.runs.iter_mut() {
        if run.timeline.runtime == "qemu-microvm-disk" {
            // 8 MiB in 200 ms: 40 MiB/s.
            run.timeline
                .measured
                .insert("seqread.bytes".into(), 8 << 20);
            run.timeline
                .measured
                .insert("seqread.ns".into(), 200_000_000);
        }
    }
    let rep = report::build(&r);
    let table = |title: &str| {
        rep.tables
            .iter()
            .find(|t| t.title.starts_with(title))
            .unwrap_or_else(|| panic!("no table {title}"))
    };
    let cost = table("What the root disk costs");
    assert_eq!(cost.rows.len(), 1, "{:?}", cost.rows);
    assert_eq!(
        cost.rows[0][..4],
        [
            "bootlab-vm-linux-disk / bootlab-vm-linux",
            "2.50",
            "5.00",
            "2.000"
        ]
    );
    let reads = table("Sequential reads in the guest");
    let row = |rt: &str| reads.rows.iter().find(|row| row[0] == rt).unwrap().clone();
    assert_eq!(row("bootlab-vm-linux-disk")[2..4], ["8388608", "80.0"]);
    assert_eq!(row("qemu-microvm-disk")[3], "40.0");
    assert_eq!(row("qemu-microvm-disk")[5], "200.0");
    let ratios = table("Sequential reads: ours / peer");
    assert_eq!(
        ratios.rows,
        [[
            "bootlab-vm-linux-disk",
            "qemu-microvm-disk",
            "2.000",
            "2.000–2.000"
        ]]
    );
    let text = rep.verdict.sentences().join(" ");
    assert!(
        text.contains("bootlab-vm-linux-disk 2.00x its initramfs boot"),
        "{text}"
    );
    assert!(text.contains("at 2.00x qemu-microvm-disk's"), "{text}");
    // Without the disk rows neither table nor sentence appears.
    let plain = report::build(&fixture());
    assert!(!plain
        .tables
        .iter()
        .any(|t| t.title.starts_with("What the root disk") || t.title.starts_with("Sequential")));
    assert!(!plain.verdict.sentences().join(" ").contains("root disk"));
}
