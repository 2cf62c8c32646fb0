//! The `type = "spin"` backend: a SQLite file, in the same schema `spin up`
//! uses, so data survives restarts and is shared by every instance.
//!
//! # The bounded disk tier (`capacity_bytes`)
//!
//! Without `capacity_bytes` the store is Spin's: values in
//! `spin_key_value(store, key, value)` and nothing else, growing until the
//! disk is full. With it, the store keeps the sum of its key and value
//! bytes (as the memory store counts them) at most the capacity, evicting
//! the least recently used entries (read or written) to make room for a
//! write, and refusing a single entry larger than the whole capacity
//! ([`StoreError::TableFull`], the key's previous value kept).
//!
//! Spin's table stays exactly Spin's, so `spin up` reads and writes the same
//! file. What the bound needs lives in a side table of ours,
//! `edge_host_key_value_lru(store, key, size, used)`: each entry's size and
//! the moment (a counter, not a clock) it was last used. It is written in the
//! same transaction as the value it describes, so the accounting survives a
//! restart or a crash exactly; opening the file reads it (not the values)
//! and evicts down to the capacity, which may be smaller than last time.
//!
//! Recency is kept in memory: the entries ordered by last use, rebuilt from
//! the side table at open. A read reorders that list and marks the entry;
//! it does not write to the file. The marks are written (one `INSERT … ON
//! CONFLICT` per entry read, however often) once every [`RECENCY_INTERVAL`]
//! at most, by the first operation after it has passed (in a write's own
//! transaction), and when the store is closed. So a hit costs the SELECT it
//! cost before plus an in-memory reorder; a key read a thousand times in
//! the interval is written once; and a crash loses at most the last few
//! seconds of reads' recency (never an entry or a byte of accounting). A
//! first version also wrote the marks every 1,024 reads: that cost a hit
//! 3.3 µs on average (5.0 to 8.3 µs, the `costs` test), nearly all of it
//! those writes, as keys seldom repeat within 1,024 reads; now a hit costs
//! 5.0 to 6.0 µs against 5.0 to 5.6 µs unbounded. A write that evicts one
//! 1 KiB entry costs about 110 µs against 30 µs for an unbounded write
//! (two more deletes and the side-table row, in one transaction).
//!
//! Opening reconciles the side table with Spin's: rows whose value is gone
//! are dropped and values without a row (written by `spin up`, or while the
//! store was unbounded) are counted from their lengths, as least recently
//! used. A value that `spin up` rewrote in place keeps the size edge-host
//! last recorded until edge-host writes it again. An unbounded open forgets
//! the store's rows, so the next bounded open counts every value afresh.
//! One process owns a bounded store's accounting: another process writing
//! the same store label at the same time is seen only through its reads'
//! sizes and at the next open.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{StoreBackend, StoreError};
use crate::observe::store_sizes::StoreSize;

/// How long recency marks wait before they are written to the file.
const RECENCY_INTERVAL: Duration = Duration::from_secs(5);

/// A key-value store kept in a SQLite database file.
pub struct SqliteStore {
    inner: Mutex<Inner>,
    label: String,
    capacity_bytes: Option<u64>,
}

struct Inner {
    connection: Connection,
    /// The accounting of a store with a capacity; `None` when unbounded.
    bound: Option<Bound>,
}

