//! What one request's component instance may use: wall-clock time and
//! linear memory. A component that loops or allocates without end is
//! stopped, its request gets a 500, and the host goes on serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Engine, EngineWeak, ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Default wall-clock limit per request: room for a primary and a backup
/// origin at their default timeouts, with margin.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Default linear-memory limit per instance.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 128 << 20;

/// How often the engine's epoch advances. Running guest code yields to the
/// async runtime at each tick, which lets the wall-clock limit stop a guest
/// that never calls the host (a busy loop) and keeps other requests served.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits for each request's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// From the start of the request until the instance finishes, including
    /// work after the response (a `stale-while-revalidate` refresh).
    pub request_timeout: Duration,
    /// Linear memory an instance may grow to.
    pub max_memory_bytes: usize,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}

/// An instance's memory limit: wasmtime's [`StoreLimits`], which also
/// remembers whether it refused memory, so the host can tell a client its
/// request was stopped by the memory limit without showing it the trap.
pub struct InstanceLimiter {
    inner: StoreLimits,
    max_memory_bytes: usize,
    hit: Arc<AtomicBool>,
}

impl InstanceLimiter {
    /// A limiter allowing `max_memory_bytes` of linear memory.
    pub fn new(max_memory_bytes: usize) -> Self {
        InstanceLimiter {
            // A failed grow traps rather than handing the guest a null
            // pointer: the log then says what happened.
            inner: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            max_memory_bytes,
            hit: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set once memory was refused.
    pub fn memory_limit_hit(&self) -> Arc<AtomicBool> {
        self.hit.clone()
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.hit.store(true, Ordering::SeqCst);
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The allocator could not provide memory within the limit (the
        // pooling allocator's slot is smaller than `--max-memory-mb`).
        self.hit.store(true, Ordering::SeqCst);
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A thread advancing an engine's epoch every [`EPOCH_TICK`]; stops when
/// dropped or when the engine is gone.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine: EngineWeak = engine.weak();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
