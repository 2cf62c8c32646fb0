//! What a component instance may use: wall-clock time and linear memory. A
//! component that loops or allocates without end is stopped, its request
//! gets a 500, and the host goes on serving.
//!
//! A WASI 0.2 instance serves one request, so its limits are that
//! request's. A WASI 0.3 instance serves many ([`crate::executor::reuse`]): the time
//! limit still applies to each request, the memory limit to the instance
//! across all of them (linear memory never shrinks).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{
    Engine, EngineWeak, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};

/// Default wall-clock limit per request: room for a primary and a backup
/// origin at their default timeouts, with margin.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Default linear-memory limit per instance.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 128 << 20;

/// How often the engine's epoch advances. Running guest code yields to the
/// async runtime at each tick, which lets the wall-clock limit stop a guest
/// that never calls the host (a busy loop) and keeps other requests served.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits for each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// From the start of the request until the instance finishes, including
    /// work after the response (a `stale-while-revalidate` refresh). For a
    /// reused instance: each request's, and the bound on the work after the
    /// last response.
    pub request_timeout: Duration,
    /// Linear memory an instance may grow to, over all the requests it
    /// serves.
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

/// An instance's memory limit: wasmtime's [`StoreLimits`] (a synchronous
/// limiter: an async one would hold a WASI 0.3 instance's store while it
/// runs), which also remembers whether it refused memory, so the host can
/// tell a client its request was stopped by the memory limit without
/// showing it the trap, and how large the instance's memory has grown, so a
/// reused instance can be retired before it reaches the limit.
pub struct InstanceLimiter {
    inner: StoreLimits,
    max_memory_bytes: usize,
    usage: MemoryUse,
}

/// What an instance's limiter has seen, readable from outside its store.
#[derive(Debug, Clone, Default)]
pub struct MemoryUse {
    hit: Arc<AtomicBool>,
    largest: Arc<AtomicUsize>,
    /// The size the latest growth asked for, for the log of a failed one.
    desired: Arc<AtomicUsize>,
}

impl MemoryUse {
    /// Whether memory was refused for going past the limit.
    pub fn limit_hit(&self) -> bool {
        self.hit.load(Ordering::SeqCst)
    }

    /// The size of the instance's largest linear memory, in bytes.
    pub fn largest_memory_bytes(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }
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
            usage: MemoryUse::default(),
        }
    }

    /// Set once memory was refused for going past the limit.
    pub fn memory_limit_hit(&self) -> Arc<AtomicBool> {
        self.usage.hit.clone()
    }

    /// What this limiter sees, shared.
    pub fn usage(&self) -> MemoryUse {
        self.usage.clone()
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
            self.usage.hit.store(true, Ordering::SeqCst);
        }
        self.usage.desired.store(desired, Ordering::Relaxed);
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.usage.largest.fetch_max(desired, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The limit allowed the growth and something else refused it: the
        // memory's own declared maximum, or the machine (no memory left).
        // Not the limit: the client is not told it was, the log says what.
        let error = error.context(format!(
            "memory could not grow to {} bytes, under the {} MiB limit",
            self.usage.desired.load(Ordering::Relaxed),
            self.max_memory_bytes >> 20
        ));
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

/// Makes running guest code in `store` yield to the async runtime at every
/// epoch tick, so a time limit can stop a guest that never returns to the
/// host, and other requests are served meanwhile.
///
/// The yield is tokio's, which lets the runtime poll for I/O before the
/// guest runs again; wasmtime's own yield wakes the task at once, and a
/// runtime thread running a busy guest would then look for I/O only every
/// few dozen ticks (tokio's event interval), a delay of most of a second
/// for everything else on that thread.
pub fn yield_at_every_tick<T>(store: &mut Store<T>) {
    store.epoch_deadline_callback(|_| {
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store.set_epoch_deadline(1);
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
