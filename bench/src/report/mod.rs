//! Reports: a folder with results.json (everything measured), report.md and
//! report.html (self-contained: tables plus inline SVG charts). Both documents are
//! rendered from the same tables, computed from results.json alone, so `bootlab
//! report RESULTS.json` regenerates them exactly.

pub mod compare;
pub mod disk;
mod loaded;
pub mod summary;
pub mod svg;
pub mod verdict;

use crate::results::{Results, RuntimeKind, RuntimeStatus};
use crate::Error;
use std::path::{Path, PathBuf};
use summary::{RatioRow, RuntimeSummary, TOTAL};
use svg::{esc, fmt_ms};
use verdict::Verdict;

/// Distinct errors listed per runtime.
const MAX_ERRORS_SHOWN: usize = 5;

/// A titled table shared by the Markdown and HTML renderings.
#[derive(Debug, Clone)]
pub struct Table {
    pub title: String,
    pub intro: Vec<String>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: &str, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            intro: Vec::new(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
}

/// Every number of a report, ready to render.
#[derive(Debug)]
pub struct Report {
    pub title: String,
    /// The answer in a few sentences, shown first.
    pub verdict: Verdict,
    pub tables: Vec<Table>,
    pub summaries: Vec<RuntimeSummary>,
    pub concurrency: Vec<summary::ConcurrencyRow>,
    pub runtime_order: Vec<String>,
}

/// Reads a results.json: whole, of this bootlab's schema version.
pub fn load(path: &Path) -> Result<Results, Error> {
    from_value(path, read_value(path)?)
}

/// The JSON of `path`, with a file cut short told apart from one that is not JSON.
pub(crate) fn read_value(path: &Path) -> Result<serde_json::Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| match e.classify() {
        serde_json::error::Category::Eof => Error::Truncated(path.to_owned(), e.line(), e.column()),
        _ => Error::Results(path.to_owned(), e),
    })
}

/// Results from the JSON of `path`, after checking its schema version.
pub(crate) fn from_value(path: &Path, v: serde_json::Value) -> Result<Results, Error> {
    match v.get("schema").and_then(serde_json::Value::as_u64) {
        Some(n) if n != u64::from(crate::results::SCHEMA_VERSION) => {
            Err(Error::Schema(path.to_owned(), n))
        }
        _ => serde_json::from_value(v).map_err(|e| Error::Results(path.to_owned(), e)),
    }
}

/// Writes results.json, report.md and report.html into `dir` (created).
pub fn write_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = dir.join("results.json");
    let text = serde_json::to_string_pretty(results).map_err(|e| Error::Encode(json.clone(), e))?;
    std::fs::write(&json, text + "\n").map_err(|e| Error::io(&json, e))?;
    let mut out = vec![json];
    out.extend(write_reports(results, dir)?);
    Ok(out)
}

/// Writes report.md and report.html for `results` into `dir` (created).
pub fn write_reports(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let report = build(results);
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(&report)).map_err(|e| Error::io(&md, e))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html(&report)).map_err(|e| Error::io(&html_path, e))?;
    Ok(vec![md, html_path])
}

/// Phase order of the tables and legends: the models in one timeline (a VM's POST,
/// `vmm` then `firmware`, before its kernel), the sandbox and restore phases standing
/// where the VM's set-up phases stand. A merged phase (`vmm+kernel`) stands right after
/// its first part; a phase no model here names comes last.
const PHASE_ORDER: [&str; 8] = [
    "vmm", "firmware", "kernel", "init", "sandbox", "restore", "process", "teardown",
];

/// The runtimes put side by side per guest: its cold boot first, its restores, the
/// container running the same workload last.
pub const SIDE_BY_SIDE: [(&str, &[&str]); 2] = [
    (
        "lab",
        &[
            "bootlab-vm-lab",
            "bootlab-vm-lab-restore",
            "firecracker-lab-restore",
            "bootlab-sandbox",
        ],
    ),
    (
        "linux",
        &[
            "bootlab-vm-linux",
            "bootlab-vm-linux-disk",
            "bootlab-vm-linux-restore",
            "bootlab-sandbox",
        ],
    ),
];

