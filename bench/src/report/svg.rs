//! The report's charts as hand-written, self-contained SVG: stacked phase bars per
//! runtime (medians; also the seed's POST → kernel → init → process picture), the CDF of total time (log time axis), and boots per second
//! against the number of instances started at once.

use super::summary::{ConcurrencyRow, RuntimeSummary, PROCESS};
use std::fmt::Write;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 30.0;
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

/// Colors of the runtimes' lines (CDF, concurrency), in runtime order.
const SERIES: [&str; 9] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f",
];

/// A runtime's line color: by its position in `order`, the same in every chart.
fn series_color(name: &str, order: &[String]) -> &'static str {
    let i = order.iter().position(|n| n == name).unwrap_or(0);
    SERIES[i % SERIES.len()]
}

/// Colors for phases without a fixed one (merged names, phases new to the report),
/// picked by a hash of the name so a phase keeps its color across reports.
const SPARE: [&str; 6] = [
    "#bab0ac", "#d37295", "#a0cbe8", "#8cd17d", "#b6992d", "#499894",
];

/// Fixed color of a phase so that the same phase looks the same in every bar.
pub fn phase_color(name: &str) -> &'static str {
    match name {
        "vmm" => "#4e79a7",
        "firmware" => "#edc948",
        "kernel" => "#f28e2b",
        "init" => "#e15759",
        "process" => "#59a14f",
        "teardown" => "#9c755f",
        "sandbox" => "#76b7b2",
        "restore" => "#ff9da7",
        "vmm+kernel" => "#b07aa1",
        _ => {
            // FNV-1a: stable across runs and platforms, unlike std's hasher.
            let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            SPARE[usize::try_from(h % SPARE.len() as u64).unwrap_or(0)]
        }
    }
}

/// XML text escaping.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Milliseconds with a precision suited to the magnitude.
pub fn fmt_ms(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// An axis label in ms for a value on a linear axis with ticks every `step_ns`.
pub fn fmt_tick(ns: f64, step_ns: f64) -> String {
    // A float-to-integer `as` saturates; a tick step needs a handful of decimals.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = (-(step_ns / 1e6).log10().floor()).max(0.0) as usize;
    format!("{:.*}", decimals, ns / 1e6)
}

/// A 1-2-5 step giving about `target` ticks over `0..=max`.
pub fn nice_step(max: f64, target: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / target;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn open(out: &mut String, height: f64, title: &str) {
    open_wide(out, WIDTH, height, title);
}

fn open_wide(out: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{t}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <text x=\"{x}\" y=\"18\" {FONT} font-weight=\"bold\" text-anchor=\"middle\">{t}</text>",
        x = width / 2.0,
        t = esc(title)
    );
}

fn empty_chart(title: &str, why: &str) -> String {
    let mut s = String::new();
    open(&mut s, 60.0, title);
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"45\" {FONT} text-anchor=\"middle\">{}</text></svg>",
        WIDTH / 2.0,
        esc(why)
    );
    s
}

/// The longest bar drawn to scale: a bar more than 10x every other one would squash
/// them all to nothing, so the axis then ends a little after the second longest and
/// the outlier is drawn broken, with its true total written next to it.
pub fn axis_cap(sums: &[f64]) -> f64 {
    let mut v = sums.to_vec();
    v.sort_by(f64::total_cmp);
    match v.as_slice() {
        [.., second, first] if *first > 10.0 * *second && *second > 0.0 => second * 1.5,
        [.., first] => *first,
        [] => 0.0,
    }
}

/// Estimated width in px of `text` in the charts' 12 px sans-serif font. No font is
/// at hand when the SVG is written, so each character counts at or above its advance
/// in the common sans fonts (DejaVu Sans is the widest of them): a margin made from
/// this holds the label in any of them.
pub fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 4.0,
            'f' | 't' | 'r' | '-' | '(' | ')' | '[' | ']' | '/' => 5.0,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 11.0,
            'A'..='Z' => 9.0,
            _ => 7.5,
        })
        .sum()
}