/// A bounded store's entries by size and recency (see the module
/// documentation).
struct Bound {
    capacity: u64,
    /// Sum of the sizes in `entries`.
    used_bytes: u64,
    entries: HashMap<Arc<str>, Entry>,
    /// `(last use, key)` of every entry, least recently used first.
    order: BTreeSet<(u64, Arc<str>)>,
    /// The next use's counter value.
    next_use: u64,
    /// Entries read since their last use was written to the side table.
    unwritten: HashSet<Arc<str>>,
    /// When the side table was last brought up to date.
    written_at: Instant,
    /// [`RECENCY_INTERVAL`], shorter in tests.
    recency_interval: Duration,
    /// Entries evicted to make room since the store was opened.
    evictions: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    size: u64,
    used: u64,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl Bound {
    fn new(capacity: u64) -> Self {
        Bound {
            capacity,
            used_bytes: 0,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            next_use: 1,
            unwritten: HashSet::new(),
            written_at: Instant::now(),
            recency_interval: RECENCY_INTERVAL,
            evictions: 0,
        }
    }

    /// Records `key` (of `size` bytes) as used last, now or at `used`.
    fn put(&mut self, key: &str, size: u64, used: Option<u64>) -> Arc<str> {
        let used = used.unwrap_or_else(|| {
            let now = self.next_use;
            self.next_use += 1;
            now
        });
        self.next_use = self.next_use.max(used + 1);
        let key: Arc<str> = match self.entries.get_key_value(key) {
            Some((key, old)) => {
                let key = key.clone();
                self.order.remove(&(old.used, key.clone()));
                self.used_bytes -= old.size;
                key
            }
            None => Arc::from(key),
        };
        self.entries.insert(key.clone(), Entry { size, used });
        self.order.insert((used, key.clone()));
        self.used_bytes += size;
        key
    }

    fn forget(&mut self, key: &str) {
        if let Some((key, old)) = self.entries.remove_entry(key) {
            self.order.remove(&(old.used, key.clone()));
            self.unwritten.remove(&key);
            self.used_bytes -= old.size;
        }
    }

    /// The entries to evict, least recently used first, for the store to
    /// hold `incoming` bytes more than it does (never `keep`).
    fn victims(&self, incoming: u64, keep: Option<&str>) -> Vec<Arc<str>> {
        let mut after = self.used_bytes + incoming;
        let mut victims = Vec::new();
        for (_, key) in &self.order {
            if after <= self.capacity {
                break;
            }
            if Some(&**key) != keep {
                after -= self.entries[key].size;
                victims.push(key.clone());
            }
        }
        victims
    }

    /// Whether the pending recency marks are to be written now.
    fn recency_due(&self) -> bool {
        !self.unwritten.is_empty() && self.written_at.elapsed() >= self.recency_interval
    }

    /// After the pending marks were written.
    fn recency_written(&mut self) {
        self.unwritten.clear();
        self.written_at = Instant::now();
    }
}

const SIDE_TABLE: &str = "CREATE TABLE IF NOT EXISTS edge_host_key_value_lru (
     store TEXT    NOT NULL,
     key   TEXT    NOT NULL,
     size  INTEGER NOT NULL,
     used  INTEGER NOT NULL,
     PRIMARY KEY (store, key)
 ) WITHOUT ROWID;";

