//! The fill leases an instance holds: keys it set under
//! [`purge_wire::FILL_LEASE_KEY_PREFIX`] and has not deleted. The edge
//! component takes a lease while it fetches a key from the origin, and
//! deletes it when the fetch ends; other instances wanting the same key
//! wait for it. An instance that traps, or is stopped at a limit, never
//! deletes its leases, and every request for those keys would wait until
//! they lapse on their own (two seconds). So an instance's leases end with
//! it: whatever it still holds when it is dropped is deleted.
//!
//! A lease is deleted only if it still has the value this instance wrote:
//! once it lapsed, another instance may have taken it, and that one's
//! lease is not this instance's to end. (Read, then delete: a store with
//! no compare-and-delete leaves a moment between the two; a lease is
//! approximate anyway, and the worst case lets another instance's waiters
//! fetch for themselves.)

use std::collections::HashMap;
use std::sync::Arc;

use super::StoreBackend;

/// The leases one instance holds, by store and key.
#[derive(Default)]
pub(crate) struct HeldLeases {
    held: HashMap<(StoreId, String), Lease>,
}

/// A store, told apart from others by its backend's address (each label is
/// opened once per application).
type StoreId = usize;

fn store_id(backend: &Arc<dyn StoreBackend>) -> StoreId {
    Arc::as_ptr(backend).cast::<()>() as usize
}

/// A lease as this instance wrote it.
struct Lease {
    backend: Arc<dyn StoreBackend>,
    key: String,
    value: Vec<u8>,
}

impl HeldLeases {
    /// The instance set `key` to `value` in `backend`: held, if `key` is a
    /// fill lease's.
    pub(crate) fn set(&mut self, backend: &Arc<dyn StoreBackend>, key: &str, value: Vec<u8>) {
        if purge_wire::is_fill_lease_key(key) {
            let lease = Lease {
                backend: backend.clone(),
                key: key.to_owned(),
                value,
            };
            self.held.insert((store_id(backend), key.to_owned()), lease);
        }
    }

    /// The instance deleted `key` from `backend`: no longer held.
    pub(crate) fn deleted(&mut self, backend: &Arc<dyn StoreBackend>, key: &str) {
        if purge_wire::is_fill_lease_key(key) {
            self.held.remove(&(store_id(backend), key.to_owned()));
        }
    }

    /// Takes the leases still held, to be released ([`LeftLeases::release`]).
    pub(crate) fn take(&mut self) -> LeftLeases {
        LeftLeases(self.held.drain().map(|(_, lease)| lease).collect())
    }
}

/// An instance's leases that outlive it unless released: dropping them
/// releases them in a task of their own on the current runtime.
impl Drop for HeldLeases {
    fn drop(&mut self) {
        let left = self.take();
        if left.0.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(left.release());
        }
        // With no runtime (the host is stopping), they lapse on their own.
    }
}

/// Leases an instance left behind.
#[must_use = "release them, or they hold other requests back until they lapse"]
pub struct LeftLeases(Vec<Lease>);

impl LeftLeases {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Deletes each lease that still has the value its instance wrote;
    /// returns how many were deleted. A store error leaves that lease to
    /// lapse on its own.
    pub async fn release(self) -> usize {
        let mut released = 0;
        for lease in self.0 {
            let ours = matches!(lease.backend.get(&lease.key).await, Ok(Some(value)) if value == lease.value);
            if ours && lease.backend.delete(&lease.key).await.is_ok() {
                released += 1;
            }
        }
        if released > 0 {
            tracing::debug!("released {released} fill lease(s) a failed instance held");
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::MemoryStore;
    use crate::key_value::test_support::block;

    fn store() -> Arc<dyn StoreBackend> {
        Arc::new(MemoryStore::new(1 << 20))
    }

    #[test]
    fn only_lease_keys_are_held_until_deleted_and_left_ones_are_released() {
        let (a, b) = (store(), store());
        let mut held = HeldLeases::default();
        block(async {
            for (backend, key) in [(&a, "f:1"), (&a, "f:2"), (&b, "f:1"), (&a, "c:1")] {
                backend.set(key, b"9".to_vec()).await.unwrap();
                held.set(backend, key, b"9".to_vec());
            }
            a.delete("f:2").await.unwrap();
            held.deleted(&a, "f:2");
            let left = held.take();
            assert_eq!(left.len(), 2, "f:1 in each store; c:1 is not a lease");
            assert_eq!(left.release().await, 2);
            assert_eq!(a.get("f:1").await.unwrap(), None);
            assert_eq!(b.get("f:1").await.unwrap(), None);
            assert_eq!(a.get("c:1").await.unwrap(), Some(b"9".to_vec()));
        });
    }

    #[test]
    fn a_lease_another_instance_took_since_is_left_alone() {
        let a = store();
        let mut held = HeldLeases::default();
        block(async {
            a.set("f:1", b"1000".to_vec()).await.unwrap();
            held.set(&a, "f:1", b"1000".to_vec());
            // Lapsed, and taken by another instance.
            a.set("f:1", b"3000".to_vec()).await.unwrap();
            assert_eq!(held.take().release().await, 0);
            assert_eq!(a.get("f:1").await.unwrap(), Some(b"3000".to_vec()));
        });
    }

    #[test]
    fn dropped_leases_are_released_on_the_runtime() {
        let a = store();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            a.set("f:1", b"1".to_vec()).await.unwrap();
            let mut held = HeldLeases::default();
            held.set(&a, "f:1", b"1".to_vec());
            drop(held);
            for _ in 0..100 {
                if a.get("f:1").await.unwrap().is_none() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            panic!("the dropped lease was not released");
        });
    }
}
