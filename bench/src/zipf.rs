//! Zipf(s) popularity over N objects: the probability of rank k is
//! k^-s / H(N, s). The load generator samples it (bench/wrk/bench.lua); here
//! it gives the reference hit ratio of the mixed scenario: the share of
//! requests that go to the most popular objects a cache of a given size could
//! hold, i.e. what a perfect (frequency-ordered) cache would hit.

/// Generalised harmonic number H(n, s) = sum over k = 1..=n of k^-s.
pub fn harmonic(n: u64, s: f64) -> f64 {
    // Summing the small terms first keeps the floating-point error down.
    (1..=n).rev().map(|k| (k as f64).powf(-s)).sum()
}

/// Probability that a request names one of the `k` most popular of `n`
/// objects.
pub fn top_k_share(k: u64, n: u64, s: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    harmonic(k.min(n), s) / harmonic(n, s)
}

/// The cumulative distribution over ranks 1..=n (what the Lua sampler
/// builds): entry k-1 is the probability of a rank at most k.
pub fn cdf(n: u64, s: f64) -> Vec<f64> {
    let total = harmonic(n, s);
    let mut sum = 0.0;
    (1..=n)
        .map(|k| {
            sum += (k as f64).powf(-s);
            sum / total
        })
        .collect()
}

/// The rank for a uniform `u` in [0, 1): the first k whose cumulative
/// probability reaches `u` (binary search, as the Lua sampler does).
pub fn rank_for(cdf: &[f64], u: f64) -> u64 {
    cdf.partition_point(|&p| p < u) as u64 + 1
}

/// The `i`-th of a seeded stream of uniform draws in [0, 1) (splitmix64),
/// by index, so that threads sharing one stream need no shared state.
pub fn uniform(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmonic_numbers() {
        assert!((harmonic(1, 1.0) - 1.0).abs() < 1e-12);
        assert!((harmonic(4, 1.0) - (1.0 + 0.5 + 1.0 / 3.0 + 0.25)).abs() < 1e-12);
        // H(n) ~ ln n + Euler–Mascheroni
        let h = harmonic(100_000, 1.0);
        assert!((h - ((100_000f64).ln() + 0.577_215_664_9)).abs() < 1e-4);
    }

    #[test]
    fn top_k_share_bounds() {
        assert_eq!(top_k_share(0, 10, 1.0), 0.0);
        assert!((top_k_share(10, 10, 1.0) - 1.0).abs() < 1e-12);
        assert!((top_k_share(20, 10, 1.0) - 1.0).abs() < 1e-12);
        assert_eq!(top_k_share(5, 0, 1.0), 0.0);
        // Rank 1 of 2 under Zipf(1): 1 / 1.5
        assert!((top_k_share(1, 2, 1.0) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn sampler_follows_the_distribution() {
        let cdf = cdf(1000, 1.0);
        assert!((cdf[999] - 1.0).abs() < 1e-12);
        assert_eq!(rank_for(&cdf, 0.0), 1);
        assert_eq!(rank_for(&cdf, 0.999_999_999), 1000);
        // A deterministic grid of u values stands in for random draws: the
        // share of rank 1 must approach 1 / H(1000).
        let draws = 100_000;
        let ones = (0..draws)
            .map(|i| rank_for(&cdf, (i as f64 + 0.5) / draws as f64))
            .filter(|&r| r == 1)
            .count();
        let expected = 1.0 / harmonic(1000, 1.0);
        assert!((ones as f64 / draws as f64 - expected).abs() < 1e-3);
    }

    #[test]
    fn uniform_draws_are_in_range_seeded_and_spread() {
        let draws: Vec<f64> = (0..10_000).map(|i| uniform(7, i)).collect();
        assert!(draws.iter().all(|&u| (0.0..1.0).contains(&u)));
        assert_eq!(uniform(7, 3), draws[3]);
        assert_ne!(uniform(8, 3), draws[3]);
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let low = draws.iter().filter(|&&u| u < 0.1).count();
        assert!((900..1100).contains(&low), "{low} of 10,000 below 0.1");
    }
}
