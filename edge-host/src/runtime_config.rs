//! Spin-format `runtime-config.toml`: reads the file and hands each table
//! to the capability that owns it. Only key-value stores are configured
//! here today ([`crate::key_value::runtime_config`]); a table no capability
//! owns is an error, as in `spin up`.

use std::path::Path;

use serde::Deserialize;

use crate::key_value::runtime_config::{KeyValueConfig, StoresDoc};
use crate::manifest::one_line;

/// The parsed runtime configuration, one section per capability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `[key_value_store.<label>]`: the backend of each store.
    pub key_value: KeyValueConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeConfigDoc {
    #[serde(default)]
    key_value_store: StoresDoc,
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
        let doc: RuntimeConfigDoc = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        Ok(RuntimeConfig {
            key_value: KeyValueConfig::from_doc(doc.key_value_store, base)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::runtime_config::StoreConfig;

    #[test]
    fn parses_both_backends() {
        let config = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n\
             [key_value_store.cache]\ntype = \"memory\"\ncapacity_bytes = 1024\n",
            Path::new("/etc/app"),
        )
        .unwrap()
        .key_value;
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
    fn parses_a_redis_store_as_spin_writes_it() {
        let config = RuntimeConfig::parse(
            "[key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://cache:6379/1\"\n",
            Path::new("."),
        )
        .unwrap()
        .key_value;
        assert_eq!(
            config.store("shared"),
            Some(StoreConfig::Redis {
                url: "redis://cache:6379/1".into()
            })
        );
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
            ("[key_value_store.x]\ntype = \"redis\"\n", "url"),
            (
                "[key_value_store.x]\ntype = \"redis\"\nurl = \" \"\n",
                "key_value_store.x.url",
            ),
            (
                "[key_value_store.x]\ntype = \"redis\"\nurl = \"redis://h\"\npath = \"p\"\n",
                "path",
            ),
        ];
        for (text, needle) in cases {
            let err = RuntimeConfig::parse(text, Path::new(".")).unwrap_err();
            assert!(err.contains(needle), "expected `{needle}` in: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
