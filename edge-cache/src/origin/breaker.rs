//! The origin's circuit breaker, as a pure state machine.
//!
//! After `failures` failures within `window`, the origin is considered
//! down for `cooldown`, and a request that has a stale copy to fall back on
//! gets it at once. A request with nothing stored is refused only where
//! failing fast spares it something: when the failures were *slow*
//! (timeouts), it would only queue on a dead origin. When they were *fast*
//! (refusals, resets, counted statuses), the client loses nothing by
//! trying, so such requests trickle through one at a time as probes — one
//! failing page or a refusing origin can never turn into an outage made by
//! the edge (RFC 9110 §15.6: a 5xx describes one response, not a server).
//! When the cool-down ends, one probe at a time is let through; a probe's
//! success closes the breaker, its failure opens it for another cool-down.
//!
//! What counts as a failure: transport failures (refused, reset, connect
//! or first-byte timeout) always; origin statuses only those listed in
//! `breaker_status_codes` (none by default; `502,503,504` says "the origin
//! or what is behind it is unavailable"). An origin's `Retry-After` is
//! relayed to the client and does not change the cool-down.
//!
//! The state is a small JSON value in the key-value store so that every
//! instance (each request is a fresh one) sees the same breaker. Times are
//! Unix milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::BreakerPolicy;
use crate::seams::Fallback;

/// How a counted failure failed: whether failing fast spares the next
/// client anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Came back at once (refused, reset, a counted status).
    Fast,
    /// Took a timeout to find out.
    Slow,
}

/// The shared state of one origin's breaker. The default is closed and
/// healthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BreakerState {
    /// Failures counted in the current window.
    #[serde(rename = "f")]
    pub failures: u32,
    /// When the first of them happened.
    #[serde(rename = "s")]
    pub window_start_ms: u64,
    /// Open until then (0: closed). Once passed, the breaker is half-open.
    #[serde(rename = "o")]
    pub open_until_ms: u64,
    /// A probe is in flight until then.
    #[serde(rename = "p")]
    pub probe_until_ms: u64,
    /// Some failure in the current window was a timeout.
    #[serde(rename = "w", default)]
    pub slow: bool,
}