/// The "cold vs restored vs container" table: for each guest of [`SIDE_BY_SIDE`]
/// with at least two of its runtimes measured, their whole-run medians and the
/// ratios to the guest's cold boot and to the container. A runtime with phases it
/// cannot observe here has no whole run to show and is left out.
fn side_by_side(results: &Results, summaries: &[RuntimeSummary]) -> Table {
    let mut t = Table::new(
        "Cold vs restored vs container (ms)",
        &[
            "guest",
            "runtime",
            "start",
            "total median",
            "95% CI",
            "× cold boot",
            "× container",
        ],
    );
    t.intro.push(
        "Per guest: its cold boot, its restores from a snapshot taken right before the \
         workload, and the container running the same workload. Whole runs (spawn to the \
         exit the harness saw), medians over successful runs; ratios of medians, below 1 \
         is faster than the cold boot or the container. Runtimes with unobservable phases \
         are left out."
            .into(),
    );
    let total = |name: &str| {
        let whole = results
            .runtime(name)
            .is_some_and(|r| r.unobservable.is_empty());
        summaries
            .iter()
            .find(|s| whole && s.name == name)
            .and_then(|s| s.total.as_ref().map(|t| (s, t)))
    };
    for (guest, names) in SIDE_BY_SIDE {
        let rows: Vec<_> = names.iter().filter_map(|n| total(n)).collect();
        if rows.len() < 2 {
            continue;
        }
        let cold = names.first().and_then(|n| total(n));
        let container = names.last().and_then(|n| total(n));
        let ratio = |a: &crate::stats::Summary,
                     b: Option<(&RuntimeSummary, &crate::stats::Summary)>| {
            b.filter(|(_, b)| b.median > 0.0)
                .map_or("–".into(), |(_, b)| format!("{:.3}", a.median / b.median))
        };
        for (s, st) in rows {
            let start = match s.kind {
                RuntimeKind::Vm => "cold boot",
                RuntimeKind::FirmwareVm => "cold boot with firmware",
                RuntimeKind::RestoredVm => "restore",
                RuntimeKind::Container => "container",
            };
            t.rows.push(vec![
                guest.into(),
                s.name.clone(),
                start.into(),
                fmt_ms(st.median),
                ci(st.median_ci),
                ratio(st, cold),
                ratio(st, container),
            ]);
        }
    }
    t
}

/// Sort key of a (possibly merged) phase name in [`PHASE_ORDER`].
pub(crate) fn column_rank(name: &str) -> usize {
    let first = name.split('+').next().unwrap_or(name);
    let rank = PHASE_ORDER
        .iter()
        .position(|c| *c == first)
        .unwrap_or(PHASE_ORDER.len());
    2 * rank + usize::from(name.contains('+'))
}

fn ci(c: [f64; 2]) -> String {
    format!("{}–{}", fmt_ms(c[0]), fmt_ms(c[1]))
}

fn status_text(s: &RuntimeStatus) -> (String, String) {
    match s {
        RuntimeStatus::Ran => ("ran".into(), String::new()),
        RuntimeStatus::Missing(r) => ("missing".into(), r.clone()),
        RuntimeStatus::Failed(r) => ("failed".into(), r.clone()),
        RuntimeStatus::Skipped(r) => ("skipped".into(), r.clone()),
    }
}

