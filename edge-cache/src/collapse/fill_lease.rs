//! Request collapsing across instances: a short lease in the store says
//! "this key is being filled", so a miss in another instance waits for that
//! fill instead of making its own.
//!
//! The lease is approximate, like the breaker: Spin's key-value interface
//! has no compare-and-set, so two instances that read "no lease" at the
//! same moment both take it and both fetch. It narrows a cold burst, it
//! does not serialize it. What it must never do is make a request wait for
//! nothing, so:
//! - a lease expires on its own after [`FILL_LEASE`]: an instance that dies
//!   mid-fill holds nobody up for longer than that;
//! - the holder deletes it when its fill ends, stored or not, and a waiter
//!   then looks the key up and fetches for itself if nothing was stored;
//! - a store error on any lease operation means "no lease": fetch.
//!
//! The value is the lease's expiry in Unix milliseconds, as decimal text.

use std::time::Duration;

use crate::policy::key::CacheKey;
use crate::seams::Clock;
use crate::store::keys::{NodeLocalKey, Store};
use crate::store::unix_ms;

/// How long a fill lease holds others back at most: about a slow origin's
/// time to first byte. A fill that takes longer lets its waiters go to the
/// origin themselves.
pub(crate) const FILL_LEASE: Duration = Duration::from_secs(2);

/// How often a waiter checks whether the lease it waits on is gone.
pub(crate) const LEASE_CHECK: Duration = Duration::from_millis(2);

/// Whose fill a miss is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This request took the lease: fetch, then [`FillLeases::release`].
    Mine,
    /// Another instance holds an unexpired lease: [`FillLeases::wait`].
    Theirs,
    /// The store could not say: fetch, holding nothing.
    Unknown,
}

/// The fill leases in one store.
pub(crate) struct FillLeases<'a, S, C> {
    pub store: &'a S,
    pub clock: &'a C,
}

impl<S: Store, C: Clock> FillLeases<'_, S, C> {
    /// Takes the lease on `key` unless another instance holds one.
    pub(crate) async fn claim(&self, key: &CacheKey) -> Claim {
        let lease = NodeLocalKey::fill_lease(key);
        let now = unix_ms(self.clock.now());
        match self.store.get(&lease).await {
            Err(_) => return Claim::Unknown,
            Ok(Some(value)) if held_at(&value, now) => return Claim::Theirs,
            Ok(_) => {}
        }
        let expires = now + FILL_LEASE.as_millis() as u64;
        match self.store.set(&lease, expires.to_string().as_bytes()).await {
            Ok(()) => Claim::Mine,
            Err(_) => Claim::Unknown,
        }
    }

    /// Ends this request's fill: waiters go on at their next check.
    pub(crate) async fn release(&self, key: &CacheKey) {
        // A failed delete leaves the lease to expire on its own.
        let _ = self.store.delete(&NodeLocalKey::fill_lease(key)).await;
    }

    /// Returns once no unexpired lease on `key` is held (released, expired,
    /// or unreadable), checking every [`LEASE_CHECK`].
    pub(crate) async fn wait(&self, key: &CacheKey) {
        let lease = NodeLocalKey::fill_lease(key);
        loop {
            self.clock.pause(LEASE_CHECK).await;
            let now = unix_ms(self.clock.now());
            match self.store.get(&lease).await {
                Ok(Some(value)) if held_at(&value, now) => {}
                _ => return,
            }
        }
    }
}

/// Whether a lease value is unexpired at `now_ms`; an unreadable one is not
/// (it holds nobody back).
fn held_at(value: &[u8], now_ms: u64) -> bool {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .is_some_and(|expires| expires > now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::key::hash128;
    use crate::test_support::{FakeClock, MemStore, block_on};

    fn key() -> CacheKey {
        CacheKey {
            canonical: "k".into(),
            hash: hash128(b"k"),
        }
    }

    #[test]
    fn the_first_claim_is_mine_the_next_is_theirs_until_released() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(1_000_000));
        let leases = FillLeases {
            store: &store,
            clock: &clock,
        };
        assert_eq!(block_on(leases.claim(&key())), Claim::Mine);
        assert_eq!(block_on(leases.claim(&key())), Claim::Theirs);
        block_on(leases.release(&key()));
        assert_eq!(block_on(leases.claim(&key())), Claim::Mine);
    }

    #[test]
    fn a_lease_lapses_on_its_own() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(1_000_000));
        let leases = FillLeases {
            store: &store,
            clock: &clock,
        };
        assert_eq!(block_on(leases.claim(&key())), Claim::Mine);
        clock.set_unix_ms(1_000_000 + FILL_LEASE.as_millis() as u64);
        assert_eq!(block_on(leases.claim(&key())), Claim::Mine);
    }

    #[test]
    fn an_unreadable_lease_holds_nobody_back() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(1_000_000));
        block_on(store.set(&NodeLocalKey::fill_lease(&key()), b"soon")).unwrap();
        let leases = FillLeases {
            store: &store,
            clock: &clock,
        };
        assert_eq!(block_on(leases.claim(&key())), Claim::Mine);
    }
}