/// What to do with a request to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passage {
    /// Send it: the breaker is closed.
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
    pub(crate) fn decode(bytes: &[u8]) -> BreakerState {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// The bytes kept under the origin's `o:breaker:` key.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether this is the healthy state (nothing worth storing).
    pub(crate) fn is_closed_and_clean(&self) -> bool {
        *self == BreakerState::default()
    }

    /// Whether a request with `fallback` may go to the origin at `now_ms`.
    pub(crate) fn admit(&self, now_ms: u64, fallback: Fallback) -> Passage {
        if self.open_until_ms == 0 {
            return Passage::Allow;
        }
        let cooling = now_ms < self.open_until_ms;
        if cooling && (self.slow || fallback == Fallback::Stale) {
            return Passage::Reject {
                retry_after: Duration::from_millis(self.open_until_ms - now_ms),
            };
        }
        if now_ms < self.probe_until_ms {
            // Someone else is probing; they will know within their lease.
            return Passage::Reject {
                retry_after: Duration::from_millis(self.probe_until_ms - now_ms),
            };
        }
        Passage::Probe
    }

    /// The state recording that a probe runs until `now_ms + lease`.
    pub(crate) fn probing(&self, now_ms: u64, lease: Duration) -> BreakerState {
        BreakerState {
            probe_until_ms: now_ms + lease.as_millis() as u64,
            ..*self
        }
    }

    /// The state after a failed request at `now_ms`.
    pub(crate) fn after_failure(
        &self,
        now_ms: u64,
        policy: &BreakerPolicy,
        kind: FailureKind,
    ) -> BreakerState {
        let cooldown = policy.cooldown.as_millis() as u64;
        let slow = kind == FailureKind::Slow;
        if self.open_until_ms != 0 && now_ms >= self.open_until_ms {
            // Half-open and the probe (or a straggler) failed: open again.
            return BreakerState {
                failures: self.failures.max(policy.failures),
                window_start_ms: self.window_start_ms,
                open_until_ms: now_ms + cooldown,
                probe_until_ms: 0,
                slow,
            };
        }
        if self.open_until_ms != 0 {
            // Already open: a probe let through while cooling (or a request
            // that started before it opened) failed. The cool-down stays;
            // the next request may probe.
            return BreakerState {
                probe_until_ms: 0,
                slow: self.slow || slow,
                ..*self
            };
        }
        let in_window = self.failures > 0
            && now_ms.saturating_sub(self.window_start_ms) <= policy.window.as_millis() as u64;
        let (failures, window_start_ms, slow) = if in_window {
            (self.failures + 1, self.window_start_ms, self.slow || slow)
        } else {
            (1, now_ms, slow)
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
            slow,
        }
    }

    /// The state after a successful request: closed and clean.
    pub(crate) fn after_success(&self) -> BreakerState {
        BreakerState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusSet;
    use crate::origin::breaker::Passage as Admission;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(5),
        counted_statuses: StatusSet::EMPTY,
    };

    fn fail_times(times: &[u64]) -> BreakerState {
        times.iter().fold(BreakerState::default(), |state, t| {
            state.after_failure(*t, &POLICY, FailureKind::Slow)
        })
    }

    #[test]
    fn opens_after_the_configured_failures_within_the_window() {
        let state = fail_times(&[1_000, 2_000]);
        assert_eq!(state.admit(2_001, Fallback::Nothing), Admission::Allow);
        let state = state.after_failure(3_000, &POLICY, FailureKind::Slow);
        assert_eq!(
            state.admit(3_000, Fallback::Nothing),
            Admission::Reject {
                retry_after: Duration::from_secs(5)
            }
        );
        assert_eq!(
            state.admit(7_500, Fallback::Nothing),
            Admission::Reject {
                retry_after: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn failures_further_apart_than_the_window_do_not_add_up() {
        let state = fail_times(&[1_000, 2_000, 20_000]);
        assert_eq!(state.failures, 1);
        assert_eq!(state.admit(20_001, Fallback::Nothing), Admission::Allow);
    }

    #[test]
    fn a_success_closes_and_resets() {
        let state = fail_times(&[1_000, 2_000]).after_success();
        assert!(state.is_closed_and_clean());
        assert_eq!(
            state
                .after_failure(3_000, &POLICY, FailureKind::Slow)
                .failures,
            1
        );
    }

    #[test]
    fn after_the_cooldown_one_probe_at_a_time() {
        let open = fail_times(&[1_000, 1_100, 1_200]);
        assert_eq!(open.admit(6_200, Fallback::Nothing), Admission::Probe);
        let probing = open.probing(6_200, Duration::from_secs(2));
        assert_eq!(
            probing.admit(6_300, Fallback::Nothing),
            Admission::Reject {
                retry_after: Duration::from_millis(1_900)
            }
        );
        // A probe whose instance vanished frees the slot when its lease ends.
        assert_eq!(probing.admit(8_200, Fallback::Nothing), Admission::Probe);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_good_one_closes() {
        let probing = fail_times(&[1_000, 1_100, 1_200]).probing(6_200, Duration::from_secs(2));
        let reopened = probing.after_failure(6_300, &POLICY, FailureKind::Slow);
        assert_eq!(
            reopened.admit(6_300, Fallback::Nothing),
            Admission::Reject {
                retry_after: Duration::from_secs(5)
            }
        );
        assert_eq!(reopened.probe_until_ms, 0);
        assert_eq!(
            probing.after_success().admit(6_300, Fallback::Nothing),
            Admission::Allow
        );
    }

    #[test]
    fn late_failures_while_open_do_not_extend_the_cooldown() {
        let open = fail_times(&[1_000, 1_100, 1_200]);
        assert_eq!(open.after_failure(3_000, &POLICY, FailureKind::Slow), open);
    }

    #[test]
    fn fast_failures_let_requests_without_a_stored_copy_trickle_through() {
        let open = [1_000, 1_100, 1_200]
            .iter()
            .fold(BreakerState::default(), |state, t| {
                state.after_failure(*t, &POLICY, FailureKind::Fast)
            });
        assert!(open.open_until_ms > 0);
        // A stale copy is served at once; nothing stored may probe.
        assert!(matches!(
            open.admit(1_300, Fallback::Stale),
            Admission::Reject { .. }
        ));
        assert_eq!(open.admit(1_300, Fallback::Nothing), Admission::Probe);
        // One at a time.
        let probing = open.probing(1_300, Duration::from_secs(2));
        assert!(matches!(
            probing.admit(1_400, Fallback::Nothing),
            Admission::Reject { .. }
        ));
        // A failed probe frees the way for the next one, a good one closes.
        let failed = probing.after_failure(1_500, &POLICY, FailureKind::Fast);
        assert_eq!(failed.admit(1_600, Fallback::Nothing), Admission::Probe);
        assert_eq!(failed.open_until_ms, open.open_until_ms);
        // A timeout while probing makes the rest fail fast.
        let slow = probing.after_failure(1_500, &POLICY, FailureKind::Slow);
        assert!(matches!(
            slow.admit(1_600, Fallback::Nothing),
            Admission::Reject { .. }
        ));
    }

    #[test]
    fn counted_statuses_are_5xx_lists() {
        let set = StatusSet::parse("502, 503,504").unwrap();
        assert!(set.contains(503) && !set.contains(500) && !set.contains(404));
        assert_eq!(StatusSet::parse(""), Ok(StatusSet::EMPTY));
        assert!(StatusSet::parse("404").is_err());
        assert!(StatusSet::parse("5xx").is_err());
    }

    #[test]
    fn stored_form_round_trips_and_garbage_reads_as_closed() {
        let state = fail_times(&[1_000, 1_100, 1_200]).probing(6_200, Duration::from_secs(1));
        assert_eq!(BreakerState::decode(&state.encode()), state);
        assert!(BreakerState::decode(b"{not json").is_closed_and_clean());
        assert!(BreakerState::decode(b"").is_closed_and_clean());
    }
}
