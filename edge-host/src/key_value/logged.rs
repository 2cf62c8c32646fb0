//! Store failures in the log, at most once per interval per store.
//!
//! A failing backend fails every request's lookups; one line per failure
//! would bury the log (and cost more than the failure itself). So the first
//! failure is logged at once and later ones are counted and summarised in
//! the next line an interval later.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{StoreBackend, StoreError};

/// How often a failing store is reported.
pub const STORE_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Decides which failures are logged.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    state: Mutex<LimitState>,
}

#[derive(Debug, Default)]
struct LimitState {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimit {
            interval,
            state: Mutex::new(LimitState::default()),
        }
    }

    /// A failure at `now`: `Some(n)` if it is to be logged, `n` being how
    /// many were suppressed since the last line; `None` to stay quiet.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.last_logged {
            Some(last) if now.duration_since(last) < self.interval => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last_logged = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

/// A backend whose failures are logged, rate-limited.
pub struct LoggedStore {
    label: String,
    inner: Arc<dyn StoreBackend>,
    limit: LogLimit,
    counters: Option<crate::observe::metrics::StoreCounters>,
}

impl LoggedStore {
    /// Wraps `inner`, the backend of store `label`.
    pub fn new(label: &str, inner: Arc<dyn StoreBackend>) -> Self {
        // Every store opened, at start or by a reload, passes here once:
        // its size is reported while it lives (weakly held, so a store a
        // reload replaced is not kept alive for it).
        let weak = Arc::downgrade(&inner);
        crate::observe::store_sizes::report(
            label,
            Box::new(move || weak.upgrade().map(|store| store.size())),
        );
        LoggedStore {
            label: label.to_owned(),
            inner,
            limit: LogLimit::new(STORE_ERROR_LOG_INTERVAL),
            counters: crate::observe::metrics::get().map(|metrics| metrics.store_counters(label)),
        }
    }

    fn report<T>(&self, operation: &str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Some(counters) = &self.counters {
            counters.count(operation, result.is_ok());
        }
        if let Err(error) = &result
            && let Some(suppressed) = self.limit.admit(Instant::now())
        {
            tracing::warn!(
                store = self.label,
                suppressed,
                "key-value {operation} failed: {error} ({suppressed} more failures since the last report)"
            );
        }
        result
    }
}

#[async_trait::async_trait]
impl StoreBackend for LoggedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.report("get", self.inner.get(key).await)
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.report("set", self.inner.set(key, value).await)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.report("delete", self.inner.delete(key).await)
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.report("exists", self.inner.exists(key).await)
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        self.report("get-keys", self.inner.get_keys().await)
    }

    fn capacity_bytes(&self) -> Option<u64> {
        self.inner.capacity_bytes()
    }

    fn size(&self) -> crate::observe::store_sizes::StoreSize {
        self.inner.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_failure_then_one_summary_per_interval() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(limit.admit(start), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(limit.admit(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(limit.admit(start + Duration::from_secs(10)), Some(3));
        assert_eq!(limit.admit(start + Duration::from_secs(11)), None);
        assert_eq!(limit.admit(start + Duration::from_secs(25)), Some(1));
    }
}
