//! Several hosts side by side (`bootlab report --compare A/results.json B/results.json
//! ...`): each host's facts and verdict, and per runtime its medians on every host with
//! the ratio of each host to the first. The files come from `bootlab bench` run on each
//! machine by whatever schedules it (a CI matrix, a Kubernetes Job); they are checked
//! to be whole, of one schema version, and to name only runtimes this bootlab knows.

use super::summary::{self, RuntimeSummary};
use super::svg::{esc, fmt_ms};
use super::verdict::Verdict;
use super::{code_spans, Table, CSS};
use crate::results::Results;
use crate::stats::{self, Ratio};
use crate::Error;
use std::path::{Path, PathBuf};

/// Reads the results.json files to compare: each one whole, all of one schema version
/// (this bootlab's), every runtime among `known`.
pub fn load_all(paths: &[PathBuf], known: &[&str]) -> Result<Vec<Results>, Error> {
    let mut values = Vec::new();
    for p in paths {
        values.push((p, super::read_value(p)?));
    }
    let schema = |v: &serde_json::Value| v.get("schema").and_then(serde_json::Value::as_u64);
    if let Some((first, v0)) = values.first() {
        for (p, v) in &values[1..] {
            if schema(v) != schema(v0) {
                return Err(Error::MixedSchemas {
                    first: first.to_path_buf(),
                    first_schema: schema(v0),
                    other: p.to_path_buf(),
                    other_schema: schema(v),
                });
            }
        }
    }
    let mut out = Vec::new();
    for (p, v) in values {
        let r = super::from_value(p, v)?;
        if let Some(rt) = r
            .runtimes
            .iter()
            .find(|rt| !known.contains(&rt.name.as_str()))
        {
            return Err(Error::UnknownRuntime(p.to_path_buf(), rt.name.clone()));
        }
        out.push(r);
    }
    Ok(out)
}

/// One compared host: its letter, file and results.
#[derive(Debug)]
pub struct Host<'a> {
    pub letter: char,
    pub path: &'a Path,
    pub results: &'a Results,
    pub summaries: Vec<RuntimeSummary>,
    pub verdict: Verdict,
}

/// Every number of a comparison, ready to render.
#[derive(Debug)]
pub struct Comparison {
    pub title: String,
    /// Each host's verdict, by letter.
    pub verdicts: Vec<(char, Vec<String>)>,
    pub tables: Vec<Table>,
}

/// One row of the hosts table: how to read the fact from a host.
type Fact = fn(&Host) -> String;

fn letter(i: usize) -> char {
    char::from_u32(u32::try_from(i).unwrap_or(25).min(25) + u32::from(b'A')).unwrap_or('?')
}

fn ratio_text(r: Option<Ratio>) -> String {
    r.map_or("–".into(), |r| {
        format!("{:.2} ({:.2}–{:.2})", r.value, r.ci[0], r.ci[1])
    })
}

fn median_text(v: &[f64]) -> String {
    stats::summarize(v).map_or("–".into(), |s| {
        format!(
            "{} ({}–{})",
            fmt_ms(s.median),
            fmt_ms(s.median_ci[0]),
            fmt_ms(s.median_ci[1])
        )
    })
}

