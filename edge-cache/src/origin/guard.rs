//! Protects one origin: the circuit breaker and the concurrency cap around
//! every request sent to it, with their state in the shared store.
//!
//! Store trouble never blocks a request here: an unreadable state is a
//! closed breaker and an empty lease list (failing open, like the cache).

use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};

use crate::config::Protection;
use crate::origin::breaker::{BreakerState, FailureKind, Passage};
use crate::origin::slots::Leases;
use crate::seams::{Clock, Origin, OriginFailure, OriginRequest, Response};
use crate::store::keys::{NodeLocalKey, Store};

/// How long an instance trusts a breaker it read closed and clean.
///
/// A reused instance (WASI 0.3) sends thousands of misses a second, and
/// reading a clean breaker before each was a store call in seven (A/B:
/// 7 % of the miss path's throughput). The breaker is approximate anyway
/// (Spin's key-value store has no compare-and-set), and it opens after
/// failures that took far longer than this to happen: a breaker another
/// instance opened is honoured here at most this much later. Anything but
/// a clean breaker is read every time, and a failure seen here forgets
/// the clean reading at once.
pub(crate) const CLEAN_BREAKER_TRUSTED_FOR: Duration = Duration::from_millis(20);

/// When this instance last read an origin's breaker closed and clean.
#[derive(Debug, Default)]
pub(crate) struct CleanBreakerRead(Cell<Option<u64>>);

impl CleanBreakerRead {
    /// Whether a clean reading is recent enough to stand for a read at
    /// `now_ms` (a clock that went back trusts nothing).
    fn trusted_at(&self, now_ms: u64) -> bool {
        self.0.get().is_some_and(|read_ms| {
            now_ms >= read_ms && now_ms - read_ms < CLEAN_BREAKER_TRUSTED_FOR.as_millis() as u64
        })
    }

    /// Remembers a reading made at `now_ms`: clean, or not to be trusted.
    fn read(&self, state: &BreakerState, now_ms: u64) {
        self.0.set(state.is_closed_and_clean().then_some(now_ms));
    }

    fn forget(&self) {
        self.0.set(None);
    }
}

/// An origin behind its breaker and cap.
pub(crate) struct GuardedOrigin<'a, O, S, C> {
    /// The origin being protected (the real one, or a fake in tests).
    pub inner: &'a O,
    /// Names the origin in the store (its authority).
    pub name: &'a str,
    /// The shared store holding breaker and lease state.
    pub store: &'a S,
    /// Breaker windows and lease expiries are measured on it.
    pub clock: &'a C,
    /// The breaker policy and concurrency cap to apply.
    pub protection: Protection,
    /// This request's lease id (unique among concurrent requests).
    pub lease_id: u64,
    /// The instance's last clean reading of this origin's breaker, where
    /// it keeps one (see [`CLEAN_BREAKER_TRUSTED_FOR`]).
    pub clean_read: Option<&'a CleanBreakerRead>,
}

