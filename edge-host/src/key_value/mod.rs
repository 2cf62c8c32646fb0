//! Key-value stores (`fermyon:spin/key-value@2.0.0`): the backend seam, the
//! backends, their runtime-config section, and each instance's state.
//!
//! At start-up [`AppStores`] opens each store label once, from the runtime
//! config or an embedder's override, and hands every component the stores
//! its manifest lists ([`ComponentStores`]); per request, [`host`] serves
//! the guest's calls from those, and [`leases`] keeps the fill leases an
//! instance holds, to delete them if it fails. A backend is a trait object, so adding one
//! (Redis, a fault injector for tests) touches its own module,
//! [`runtime_config`] and [`open_backend`].

pub mod host;
mod leases;
mod logged;
mod memory;
mod redis;
pub mod runtime_config;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use host::KeyValueState;
pub use leases::LeftLeases;
pub use logged::{LogLimit, LoggedStore, STORE_ERROR_LOG_INTERVAL};
pub use memory::MemoryStore;
/// Which keys are fill leases, the ones [`leases`] releases: the edge
/// component's contract, spelt once in `purge-wire`.
pub use purge_wire::is_fill_lease_key;
pub use redis::{RedisStore, redact_url};
pub use runtime_config::{KeyValueConfig, StoreConfig};
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take the value (bigger than its whole capacity).
    #[error("store is full: {0}")]
    TableFull(String),
    /// The backend failed (I/O, database error, unavailable).
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Storage behind one key-value store label.
#[async_trait::async_trait]
pub trait StoreBackend: Send + Sync {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`, replacing any previous value.
    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Whether `key` has a value.
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// Every key in the store.
    async fn get_keys(&self) -> Result<Vec<String>, StoreError>;
    /// The most it holds, in bytes of keys and values (`None`: unbounded,
    /// or bounded elsewhere, as Redis by its `maxmemory`).
    fn capacity_bytes(&self) -> Option<u64> {
        None
    }
}

/// Opens the backend a runtime-config entry describes; `spin_capacity` is
/// the entry's `capacity_bytes` when it is a bounded `type = "spin"` store
/// ([`KeyValueConfig::spin_capacity`]).
pub fn open_backend(
    label: &str,
    config: &StoreConfig,
    spin_capacity: Option<u64>,
) -> Result<Arc<dyn StoreBackend>, String> {
    match config {
        StoreConfig::Memory { capacity_bytes } => Ok(Arc::new(MemoryStore::new(*capacity_bytes))),
        StoreConfig::Spin { path } => SqliteStore::open(path, label, spin_capacity)
            .map(|s| Arc::new(s) as Arc<dyn StoreBackend>)
            .map_err(|e| format!("key_value_store.{label}: {}: {e}", path.display())),
        StoreConfig::Redis { url } => {
            RedisStore::open(label, url).map(|s| Arc::new(s) as Arc<dyn StoreBackend>)
        }
    }
}

/// Backends an embedder supplies by store label, taking precedence over the
/// runtime config: how tests put a fault-injecting store under a component.
#[derive(Clone, Default)]
pub struct StoreOverrides(pub BTreeMap<String, Arc<dyn StoreBackend>>);

impl std::fmt::Debug for StoreOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a component's stores could not be provided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreSetupError {
    /// The manifest names a label that neither the runtime config nor an
    /// override defines.
    #[error("no key-value store `{0}` is defined; add [key_value_store.{0}] to the runtime config")]
    Undefined(String),
    /// The configured backend would not open; the message names the
    /// runtime-config table and the cause.
    #[error("{0}")]
    Open(String),
}

/// The stores of one application, each label opened once (on first use)
/// and shared by every component that lists it. Failures are logged,
/// rate-limited ([`LoggedStore`]).
pub struct AppStores<'a> {
    config: &'a KeyValueConfig,
    overrides: &'a StoreOverrides,
    opened: BTreeMap<String, Arc<dyn StoreBackend>>,
}

impl<'a> AppStores<'a> {
    /// Stores from `overrides` first, else as `config` describes them.
    pub fn new(config: &'a KeyValueConfig, overrides: &'a StoreOverrides) -> Self {
        AppStores {
            config,
            overrides,
            opened: BTreeMap::new(),
        }
    }

    /// The stores a component's `key_value_stores` lists, opening those no
    /// earlier component opened.
    pub fn for_component(&mut self, labels: &[String]) -> Result<ComponentStores, StoreSetupError> {
        let mut stores = BTreeMap::new();
        for label in labels {
            stores.insert(label.clone(), self.open(label)?);
        }
        Ok(ComponentStores(Arc::new(stores)))
    }

    fn open(&mut self, label: &str) -> Result<Arc<dyn StoreBackend>, StoreSetupError> {
        if let Some(backend) = self.opened.get(label) {
            return Ok(backend.clone());
        }
        let inner = match self.overrides.0.get(label) {
            Some(backend) => backend.clone(),
            None => {
                let config = self
                    .config
                    .store(label)
                    .ok_or_else(|| StoreSetupError::Undefined(label.to_owned()))?;
                open_backend(label, &config, self.config.spin_capacity(label))
                    .map_err(StoreSetupError::Open)?
            }
        };
        let backend: Arc<dyn StoreBackend> = Arc::new(LoggedStore::new(label, inner));
        self.opened.insert(label.to_owned(), backend.clone());
        Ok(backend)
    }
}

/// The stores one component may open, by label: its manifest's
/// `key_value_stores`, every one of them open.
#[derive(Clone, Default)]
pub struct ComponentStores(Arc<BTreeMap<String, Arc<dyn StoreBackend>>>);

impl ComponentStores {
    /// The backend of `label`, if the component may open it.
    pub fn get(&self, label: &str) -> Option<&Arc<dyn StoreBackend>> {
        self.0.get(label)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Runs `f` to completion on a fresh single-threaded runtime.
    pub(crate) fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_opened_once_and_shared_and_an_undefined_one_is_named() {
        let config = KeyValueConfig::default();
        let overrides = StoreOverrides::default();
        let mut stores = AppStores::new(&config, &overrides);
        let labels = ["default".to_owned()];
        let a = stores.for_component(&labels).unwrap();
        let b = stores.for_component(&labels).unwrap();
        assert!(Arc::ptr_eq(
            a.get("default").unwrap(),
            b.get("default").unwrap()
        ));
        assert!(a.get("other").is_none());
        let err = stores
            .for_component(&["other".to_owned()])
            .err()
            .expect("undefined");
        assert_eq!(err, StoreSetupError::Undefined("other".to_owned()));
    }
}
