//! The retry schedule of purge delivery: exponential with a cap.

use std::time::Duration;

/// How long to wait before the next attempt after `attempts` failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// `initial * 2^(failures-1)`, capped at `max`; zero before any failure.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        // Past 2^31 the cap has long been reached; clamping the exponent
        // keeps the multiplication from overflowing.
        let factor = 1u32 << (failures - 1).min(31);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_stays_at_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (0..7).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
        assert_eq!(b.delay(40), Duration::from_secs(1));
    }

    #[test]
    fn a_cap_below_the_initial_delay_wins() {
        let b = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(2),
        };
        assert_eq!(b.delay(1), Duration::from_secs(2));
    }
}
