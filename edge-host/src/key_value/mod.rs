//! Key-value stores (`fermyon:spin/key-value@2.0.0`) and their backends.
//!
//! A backend is a trait object so that adding one (Redis, a fault injector
//! for tests) touches one module and the runtime-config parser.

mod logged;
mod memory;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use logged::{LogLimit, LoggedStore, STORE_ERROR_LOG_INTERVAL};
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use crate::runtime_config::StoreConfig;

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
}

/// Opens the backend a runtime-config entry describes.
pub fn open_backend(label: &str, config: &StoreConfig) -> Result<Arc<dyn StoreBackend>, String> {
    match config {
        StoreConfig::Memory { capacity_bytes } => Ok(Arc::new(MemoryStore::new(*capacity_bytes))),
        StoreConfig::Spin { path } => SqliteStore::open(path, label)
            .map(|s| Arc::new(s) as Arc<dyn StoreBackend>)
            .map_err(|e| format!("key_value_store.{label}: {}: {e}", path.display())),
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