/// Builds the comparison of `hosts` (results with the file each came from); the first
/// is the baseline of the ratios.
pub fn build(hosts: &[(PathBuf, Results)]) -> Comparison {
    let hosts: Vec<Host> = hosts
        .iter()
        .enumerate()
        .map(|(i, (path, results))| {
            let summaries = summary::runtimes(results);
            Host {
                letter: letter(i),
                path,
                results,
                verdict: Verdict::from_results(results, &summaries),
                summaries,
            }
        })
        .collect();
    let mut tables = Vec::new();

    let mut header = vec!["fact".to_owned()];
    header.extend(hosts.iter().map(|h| h.letter.to_string()));
    let mut t = Table {
        title: "Hosts".into(),
        intro: vec![
            "One column per results.json, in the order given; ratios below are each \
                     host against A."
                .into(),
        ],
        header,
        rows: Vec::new(),
    };
    let facts: [(&str, Fact); 10] = [
        ("file", |h| h.path.display().to_string()),
        ("report name", |h| h.results.name.clone()),
        ("CPU", |h| {
            format!(
                "{} ({} CPUs)",
                h.results.host.cpu_model, h.results.host.cpus
            )
        }),
        ("KVM", |h| {
            super::verdict::kvm_text(h.results.host.virtualization).to_owned()
        }),
        ("host kernel", |h| h.results.host.kernel.clone()),
        ("cgroups", |h| {
            serde_json::to_value(h.results.host.cgroup)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        ("memory", |h| format!("{} MiB", h.results.host.memory_mib)),
        ("runs per runtime", |h| h.results.method.runs.to_string()),
        ("load average at start", |h| {
            h.results
                .method
                .loadavg_start
                .clone()
                .unwrap_or_else(|| "–".into())
        }),
        ("--load workers", |h| h.results.method.load.to_string()),
    ];
    for (name, fact) in facts {
        let mut row = vec![name.to_owned()];
        row.extend(hosts.iter().map(fact));
        t.rows.push(row);
    }
    tables.push(t);

    // Runtimes in the order they first appear, measured on at least one host.
    let mut names: Vec<&str> = Vec::new();
    for h in &hosts {
        for s in &h.summaries {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    for (title, what, pick) in [
        (
            "Time to the process per host (ms)",
            "spawn to the start of the workload",
            (|s: &RuntimeSummary| &s.to_process) as fn(&RuntimeSummary) -> &Vec<f64>,
        ),
        (
            "Whole run per host (ms)",
            "spawn to the exit the harness saw",
            |s: &RuntimeSummary| &s.totals,
        ),
    ] {
        let mut header = vec!["runtime".to_owned()];
        header.extend(
            hosts
                .iter()
                .map(|h| format!("{} median (95% CI)", h.letter)),
        );
        header.extend(
            hosts[1.min(hosts.len())..]
                .iter()
                .map(|h| format!("{} / A (95% CI)", h.letter)),
        );
        let mut t = Table {
            title: title.into(),
            intro: vec![format!(
                "Median of {what} over successful runs on each host; `–`: not measured \
                 there. Ratios of medians with a bootstrap CI; above 1: slower than on A."
            )],
            header,
            rows: Vec::new(),
        };
        for name in &names {
            let sample = |h: &Host| {
                h.summaries
                    .iter()
                    .find(|s| s.name == *name)
                    .map(|s| pick(s).clone())
                    .unwrap_or_default()
            };
            let base = hosts.first().map(sample).unwrap_or_default();
            let mut row = vec![name.to_string()];
            row.extend(hosts.iter().map(|h| median_text(&sample(h))));
            row.extend(
                hosts[1.min(hosts.len())..]
                    .iter()
                    .map(|h| ratio_text(stats::ratio_of_medians(&sample(h), &base))),
            );
            t.rows.push(row);
        }
        tables.push(t);
    }

    let verdicts = hosts
        .iter()
        .map(|h| (h.letter, h.verdict.sentences()))
        .collect();
    Comparison {
        title: format!(
            "bootlab comparison: {}",
            hosts
                .iter()
                .map(|h| format!("{} = {}", h.letter, h.results.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        verdicts,
        tables,
    }
}

/// The Markdown rendering.
pub fn markdown(c: &Comparison) -> String {
    let mut s = format!("# {}\n\n## Verdict per host\n\n", c.title);
    for (letter, sentences) in &c.verdicts {
        s.push_str(&format!("**{letter}.** {}\n\n", sentences.join(" ")));
    }
    s.push_str(&super::tables_markdown(&c.tables));
    s
}

/// The self-contained HTML rendering.
pub fn html(c: &Comparison) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{t}</title>\
         <style>{CSS}</style></head><body>\n<h1>{t}</h1>\n<h2>Verdict per host</h2>\n",
        t = esc(&c.title)
    );
    for (letter, sentences) in &c.verdicts {
        s.push_str(&format!(
            "<p class=\"verdict\"><b>{letter}.</b> {}</p>\n",
            code_spans(&sentences.join(" "))
        ));
    }
    s.push_str(&super::tables_html(&c.tables));
    s.push_str("</body></html>\n");
    s
}

/// Writes report.md and report.html of the comparison into `dir` (created).
pub fn write(c: &Comparison, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(c)).map_err(|e| Error::io(&md, e))?;
    let page = dir.join("report.html");
    std::fs::write(&page, html(c)).map_err(|e| Error::io(&page, e))?;
    Ok(vec![md, page])
}
