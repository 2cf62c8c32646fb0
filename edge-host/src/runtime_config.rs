//! Spin-format `runtime-config.toml`: which backend each key-value store uses.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                  # SQLite file, as `spin up` uses
//! path = ".spin/kv.db"           # relative to the runtime-config file
//!
//! [key_value_store.cache]
//! type = "memory"                # edge-host extension: bounded, LRU
//! capacity_bytes = 67108864
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default byte budget of an in-memory store.
pub const DEFAULT_MEMORY_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// The parsed runtime configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Key-value store backends by store label.
    pub key_value_stores: BTreeMap<String, StoreConfig>,
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
        /// The database file.
        path: PathBuf,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeConfigDoc {
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum StoreDoc {
    Memory {
        #[serde(default)]
        capacity_bytes: Option<u64>,
    },
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
    },
}

impl RuntimeConfig {
    /// Reads a runtime-config file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses runtime-config text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let doc: RuntimeConfigDoc = toml::from_str(text).map_err(|e| {
            e.to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "|")
                .collect::<Vec<_>>()
                .join(" ")
        })?;
        let mut key_value_stores = BTreeMap::new();
        for (label, store) in doc.key_value_store {
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
            };
            key_value_stores.insert(label, config);
        }
        Ok(RuntimeConfig { key_value_stores })
    }

    /// The backend for `label`: configured, or the embedded default for the
    /// `default` store (in memory), or none.
    pub fn store(&self, label: &str) -> Option<StoreConfig> {
        self.key_value_stores.get(label).cloned().or_else(|| {
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
    fn parses_both_backends() {
        let config = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n\
             [key_value_store.cache]\ntype = \"memory\"\ncapacity_bytes = 1024\n",
            Path::new("/etc/app"),
        )
        .unwrap();
        assert_eq!(
            config.store("default"),
            Some(StoreConfig::Spin {
                path: "/etc/app/kv.db".into()
            })
        );
        assert_eq!(
            config.store("cache"),
            Some(StoreConfig::Memory {
                capacity_bytes: 1024
            })
        );
        assert_eq!(config.store("other"), None);
    }

    #[test]
    fn default_store_is_in_memory_without_config() {
        let config = RuntimeConfig::default();
        assert!(matches!(
            config.store("default"),
            Some(StoreConfig::Memory { .. })
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[key_value_store.x]\ntype = \"dynamo\"\n", "dynamo"),
            (
                "[key_value_store.x]\ntype = \"memory\"\ncapacity = 5\n",
                "capacity",
            ),
            (
                "[key_value_store.x]\ntype = \"memory\"\ncapacity_bytes = 0\n",
                "key_value_store.x.capacity_bytes",
            ),
            ("[sqlite_database.x]\ntype = \"spin\"\n", "sqlite_database"),
            ("[key_value_store.x]\npath = \"a\"\n", "type"),
        ];
        for (text, needle) in cases {
            let err = RuntimeConfig::parse(text, Path::new(".")).unwrap_err();
            assert!(err.contains(needle), "expected `{needle}` in: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
