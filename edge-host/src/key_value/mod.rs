//! Key-value stores (`fermyon:spin/key-value@2.0.0`): the backend seam, the
//! backends, their runtime-config section, and each instance's state.
//!
//! At start-up [`AppStores`] opens each store label once, from the runtime
//! config or an embedder's override, and hands every component the stores
//! its manifest lists ([`ComponentStores`]); per request, [`host`] serves
//! the guest's calls from those, and [`leases`] keeps the fill leases an
//! instance holds, to delete them if it fails. A backend is a trait object, so adding one
//! (Redis, a fault injector for tests) touches its own module,
//! [`runtime_config`] and [`open_backend`]. On a reload, [`changes`] says
//! which labels keep their open instance and which are opened again
//! ([`AppStores::reloaded`]).

pub mod changes;
pub mod host;
mod leases;
mod logged;
pub(crate) mod memory;
mod redis;
pub mod runtime_config;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use changes::{StoreChange, store_changes};

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
    /// What it can tell cheaply of its size, for `edge_store_*` at scrape
    /// time (never on a request's path); nothing by default (Redis).
    fn size(&self) -> crate::observe::store_sizes::StoreSize {
        Default::default()
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
pub struct AppStores {
    config: KeyValueConfig,
    overrides: StoreOverrides,
    opened: BTreeMap<String, Arc<dyn StoreBackend>>,
}

impl AppStores {
    /// Stores from `overrides` first, else as `config` describes them.
    pub fn new(config: KeyValueConfig, overrides: StoreOverrides) -> Self {
        AppStores {
            config,
            overrides,
            opened: BTreeMap::new(),
        }
    }

    /// The stores as `config` describes them, for a reload: every label
    /// open here whose definition is the same keeps its very instance (a
    /// memory store its entries, a Redis store its connection); one whose
    /// definition changed is opened anew. All or nothing: if a label a
    /// component uses is no longer defined, or a new one does not open,
    /// the error says which and these stores stay as they are. Also what
    /// happened to each label, for the log.
    pub fn reloaded(
        &self,
        config: KeyValueConfig,
    ) -> Result<(AppStores, BTreeMap<String, StoreChange>), String> {
        let open = self
            .opened
            .keys()
            .map(String::as_str)
            .filter(|label| !self.overrides.0.contains_key(*label));
        let changes = store_changes(&self.config, &config, open);
        let mut opened = self.opened.clone();
        for (label, change) in &changes {
            match change {
                StoreChange::Kept | StoreChange::Unused => {}
                StoreChange::Undefined => {
                    return Err(format!(
                        "key_value_store.{label}: a component's key_value_stores lists it and \
                         the new runtime config no longer defines it"
                    ));
                }
                StoreChange::Reopened => {
                    let store = config
                        .store(label)
                        .ok_or_else(|| format!("key_value_store.{label}: not defined"))?;
                    let inner = open_backend(label, &store, config.spin_capacity(label))?;
                    opened.insert(label.clone(), Arc::new(LoggedStore::new(label, inner)));
                }
            }
        }
        let stores = AppStores {
            config,
            overrides: self.overrides.clone(),
            opened,
        };
        Ok((stores, changes))
    }

    /// The configuration the stores were opened from.
    pub fn config(&self) -> &KeyValueConfig {
        &self.config
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
    /// Whether `other` holds the very same store instances under the same
    /// labels (a reload that changed none of them).
    pub fn same_instances(&self, other: &ComponentStores) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y))
    }

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
        let mut stores = AppStores::new(KeyValueConfig::default(), StoreOverrides::default());
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

#[cfg(test)]
mod reload_tests {
    use std::path::Path;

    use super::*;
    use crate::runtime_config::RuntimeConfig;

    fn config(text: &str) -> KeyValueConfig {
        RuntimeConfig::parse(text, Path::new("/nonexistent"))
            .unwrap()
            .key_value
    }

    #[test]
    fn a_reload_keeps_unchanged_instances_and_entries_and_opens_changed_ones() {
        let mut stores = AppStores::new(
            config(
                "[key_value_store.default]\ntype = \"memory\"\n[key_value_store.l2]\ntype = \"memory\"\n",
            ),
            StoreOverrides::default(),
        );
        let before = stores
            .for_component(&["default".to_owned(), "l2".to_owned()])
            .unwrap();
        test_support::block(before.get("default").unwrap().set("k", b"v".to_vec())).unwrap();
        let (reloaded, changes) = stores
            .reloaded(config(
                "[key_value_store.default]\ntype = \"memory\"\n\
                 [key_value_store.l2]\ntype = \"memory\"\ncapacity_bytes = 4096\n",
            ))
            .unwrap();
        assert_eq!(changes["default"], StoreChange::Kept);
        assert_eq!(changes["l2"], StoreChange::Reopened);
        let mut reloaded = reloaded;
        let after = reloaded
            .for_component(&["default".to_owned(), "l2".to_owned()])
            .unwrap();
        assert!(Arc::ptr_eq(
            before.get("default").unwrap(),
            after.get("default").unwrap()
        ));
        assert_eq!(
            test_support::block(after.get("default").unwrap().get("k")).unwrap(),
            Some(b"v".to_vec()),
            "the kept memory store keeps its entries"
        );
        assert!(!Arc::ptr_eq(
            before.get("l2").unwrap(),
            after.get("l2").unwrap()
        ));
        assert_eq!(after.get("l2").unwrap().capacity_bytes(), Some(4096));
        assert!(!before.same_instances(&after));
    }

    #[test]
    fn a_reload_that_cannot_open_a_store_or_loses_one_changes_nothing() {
        let mut stores = AppStores::new(KeyValueConfig::default(), StoreOverrides::default());
        stores.for_component(&["default".to_owned()]).unwrap();
        // A directory that cannot be made: its parent is a file.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let path = dir.path().join("file/kv.db");
        let unreachable = stores
            .reloaded(config(&format!(
                "[key_value_store.default]\ntype = \"spin\"\npath = {:?}\n",
                path.display().to_string()
            )))
            .err()
            .expect("a path under a file does not open");
        assert!(
            unreachable.contains("key_value_store.default"),
            "{unreachable}"
        );
        assert!(
            unreachable.contains(&path.display().to_string()),
            "{unreachable}"
        );
        let mut named = AppStores::new(
            config("[key_value_store.extra]\ntype = \"memory\"\n"),
            StoreOverrides::default(),
        );
        named.for_component(&["extra".to_owned()]).unwrap();
        let lost = named
            .reloaded(KeyValueConfig::default())
            .err()
            .expect("a used store may not disappear");
        assert!(lost.contains("key_value_store.extra"), "{lost}");
    }
}
