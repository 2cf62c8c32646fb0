//! The `[key_value_store.<label>]` tables of `runtime-config.toml`: which
//! backend each store uses.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                  # SQLite file, as `spin up` uses
//! path = ".spin/kv.db"           # relative to the runtime-config file
//!
//! [key_value_store.cache]
//! type = "memory"                # edge-host extension: bounded, LRU
//! capacity_bytes = 67108864
//!
//! [key_value_store.shared]
//! type = "redis"                 # Redis or Valkey, as in Spin
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! The crate's `runtime_config` module reads the file and hands this module
//! its tables, still as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default byte budget of an in-memory store.
pub const DEFAULT_MEMORY_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// The key-value section, checked and with paths resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValueConfig {
    /// Backends by store label, as configured (without the implicit
    /// `default`; see [`KeyValueConfig::store`]).
    pub stores: BTreeMap<String, StoreConfig>,
}

/// How one key-value store is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In memory, evicting least recently used entries beyond a byte budget.
    Memory {
        /// Sum of key and value sizes kept at most.
        capacity_bytes: u64,
    },
    /// A SQLite file (Spin's default backend), persistent across restarts.
    Spin {
        /// Resolved against the runtime-config file's directory.
        path: PathBuf,
    },
    /// A Redis or Valkey server, shared by every process that names it.
    Redis {
        /// `redis://[user[:password]@]host[:port][/db]`, as Spin takes it.
        url: String,
    },
}

/// The `key_value_store` tables as written, by label.
pub(crate) type StoresDoc = BTreeMap<String, StoreDoc>;

/// One `[key_value_store.<label>]` table as written.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum StoreDoc {
    Memory {
        #[serde(default)]
        capacity_bytes: Option<u64>,
    },
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
}

impl KeyValueConfig {
    /// Checks the tables and fills in defaults; relative paths resolve
    /// against `base`. Errors name the field (`key_value_store.x.…`).
    pub(crate) fn from_doc(doc: StoresDoc, base: &Path) -> Result<Self, String> {
        let mut stores = BTreeMap::new();
        for (label, store) in doc {
            let config = match store {
                StoreDoc::Memory { capacity_bytes } => {
                    let capacity_bytes = capacity_bytes.unwrap_or(DEFAULT_MEMORY_CAPACITY_BYTES);
                    if capacity_bytes == 0 {
                        return Err(format!(
                            "key_value_store.{label}.capacity_bytes: must be greater than 0"
                        ));
                    }
                    StoreConfig::Memory { capacity_bytes }
                }
                StoreDoc::Spin { path } => StoreConfig::Spin {
                    path: base.join(path.unwrap_or_else(|| default_spin_store_path(&label))),
                },
                // The URL is checked when the store is opened (with the
                // server's answer), where the message can say both.
                StoreDoc::Redis { url } if url.trim().is_empty() => {
                    return Err(format!("key_value_store.{label}.url: must not be empty"));
                }
                StoreDoc::Redis { url } => StoreConfig::Redis { url },
            };
            stores.insert(label, config);
        }
        Ok(KeyValueConfig { stores })
    }

    /// The backend for `label`: configured, or the embedded default for the
    /// `default` store (in memory), or none.
    pub fn store(&self, label: &str) -> Option<StoreConfig> {
        self.stores.get(label).cloned().or_else(|| {
            (label == "default").then_some(StoreConfig::Memory {
                capacity_bytes: DEFAULT_MEMORY_CAPACITY_BYTES,
            })
        })
    }
}

fn default_spin_store_path(label: &str) -> PathBuf {
    PathBuf::from(".spin").join(format!("{label}_key_value.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_is_in_memory_without_config() {
        let config = KeyValueConfig::default();
        assert!(matches!(
            config.store("default"),
            Some(StoreConfig::Memory { .. })
        ));
    }
}
