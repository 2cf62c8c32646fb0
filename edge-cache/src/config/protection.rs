//! How each origin is protected: the circuit breaker's policy, the
//! statuses it counts, and the concurrency cap.

use std::time::Duration;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerPolicy {
    /// Failures within `window` that open the breaker; 0 disables it.
    pub(crate) failures: u32,
    /// Failures further apart than this do not add up.
    pub(crate) window: Duration,
    /// How long the breaker stays open before a probe.
    pub(crate) cooldown: Duration,
    /// Origin statuses that count as failures (`breaker_status_codes`).
    pub(crate) counted_statuses: StatusSet,
}

/// Defaults: 5 transport failures within 10 s open the breaker for 5 s.
pub(crate) const DEFAULT_BREAKER: BreakerPolicy = BreakerPolicy {
    failures: 5,
    window: Duration::from_secs(10),
    cooldown: Duration::from_secs(5),
    counted_statuses: StatusSet::EMPTY,
};

impl BreakerPolicy {
    /// Whether the breaker is in use.
    pub(crate) fn enabled(&self) -> bool {
        self.failures > 0
    }
}

/// A set of 5xx status codes (one bit each for 500–599).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatusSet(u128);

impl StatusSet {
    /// No status: only transport failures count.
    pub(crate) const EMPTY: StatusSet = StatusSet(0);

    /// The set of `codes` (those outside 500–599 are ignored).
    #[cfg(test)]
    pub(crate) const fn from_codes(codes: &[u16]) -> StatusSet {
        let mut bits = 0u128;
        let mut i = 0;
        while i < codes.len() {
            if codes[i] >= 500 && codes[i] <= 599 {
                bits |= 1 << (codes[i] - 500);
            }
            i += 1;
        }
        StatusSet(bits)
    }

    /// Parses a comma-separated list such as `502,503,504`; only 5xx codes
    /// are accepted (a 4xx says something about the request, never the
    /// server).
    pub(crate) fn parse(text: &str) -> Result<StatusSet, String> {
        let mut set = StatusSet::EMPTY;
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            match member.parse::<u16>() {
                Ok(code @ 500..=599) => set.0 |= 1 << (code - 500),
                _ => return Err(format!("`{member}` is not a status code from 500 to 599")),
            }
        }
        Ok(set)
    }

    /// Whether `status` is in the set.
    pub(crate) fn contains(&self, status: u16) -> bool {
        (500..=599).contains(&status) && self.0 & (1 << (status - 500)) != 0
    }
}

/// How one origin is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protection {
    pub(crate) breaker: BreakerPolicy,
    /// At most this many fetches in flight (`None`: no cap).
    pub(crate) max_concurrent: Option<u32>,
    /// How long a fetch may hold a slot or the probe before it is presumed
    /// gone (a bound on a fetch's duration).
    pub(crate) lease: Duration,
}
