//! Order statistics of a sample of durations: median and percentiles (linear
//! interpolation between closest ranks, numpy's default), and bootstrap 95%
//! confidence intervals of the median and of a ratio of medians, drawn with a seeded
//! generator so that the same results.json always gives the same report.

use serde::{Deserialize, Serialize};

/// Bootstrap resamples per confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Seed of the bootstrap generator: fixed, so reports are reproducible.
pub const BOOTSTRAP_SEED: u64 = 0x6b6f_6f74_6c61_6221;
/// Two-sided confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// Summary of one sample (values in ns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    /// Bootstrap 95% confidence interval of the median: [low, high].
    pub median_ci: [f64; 2],
}

/// A ratio of medians `a / b` with its bootstrap 95% confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub value: f64,
    pub ci: [f64; 2],
}

/// SplitMix64: a tiny, well-distributed, seedable generator (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` (multiply-shift; `n` > 0).
    pub fn index(&mut self, n: usize) -> usize {
        // The product's high word is below `n`, so it fits a usize.
        usize::try_from((u128::from(self.next_u64()) * n as u128) >> 64).unwrap_or(n - 1)
    }
}

/// The `p`-quantile (0..=1) of an ascending-sorted, non-empty sample, interpolating
/// linearly between the two closest ranks: h = (n-1)p, x[floor h] + frac(h) * gap.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let h = (sorted.len() - 1) as f64 * p.clamp(0.0, 1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // h is in 0..=len-1
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Median of an ascending-sorted, non-empty sample.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    quantile_sorted(sorted, 0.5)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Median of one bootstrap resample of `values` (`buf` is scratch space).
fn resample_median(values: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..values.len()).map(|_| values[rng.index(values.len())]));
    buf.sort_by(f64::total_cmp);
    median_sorted(buf)
}

/// The central `CONFIDENCE` interval of bootstrap estimates.
fn percentile_interval(mut estimates: Vec<f64>) -> [f64; 2] {
    estimates.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    [
        quantile_sorted(&estimates, tail),
        quantile_sorted(&estimates, 1.0 - tail),
    ]
}

/// Bootstrap 95% CI of the median of `values` (percentile method, seeded).
pub fn median_ci(values: &[f64], seed: u64) -> Option<[f64; 2]> {
    if values.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut buf = Vec::with_capacity(values.len());
    let estimates = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| resample_median(values, &mut rng, &mut buf))
        .collect();
    Some(percentile_interval(estimates))
}

/// Summary of `values`, or `None` for an empty sample.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let s = sorted(values);
    Some(Summary {
        n: s.len(),
        median: median_sorted(&s),
        p10: quantile_sorted(&s, 0.10),
        p90: quantile_sorted(&s, 0.90),
        p99: quantile_sorted(&s, 0.99),
        min: s[0],
        max: s[s.len() - 1],
        median_ci: median_ci(values, BOOTSTRAP_SEED)?,
    })
}

/// Ratio of medians `median(a) / median(b)` with a bootstrap 95% CI (both samples
/// resampled independently, seeded). `None` when a sample is empty or a median is 0.
pub fn ratio_of_medians(a: &[f64], b: &[f64]) -> Option<Ratio> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (ma, mb) = (median_sorted(&sorted(a)), median_sorted(&sorted(b)));
    if mb == 0.0 {
        return None;
    }
    let mut rng = SplitMix64::new(BOOTSTRAP_SEED);
    let (mut ba, mut bb) = (Vec::new(), Vec::new());
    let estimates: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .filter_map(|_| {
            let ra = resample_median(a, &mut rng, &mut ba);
            let rb = resample_median(b, &mut rng, &mut bb);
            (rb != 0.0).then_some(ra / rb)
        })
        .collect();
    if estimates.is_empty() {
        return None;
    }
    Some(Ratio {
        value: ma / mb,
        ci: percentile_interval(estimates),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_hand_computed_values() {
        // 1..=10: h = 9p. median h=4.5 -> 5.5; p10 h=0.9 -> 1.9; p90 h=8.1 -> 9.1;
        // p99 h=8.91 -> 9.91.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = summarize(&v).unwrap();
        assert_eq!(s.n, 10);
        assert!((s.median - 5.5).abs() < 1e-12);
        assert!((s.p10 - 1.9).abs() < 1e-12);
        assert!((s.p90 - 9.1).abs() < 1e-12);
        assert!((s.p99 - 9.91).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 10.0));
    }

    #[test]
    fn order_of_input_does_not_matter_and_odd_median_is_middle() {
        // {7, 1, 3, 100, 5}: sorted 1 3 5 7 100; median 5; p10 h=0.4 -> 1+0.4*2=1.8;
        // p90 h=3.6 -> 7+0.6*93=62.8.
        let s = summarize(&[7.0, 1.0, 3.0, 100.0, 5.0]).unwrap();
        assert_eq!(s.median, 5.0);
        assert!((s.p10 - 1.8).abs() < 1e-12);
        assert!((s.p90 - 62.8).abs() < 1e-9);
    }

    #[test]
    fn single_value_and_constant_samples_have_degenerate_intervals() {
        let s = summarize(&[42.0]).unwrap();
        assert_eq!(
            (s.median, s.p10, s.p99, s.median_ci),
            (42.0, 42.0, 42.0, [42.0, 42.0])
        );
        let s = summarize(&[3.0; 9]).unwrap();
        assert_eq!(s.median_ci, [3.0, 3.0]);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn two_values_ci_spans_them() {
        // Resample medians of {0, 10} are 0 (p=1/4), 5 (1/2) or 10 (1/4): the 2.5% and
        // 97.5% quantiles of 2000 draws are 0 and 10.
        let ci = median_ci(&[0.0, 10.0], BOOTSTRAP_SEED).unwrap();
        assert_eq!(ci, [0.0, 10.0]);
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_median() {
        let v: Vec<f64> = (0..31).map(|i| ((i * 7919) % 101) as f64).collect();
        let a = summarize(&v).unwrap();
        let b = summarize(&v).unwrap();
        assert_eq!(a, b);
        assert!(a.median_ci[0] <= a.median && a.median <= a.median_ci[1]);
        assert!(a.median_ci[0] >= a.min && a.median_ci[1] <= a.max);
        assert!(a.median_ci[0] < a.median_ci[1]);
    }

    #[test]
    fn ratio_of_medians_hand_computed() {
        // medians 2 and 8 -> 0.25; constant samples -> degenerate CI.
        let r = ratio_of_medians(&[2.0, 2.0, 2.0], &[8.0, 8.0]).unwrap();
        assert_eq!(r.value, 0.25);
        assert_eq!(r.ci, [0.25, 0.25]);
        // medians 2 and 8 with spread: CI must contain the point estimate.
        let r = ratio_of_medians(&[1.0, 2.0, 3.0], &[6.0, 8.0, 10.0]).unwrap();
        assert_eq!(r.value, 0.25);
        assert!(r.ci[0] <= 0.25 && 0.25 <= r.ci[1] && r.ci[0] < r.ci[1]);
        // extremes: smallest possible 1/10, largest 3/6.
        assert!(r.ci[0] >= 0.1 && r.ci[1] <= 0.5);
        assert!(ratio_of_medians(&[1.0], &[0.0]).is_none());
        assert!(ratio_of_medians(&[], &[1.0]).is_none());
    }

    #[test]
    fn splitmix_index_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[r.index(7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
        // Reference value of SplitMix64 with seed 1 (first output).
        assert_eq!(SplitMix64::new(1).next_u64(), 0x910a_2dec_8902_5cc1);
    }
}