/// Computes every table of the report.
pub fn build(results: &Results) -> Report {
    let summaries = summary::runtimes(results);
    let ratios = summary::ratios(&summaries);
    let conc = summary::concurrency(results);
    let h = &results.host;
    let mut tables = Vec::new();

    let mut t = Table::new("Host", &["fact", "value"]);
    for (k, v) in [
        ("CPU", format!("{} ({} CPUs)", h.cpu_model, h.cpus)),
        (
            "KVM",
            format!(
                "{} ({})",
                serde_json::to_value(h.virtualization)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                h.virtualization_evidence
            ),
        ),
        ("host kernel", h.kernel.clone()),
        (
            "cgroups",
            serde_json::to_value(h.cgroup)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ),
        ("memory", format!("{} MiB", h.memory_mib)),
    ] {
        t.rows.push(vec![k.into(), v]);
    }
    tables.push(t);

    let m = &results.method;
    let mut t = Table::new("Method", &["parameter", "value"]);
    t.intro.push(
        "Times are host CLOCK_MONOTONIC, from the spawn of the runtime process. Runs of the \
         runtimes are interleaved (A B C A B C ...); failed runs are counted, not used for \
         statistics. CIs are bootstrap 95% intervals of the median (2000 resamples, fixed seed)."
            .into(),
    );
    for (k, v) in [
        ("measured runs per runtime", m.runs.to_string()),
        ("warm-up runs per runtime", m.warmup.to_string()),
        ("max concurrency", m.concurrency.to_string()),
        ("workload", m.workload.clone()),
        ("images", m.images.clone()),
        (
            "host load average (1, 5, 15 min) at start / end",
            format!(
                "{} / {}",
                m.loadavg_start.as_deref().unwrap_or("–"),
                m.loadavg_end.as_deref().unwrap_or("–")
            ),
        ),
        (
            "--load workers",
            match m.load {
                0 => "none (quiet host only)".into(),
                n => format!(
                    "{n} CPU-bound, running in the second pass of every round ({} CPU-s used)",
                    m.load_cpu_ms
                        .map_or("–".into(), |ms| format!("{:.1}", ms as f64 / 1e3))
                ),
            },
        ),
        (
            "interrupted",
            if m.interrupted {
                "yes (Ctrl-C): partial results"
            } else {
                "no"
            }
            .into(),
        ),
    ] {
        t.rows.push(vec![k.into(), v]);
    }
    tables.push(t);

    let mut t = Table::new(
        "Runtimes",
        &[
            "runtime",
            "side",
            "kind",
            "status",
            "ok / failed runs",
            "version",
            "reason",
        ],
    );
    for r in &results.runtimes {
        let s = summaries.iter().find(|s| s.name == r.name);
        let (status, reason) = status_text(&r.status);
        t.rows.push(vec![
            r.name.clone(),
            if r.ours { "ours" } else { "peer" }.into(),
            r.kind.label().into(),
            status,
            s.map_or("–".into(), |s| format!("{} / {}", s.ok, s.failed)),
            r.version.clone().unwrap_or_else(|| "–".into()),
            reason,
        ]);
    }
    tables.push(t);

    // Medians of every phase for every runtime.
    let mut cols: Vec<String> = Vec::new();
    for s in &summaries {
        for (p, _) in &s.phases {
            if !cols.contains(p) {
                cols.push(p.clone());
            }
        }
        for u in results
            .runtime(&s.name)
            .map_or(&[][..], |r| &r.unobservable[..])
        {
            if !cols.contains(&u.phase) {
                cols.push(u.phase.clone());
            }
        }
    }
    cols.sort_by_key(|c| (column_rank(c), c.clone()));
    let mut header: Vec<String> = vec!["runtime".into()];
    header.extend(cols.iter().cloned());
    header.push(TOTAL.into());
    header.push("total 95% CI".into());
    let mut t = Table {
        title: "Medians (ms)".into(),
        intro: vec![
            "Median of each phase over successful runs; `a+b` = phases that cannot be told apart \
             for that runtime (merged, not guessed); `n/o` = not observable on this host (see below)."
                .into(),
        ],
        header,
        rows: Vec::new(),
    };
    for s in &summaries {
        let info = results.runtime(&s.name);
        let mut row = vec![s.name.clone()];
        for p in &cols {
            let cell = match s.phases.iter().find(|(n, _)| n == p) {
                Some((_, st)) => fmt_ms(st.median),
                None if info.is_some_and(|i| i.unobservable.iter().any(|u| &u.phase == p)) => {
                    "n/o".into()
                }
                None => "–".into(),
            };
            row.push(cell);
        }
        row.push(s.total.as_ref().map_or("–".into(), |t| fmt_ms(t.median)));
        row.push(s.total.as_ref().map_or("–".into(), |t| ci(t.median_ci)));
        t.rows.push(row);
    }
    tables.push(t);
    tables.push(side_by_side(results, &summaries));
    tables.extend(disk::tables(results, &summaries));
    if results.method.load > 0 {
        tables.extend(loaded::tables(results, &summaries));
    }

    for s in &summaries {
        let mut t = Table::new(
            &format!("{}: phase statistics (ms)", s.name),
            &[
                "phase",
                "n",
                "median",
                "95% CI",
                "p10",
                "p90",
                "p99",
                "min",
                "max",
                "stamped by",
            ],
        );
        let rows = s
            .phases
            .iter()
            .map(|(n, st)| (n.as_str(), st))
            .chain(s.total.as_ref().map(|st| (TOTAL, st)));
        for (name, st) in rows {
            t.rows.push(vec![
                name.into(),
                st.n.to_string(),
                fmt_ms(st.median),
                ci(st.median_ci),
                fmt_ms(st.p10),
                fmt_ms(st.p90),
                fmt_ms(st.p99),
                fmt_ms(st.min),
                fmt_ms(st.max),
                if name == TOTAL {
                    "harness→harness".into()
                } else {
                    s.attribution
                        .get(name)
                        .map_or(String::new(), summary::attribution_text)
                },
            ]);
        }
        tables.push(t);
    }

    let mut t = Table::new(
        "Ratios ours / peer (medians)",
        &["ours", "peer", "phase", "ratio", "95% CI"],
    );
    t.intro.push(
        "Below 1: ours is faster. Totals are spawn to the exit the harness saw, alike for \
         all; a phase is compared only when both runtimes stamp its ends the same way \
         (see `stamped by`). CI by bootstrap."
            .into(),
    );
    for RatioRow {
        ours,
        peer,
        phase,
        ratio,
    } in &ratios
    {
        t.rows.push(vec![
            ours.clone(),
            peer.clone(),
            phase.clone(),
            format!("{:.3}", ratio.value),
            format!("{:.3}–{:.3}", ratio.ci[0], ratio.ci[1]),
        ]);
    }
    tables.push(t);

    let mut t = Table::new(
        "Unobservable phases and attribution notes",
        &["runtime", "phase", "note"],
    );
    for r in &results.runtimes {
        for u in &r.unobservable {
            t.rows.push(vec![
                r.name.clone(),
                u.phase.clone(),
                format!("unobservable: {}", u.reason),
            ]);
        }
        for n in &r.notes {
            t.rows.push(vec![r.name.clone(), String::new(), n.clone()]);
        }
    }
    tables.push(t);

    let mut t = Table::new(
        "Concurrency",
        &[
            "runtime",
            "K at once",
            "batches",
            "boots/s (median)",
            "instance total median (ms)",
            "failed",
        ],
    );
    for c in &conc {
        t.rows.push(vec![
            c.runtime.clone(),
            c.level.to_string(),
            c.batches.to_string(),
            format!("{:.1}", c.boots_per_second),
            c.instance_median_ns.map_or("–".into(), fmt_ms),
            c.failures.to_string(),
        ]);
    }
    tables.push(t);

    let mut t = Table::new("Failed runs", &["runtime", "count", "error"]);
    for s in &summaries {
        for (e, n) in s.errors.iter().take(MAX_ERRORS_SHOWN) {
            t.rows.push(vec![s.name.clone(), n.to_string(), e.clone()]);
        }
    }
    tables.push(t);

    let runtime_order = summaries.iter().map(|s| s.name.clone()).collect();
    Report {
        title: format!("bootlab report: {}", results.name),
        verdict: Verdict::from_results(results, &summaries),
        tables,
        summaries,
        concurrency: conc,
        runtime_order,
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown rendering.
pub fn markdown(r: &Report) -> String {
    let mut s = format!("# {}\n\n## Verdict\n\n", r.title);
    s.push_str(&r.verdict.sentences().join(" "));
    s.push_str(
        "\n\nCharts: see report.html (the seed's POST → kernel → init → process picture, stacked phase bars, CDF of total time, concurrency).\n",
    );
    s.push_str(&tables_markdown(&r.tables));
    s
}

/// Tables as Markdown sections.
pub(crate) fn tables_markdown(tables: &[Table]) -> String {
    let mut s = String::new();
    for t in tables {
        s.push_str(&format!("\n## {}\n\n", t.title));
        for p in &t.intro {
            s.push_str(&format!("{p}\n\n"));
        }
        if t.rows.is_empty() {
            s.push_str("(none)\n");
            continue;
        }
        s.push_str(&format!("| {} |\n", t.header.join(" | ")));
        s.push_str(&format!("|{}\n", " --- |".repeat(t.header.len())));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    s
}

pub(crate) const CSS: &str = "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:left;font-size:13px}th{background:#f0f0f0}figure{margin:1em 0}";

/// Escaped HTML of `text` with its Markdown `code` spans as `<code>`.
pub(crate) fn code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(part))
            } else {
                esc(part)
            }
        })
        .collect()
}

