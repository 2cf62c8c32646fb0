//! Latency over the last minute, for the status page: p50 and p99 of hits
//! and of misses, from `edge_request_duration_seconds`'s buckets.
//!
//! The histogram keeps only cumulative bucket counts since start, so the
//! status page's sampler keeps them once a second ([`LatencyWindow`]) and
//! a quantile is taken over the difference between now and a minute ago,
//! interpolated within its bucket as Prometheus's `histogram_quantile`
//! does: an estimate, as good as the buckets are fine. prometheus-client
//! does not hand out a histogram's counts, so they are read from the
//! exposition of a registry holding only that histogram: once a second,
//! off the request path.

use std::collections::VecDeque;

/// The upper bounds of `edge_request_duration_seconds`'s buckets, 100 µs to
/// 10 s: a hit is well under a millisecond, a slow origin seconds.
pub const BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The outcomes whose latency the page shows.
pub const SHOWN: [&str; 2] = ["hit", "miss"];

/// Cumulative counts of one outcome: one per bound, then `+Inf` (all).
pub type Buckets = [u64; BOUNDS.len() + 1];

/// The window quantiles are taken over.
pub const WINDOW_MS: u64 = 60_000;

/// The `q` quantile (0 to 1) of observations counted in `cumulative`
/// buckets (of [`BOUNDS`], then `+Inf`), interpolated linearly within its
/// bucket; `None` without observations. One in the `+Inf` bucket is
/// reported as the highest bound, as Prometheus does.
pub fn quantile(q: f64, cumulative: &Buckets) -> Option<f64> {
    let total = *cumulative.last()?;
    if total == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let at = cumulative.iter().position(|&n| n as f64 >= rank)?;
    if at == BOUNDS.len() {
        return Some(BOUNDS[BOUNDS.len() - 1]);
    }
    let (lower, below) = match at {
        0 => (0.0, 0),
        _ => (BOUNDS[at - 1], cumulative[at - 1]),
    };
    let inside = cumulative[at].saturating_sub(below);
    if inside == 0 {
        return Some(BOUNDS[at]);
    }
    Some(lower + (BOUNDS[at] - lower) * (rank - below as f64) / inside as f64)
}

/// `now` less `then`, bucket by bucket (a counter never goes back; if it
/// seems to, nothing is counted rather than a wrapped number).
fn since(now: &Buckets, then: &Buckets) -> Buckets {
    let mut out = [0; BOUNDS.len() + 1];
    for (i, n) in out.iter_mut().enumerate() {
        *n = now[i].saturating_sub(then[i]);
    }
    out
}

/// The cumulative buckets of `outcome` in `text`, the Prometheus text
/// exposition of `edge_request_duration_seconds`; `None` if any is missing.
pub fn read_buckets(text: &str, outcome: &str) -> Option<Buckets> {
    let mut found: [Option<u64>; BOUNDS.len() + 1] = [None; BOUNDS.len() + 1];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("edge_request_duration_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.trim_matches('"'))
            })
        };
        if label("outcome") != Some(outcome) {
            continue;
        }
        let Some(le) = label("le") else { continue };
        let Ok(count) = value.trim().parse::<u64>() else {
            continue;
        };
        let at = if le == "+Inf" {
            Some(BOUNDS.len())
        } else {
            le.parse::<f64>()
                .ok()
                .and_then(|le| BOUNDS.iter().position(|b| (b - le).abs() < 1e-12))
        };
        if let Some(at) = at {
            found[at] = Some(count);
        }
    }
    let mut buckets = [0; BOUNDS.len() + 1];
    for (slot, count) in buckets.iter_mut().zip(found) {
        *slot = count?;
    }
    Some(buckets)
}

/// One outcome's latency over the window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quantiles {
    /// `hit` or `miss`.
    pub outcome: &'static str,
    /// Requests in the window.
    pub count: u64,
    /// Seconds; `None` without requests.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// Latency by outcome over the last minute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// How long the window really is (shorter just after start).
    pub window_ms: u64,
    pub outcomes: Vec<Quantiles>,
}

/// The buckets of the [`SHOWN`] outcomes, sampled, for the last [`WINDOW_MS`].
#[derive(Debug, Default)]
pub struct LatencyWindow(VecDeque<(u64, [Buckets; SHOWN.len()])>);

impl LatencyWindow {
    /// Keeps the buckets read at `t` (ms), forgetting those no longer
    /// needed: the newest one at least a window old stays, as the base.
    pub fn push(&mut self, t: u64, buckets: [Buckets; SHOWN.len()]) {
        self.0.push_back((t, buckets));
        while self
            .0
            .get(1)
            .is_some_and(|(second, _)| t.saturating_sub(*second) >= WINDOW_MS)
        {
            self.0.pop_front();
        }
    }

