//! How large an object the cache stores by default: sized to its store.
//!
//! An eighth of the store's capacity, between 1 MiB and 1 GiB, where the
//! host says what the capacity is (edge-host answers a read of
//! [`purge_wire::STORE_CAPACITY_KEY`]); 1 GiB where it does not (Spin's
//! stores say nothing: a SQLite file on disk, or Redis bounded by its own
//! `maxmemory`). So the default 64 MiB memory store keeps objects up to
//! 8 MiB and a 10 GiB disk tier a video or an installer, and one large
//! object never evicts most of the cache on its way in. A rule's own
//! `max_object_bytes` is the operator's choice and is kept, but never
//! above a known capacity: an object the store cannot hold would only
//! evict everything else and then itself.

use std::cell::Cell;

use crate::policy::rules::DEFAULT_MAX_OBJECT_BYTES;
use crate::store::keys::{NodeLocalKey, Store};

/// The default where the capacity is unknown, and the most it is anywhere.
pub(crate) const LARGEST_DEFAULT: u64 = 1 << 30;

/// The largest object stored, for a rule's own limit (if it has one) and
/// the store's capacity (if it is known).
pub(crate) fn object_limit(rule_limit: Option<u64>, capacity: Option<u64>) -> u64 {
    match (rule_limit, capacity) {
        (Some(limit), Some(capacity)) => limit.min(capacity),
        (Some(limit), None) => limit,
        (None, Some(capacity)) => (capacity / 8).clamp(DEFAULT_MAX_OBJECT_BYTES, LARGEST_DEFAULT),
        (None, None) => LARGEST_DEFAULT,
    }
}

/// A store's capacity, read once per instance.
#[derive(Default)]
pub(crate) struct StoreCapacity(Cell<Option<Option<u64>>>);

impl StoreCapacity {
    /// The capacity of `store` in bytes, if its host says; a store error
    /// is taken as "unknown".
    pub(crate) async fn of<S: Store>(&self, store: &S) -> Option<u64> {
        if let Some(known) = self.0.get() {
            return known;
        }
        let capacity = match store.get(&NodeLocalKey::capacity()).await {
            Ok(Some(text)) => std::str::from_utf8(&text)
                .ok()
                .and_then(|text| text.parse().ok()),
            _ => None,
        };
        self.0.set(Some(capacity));
        capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{MemStore, block_on};

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_default_is_an_eighth_of_the_store_between_1_mib_and_1_gib() {
        assert_eq!(object_limit(None, Some(64 * MIB)), 8 * MIB);
        assert_eq!(object_limit(None, Some(4 * MIB)), MIB);
        assert_eq!(object_limit(None, Some(100 << 30)), 1 << 30);
        assert_eq!(object_limit(None, None), 1 << 30);
        // A rule's own limit stands, within the store.
        assert_eq!(object_limit(Some(5), Some(64 * MIB)), 5);
        assert_eq!(object_limit(Some(1 << 30), Some(64 * MIB)), 64 * MIB);
        assert_eq!(object_limit(Some(1 << 40), None), 1 << 40);
    }

    #[test]
    fn the_capacity_is_read_once_from_the_hosts_reserved_key() {
        let store = MemStore::default();
        let capacity = StoreCapacity::default();
        block_on(store.set(&NodeLocalKey::capacity(), b"1048576")).unwrap();
        assert_eq!(block_on(capacity.of(&store)), Some(MIB));
        block_on(store.set(&NodeLocalKey::capacity(), b"5")).unwrap();
        assert_eq!(block_on(capacity.of(&store)), Some(MIB), "read once");
        let unknown = StoreCapacity::default();
        assert_eq!(block_on(unknown.of(&MemStore::default())), None);
    }
}