/// The self-contained HTML rendering with inline SVG charts.
pub fn html(r: &Report) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{t}</title>\
         <style>{CSS}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(&r.title)
    );
    s.push_str("<h2>Verdict</h2>\n<p class=\"verdict\">");
    s.push_str(&code_spans(&r.verdict.sentences().join(" ")));
    s.push_str("</p>\n<h2>Charts</h2>\n<figure>");
    s.push_str(&svg::seed_bars(&r.summaries));
    s.push_str(
        "<figcaption>The seed's picture: what runs before the process of each runtime \
         and the process itself, medians stacked in the phase colours.</figcaption></figure>\n<figure>",
    );
    s.push_str(&svg::phase_bars(&r.summaries));
    s.push_str("<figcaption>Bars stack the median of each phase; their sum can differ from the median total.</figcaption></figure>\n<figure>");
    s.push_str(&svg::cdf(&r.summaries));
    s.push_str("</figure>\n<figure>");
    s.push_str(&svg::concurrency(&r.concurrency, &r.runtime_order));
    s.push_str("</figure>\n");
    s.push_str(&tables_html(&r.tables));
    s.push_str("</body></html>\n");
    s
}

/// Tables as HTML sections.
pub(crate) fn tables_html(tables: &[Table]) -> String {
    let mut s = String::new();
    for t in tables {
        s.push_str(&format!("<h2>{}</h2>\n", esc(&t.title)));
        for p in &t.intro {
            s.push_str(&format!("<p>{}</p>\n", esc(p)));
        }
        if t.rows.is_empty() {
            s.push_str("<p>(none)</p>\n");
            continue;
        }
        s.push_str("<table><tr>");
        for h in &t.header {
            s.push_str(&format!("<th>{}</th>", esc(h)));
        }
        s.push_str("</tr>\n");
        for row in &t.rows {
            s.push_str("<tr>");
            for c in row {
                s.push_str(&format!("<td>{}</td>", esc(c)));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
    }
    s
}
