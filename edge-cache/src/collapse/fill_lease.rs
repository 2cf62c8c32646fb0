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
//! A fill that streams a large object in chunks keeps its lease until the
//! last chunk and the head are written, renewing it with each chunk (so a
//! long fill that makes progress holds waiters, one that stalls lets them
//! go), and announces in it, after a newline, the head the object will be
//! stored with: a waiter then answers from the chunks as they are written
//! ([`LeaseState::Streaming`]) instead of waiting for the whole object.

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

/// What a waiter reads in a key's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// No unexpired lease (released, lapsed, unreadable): the fill ended.
    Free,
    /// A fill is under way.
    Held,
    /// A fill is under way, streaming in chunks: the head it will store
    /// (an encoded entry), whose chunks appear as they are written.
    Streaming(Vec<u8>),
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
        match self.store.set(&lease, &lease_value(now, None)).await {
            Ok(()) => Claim::Mine,
            Err(_) => Claim::Unknown,
        }
    }

    /// Renews this request's lease on `key` for another [`FILL_LEASE`],
    /// announcing `head` (an encoded entry) if the fill streams.
    pub(crate) async fn renew(&self, key: &CacheKey, head: Option<&[u8]>) {
        let now = unix_ms(self.clock.now());
        let lease = NodeLocalKey::fill_lease(key);
        // A failed write lets the lease lapse: waiters fetch for themselves.
        let _ = self.store.set(&lease, &lease_value(now, head)).await;
    }

    /// What the lease on `key` says now.
    pub(crate) async fn read(&self, key: &CacheKey) -> LeaseState {
        let now = unix_ms(self.clock.now());
        match self.store.get(&NodeLocalKey::fill_lease(key)).await {
            Ok(Some(value)) => state_at(value, now),
            _ => LeaseState::Free,
        }
    }

    /// Ends this request's fill: waiters go on at their next check.
    pub(crate) async fn release(&self, key: &CacheKey) {
        // A failed delete leaves the lease to expire on its own.
        let _ = self.store.delete(&NodeLocalKey::fill_lease(key)).await;
    }

    /// Returns once the lease on `key` is no longer merely held: the fill
    /// ended ([`LeaseState::Free`]) or streams, checking every
    /// [`LEASE_CHECK`].
    pub(crate) async fn wait(&self, key: &CacheKey) -> LeaseState {
        loop {
            self.clock.pause(LEASE_CHECK).await;
            match self.read(key).await {
                LeaseState::Held => {}
                state => return state,
            }
        }
    }
}

/// Whether a lease value is unexpired at `now_ms`.
fn held_at(value: &[u8], now_ms: u64) -> bool {
    let expiry = value.split(|&b| b == b'\n').next().unwrap_or_default();
    std::str::from_utf8(expiry)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .is_some_and(|expires| expires > now_ms)
}

/// A lease's value from `now_ms`: its expiry, then the announced head.
fn lease_value(now_ms: u64, head: Option<&[u8]>) -> Vec<u8> {
    let expires = now_ms + FILL_LEASE.as_millis() as u64;
    let mut value = expires.to_string().into_bytes();
    if let Some(head) = head {
        value.push(b'\n');
        value.extend_from_slice(head);
    }
    value
}

/// What a lease value says at `now_ms`; an unreadable or expired one holds
/// nobody back.
fn state_at(mut value: Vec<u8>, now_ms: u64) -> LeaseState {
    match value.iter().position(|&b| b == b'\n') {
        _ if !held_at(&value, now_ms) => LeaseState::Free,
        None => LeaseState::Held,
        Some(at) => LeaseState::Streaming(value.split_off(at + 1)),
    }
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
    fn a_streaming_fill_announces_its_head_and_renews_its_lease() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(1_000_000));
        let leases = FillLeases {
            store: &store,
            clock: &clock,
        };
        assert_eq!(block_on(leases.claim(&key())), Claim::Mine);
        assert_eq!(block_on(leases.read(&key())), LeaseState::Held);
        let head = b"head\nwith a newline".to_vec();
        clock.set_unix_ms(1_000_000 + FILL_LEASE.as_millis() as u64 - 1);
        block_on(leases.renew(&key(), Some(&head)));
        clock.set_unix_ms(1_000_000 + FILL_LEASE.as_millis() as u64 + 1);
        assert_eq!(block_on(leases.read(&key())), LeaseState::Streaming(head));
        assert_eq!(block_on(leases.claim(&key())), Claim::Theirs);
        clock.set_unix_ms(1_000_000 + 2 * FILL_LEASE.as_millis() as u64);
        assert_eq!(block_on(leases.read(&key())), LeaseState::Free);
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