impl<O: Origin, S: Store, C: Clock> GuardedOrigin<'_, O, S, C> {
    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn breaker_key(&self) -> NodeLocalKey {
        NodeLocalKey::breaker(self.name)
    }

    fn slots_key(&self) -> NodeLocalKey {
        NodeLocalKey::slots(self.name)
    }

    async fn breaker_state(&self) -> BreakerState {
        match self.store.get(&self.breaker_key()).await {
            Ok(Some(bytes)) => BreakerState::decode(&bytes),
            _ => BreakerState::default(),
        }
    }

    /// The breaker a request is admitted by: a clean reading this
    /// instance still trusts, else the store's, remembered.
    async fn admitting_state(&self, now_ms: u64) -> BreakerState {
        let Some(clean_read) = self.clean_read else {
            return self.breaker_state().await;
        };
        if clean_read.trusted_at(now_ms) {
            return BreakerState::default();
        }
        let state = self.breaker_state().await;
        clean_read.read(&state, now_ms);
        state
    }

    async fn save_breaker(&self, state: &BreakerState) {
        let _ = if state.is_closed_and_clean() {
            self.store.delete(&self.breaker_key()).await
        } else {
            self.store.set(&self.breaker_key(), &state.encode()).await
        };
    }

    async fn leases(&self) -> Leases {
        match self.store.get(&self.slots_key()).await {
            Ok(Some(bytes)) => Leases::decode(&bytes),
            _ => Leases::default(),
        }
    }

    /// Takes a slot; `Err` when the cap is reached.
    async fn acquire_slot(&self, cap: u32, now_ms: u64) -> Result<(), OriginFailure> {
        let mut leases = self.leases().await;
        let expires = now_ms + self.protection.lease.as_millis() as u64;
        if !leases.try_acquire(self.lease_id, now_ms, expires, cap) {
            return Err(OriginFailure::Busy { cap });
        }
        let _ = self.store.set(&self.slots_key(), &leases.encode()).await;
        Ok(())
    }

    async fn release_slot(&self) {
        let mut leases = self.leases().await;
        leases.release(self.lease_id);
        let _ = self.store.set(&self.slots_key(), &leases.encode()).await;
    }

    /// Records the outcome in the breaker; `before` is the state read when
    /// the request was let through.
    async fn record(&self, result: &Result<Response, OriginFailure>, before: BreakerState) {
        let policy = &self.protection.breaker;
        let failure = match result {
            Ok(response) if policy.counted_statuses.contains(response.status) => {
                Some(FailureKind::Fast)
            }
            Ok(_) => None,
            Err(failure) if failure.reached_origin() => Some(failure.kind()),
            // Held back by the edge: says nothing about the origin.
            Err(_) => return,
        };
        match failure {
            Some(_) => {
                if let Some(clean_read) = self.clean_read {
                    clean_read.forget();
                }
            }
            // A success leaves a clean breaker as it was. Failures others
            // recorded while this request was out happened after it was
            // sent: its success says nothing about them (and sparing the
            // read is one store call fewer on every miss).
            None if before.is_closed_and_clean() => return,
            None => {}
        }
        // Read again: other instances may have recorded outcomes meanwhile.
        let state = self.breaker_state().await;
        let next = match failure {
            Some(kind) => state.after_failure(self.now_ms(), policy, kind),
            None => state.after_success(),
        };
        if next != state {
            self.save_breaker(&next).await;
        }
    }
}

