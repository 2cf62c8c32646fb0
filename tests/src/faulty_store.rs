//! A store that fails on demand: the test-only fault injector put under the
//! component through `AppOptions::store_overrides`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use edge_host::key_value::{MemoryStore, StoreBackend, StoreError};

/// An in-memory store with a switch: while `failing`, every operation
/// errors as an unreachable backend would.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<MemoryStore>,
    failing: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
}

impl FaultyStore {
    /// A working store (64 MiB).
    pub fn new() -> Self {
        FaultyStore {
            inner: Arc::new(MemoryStore::new(64 << 20)),
            failing: Arc::new(AtomicBool::new(false)),
            failures: Arc::new(AtomicU64::new(0)),
        }
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
}