/// Left margin for row labels: the longest label plus a gap, at least [`LEFT`].
pub fn label_margin<'a>(labels: impl IntoIterator<Item = &'a str>) -> f64 {
    labels
        .into_iter()
        .map(text_width)
        .fold(LEFT - 16.0, f64::max)
        + 16.0
}

/// One bar of a stacked chart: its label and its segments (phase, length in ns).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub segments: Vec<(String, f64)>,
}

/// Horizontal stacked bars: one per runtime, one segment per phase median.
pub fn phase_bars(summaries: &[RuntimeSummary]) -> String {
    let bars: Vec<Bar> = summaries
        .iter()
        .filter(|s| !s.phases.is_empty())
        .map(|s| Bar {
            label: s.name.clone(),
            segments: s
                .phases
                .iter()
                .map(|(n, p)| (n.clone(), p.median))
                .collect(),
        })
        .collect();
    stacked_bars("Where the time goes: median of each phase (ms)", &bars, &[])
}

/// The seed's picture: a VM needs POST → kernel → init → process, a container needs
/// sandbox → process. One bar per runtime that reached its process, VMs first, each
/// stacked up to the end of its process (teardown left out), in the phase colours.
pub fn seed_bars(summaries: &[RuntimeSummary]) -> String {
    use crate::results::RuntimeKind;
    let bar = |s: &RuntimeSummary| {
        let until = s.phases.iter().position(|(n, _)| n == PROCESS)?;
        Some(Bar {
            label: s.name.clone(),
            segments: s.phases[..=until]
                .iter()
                .map(|(n, p)| (n.clone(), p.median))
                .collect(),
        })
    };
    let vms = summaries
        .iter()
        .filter(|s| s.kind != RuntimeKind::Container);
    let containers = summaries
        .iter()
        .filter(|s| s.kind == RuntimeKind::Container);
    let bars: Vec<Bar> = vms.chain(containers).filter_map(bar).collect();
    stacked_bars(
        "POST → kernel → init → process beside sandbox → process (median ms)",
        &bars,
        &[
            "vmm: a microVM's POST (the monitor's set-up; no firmware runs)",
            "firmware: a traditional VM's POST (BIOS or UEFI), observed on its debug console",
        ],
    )
}

