//! The core's [`Host`] over what edge-host gives the component: its
//! variables, its key-value stores and its files, read in this process.
//! It never writes a store through the core (the component is the writer;
//! the one exception, a damaged chunk's head, is `chunks`'s) and cannot
//! reach an origin or wait: anything that would need either is not a
//! plain fresh hit, and the request goes to the component.

use std::sync::Arc;
use std::time::Duration;

use edge_cache::{
    Clock, Host, KeyValueStore, Origin, OriginEndpoint, OriginFailure, OriginRequest, Response,
    StoreFailure,
};

use crate::files::FileMounts;
use crate::key_value::host::capacity_value;
use crate::key_value::{ComponentStores, StoreBackend};
use crate::variables::ComponentVariables;

/// A component's configuration and stores, as its instances see them.
pub(crate) struct NativeHost {
    pub variables: ComponentVariables,
    pub stores: ComponentStores,
    pub files: FileMounts,
}

/// A store, read-only.
pub(crate) struct ReadOnlyStore(Arc<dyn StoreBackend>);

/// Never answers: a native hit never goes to the origin.
pub(crate) struct NoOrigin;

/// The system clock; a pause never ends (a native hit never waits).
pub(crate) struct SystemClock;

impl Host for NativeHost {
    type Store = ReadOnlyStore;
    type Origin = NoOrigin;
    type Clock = SystemClock;
    // Natively, as in a reused instance: a first tier of decoded entries,
    // checked against the purge epoch on every hit.
    const INSTANCES_OUTLIVE_REQUESTS: bool = true;

    async fn variable(&self, name: &'static str) -> Option<String> {
        self.variables.value(name)
    }

    async fn open_store(&self, label: &str) -> Result<ReadOnlyStore, String> {
        match self.stores.get(label) {
            Some(backend) => Ok(ReadOnlyStore(backend.clone())),
            None => Err(format!("the component may not open store `{label}`")),
        }
    }

    fn origin(&self, _: OriginEndpoint) -> NoOrigin {
        NoOrigin
    }

    fn clock(&self) -> SystemClock {
        SystemClock
    }

    fn random_u64(&self) -> u64 {
        0
    }

    fn read_file(&self, path: &str) -> std::io::Result<String> {
        self.files.read_guest_file(path)
    }
}

impl KeyValueStore for ReadOnlyStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        if key == purge_wire::STORE_CAPACITY_KEY {
            return Ok(capacity_value(self.0.as_ref()));
        }
        self.0
            .get(key)
            .await
            .map_err(|error| StoreFailure(error.to_string()))
    }

    async fn set(&self, _: &str, _: &[u8]) -> Result<(), StoreFailure> {
        Err(StoreFailure("native hits never write the store".into()))
    }

    async fn delete(&self, _: &str) -> Result<(), StoreFailure> {
        Err(StoreFailure("native hits never write the store".into()))
    }
}

impl Origin for NoOrigin {
    async fn send(&self, _: OriginRequest) -> Result<Response, OriginFailure> {
        std::future::pending().await
    }
}

impl Clock for SystemClock {
    async fn pause(&self, _: Duration) {
        std::future::pending().await
    }
}
