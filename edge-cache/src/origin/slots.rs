//! The cap on concurrent fetches from one origin, as leases in a list.
//!
//! Each fetch in flight holds a lease (an id and an expiry) in one store
//! value per origin. A lease expires on its own, so an instance that dies
//! mid-fetch cannot hold its slot for ever. Without compare-and-swap in the
//! store this is approximate: two instances updating the list at the same
//! moment can lose one update, letting one fetch too many through or keeping
//! a finished one's slot until its lease expires.

use serde::{Deserialize, Serialize};

/// The leases of fetches in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leases(Vec<Lease>);

/// One fetch in flight: `[id, expires_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Lease(u64, u64);

impl Leases {
    /// Decodes a stored list; an unreadable one is empty (failing open).
    pub(crate) fn decode(bytes: &[u8]) -> Leases {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// The bytes kept under the origin's `o:slots:` key.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Takes a slot for `id` until `expires_ms` if fewer than `cap` live
    /// leases remain at `now_ms`; expired leases are dropped either way.
    pub(crate) fn try_acquire(&mut self, id: u64, now_ms: u64, expires_ms: u64, cap: u32) -> bool {
        self.0.retain(|lease| lease.1 > now_ms);
        if self.0.len() >= cap as usize {
            return false;
        }
        self.0.push(Lease(id, expires_ms));
        true
    }

    /// Gives back `id`'s slot.
    pub(crate) fn release(&mut self, id: u64) {
        self.0.retain(|lease| lease.0 != id);
    }

    #[cfg(test)]
    /// How many leases are held (expired ones included until pruned).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    /// Whether no lease is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_cap_leases_and_release_frees_one() {
        let mut leases = Leases::default();
        assert!(leases.try_acquire(1, 0, 1_000, 2));
        assert!(leases.try_acquire(2, 0, 1_000, 2));
        assert!(!leases.try_acquire(3, 0, 1_000, 2));
        leases.release(1);
        assert!(leases.try_acquire(3, 0, 1_000, 2));
        assert_eq!(leases.len(), 2);
    }

    #[test]
    fn expired_leases_do_not_count() {
        let mut leases = Leases::default();
        assert!(leases.try_acquire(1, 0, 500, 1));
        assert!(!leases.try_acquire(2, 499, 1_500, 1));
        assert!(leases.try_acquire(2, 500, 1_500, 1));
        assert_eq!(leases.len(), 1);
    }

    #[test]
    fn stored_form_round_trips_and_garbage_reads_as_empty() {
        let mut leases = Leases::default();
        leases.try_acquire(7, 0, 9, 4);
        assert_eq!(Leases::decode(&leases.encode()), leases);
        assert!(Leases::decode(b"[[1]").is_empty());
    }
}