    /// The quantiles from the window's start to `now` (buckets read at `t`).
    pub fn summary(&self, t: u64, now: &[Buckets; SHOWN.len()]) -> LatencySummary {
        let base = self
            .0
            .iter()
            .rev()
            .find(|(at, _)| t.saturating_sub(*at) >= WINDOW_MS)
            .or_else(|| self.0.front());
        let zero = [[0; BOUNDS.len() + 1]; SHOWN.len()];
        let (start, then) = base.map_or((t, &zero), |(at, b)| (*at, b));
        let outcomes = SHOWN
            .iter()
            .enumerate()
            .map(|(i, outcome)| {
                let counts = since(&now[i], &then[i]);
                Quantiles {
                    outcome,
                    count: counts[BOUNDS.len()],
                    p50: quantile(0.5, &counts),
                    p99: quantile(0.99, &counts),
                }
            })
            .collect();
        LatencySummary {
            window_ms: t.saturating_sub(start),
            outcomes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cumulative(per_bucket: &[(usize, u64)]) -> Buckets {
        let mut counts = [0u64; BOUNDS.len() + 1];
        for &(at, n) in per_bucket {
            counts[at] += n;
        }
        let mut sum = 0;
        for n in counts.iter_mut() {
            sum += *n;
            *n = sum;
        }
        counts
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        assert_eq!(quantile(0.5, &[0; 17]), None);
        // 100 in (0.5 ms, 1 ms]: the median halfway through it.
        let one_bucket = cumulative(&[(3, 100)]);
        let p50 = quantile(0.5, &one_bucket).unwrap();
        assert!((p50 - 0.00075).abs() < 1e-12, "{p50}");
        assert!((quantile(0.99, &one_bucket).unwrap() - 0.000995).abs() < 1e-12);
        // 98 fast ones (first bucket) and 2 slow (1 s to 2.5 s): p50 is
        // fast, p99 in the slow bucket, halfway through it.
        let tail = cumulative(&[(0, 98), (13, 2)]);
        assert!(quantile(0.5, &tail).unwrap() <= 0.0001);
        assert!((quantile(0.99, &tail).unwrap() - 1.75).abs() < 1e-9);
        // Beyond the last bound: the last bound, not infinity.
        assert_eq!(quantile(0.5, &cumulative(&[(16, 4)])), Some(10.0));
        assert_eq!(quantile(1.5, &one_bucket), None);
    }

    #[test]
    fn buckets_are_read_from_the_exposition_in_any_label_order() {
        let mut text = String::from("# TYPE edge_request_duration_seconds histogram\n");
        for (i, bound) in BOUNDS.iter().enumerate() {
            text += &format!(
                "edge_request_duration_seconds_bucket{{le=\"{bound}\",outcome=\"hit\"}} {}\n",
                i + 1
            );
            text += &format!(
                "edge_request_duration_seconds_bucket{{outcome=\"miss\",le=\"{bound}\"}} 0\n"
            );
        }
        text += "edge_request_duration_seconds_bucket{le=\"+Inf\",outcome=\"hit\"} 20\n";
        text += "edge_request_duration_seconds_bucket{outcome=\"miss\",le=\"+Inf\"} 0\n";
        let hit = read_buckets(&text, "hit").unwrap();
        assert_eq!(hit[0], 1);
        assert_eq!(hit[15], 16);
        assert_eq!(hit[16], 20);
        assert_eq!(read_buckets(&text, "miss").unwrap(), [0; 17]);
        assert_eq!(read_buckets(&text, "stale"), None);
        assert_eq!(read_buckets("garbage{\n", "hit"), None);
    }

    #[test]
    fn the_window_is_the_last_minute() {
        let mut window = LatencyWindow::default();
        let slow = cumulative(&[(13, 10)]);
        let none = [0; 17];
        // A minute of slow misses long ago, then fast hits only.
        window.push(0, [none, slow]);
        for s in 1..=120u64 {
            let fast = cumulative(&[(0, s)]);
            window.push(s * 1000, [fast, slow]);
        }
        let now = [cumulative(&[(0, 121)]), slow];
        let summary = window.summary(121_000, &now);
        assert_eq!(summary.window_ms, 60_000);
        assert_eq!(summary.outcomes[0].count, 60);
        assert!(summary.outcomes[0].p99.unwrap() <= 0.0001);
        assert_eq!(
            summary.outcomes[1].count, 0,
            "the slow misses are over a minute old"
        );
        assert_eq!(summary.outcomes[1].p50, None);
        assert!(window.0.len() <= 62, "{}", window.0.len());
        // Just after start the window is what there is.
        let mut young = LatencyWindow::default();
        young.push(1000, [none, none]);
        let summary = young.summary(3000, &[cumulative(&[(2, 4)]), none]);
        assert_eq!(summary.window_ms, 2000);
        assert_eq!(summary.outcomes[0].count, 4);
    }
}