impl<O: Origin, S: Store, C: Clock> Origin for GuardedOrigin<'_, O, S, C> {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        let now_ms = self.now_ms();
        // The breaker as this request was let through, for `record`.
        let mut before = None;
        if self.protection.breaker.enabled() {
            let state = self.admitting_state(now_ms).await;
            match state.admit(now_ms, request.fallback) {
                Passage::Allow => {}
                Passage::Probe => {
                    self.save_breaker(&state.probing(now_ms, self.protection.lease))
                        .await;
                }
                Passage::Reject { retry_after } => {
                    return Err(OriginFailure::CircuitOpen { retry_after });
                }
            }
            before = Some(state);
        }
        if let Some(cap) = self.protection.max_concurrent {
            self.acquire_slot(cap, now_ms).await?;
        }
        let result = self.inner.send(request).await;
        if self.protection.max_concurrent.is_some() {
            self.release_slot().await;
        }
        if let Some(before) = before {
            self.record(&result, before).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    use crate::config::{BreakerPolicy, StatusSet};
    use crate::seams::Fallback;
    use crate::test_support::{
        FakeClock, FakeOrigin, MemStore, block_on, origin_request, status_response,
    };

    /// An origin answering with the status in `status` (0: timing out,
    /// 1: refusing the connection), so a test can change its health mid-way.
    fn origin_answering(status: &Rc<Cell<u16>>) -> FakeOrigin {
        let status = status.clone();
        FakeOrigin::new(move |_| match status.get() {
            0 => Err(OriginFailure::TimedOut(Duration::from_secs(1))),
            1 => Err(OriginFailure::Unreachable("connection refused")),
            code => Ok(status_response(code)),
        })
    }

    const PROTECTION: Protection = Protection {
        breaker: BreakerPolicy {
            failures: 2,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
            counted_statuses: StatusSet::from_codes(&[503]),
        },
        max_concurrent: None,
        lease: Duration::from_secs(1),
    };

    fn guard<'a>(
        origin: &'a FakeOrigin,
        store: &'a MemStore,
        clock: &'a FakeClock,
        protection: Protection,
    ) -> GuardedOrigin<'a, FakeOrigin, MemStore, FakeClock> {
        GuardedOrigin {
            inner: origin,
            name: "origin.test",
            store,
            clock,
            protection,
            lease_id: 1,
            clean_read: None,
        }
    }

    /// How many times the tests' origin's breaker was read.
    fn breaker_reads(store: &MemStore) -> usize {
        let reads = store.reads.borrow();
        reads
            .iter()
            .filter(|key| key.starts_with("o:breaker:"))
            .count()
    }

    #[test]
    fn the_breaker_opens_fails_fast_then_probes_and_closes() {
        let status = Rc::new(Cell::new(0));
        let origin = origin_answering(&status);
        let store = MemStore::default();
        let clock = FakeClock::at_unix_ms(1_000);
        let guarded = guard(&origin, &store, &clock, PROTECTION);
        assert!(block_on(guarded.send(origin_request())).is_err());
        status.set(503);
        assert_eq!(
            block_on(guarded.send(origin_request())).map(|r| r.status),
            Ok(503)
        );
        // Open: the origin is not asked.
        clock.set_unix_ms(2_000);
        assert_eq!(
            block_on(guarded.send(origin_request())),
            Err(OriginFailure::CircuitOpen {
                retry_after: Duration::from_secs(4)
            })
        );
        assert_eq!(origin.calls.get(), 2);
        // After the cool-down one probe goes through; it succeeds and closes.
        status.set(200);
        clock.set_unix_ms(6_000);
        assert_eq!(
            block_on(guarded.send(origin_request())).map(|r| r.status),
            Ok(200)
        );
        assert_eq!(
            block_on(guarded.send(origin_request())).map(|r| r.status),
            Ok(200)
        );
        assert_eq!(origin.calls.get(), 4);
        assert!(
            store.values.borrow().is_empty(),
            "a healthy origin leaves no state"
        );
    }

    #[test]
    fn a_success_reads_a_clean_breaker_once_and_leaves_later_failures_standing() {
        let store = Rc::new(MemStore::default());
        let clock = FakeClock::at_unix_ms(1_000);
        // While the request is out, another instance records a failure.
        let elsewhere = store.clone();
        let origin = FakeOrigin::new(move |_| {
            let failed = BreakerState::default().after_failure(
                1_000,
                &PROTECTION.breaker,
                FailureKind::Fast,
            );
            block_on(elsewhere.set("o:breaker:origin.test", &failed.encode())).unwrap();
            Ok(status_response(200))
        });
        let guarded = guard(&origin, &store, &clock, PROTECTION);
        assert_eq!(
            block_on(guarded.send(origin_request())).map(|r| r.status),
            Ok(200)
        );
        assert_eq!(breaker_reads(&store), 1, "read when let through, not again");
        // That failure came after this request was sent: its success does
        // not wipe it out.
        let standing = block_on(store.get("o:breaker:origin.test")).unwrap();
        assert_eq!(
            standing.map(|bytes| BreakerState::decode(&bytes).failures),
            Some(1)
        );
    }

    #[test]
    fn a_clean_breaker_is_read_once_per_trusted_while_and_a_failure_forgets_it() {
        let status = Rc::new(Cell::new(200));
        let origin = origin_answering(&status);
        let store = MemStore::default();
        let clock = FakeClock::at_unix_ms(1_000);
        let clean_read = CleanBreakerRead::default();
        let guarded = GuardedOrigin {
            clean_read: Some(&clean_read),
            ..guard(&origin, &store, &clock, PROTECTION)
        };
        let breaker_reads = || breaker_reads(&store);
        let send = || block_on(guarded.send(origin_request())).map(|r| r.status);
        assert_eq!(send(), Ok(200));
        assert_eq!(send(), Ok(200));
        assert_eq!(breaker_reads(), 1, "the clean reading stood for the second");
        // Another instance opens the breaker: honoured once the reading
        // is no longer trusted.
        let open = BreakerState {
            open_until_ms: 60_000,
            slow: true,
            ..BreakerState::default()
        };
        block_on(store.set("o:breaker:origin.test", &open.encode())).unwrap();
        clock.set_unix_ms(1_000 + CLEAN_BREAKER_TRUSTED_FOR.as_millis() as u64);
        assert!(matches!(
            block_on(guarded.send(origin_request())),
            Err(OriginFailure::CircuitOpen { .. })
        ));
        assert_eq!(breaker_reads(), 2);
        // An open breaker is read every time.
        assert!(send().is_err());
        assert_eq!(breaker_reads(), 3);
        // Closed again and read clean; then a failure here forgets it.
        block_on(store.delete("o:breaker:origin.test")).unwrap();
        assert_eq!(send(), Ok(200));
        assert_eq!(breaker_reads(), 4);
        status.set(503);
        assert_eq!(send(), Ok(503));
        assert_eq!(breaker_reads(), 5, "the failure was recorded by a read");
        status.set(200);
        assert_eq!(send(), Ok(200));
        // Read before sending (the failure stands), and again to clear it.
        assert_eq!(breaker_reads(), 7, "no clean reading after the failure");
        assert_eq!(send(), Ok(200));
        assert_eq!(breaker_reads(), 8, "clean again: read once");
        assert_eq!(send(), Ok(200));
        assert_eq!(breaker_reads(), 8);
        assert_eq!(origin.calls.get(), 7);
    }

    #[test]
    fn uncounted_statuses_never_open_the_breaker() {
        let origin = origin_answering(&Rc::new(Cell::new(500)));
        let store = MemStore::default();
        let clock = FakeClock::at_unix_ms(1_000);
        let guarded = guard(&origin, &store, &clock, PROTECTION);
        for _ in 0..10 {
            assert_eq!(
                block_on(guarded.send(origin_request())).map(|r| r.status),
                Ok(500)
            );
        }
        assert_eq!(origin.calls.get(), 10);
    }

    #[test]
    fn a_refusing_origin_is_still_tried_by_requests_with_nothing_stored() {
        let status = Rc::new(Cell::new(1));
        let origin = origin_answering(&status);
        let store = MemStore::default();
        let clock = FakeClock::at_unix_ms(1_000);
        let guarded = guard(&origin, &store, &clock, PROTECTION);
        let _ = block_on(guarded.send(origin_request()));
        let _ = block_on(guarded.send(origin_request()));
        // Open after two fast failures: a request with a stale copy gets
        // it at once, one with nothing stored still asks the origin.
        let with_stale = OriginRequest {
            fallback: Fallback::Stale,
            ..origin_request()
        };
        assert!(matches!(
            block_on(guarded.send(with_stale)),
            Err(OriginFailure::CircuitOpen { .. })
        ));
        assert_eq!(origin.calls.get(), 2);
        status.set(200);
        assert_eq!(
            block_on(guarded.send(origin_request())).map(|r| r.status),
            Ok(200)
        );
        assert_eq!(origin.calls.get(), 3);
        assert!(store.values.borrow().is_empty(), "the probe closed it");
    }

    #[test]
    fn other_instances_wait_while_the_probe_is_out() {
        let status = Rc::new(Cell::new(0));
        let origin = origin_answering(&status);
        let store = MemStore::default();
        let clock = FakeClock::at_unix_ms(1_000);
        let guarded = guard(&origin, &store, &clock, PROTECTION);
        let _ = block_on(guarded.send(origin_request()));
        let _ = block_on(guarded.send(origin_request()));
        clock.set_unix_ms(6_000);
        // The probe is claimed in the store before it is sent; model another
        // instance arriving meanwhile by claiming it the same way.
        let state = BreakerState::decode(
            &block_on(store.get("o:breaker:origin.test"))
                .unwrap()
                .unwrap(),
        );
        let probing = state.probing(6_000, Duration::from_secs(1)).encode();
        block_on(store.set("o:breaker:origin.test", &probing)).unwrap();
        assert!(matches!(
            block_on(guarded.send(origin_request())),
            Err(OriginFailure::CircuitOpen { .. })
        ));
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn held_back_requests_do_not_count_as_failures() {
        let status = Rc::new(Cell::new(200));
        let origin = origin_answering(&status);
        let store = MemStore::default();
        let clock = FakeClock::at_unix_ms(1_000);
        let protection = Protection {
            max_concurrent: Some(1),
            ..PROTECTION
        };
        let guarded = guard(&origin, &store, &clock, protection);
        // Another request holds the only slot.
        let mut leases = Leases::default();
        leases.try_acquire(99, 1_000, 5_000, 1);
        block_on(store.set("o:slots:origin.test", &leases.encode())).unwrap();
        for _ in 0..3 {
            assert_eq!(
                block_on(guarded.send(origin_request())),
                Err(OriginFailure::Busy { cap: 1 })
            );
        }
        assert_eq!(origin.calls.get(), 0);
        assert!(
            block_on(store.get("o:breaker:origin.test"))
                .unwrap()
                .is_none()
        );
        // Once it is released (or its lease ends), the slot is ours again.
        clock.set_unix_ms(5_000);
        assert_eq!(
            block_on(guarded.send(origin_request())).map(|r| r.status),
            Ok(200)
        );
        assert!(
            Leases::decode(&block_on(store.get("o:slots:origin.test")).unwrap().unwrap())
                .is_empty()
        );
    }

    #[test]
    fn a_failing_store_lets_every_request_through() {
        let status = Rc::new(Cell::new(1));
        let origin = origin_answering(&status);
        let clock = FakeClock::at_unix_ms(1_000);
        let protection = Protection {
            max_concurrent: Some(1),
            ..PROTECTION
        };
        let store = MemStore::default();
        store.broken.set(true);
        let guarded = guard(&origin, &store, &clock, protection);
        for _ in 0..5 {
            assert!(matches!(
                block_on(guarded.send(origin_request())),
                Err(OriginFailure::Unreachable(_))
            ));
        }
        assert_eq!(origin.calls.get(), 5);
    }
}