const UPSERT_SIDE: &str = "INSERT INTO edge_host_key_value_lru (store, key, size, used)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (store, key) DO UPDATE SET size = excluded.size, used = excluded.used";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` for store `label`,
    /// bounded to `capacity_bytes` of keys and values if given.
    pub fn open(path: &Path, label: &str, capacity_bytes: Option<u64>) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut connection = Connection::open(path).map_err(|e| e.to_string())?;
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
        let bound = match capacity_bytes {
            Some(capacity) => Some(
                Self::load_bound(&mut connection, label, capacity).map_err(|e| e.to_string())?,
            ),
            None => {
                Self::forget_accounting(&connection, label).map_err(|e| e.to_string())?;
                None
            }
        };
        Ok(SqliteStore {
            capacity_bytes,
            inner: Mutex::new(Inner { connection, bound }),
            label: label.to_owned(),
        })
    }

    /// An unbounded open drops the store's side-table rows (if there is a
    /// side table): writes made now are not counted, so a later bounded
    /// open must count every value from its length.
    fn forget_accounting(connection: &Connection, label: &str) -> rusqlite::Result<()> {
        let has_side_table = connection
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'edge_host_key_value_lru'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if has_side_table {
            connection.execute(
                "DELETE FROM edge_host_key_value_lru WHERE store = ?1",
                params![label],
            )?;
        }
        Ok(())
    }

    /// Reconciles the side table with Spin's, reads it into memory and
    /// evicts down to `capacity`, in one transaction.
    fn load_bound(
        connection: &mut Connection,
        label: &str,
        capacity: u64,
    ) -> rusqlite::Result<Bound> {
        connection.execute_batch(SIDE_TABLE)?;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM edge_host_key_value_lru
             WHERE store = ?1 AND NOT EXISTS (
                 SELECT 1 FROM spin_key_value v
                 WHERE v.store = ?1 AND v.key = edge_host_key_value_lru.key)",
            params![label],
        )?;
        // Values nobody counted yet: least recently used of all (0).
        tx.execute(
            "INSERT INTO edge_host_key_value_lru (store, key, size, used)
             SELECT ?1, v.key, length(CAST(v.key AS BLOB)) + length(v.value), 0
             FROM spin_key_value v
             WHERE v.store = ?1 AND NOT EXISTS (
                 SELECT 1 FROM edge_host_key_value_lru l WHERE l.store = ?1 AND l.key = v.key)",
            params![label],
        )?;
        let mut bound = Bound::new(capacity);
        {
            let mut rows =
                tx.prepare("SELECT key, size, used FROM edge_host_key_value_lru WHERE store = ?1")?;
            let mut rows = rows.query(params![label])?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let size: i64 = row.get(1)?;
                let used: i64 = row.get(2)?;
                bound.put(&key, size.max(0) as u64, Some(used.max(0) as u64));
            }
        }
        let victims = bound.victims(0, None);
        Self::evict(&tx, label, &victims)?;
        tx.commit()?;
        for key in &victims {
            bound.forget(key);
        }
        bound.evictions += victims.len() as u64;
        Ok(bound)
    }

    fn evict(
        tx: &rusqlite::Transaction<'_>,
        label: &str,
        victims: &[Arc<str>],
    ) -> rusqlite::Result<()> {
        let mut value =
            tx.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
        let mut side =
            tx.prepare_cached("DELETE FROM edge_host_key_value_lru WHERE store = ?1 AND key = ?2")?;
        for key in victims {
            value.execute(params![label, &**key])?;
            side.execute(params![label, &**key])?;
        }
        Ok(())
    }

    /// Writes the pending recency marks (their sizes too: an entry first
    /// seen by a read has no row yet).
    fn write_recency(
        tx: &rusqlite::Transaction<'_>,
        label: &str,
        bound: &Bound,
    ) -> rusqlite::Result<()> {
        let mut upsert = tx.prepare_cached(UPSERT_SIDE)?;
        for key in &bound.unwritten {
            if let Some(entry) = bound.entries.get(key) {
                upsert.execute(params![label, &**key, entry.size as i64, entry.used as i64])?;
            }
        }
        Ok(())
    }

    fn flush_recency(inner: &mut Inner, label: &str) -> rusqlite::Result<()> {
        let Some(bound) = inner.bound.as_mut() else {
            return Ok(());
        };
        if bound.unwritten.is_empty() {
            return Ok(());
        }
        let tx = inner.connection.transaction()?;
        Self::write_recency(&tx, label, bound)?;
        tx.commit()?;
        bound.recency_written();
        Ok(())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut inner).map_err(backend)
    }

    /// Bytes of keys and values the store accounts for (bounded stores);
    /// `None` when unbounded.
    pub fn used_bytes(&self) -> Option<u64> {
        self.with(|inner| Ok(inner.bound.as_ref().map(|b| b.used_bytes)))
            .ok()
            .flatten()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        // Best effort: losing recency loses no entry.
        let _ = Self::flush_recency(inner, &self.label);
    }
}

#[async_trait::async_trait]
impl StoreBackend for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|inner| {
            let value: Option<Vec<u8>> = inner
                .connection
                .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![self.label, key], |row| row.get(0))
                .optional()?;
            let Some(bound) = inner.bound.as_mut() else {
                return Ok(value);
            };
            match &value {
                Some(value) => {
                    let key = bound.put(key, entry_size(key, value), None);
                    bound.unwritten.insert(key);
                    if bound.recency_due() {
                        Self::flush_recency(inner, &self.label)?;
                    }
                }
                // Deleted by another process: its row goes at the next open.
                None => bound.forget(key),
            }
            Ok(value)
        })
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let inner = &mut *inner;
        let Some(bound) = inner.bound.as_mut() else {
            return inner
                .connection
                .prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![self.label, key, value]))
                .map(drop)
                .map_err(backend);
        };
        let size = entry_size(key, &value);
        if size > bound.capacity {
            return Err(StoreError::TableFull(format!(
                "entry of {size} bytes exceeds this store's capacity_bytes, {}",
                bound.capacity
            )));
        }
        let previous = bound.entries.get(key).map_or(0, |e| e.size);
        let victims = bound.victims(size.saturating_sub(previous), Some(key));
        let used = bound.next_use;
        let recency = bound.recency_due();
        let mut write = || -> rusqlite::Result<()> {
            let tx = inner
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![self.label, key, value])?;
            // Recency first: the evictions then delete any victim's row.
            if recency {
                Self::write_recency(&tx, &self.label, bound)?;
            }
            Self::evict(&tx, &self.label, &victims)?;
            tx.prepare_cached(UPSERT_SIDE)?.execute(params![
                self.label,
                key,
                size as i64,
                used as i64
            ])?;
            tx.commit()
        };
        write().map_err(backend)?;
        for victim in &victims {
            bound.forget(victim);
        }
        bound.evictions += victims.len() as u64;
        bound.put(key, size, Some(used));
        if recency {
            bound.recency_written();
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|inner| {
            let Some(bound) = inner.bound.as_mut() else {
                return inner
                    .connection
                    .prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .execute(params![self.label, key])
                    .map(drop);
            };
            let tx = inner
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Recency first: the delete then removes the key's own row.
            let recency = bound.recency_due();
            if recency {
                Self::write_recency(&tx, &self.label, bound)?;
            }
            Self::evict(&tx, &self.label, &[Arc::from(key)])?;
            tx.commit()?;
            bound.forget(key);
            if recency {
                bound.recency_written();
            }
            Ok(())
        })
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        // Not a use: recency is left as it was.
        self.with(|inner| {
            inner
                .connection
                .prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists(params![self.label, key])
        })
    }

    fn capacity_bytes(&self) -> Option<u64> {
        self.capacity_bytes
    }

    /// A bounded store's accounting, under the lock a request holds for
    /// as long; an unbounded one would need a `COUNT(*)` and tells nothing.
    fn size(&self) -> StoreSize {
        self.with(|inner| {
            Ok(inner.bound.as_ref().map(|bound| StoreSize {
                entries: Some(bound.entries.len() as u64),
                bytes: Some(bound.used_bytes),
                capacity_bytes: Some(bound.capacity),
                evictions: Some(bound.evictions),
            }))
        })
        .ok()
        .flatten()
        .unwrap_or_default()
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        self.with(|inner| {
            inner
                .connection
                .prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?
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
            let a = SqliteStore::open(&path, "a", None).unwrap();
            a.set("k", b"v1".to_vec()).await.unwrap();
            a.set("k", b"v2".to_vec()).await.unwrap();
            a.set("gone", b"x".to_vec()).await.unwrap();
            a.delete("gone").await.unwrap();
            drop(a);

            let a = SqliteStore::open(&path, "a", None).unwrap();
            assert_eq!(a.get("k").await.unwrap(), Some(b"v2".to_vec()));
            assert!(!a.exists("gone").await.unwrap());
            assert_eq!(a.get_keys().await.unwrap(), vec!["k".to_owned()]);

            let b = SqliteStore::open(&path, "b", None).unwrap();
            assert_eq!(b.get("k").await.unwrap(), None);
        });
    }

    /// The bytes the file holds for `label`: Spin's table (key and value
    /// lengths) and what the side table accounts.
    fn file_bytes(path: &Path, label: &str) -> (u64, u64) {
        let c = Connection::open(path).unwrap();
        let held: i64 = c
            .query_row(
                "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0)
                 FROM spin_key_value WHERE store = ?1",
                params![label],
                |row| row.get(0),
            )
            .unwrap();
        let accounted: i64 = c
            .query_row(
                "SELECT coalesce(sum(size), 0) FROM edge_host_key_value_lru WHERE store = ?1",
                params![label],
                |row| row.get(0),
            )
            .unwrap_or(0);
        (held as u64, accounted as u64)
    }

    /// Entries of 20 bytes: a one-letter key and 19 bytes of value.
    fn twenty(byte: u8) -> Vec<u8> {
        vec![byte; 19]
    }

    async fn keys(store: &SqliteStore) -> Vec<String> {
        let mut keys = store.get_keys().await.unwrap();
        keys.sort();
        keys
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted_first_and_exists_is_not_a_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let store = SqliteStore::open(&path, "s", Some(100)).unwrap();
            for key in ["a", "b", "c", "d", "e"] {
                store.set(key, twenty(1)).await.unwrap();
            }
            assert_eq!(store.used_bytes(), Some(100));
            // "a" is read, so "b" is now the least recently used.
            assert!(store.get("a").await.unwrap().is_some());
            store.set("f", twenty(2)).await.unwrap();
            assert_eq!(keys(&store).await, ["a", "c", "d", "e", "f"]);
            // `exists` does not save "c"; rewriting "d" saves it.
            assert!(store.exists("c").await.unwrap());
            store.set("d", twenty(3)).await.unwrap();
            store.set("g", twenty(4)).await.unwrap();
            assert_eq!(keys(&store).await, ["a", "d", "e", "f", "g"]);
            // A larger value makes room for itself, oldest first ("e", "a").
            store.set("f", vec![5; 59]).await.unwrap();
            assert_eq!(keys(&store).await, ["d", "f", "g"]);
            assert_eq!(store.used_bytes(), Some(100));
            assert_eq!(store.get("f").await.unwrap(), Some(vec![5; 59]));
            // A delete gives its bytes back.
            store.delete("g").await.unwrap();
            assert_eq!(store.used_bytes(), Some(80));
            assert_eq!(file_bytes(&path, "s"), (80, 80));
            // "b", "c", "e" and "a" were evicted; the delete is not an eviction.
            assert_eq!(
                store.size(),
                StoreSize {
                    entries: Some(2),
                    bytes: Some(80),
                    capacity_bytes: Some(100),
                    evictions: Some(4),
                }
            );
            let unbounded = SqliteStore::open(&path, "u", None).unwrap();
            assert_eq!(unbounded.size(), StoreSize::default());
        });
    }

    #[test]
    fn an_entry_larger_than_the_capacity_is_refused_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let store = SqliteStore::open(&path, "s", Some(16)).unwrap();
            store.set("k", b"kept".to_vec()).await.unwrap();
            store.set("j", b"also".to_vec()).await.unwrap();
            let err = store.set("big", vec![0; 14]).await.unwrap_err();
            assert_eq!(
                err,
                StoreError::TableFull(
                    "entry of 17 bytes exceeds this store's capacity_bytes, 16".into()
                )
            );
            // Refused too when it is the key's new value: the old one stays,
            // and nothing was evicted for it.
            assert!(store.set("k", vec![0; 16]).await.is_err());
            assert_eq!(store.get("k").await.unwrap(), Some(b"kept".to_vec()));
            assert_eq!(store.get("j").await.unwrap(), Some(b"also".to_vec()));
            // Exactly the capacity fits, alone.
            store.set("k", vec![0; 15]).await.unwrap();
            assert_eq!(keys(&store).await, ["k"]);
            assert_eq!(file_bytes(&path, "s"), (16, 16));
        });
    }

    #[test]
    fn many_random_writes_never_exceed_the_capacity_and_the_file_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let capacity = 10_000;
            let store = SqliteStore::open(&path, "s", Some(capacity)).unwrap();
            // Another store in the same file, unbounded, is left alone.
            let other = SqliteStore::open(&path, "other", None).unwrap();
            other.set("x", vec![0; 50_000]).await.unwrap();
            let mut state = 7u64;
            let mut next = |n: u64| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) % n
            };
            for _ in 0..3_000 {
                let key = format!("key{}", next(200));
                match next(10) {
                    0 => store.delete(&key).await.unwrap(),
                    1..=3 => drop(store.get(&key).await.unwrap()),
                    _ => {
                        let value = vec![next(256) as u8; next(1_500) as usize];
                        store.set(&key, value.clone()).await.unwrap();
                        assert_eq!(store.get(&key).await.unwrap(), Some(value));
                    }
                }
                assert!(store.used_bytes().unwrap() <= capacity);
            }
            let used = store.used_bytes().unwrap();
            assert!(used > capacity / 2, "{used}");
            assert_eq!(file_bytes(&path, "s"), (used, used));
            assert_eq!(other.get("x").await.unwrap().map(|v| v.len()), Some(50_000));
        });
    }

    #[test]
    fn reopening_keeps_entries_totals_and_recency() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let store = SqliteStore::open(&path, "s", Some(100)).unwrap();
            for key in ["a", "b", "c", "d"] {
                store.set(key, twenty(1)).await.unwrap();
            }
            // Reads only: their recency is written when the store closes.
            assert!(store.get("a").await.unwrap().is_some());
            assert!(store.get("b").await.unwrap().is_some());
            drop(store);

            let store = SqliteStore::open(&path, "s", Some(100)).unwrap();
            assert_eq!(store.used_bytes(), Some(80));
            assert_eq!(store.get("d").await.unwrap(), Some(twenty(1)));
            // "c" is now the least recently used, then "a", "b", "d".
            store.set("e", twenty(2)).await.unwrap();
            store.set("f", twenty(2)).await.unwrap();
            assert_eq!(keys(&store).await, ["a", "b", "d", "e", "f"]);
            store.set("g", vec![0; 39]).await.unwrap();
            assert_eq!(keys(&store).await, ["d", "e", "f", "g"]);
            assert_eq!(file_bytes(&path, "s"), (100, 100));
        });
    }

    #[test]
    fn recency_is_written_once_per_interval_by_a_read_or_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let store = SqliteStore::open(&path, "s", Some(1 << 20)).unwrap();
            let interval = Duration::from_millis(300);
            let restart_interval = || {
                let mut inner = store.inner.lock().unwrap();
                let bound = inner.bound.as_mut().unwrap();
                bound.recency_interval = interval;
                bound.written_at = Instant::now();
            };
            let used_in_file = |key: &str| -> i64 {
                Connection::open(&path)
                    .unwrap()
                    .query_row(
                        "SELECT used FROM edge_host_key_value_lru WHERE store = 's' AND key = ?1",
                        params![key],
                        |row| row.get(0),
                    )
                    .unwrap()
            };
            for key in ["a", "b", "c", "d"] {
                store.set(key, vec![0; 4]).await.unwrap();
            }
            // Written by a read, once the interval has passed.
            restart_interval();
            let before = used_in_file("a");
            store.get("a").await.unwrap();
            store.set("x", vec![0; 4]).await.unwrap();
            store.get("b").await.unwrap();
            assert_eq!(used_in_file("a"), before, "not yet written");
            std::thread::sleep(interval);
            store.get("b").await.unwrap();
            assert!(used_in_file("a") > before, "written by the read");
            // Written by a write, once the interval has passed.
            restart_interval();
            let before = used_in_file("c");
            store.get("c").await.unwrap();
            store.delete("x").await.unwrap();
            assert_eq!(used_in_file("c"), before, "not yet written");
            std::thread::sleep(interval);
            store.set("y", vec![0; 4]).await.unwrap();
            assert!(used_in_file("c") > before, "written with the write");
            // And when the store is closed.
            let before = used_in_file("d");
            store.get("d").await.unwrap();
            assert_eq!(used_in_file("d"), before, "not yet written");
            drop(store);
            assert!(used_in_file("d") > before, "written on closing");
        });
    }

    #[test]
    fn reopening_with_a_smaller_capacity_evicts_down_to_it_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let store = SqliteStore::open(&path, "s", Some(1000)).unwrap();
            for key in ["a", "b", "c", "d", "e"] {
                store.set(key, twenty(1)).await.unwrap();
            }
            store.get("a").await.unwrap();
            drop(store);
            let store = SqliteStore::open(&path, "s", Some(50)).unwrap();
            assert_eq!(keys(&store).await, ["a", "e"]);
            assert_eq!(store.used_bytes(), Some(40));
            assert_eq!(file_bytes(&path, "s"), (40, 40));
        });
    }

    #[test]
    fn values_written_unbounded_or_by_spin_are_counted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        block(async {
            let store = SqliteStore::open(&path, "s", Some(1000)).unwrap();
            store.set("a", twenty(1)).await.unwrap();
            drop(store);
            // Unbounded (as `spin up` would run it): the side table's rows
            // for the store go, and its writes are not counted.
            let store = SqliteStore::open(&path, "s", None).unwrap();
            store.set("a", vec![1; 99]).await.unwrap();
            store.set("b", twenty(1)).await.unwrap();
            drop(store);
            assert_eq!(file_bytes(&path, "s"), (120, 0));
            // Spin itself, through its own table only.
            Connection::open(&path)
                .unwrap()
                .execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES ('s', 'c', ?1)",
                    params![twenty(1)],
                )
                .unwrap();
            let store = SqliteStore::open(&path, "s", Some(1000)).unwrap();
            assert_eq!(store.used_bytes(), Some(140));
            assert_eq!(file_bytes(&path, "s"), (140, 140));
            drop(store);
            // Values counted at open are the least recently used.
            let store = SqliteStore::open(&path, "s", Some(40)).unwrap();
            assert_eq!(store.used_bytes(), Some(40));
            assert_eq!(file_bytes(&path, "s"), (40, 40));
        });
    }

    /// Costs of the bounded store against the unbounded one (`cargo test
    /// -p edge-host --lib sqlite::tests::costs -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn costs() {
        let dir = tempfile::tempdir().unwrap();
        block(async {
            let entries = 20_000u64;
            let value = vec![7u8; 1024];
            // Keys of 9 bytes: the bounded store holds every entry, just.
            for capacity in [None, Some(entries * 1033)] {
                let path = dir.path().join(format!("{capacity:?}.db"));
                let store = SqliteStore::open(&path, "s", capacity).unwrap();
                let start = Instant::now();
                for i in 0..entries {
                    store
                        .set(&format!("key{i:06}"), value.clone())
                        .await
                        .unwrap();
                }
                let fill = start.elapsed() / entries as u32;
                let start = Instant::now();
                let gets = 200_000u64;
                for i in 0..gets {
                    let key = format!("key{:06}", (i * 7919) % entries);
                    assert!(store.get(&key).await.unwrap().is_some());
                }
                let get = start.elapsed() / gets as u32;
                // At capacity, every new key evicts one.
                let start = Instant::now();
                for i in 0..entries {
                    store
                        .set(&format!("new{i:06}"), value.clone())
                        .await
                        .unwrap();
                }
                let evicting = start.elapsed() / entries as u32;
                drop(store);
                let start = Instant::now();
                let store = SqliteStore::open(&path, "s", capacity).unwrap();
                let open = start.elapsed();
                println!(
                    "capacity {capacity:?}: set {fill:?}, get {get:?}, set of a new key \
                     (evicting one when bounded) {evicting:?}, open with {} entries {open:?}",
                    store.get_keys().await.unwrap().len()
                );
            }
        });
    }
}
