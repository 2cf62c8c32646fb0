//! The `type = "spin"` backend: a SQLite file, in the same schema `spin up`
//! uses, so data survives restarts and is shared by every instance.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreBackend, StoreError};

/// A key-value store kept in a SQLite database file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
    label: String,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` for store `label`.
    pub fn open(path: &Path, label: &str) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let connection = Connection::open(path).map_err(|e| e.to_string())?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS spin_key_value (
                     store TEXT NOT NULL,
                     key   TEXT NOT NULL,
                     value BLOB NOT NULL,
                     PRIMARY KEY (store, key)
                 );",
            )
            .map_err(|e| e.to_string())?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
            label: label.to_owned(),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&connection).map_err(backend)
    }
}

#[async_trait::async_trait]
impl StoreBackend for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![self.label, key], |row| row.get(0))
                .optional()
        })
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![self.label, key, value])
            .map(drop)
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute(params![self.label, key])
                .map(drop)
        })
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.get(key).await.map(|v| v.is_some())
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?
                .query_map(params![self.label], |row| row.get(0))?
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::test_support::block;

    #[test]
    fn values_survive_reopening_and_stores_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kv.db");
        block(async {
            let a = SqliteStore::open(&path, "a").unwrap();
            a.set("k", b"v1".to_vec()).await.unwrap();
            a.set("k", b"v2".to_vec()).await.unwrap();
            a.set("gone", b"x".to_vec()).await.unwrap();
            a.delete("gone").await.unwrap();
            drop(a);

            let a = SqliteStore::open(&path, "a").unwrap();
            assert_eq!(a.get("k").await.unwrap(), Some(b"v2".to_vec()));
            assert!(!a.exists("gone").await.unwrap());
            assert_eq!(a.get_keys().await.unwrap(), vec!["k".to_owned()]);

            let b = SqliteStore::open(&path, "b").unwrap();
            assert_eq!(b.get("k").await.unwrap(), None);
        });
    }
}
