//! The core's [`Host`] over what edge-host gives the component: its
//! variables, its key-value stores, its files and its origins, used in
//! this process. A store is written as the component writes it (the host
//! side of `wasi:keyvalue` does nothing more for a write than the backend
//! does, but for releasing a failed instance's fill leases; a native
//! request that stops holding one, at shutdown, leaves it to expire, as
//! its lifetime is for), and an origin is reached over the same pool,
//! allow-list and timeouts ([`NativeOrigin`]).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edge_cache::{Clock, Host, KeyValueStore, OriginEndpoint, StoreFailure};

use super::origin::NativeOrigin;
use crate::instance::ComponentContext;
use crate::key_value::StoreBackend;
use crate::key_value::host::capacity_value;

/// A component's configuration, stores and origins, as its instances see
/// them.
pub(crate) struct NativeHost {
    pub context: Arc<ComponentContext>,
}

/// One of the component's stores.
pub(crate) struct NativeStore(Arc<dyn StoreBackend>);

/// The system clock; a pause is a timer of the runtime's.
pub(crate) struct SystemClock;

impl Host for NativeHost {
    type Store = NativeStore;
    type Origin = NativeOrigin;
    type Clock = SystemClock;
    // Natively, as in a reused instance: a first tier of decoded entries,
    // checked against the purge epoch on every hit.
    const INSTANCES_OUTLIVE_REQUESTS: bool = true;

    async fn variable(&self, name: &'static str) -> Option<String> {
        self.context.variables.value(name)
    }

    async fn open_store(&self, label: &str) -> Result<NativeStore, String> {
        match self.context.key_value.get(label) {
            Some(backend) => Ok(NativeStore(backend.clone())),
            None => Err(format!("the component may not open store `{label}`")),
        }
    }

    fn origin(&self, endpoint: OriginEndpoint) -> NativeOrigin {
        NativeOrigin {
            endpoint,
            context: self.context.clone(),
        }
    }

    fn clock(&self) -> SystemClock {
        SystemClock
    }

    /// Unique among concurrent requests (the origin's concurrency cap
    /// tells them apart by it) and unpredictable: a counter through a
    /// randomly keyed hash.
    fn random_u64(&self) -> u64 {
        static DRAWN: AtomicU64 = AtomicU64::new(0);
        RandomState::new().hash_one(DRAWN.fetch_add(1, Ordering::Relaxed))
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        self.context.files.read_guest_file(path)
    }
}

impl KeyValueStore for NativeStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        if key == purge_wire::STORE_CAPACITY_KEY {
            return Ok(capacity_value(self.0.as_ref()));
        }
        self.0
            .get(key)
            .await
            .map_err(|error| StoreFailure(error.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.0
            .set(key, value.to_vec())
            .await
            .map_err(|error| StoreFailure(error.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.0
            .delete(key)
            .await
            .map_err(|error| StoreFailure(error.to_string()))
    }
}

impl Clock for SystemClock {
    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
