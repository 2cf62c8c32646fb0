//! The origin's circuit breaker, as a pure state machine.
//!
//! After `failures` consecutive failures within `window`, the origin is
//! considered down for `cooldown`: requests fail fast (or are served stale)
//! instead of queueing on a dead origin. When the cool-down ends, one probe
//! request at a time is let through; its success closes the breaker, its
//! failure opens it for another cool-down.
//!
//! The state is a small JSON value in the key-value store so that every
//! instance (each request is a fresh one) sees the same breaker. Times are
//! Unix milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker; 0 disables it.
    pub failures: u32,
    /// Failures further apart than this do not add up.
    pub window: Duration,
    /// How long the breaker stays open before a probe.
    pub cooldown: Duration,
}

/// Defaults: 5 failures within 10 s open the breaker for 5 s.
pub const DEFAULT_BREAKER: BreakerPolicy = BreakerPolicy {
    failures: 5,
    window: Duration::from_secs(10),
    cooldown: Duration::from_secs(5),
};

impl BreakerPolicy {
    /// Whether the breaker is in use.
    pub fn enabled(&self) -> bool {
        self.failures > 0
    }
}

/// The shared state of one origin's breaker. The default is closed and
/// healthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Failures counted in the current window.
    #[serde(rename = "f")]
    pub failures: u32,
    /// When the first of them happened.
    #[serde(rename = "s")]
    pub window_start_ms: u64,
    /// Open until then (0: closed). Once passed, the breaker is half-open.
    #[serde(rename = "o")]
    pub open_until_ms: u64,
    /// A probe is in flight until then (half-open only).
    #[serde(rename = "p")]
    pub probe_until_ms: u64,
}

/// What to do with a request to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it.
    Allow,
    /// Send it as the one probe; record [`BreakerState::probing`] first.
    Probe,
    /// Do not send it; the origin may be tried again after this long.
    Reject {
        /// Time until the breaker lets a request through again.
        retry_after: Duration,
    },
}

impl BreakerState {
    /// Decodes a stored state; anything unreadable is a closed breaker
    /// (failing open: a corrupt value must not keep an origin "down").
    pub fn decode(bytes: &[u8]) -> BreakerState {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether this is the healthy state (nothing worth storing).
    pub fn is_closed_and_clean(&self) -> bool {
        *self == BreakerState::default()
    }

    /// Whether a request may go to the origin at `now_ms`.
    pub fn admit(&self, now_ms: u64) -> Admission {
        if self.open_until_ms == 0 {
            return Admission::Allow;
        }
        if now_ms < self.open_until_ms {
            return Admission::Reject {
                retry_after: Duration::from_millis(self.open_until_ms - now_ms),
            };
        }
        if now_ms < self.probe_until_ms {
            // Someone else is probing; they will know within their lease.
            return Admission::Reject {
                retry_after: Duration::from_millis(self.probe_until_ms - now_ms),
            };
        }
        Admission::Probe
    }

    /// The state recording that a probe runs until `now_ms + lease`.
    pub fn probing(&self, now_ms: u64, lease: Duration) -> BreakerState {
        BreakerState {
            probe_until_ms: now_ms + lease.as_millis() as u64,
            ..*self
        }
    }

    /// The state after a failed request at `now_ms`.
    pub fn after_failure(&self, now_ms: u64, policy: &BreakerPolicy) -> BreakerState {
        let cooldown = policy.cooldown.as_millis() as u64;
        if self.open_until_ms != 0 && now_ms >= self.open_until_ms {
            // Half-open and the probe (or a straggler) failed: open again.
            return BreakerState {
                failures: self.failures.max(policy.failures),
                window_start_ms: self.window_start_ms,
                open_until_ms: now_ms + cooldown,
                probe_until_ms: 0,
            };
        }
        if self.open_until_ms != 0 {
            // Already open: a request that started before it opened.
            return *self;
        }
        let in_window = self.failures > 0
            && now_ms.saturating_sub(self.window_start_ms) <= policy.window.as_millis() as u64;
        let (failures, window_start_ms) = if in_window {
            (self.failures + 1, self.window_start_ms)
        } else {
            (1, now_ms)
        };
        let open_until_ms = if failures >= policy.failures {
            now_ms + cooldown
        } else {
            0
        };
        BreakerState {
            failures,
            window_start_ms,
            open_until_ms,
            probe_until_ms: 0,
        }
    }

    /// The state after a successful request: closed and clean.
    pub fn after_success(&self) -> BreakerState {
        BreakerState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(5),
    };

    fn fail_times(times: &[u64]) -> BreakerState {
        times.iter().fold(BreakerState::default(), |state, t| {
            state.after_failure(*t, &POLICY)
        })
    }

    #[test]
    fn opens_after_the_configured_failures_within_the_window() {
        let state = fail_times(&[1_000, 2_000]);
        assert_eq!(state.admit(2_001), Admission::Allow);
        let state = state.after_failure(3_000, &POLICY);
        assert_eq!(
            state.admit(3_000),
            Admission::Reject {
                retry_after: Duration::from_secs(5)
            }
        );
        assert_eq!(
            state.admit(7_500),
            Admission::Reject {
                retry_after: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn failures_further_apart_than_the_window_do_not_add_up() {
        let state = fail_times(&[1_000, 2_000, 20_000]);
        assert_eq!(state.failures, 1);
        assert_eq!(state.admit(20_001), Admission::Allow);
    }

    #[test]
    fn a_success_closes_and_resets() {
        let state = fail_times(&[1_000, 2_000]).after_success();
        assert!(state.is_closed_and_clean());
        assert_eq!(state.after_failure(3_000, &POLICY).failures, 1);
    }

    #[test]
    fn after_the_cooldown_one_probe_at_a_time() {
        let open = fail_times(&[1_000, 1_100, 1_200]);
        assert_eq!(open.admit(6_200), Admission::Probe);
        let probing = open.probing(6_200, Duration::from_secs(2));
        assert_eq!(
            probing.admit(6_300),
            Admission::Reject {
                retry_after: Duration::from_millis(1_900)
            }
        );
        // A probe whose instance vanished frees the slot when its lease ends.
        assert_eq!(probing.admit(8_200), Admission::Probe);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_good_one_closes() {
        let probing = fail_times(&[1_000, 1_100, 1_200]).probing(6_200, Duration::from_secs(2));
        let reopened = probing.after_failure(6_300, &POLICY);
        assert_eq!(
            reopened.admit(6_300),
            Admission::Reject {
                retry_after: Duration::from_secs(5)
            }
        );
        assert_eq!(reopened.probe_until_ms, 0);
        assert_eq!(probing.after_success().admit(6_300), Admission::Allow);
    }

    #[test]
    fn late_failures_while_open_do_not_extend_the_cooldown() {
        let open = fail_times(&[1_000, 1_100, 1_200]);
        assert_eq!(open.after_failure(3_000, &POLICY), open);
    }

    #[test]
    fn stored_form_round_trips_and_garbage_reads_as_closed() {
        let state = fail_times(&[1_000, 1_100, 1_200]).probing(6_200, Duration::from_secs(1));
        assert_eq!(BreakerState::decode(&state.encode()), state);
        assert!(BreakerState::decode(b"{not json").is_closed_and_clean());
        assert!(BreakerState::decode(b"").is_closed_and_clean());
    }
}
