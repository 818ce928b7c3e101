//! The quiet/loaded tables of a `--load` run: every runtime's medians on the quiet
//! host and beside the workers, the slowdown (loaded / quiet), and the ratios of
//! ours to each peer in both conditions, all from runs of the same rounds.

use super::summary::{self, RuntimeSummary, TOTAL};
use super::svg::fmt_ms;
use super::Table;
use crate::results::Results;
use crate::stats::{self, Ratio};

fn ratio_cell(r: Option<&Ratio>) -> [String; 2] {
    r.map_or(["–".into(), "–".into()], |r| {
        [
            format!("{:.3}", r.value),
            format!("{:.3}–{:.3}", r.ci[0], r.ci[1]),
        ]
    })
}

fn median_cell(v: &[f64]) -> String {
    stats::summarize(v).map_or("–".into(), |s| fmt_ms(s.median))
}

/// The two tables, for `quiet` (the report's summaries) against the loaded runs.
pub fn tables(results: &Results, quiet: &[RuntimeSummary]) -> Vec<Table> {
    let n = results.method.load;
    let loaded = summary::runtimes_under(results, n);
    let mut t = Table::new(
        &format!("Quiet vs loaded: {n} CPU-bound workers (ms)"),
        &[
            "runtime",
            "to process, quiet",
            "to process, loaded",
            "total, quiet",
            "total, loaded",
            "loaded / quiet (total)",
            "95% CI",
        ],
    );
    t.intro.push(format!(
        "Every round ran each runtime once on the quiet host, then once more beside {n} \
         busy-loop processes (`bootlab bench --load {n}`); medians over successful runs; \
         `to process` = spawn to the start of the workload. Above 1: slower under load."
    ));
    for q in quiet {
        let Some(l) = loaded.iter().find(|l| l.name == q.name) else {
            continue;
        };
        let slow = stats::ratio_of_medians(&l.totals, &q.totals);
        let [ratio, ci] = ratio_cell(slow.as_ref());
        t.rows.push(vec![
            q.name.clone(),
            median_cell(&q.to_process),
            median_cell(&l.to_process),
            median_cell(&q.totals),
            median_cell(&l.totals),
            ratio,
            ci,
        ]);
    }
    let mut r = Table::new(
        "Ratios ours / peer, quiet and loaded (totals)",
        &[
            "ours",
            "peer",
            "quiet",
            "quiet 95% CI",
            "loaded",
            "loaded 95% CI",
        ],
    );
    r.intro.push(
        "Whole runs, ratio of medians; below 1: ours is faster. The same pairs as the \
         ratios table, on the quiet host and beside the workers."
            .into(),
    );
    let loaded_ratios = summary::ratios(&loaded);
    for q in summary::ratios(quiet).iter().filter(|q| q.phase == TOTAL) {
        let l = loaded_ratios
            .iter()
            .find(|l| l.phase == TOTAL && l.ours == q.ours && l.peer == q.peer);
        let [qv, qci] = ratio_cell(Some(&q.ratio));
        let [lv, lci] = ratio_cell(l.map(|l| &l.ratio));
        r.rows
            .push(vec![q.ours.clone(), q.peer.clone(), qv, qci, lv, lci]);
    }
    vec![t, r]
}
