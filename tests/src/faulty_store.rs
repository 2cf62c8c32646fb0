//! A store that fails on demand: the test-only fault injector put under the
//! component through `AppOptions::store_overrides`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use edge_host::key_value::{MemoryStore, StoreBackend, StoreError};

/// An in-memory store with a switch: while `failing`, every operation
/// errors as an unreachable backend would.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<MemoryStore>,
    failing: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    /// Every key read, in order.
    reads: Arc<Mutex<Vec<String>>>,
}

impl FaultyStore {
    /// A working store (64 MiB).
    pub fn new() -> Self {
        FaultyStore::with_capacity(64 << 20)
    }

    /// A working store of `capacity_bytes`.
    pub fn with_capacity(capacity_bytes: u64) -> Self {
        FaultyStore {
            inner: Arc::new(MemoryStore::new(capacity_bytes)),
            failing: Arc::new(AtomicBool::new(false)),
            failures: Arc::new(AtomicU64::new(0)),
            reads: Arc::default(),
        }
    }

    /// How many reads of keys starting with `prefix` there have been, and
    /// forgets them.
    pub fn take_reads_of(&self, prefix: &str) -> usize {
        let mut reads = self.reads.lock().expect("read log");
        let count = reads.iter().filter(|key| key.starts_with(prefix)).count();
        reads.clear();
        count
    }

    /// The keys it holds that start with `prefix`, sorted.
    pub async fn keys_of(&self, prefix: &str) -> Vec<String> {
        let mut keys = self.inner.get_keys().await.expect("keys");
        keys.retain(|key| key.starts_with(prefix));
        keys.sort();
        keys
    }

    /// Removes `key`, as an eviction would.
    pub async fn evict(&self, key: &str) {
        self.inner.delete(key).await.expect("delete");
    }

    /// Flips one bit in the middle of `key`'s value, as a torn write or a
    /// bad disk would.
    pub async fn damage(&self, key: &str) {
        let mut value = self.inner.get(key).await.expect("get").expect("a value");
        let middle = value.len() / 2;
        value[middle] ^= 1;
        self.inner.set(key, value).await.expect("set");
    }

    /// Makes every later operation fail (`true`) or work again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Operations refused so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Backend(
                "injected fault: store unreachable".into(),
            ));
        }
        Ok(())
    }
}

impl Default for FaultyStore {
    fn default() -> Self {
        FaultyStore::new()
    }
}

#[async_trait::async_trait]
impl StoreBackend for FaultyStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.reads.lock().expect("read log").push(key.to_owned());
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.exists(key).await
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.get_keys().await
    }

    fn capacity_bytes(&self) -> Option<u64> {
        self.inner.capacity_bytes()
    }
}