/// Stacked horizontal bars with the phase legend and `notes` under it. The left
/// margin fits the longest label; the chart widens when labels are very long.
pub fn stacked_bars(title: &str, bars: &[Bar], notes: &[&str]) -> String {
    let rows: Vec<&Bar> = bars.iter().filter(|b| !b.segments.is_empty()).collect();
    if rows.is_empty() {
        return empty_chart(title, "no successful runs");
    }
    let left = label_margin(rows.iter().map(|b| b.label.as_str()));
    let width = WIDTH.max(left + 500.0);
    let bar_h = 22.0;
    let row_h = 32.0;
    let top = 40.0;
    let legend_h = 30.0 + 18.0 * notes.len() as f64;
    let plot_w = width - left - RIGHT - 60.0;
    let sums: Vec<f64> = rows
        .iter()
        .map(|b| b.segments.iter().map(|(_, v)| v).sum::<f64>())
        .collect();
    let max = axis_cap(&sums).max(1.0);
    let step = nice_step(max, 6.0);
    let axis_max = (max / step).ceil() * step;
    let scale = plot_w / axis_max;
    let height = top + rows.len() as f64 * row_h + 30.0 + legend_h;
    let mut s = String::new();
    open_wide(&mut s, width, height, title);
    let axis_y = top + rows.len() as f64 * row_h;
    let mut t = 0.0;
    while t <= axis_max + step / 2.0 {
        let x = left + t * scale;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"#dddddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"middle\">{}</text>",
            axis_y + 15.0,
            fmt_tick(t, step)
        );
        t += step;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h + (row_h - bar_h) / 2.0;
        let _ = write!(
            s,
            "<text class=\"runtime\" x=\"{:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"end\">{}</text>",
            left - 8.0,
            y + bar_h / 2.0 + 4.0,
            esc(&r.label)
        );
        let mut x = left;
        let mut acc = 0.0;
        let clipped = sums[i] > axis_max;
        for (name, v) in &r.segments {
            if acc >= axis_max {
                break;
            }
            let w = (v.min(axis_max - acc) * scale).max(0.5);
            acc += v;
            let _ = write!(
                s,
                "<rect x=\"{x:.2}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{bar_h}\" fill=\"{}\">\
                 <title>{}: {} ms</title></rect>",
                phase_color(name),
                esc(&format!("{} {}", r.label, name)),
                fmt_ms(*v)
            );
            x += w;
            if !seen.contains(&name.as_str()) {
                seen.push(name);
            }
        }
        let sum = sums[i];
        if clipped {
            // Broken bar: a white zig-zag says "far longer than drawn".
            let bx = x - 14.0;
            let _ = write!(
                s,
                "<polyline points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" \
                 fill=\"none\" stroke=\"#ffffff\" stroke-width=\"3\"/>",
                bx,
                y - 2.0,
                bx + 6.0,
                y + bar_h / 3.0,
                bx,
                y + 2.0 * bar_h / 3.0,
                bx + 6.0,
                y + bar_h + 2.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT}>{} ms</text>",
            x + 5.0,
            y + bar_h / 2.0 + 4.0,
            fmt_ms(sum)
        );
    }
    let ly = axis_y + 40.0;
    seen.sort_by_key(|n| (super::column_rank(n), n.to_string()));
    let mut lx = left;
    for name in &seen {
        let _ = write!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" {FONT}>{}</text>",
            ly - 10.0,
            phase_color(name),
            lx + 16.0,
            esc(name)
        );
        lx += 28.0 + text_width(name);
    }
    for (i, note) in notes.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{left:.1}\" y=\"{:.1}\" {FONT} fill=\"#555555\">{}</text>",
            ly + 20.0 + 18.0 * i as f64,
            esc(note)
        );
    }
    s.push_str("</svg>");
    s
}

/// Empirical CDF of each runtime's total time, log-scaled time axis.
pub fn cdf(summaries: &[RuntimeSummary]) -> String {
    let title = "CDF of total time per run (ms, log scale)";
    let rows: Vec<&RuntimeSummary> = summaries.iter().filter(|s| !s.totals.is_empty()).collect();
    if rows.is_empty() {
        return empty_chart(title, "no successful runs");
    }
    let order: Vec<String> = summaries.iter().map(|s| s.name.clone()).collect();
    let all = rows.iter().flat_map(|r| r.totals.iter().copied());
    let lo = all.clone().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = all.fold(0.0, f64::max).max(lo * 1.0001);
    let (d0, d1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let (top, plot_h) = (40.0, 300.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |ns: f64| LEFT + (ns.log10() - d0) / (d1 - d0) * plot_w;
    let y_of = |p: f64| top + (1.0 - p) * plot_h;
    let legend_h = 20.0 * rows.len() as f64;
    let height = top + plot_h + 40.0 + legend_h;
    let mut s = String::new();
    open(&mut s, height, title);
    // Decades of nanosecond values: a few dozen at most.
    #[allow(clippy::cast_possible_truncation)]
    let decades = d0 as i32..=d1 as i32;
    for d in decades {
        // Crowded axis (many decades): label the decades only.
        let mults: &[f64] = if d1 - d0 > 3.0 {
            &[1.0]
        } else {
            &[1.0, 2.0, 5.0]
        };
        for &m in mults {
            let v = m * 10f64.powi(d);
            if v.log10() > d1 + 1e-9 {
                continue;
            }
            let x = x_of(v);
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"middle\">{}</text>",
                top + plot_h,
                top + plot_h + 15.0,
                fmt_ms(v)
            );
        }
    }
    for p in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y_of(p);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"end\">{p:.2}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let color = series_color(&r.name, &order);
        let mut v = r.totals.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mut pts = format!("{:.1},{:.1}", x_of(v[0]), y_of(0.0));
        for (k, t) in v.iter().enumerate() {
            let x = x_of(*t);
            let _ = write!(
                pts,
                " {x:.1},{:.1} {x:.1},{:.1}",
                y_of(k as f64 / n),
                y_of((k + 1) as f64 / n)
            );
        }
        let _ = write!(
            s,
            "<polyline points=\"{pts}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>"
        );
        let ly = top + plot_h + 40.0 + i as f64 * 20.0;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text class=\"runtime\" x=\"{:.1}\" y=\"{ly:.1}\" {FONT}>{} (n={})</text>",
            ly - 4.0,
            LEFT + 24.0,
            ly - 4.0,
            LEFT + 30.0,
            esc(&r.name),
            r.totals.len()
        );
    }
    s.push_str("</svg>");
    s
}

