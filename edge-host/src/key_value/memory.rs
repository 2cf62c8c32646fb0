//! The in-memory backend: an LRU map bounded by a byte budget.

use std::sync::Mutex;

use lru::LruCache;

use super::{StoreBackend, StoreError};

/// An in-memory store that evicts least recently used entries once the sum
/// of key and value sizes exceeds its capacity.
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

struct Inner {
    entries: LruCache<String, Vec<u8>>,
    used_bytes: u64,
    capacity_bytes: u64,
}

fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl MemoryStore {
    /// A store holding at most `capacity_bytes` of keys and values.
    pub fn new(capacity_bytes: u64) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                used_bytes: 0,
                capacity_bytes,
            }),
        }
    }

    /// Bytes currently held (keys plus values).
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated in
        // a way that matters more than losing the cache, so keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl StoreBackend for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let size = entry_size(key, &value);
        let mut inner = self.lock();
        if size > inner.capacity_bytes {
            return Err(StoreError::TableFull(format!(
                "entry of {size} bytes exceeds the store's capacity of {} bytes",
                inner.capacity_bytes
            )));
        }
        if let Some(old) = inner.entries.put(key.to_owned(), value) {
            inner.used_bytes -= entry_size(key, &old);
        }
        inner.used_bytes += size;
        while inner.used_bytes > inner.capacity_bytes {
            match inner.entries.pop_lru() {
                Some((k, v)) => inner.used_bytes -= entry_size(&k, &v),
                None => break,
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(key) {
            inner.used_bytes -= entry_size(key, &old);
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().entries.contains(key))
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().entries.iter().map(|(k, _)| k.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::test_support::block;

    #[test]
    fn set_get_delete_exists() {
        block(async {
            let store = MemoryStore::new(1024);
            assert_eq!(store.get("a").await.unwrap(), None);
            store.set("a", b"one".to_vec()).await.unwrap();
            assert_eq!(store.get("a").await.unwrap(), Some(b"one".to_vec()));
            assert!(store.exists("a").await.unwrap());
            store.set("a", b"two!".to_vec()).await.unwrap();
            assert_eq!(store.used_bytes(), 5);
            store.delete("a").await.unwrap();
            store.delete("a").await.unwrap();
            assert!(!store.exists("a").await.unwrap());
            assert_eq!(store.used_bytes(), 0);
        });
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_budget() {
        block(async {
            // Each entry is 1 + 9 = 10 bytes; three fit in 30.
            let store = MemoryStore::new(30);
            for key in ["a", "b", "c"] {
                store.set(key, vec![0; 9]).await.unwrap();
            }
            store.get("a").await.unwrap(); // a is now the most recent
            store.set("d", vec![0; 9]).await.unwrap();
            assert!(store.exists("a").await.unwrap());
            assert!(
                !store.exists("b").await.unwrap(),
                "b was least recently used"
            );
            assert!(store.exists("c").await.unwrap());
            assert!(store.exists("d").await.unwrap());
            assert_eq!(store.used_bytes(), 30);
        });
    }

    #[test]
    fn an_entry_larger_than_the_store_is_refused_and_loses_nothing() {
        block(async {
            let store = MemoryStore::new(16);
            store.set("k", b"kept".to_vec()).await.unwrap();
            let err = store.set("big", vec![0; 32]).await.unwrap_err();
            assert!(matches!(err, StoreError::TableFull(_)));
            assert_eq!(store.get("k").await.unwrap(), Some(b"kept".to_vec()));
        });
    }
}
