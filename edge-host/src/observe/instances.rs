//! What component instances have done: the counters each component's
//! executor keeps (`InstanceCounters`) and their snapshot
//! ([`InstanceStats`]), which `App::instance_stats` sums and the metrics
//! report ([`super::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a component's instances have done so far (both flavours: a WASI 0.2
/// instance serves one request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Instances created.
    pub created: u64,
    /// Instances that have ended: retired or failed.
    pub ended: u64,
    /// Of those, the ones that failed: a trap, a request over the time
    /// limit, the memory limit.
    pub failed: u64,
    /// Requests handed to an instance.
    pub requests: u64,
    /// The most requests one instance has had in flight at once (from
    /// acceptance to its response head).
    pub peak_concurrent_requests: u64,
}

impl std::ops::Add for InstanceStats {
    type Output = InstanceStats;

    fn add(self, other: InstanceStats) -> InstanceStats {
        InstanceStats {
            created: self.created + other.created,
            ended: self.ended + other.ended,
            failed: self.failed + other.failed,
            requests: self.requests + other.requests,
            peak_concurrent_requests: self
                .peak_concurrent_requests
                .max(other.peak_concurrent_requests),
        }
    }
}

/// The live counters behind [`InstanceStats`], one set per component.
#[derive(Debug, Default)]
pub(crate) struct InstanceCounters {
    created: AtomicU64,
    ended: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    peak_concurrent_requests: AtomicU64,
}

impl InstanceCounters {
    pub(crate) fn snapshot(&self) -> InstanceStats {
        InstanceStats {
            created: self.created.load(Ordering::SeqCst),
            ended: self.ended.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            requests: self.requests.load(Ordering::SeqCst),
            peak_concurrent_requests: self.peak_concurrent_requests.load(Ordering::SeqCst),
        }
    }

    /// An instance was made.
    pub(crate) fn created(&self) {
        self.created.fetch_add(1, Ordering::SeqCst);
    }

    /// An instance took a request; it has `in_flight` now, this one
    /// included.
    pub(crate) fn request_started(&self, in_flight: u64) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.peak_concurrent_requests
            .fetch_max(in_flight, Ordering::SeqCst);
    }

    /// An instance ended: retired, or `failed` (a trap, a limit).
    pub(crate) fn ended(&self, failed: bool) {
        if failed {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        self.ended.fetch_add(1, Ordering::SeqCst);
    }
}