/// Boots per second against instances started at once, one line per runtime.
pub fn concurrency(rows: &[ConcurrencyRow], runtime_order: &[String]) -> String {
    let title = "Density: boots per second with K instances started at once";
    if rows.is_empty() {
        return empty_chart(
            title,
            "no concurrency sweep in these results (--concurrency 1)",
        );
    }
    let mut levels: Vec<u32> = rows.iter().map(|r| r.level).collect();
    levels.sort_unstable();
    levels.dedup();
    let max = rows
        .iter()
        .map(|r| r.boots_per_second)
        .fold(0.0, f64::max)
        .max(1.0);
    let step = nice_step(max, 5.0);
    let axis_max = (max / step).ceil() * step;
    let (top, plot_h) = (40.0, 260.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |l: u32| {
        let i = levels.iter().position(|x| *x == l).unwrap_or(0) as f64;
        LEFT + (i + 0.5) / levels.len() as f64 * plot_w
    };
    let y_of = |v: f64| top + (1.0 - v / axis_max) * plot_h;
    let names: Vec<&String> = runtime_order
        .iter()
        .filter(|n| rows.iter().any(|r| &r.runtime == *n))
        .collect();
    let height = top + plot_h + 45.0 + 20.0 * names.len() as f64;
    let mut s = String::new();
    open(&mut s, height, title);
    let mut v = 0.0;
    while v <= axis_max + step / 2.0 {
        let y = y_of(v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"end\">{v:.0}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0
        );
        v += step;
    }
    for l in &levels {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} text-anchor=\"middle\">K={l}</text>",
            x_of(*l),
            top + plot_h + 16.0
        );
    }
    for (i, name) in names.iter().enumerate() {
        let color = series_color(name, runtime_order);
        let pts: Vec<String> = rows
            .iter()
            .filter(|r| &&r.runtime == name)
            .map(|r| format!("{:.1},{:.1}", x_of(r.level), y_of(r.boots_per_second)))
            .collect();
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                s,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        let ly = top + plot_h + 40.0 + i as f64 * 20.0;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text class=\"runtime\" x=\"{:.1}\" y=\"{ly:.1}\" {FONT}>{}</text>",
            ly - 4.0,
            LEFT + 24.0,
            ly - 4.0,
            LEFT + 30.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(7.0, 6.0), 2.0);
        assert_eq!(nice_step(35.0, 6.0), 10.0);
        assert_eq!(fmt_ms(1_234_567.0), "1.23");
        assert_eq!(fmt_ms(456_000.0), "0.456");
        assert_eq!(fmt_ms(21_000_000_000.0), "21000");
        assert_eq!(fmt_tick(0.0, 5e6), "0");
        assert_eq!(axis_cap(&[1.0, 2.0, 3.0]), 3.0);
        assert_eq!(axis_cap(&[1.0, 2.0, 300.0]), 3.0);
        assert_eq!(axis_cap(&[]), 0.0);
        assert_eq!(fmt_tick(2.5e6, 5e5), "2.5");
        assert_eq!(esc("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
    }
}
