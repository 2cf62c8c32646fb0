//! The `[key_value_store.<label>]` tables of `runtime-config.toml`: which
//! backend each store uses.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                  # SQLite file, as `spin up` uses
//! path = ".spin/kv.db"           # relative to the runtime-config file
//! capacity_bytes = 10737418240   # edge-host extension, optional: the disk
//!                                # tier's bound (Spin ignores the field)
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
    /// The `capacity_bytes` of each `type = "spin"` store that has one, by
    /// label (a store not listed is unbounded, as in Spin). Kept beside
    /// [`StoreConfig::Spin`] rather than in it, so that variant stays the
    /// fields Spin itself reads.
    pub spin_capacities: BTreeMap<String, u64>,
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
    /// `capacity_bytes` is read as any TOML value and checked here, so a
    /// wrong one is refused in words rather than in serde's type names.
    Memory {
        #[serde(default)]
        capacity_bytes: Option<toml::Value>,
    },
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
        #[serde(default)]
        capacity_bytes: Option<toml::Value>,
    },
    Redis {
        url: String,
        /// Read only to be refused in words (see [`KeyValueConfig::from_doc`]).
        #[serde(default)]
        capacity_bytes: Option<toml::Value>,
    },
}

impl KeyValueConfig {
    /// Checks the tables and fills in defaults; relative paths resolve
    /// against `base`. Errors name the field (`key_value_store.x.…`).
    pub(crate) fn from_doc(doc: StoresDoc, base: &Path) -> Result<Self, String> {
        let mut stores = BTreeMap::new();
        let mut spin_capacities = BTreeMap::new();
        for (label, store) in doc {
            let config = match store {
                StoreDoc::Memory { capacity_bytes } => StoreConfig::Memory {
                    capacity_bytes: match capacity_bytes {
                        Some(value) => capacity(&label, value)?,
                        None => DEFAULT_MEMORY_CAPACITY_BYTES,
                    },
                },
                StoreDoc::Spin {
                    path,
                    capacity_bytes,
                } => {
                    if let Some(value) = capacity_bytes {
                        spin_capacities.insert(label.clone(), capacity(&label, value)?);
                    }
                    StoreConfig::Spin {
                        path: base.join(path.unwrap_or_else(|| default_spin_store_path(&label))),
                    }
                }
                StoreDoc::Redis {
                    capacity_bytes: Some(_),
                    ..
                } => {
                    return Err(format!(
                        "key_value_store.{label}.capacity_bytes: a redis store takes no capacity \
                         here; bound it on the server (its maxmemory and an eviction policy)"
                    ));
                }
                // The URL is checked when the store is opened (with the
                // server's answer), where the message can say both.
                StoreDoc::Redis { url, .. } if url.trim().is_empty() => {
                    return Err(format!("key_value_store.{label}.url: must not be empty"));
                }
                StoreDoc::Redis { url, .. } => StoreConfig::Redis { url },
            };
            stores.insert(label, config);
        }
        Ok(KeyValueConfig {
            stores,
            spin_capacities,
        })
    }

    /// The `capacity_bytes` of `label` if it is a bounded `type = "spin"`
    /// store; `None` for an unbounded one (and any other type).
    pub fn spin_capacity(&self, label: &str) -> Option<u64> {
        self.spin_capacities.get(label).copied()
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

/// The `capacity_bytes` of store `label`: a whole number of bytes above 0,
/// or an error that says so in words.
fn capacity(label: &str, value: toml::Value) -> Result<u64, String> {
    let field = format!("key_value_store.{label}.capacity_bytes");
    let written = match value {
        toml::Value::Integer(n) if n > 0 => return Ok(n as u64),
        toml::Value::Integer(n) => format!("{n}"),
        toml::Value::Float(f) => format!("{f}"),
        toml::Value::String(s) => format!("the text {s:?}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    };
    Err(format!(
        "{field}: must be a whole number of bytes greater than 0, not {written}"
    ))
}

fn default_spin_store_path(label: &str) -> PathBuf {
    PathBuf::from(".spin").join(format!("{label}_key_value.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KeyValueConfig, String> {
        let doc: BTreeMap<String, StoresDoc> = toml::from_str(text).map_err(|e| e.to_string())?;
        let stores = doc.into_values().next().unwrap_or_default();
        KeyValueConfig::from_doc(stores, Path::new("/base"))
    }

    #[test]
    fn a_spin_store_may_have_a_capacity_and_is_unbounded_without_one() {
        let config = parse(
            "[key_value_store.disk]\ntype = \"spin\"\npath = \"d.db\"\ncapacity_bytes = 4096\n\
             [key_value_store.plain]\ntype = \"spin\"\n",
        )
        .unwrap();
        assert_eq!(
            config.store("disk"),
            Some(StoreConfig::Spin {
                path: "/base/d.db".into()
            })
        );
        assert_eq!(config.spin_capacity("disk"), Some(4096));
        assert_eq!(config.spin_capacity("plain"), None);
        assert_eq!(config.spin_capacity("default"), None);
    }

    #[test]
    fn a_bad_capacity_is_refused_in_words_naming_the_store_and_field() {
        for kind in ["spin", "memory"] {
            for (written, says) in [
                ("0", "not 0"),
                ("-5", "not -5"),
                ("1.5", "not 1.5"),
                ("\"64MiB\"", "not the text \"64MiB\""),
                ("true", "not true"),
                ("[1]", "not a list"),
            ] {
                let text = format!(
                    "[key_value_store.big]\ntype = \"{kind}\"\ncapacity_bytes = {written}\n"
                );
                let err = parse(&text).unwrap_err();
                assert_eq!(
                    err,
                    format!(
                        "key_value_store.big.capacity_bytes: must be a whole number of bytes \
                         greater than 0, {says}"
                    ),
                    "{text}"
                );
            }
        }
        let err = parse(
            "[key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://h\"\ncapacity_bytes = 10\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "key_value_store.shared.capacity_bytes: a redis store takes no capacity"
            ),
            "{err}"
        );
        // Unknown fields stay refused on every type, as before.
        let err = parse("[key_value_store.d]\ntype = \"spin\"\ncapacity = 10\n").unwrap_err();
        assert!(err.contains("capacity"), "{err}");
    }

    #[test]
    fn default_store_is_in_memory_without_config() {
        let config = KeyValueConfig::default();
        assert!(matches!(
            config.store("default"),
            Some(StoreConfig::Memory { .. })
        ));
    }
}
