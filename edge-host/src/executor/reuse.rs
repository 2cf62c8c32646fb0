//! WASI 0.3 instance reuse: one instance serves many requests, some at
//! once, through wasmtime-wasi-http's [`ProxyHandler`]; this module is the
//! host's side of it: when an instance is made, how many requests it takes
//! (in all and at once), when it retires, and what is counted.
//!
//! The flags and defaults are Spin's (`spin up`):
//! `--max-instance-reuse-count` (128), `--max-instance-concurrent-reuse-count`
//! (16) and `--idle-instance-timeout` (1 s); each takes a value or a range
//! (`1..8`, `500ms..2s`) picked at random for each new instance.
//!
//! Limits on a reused instance ([`InstanceLimits`]):
//! - **time**: each request has `request_timeout` to produce its response.
//!   One that overruns gets a `500`; its instance takes no more requests and
//!   retires once the others it is serving are done. A guest that never
//!   returns to the host (a busy loop) still yields at every epoch tick, so
//!   the worker's expiry, polled outside the instance's event loop, drops the
//!   instance once its most recent request is `request_timeout` old; every
//!   request still in it gets a `500`. Work after the last response (a
//!   `stale-while-revalidate` refresh) is bounded by the same time.
//! - **memory**: `max_memory_bytes` caps the instance across every request
//!   it serves. Past [`RECYCLE_MEMORY_PERCENT`] of it the instance takes no
//!   new requests and retires when its in-flight ones are done; a request
//!   that hits the cap traps the instance, and its in-flight requests get a
//!   `500`.
//! - **reload**: an instance made before a reload replaced its component's
//!   context takes no new requests and retires once its in-flight ones
//!   (which finish with the old configuration) are done
//!   ([`crate::reload::live`]).
//! - a trapped or expired instance is dropped, never reused; the next
//!   request gets a fresh one. The fill leases it held are deleted before
//!   its requests are answered (`key_value::leases`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::futures::OwnedNotified;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

use super::open_bodies::OpenBodies;
use crate::instance::limits::{InstanceLimits, MemoryUse};
use crate::instance::{ComponentContext, RequestState};
use crate::observe::instances::InstanceCounters;
use crate::reload::live::LiveContext;

/// Spin's default: requests one instance serves before it is retired.
pub const DEFAULT_MAX_INSTANCE_REUSE_COUNT: usize = 128;

/// Spin's default: requests one instance serves at once.
pub const DEFAULT_MAX_INSTANCE_CONCURRENT_REUSE_COUNT: usize = 16;

/// Spin's default: how long an idle instance is kept for the next request.
pub const DEFAULT_IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// An instance whose linear memory has grown past this share of
/// `--max-memory-mb` takes no new requests, and retires once its in-flight
/// ones are done, before a request runs into the hard limit.
pub const RECYCLE_MEMORY_PERCENT: usize = 75;

/// A setting that is either one value or a range to pick from, at random,
/// for each new instance (Spin's `1..8`: the end is excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerInstance<T> {
    /// Every instance gets this.
    Value(T),
    /// Each instance gets a value in `start..end`.
    Range(T, T),
}

impl PerInstance<usize> {
    /// Parses `N` or `A..B` (Spin's syntax), refusing zero and empty ranges.
    pub fn parse_count(text: &str) -> Result<Self, String> {
        let count = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|e| format!("expected a count or a range like 1..8; got {text:?}: {e}"))
        };
        let parsed = match text.split_once("..") {
            Some((start, end)) => PerInstance::Range(count(start)?, count(end)?),
            None => PerInstance::Value(count(text)?),
        };
        match parsed {
            PerInstance::Value(0) | PerInstance::Range(0, _) => {
                Err(format!("{text:?}: must be at least 1"))
            }
            PerInstance::Range(start, end) if start >= end => {
                Err(format!("{text:?}: the range is empty"))
            }
            parsed => Ok(parsed),
        }
    }

    fn pick(self) -> usize {
        match self {
            PerInstance::Value(value) => value,
            PerInstance::Range(start, end) => {
                start + (random_u64() % (end - start) as u64) as usize
            }
        }
    }
}

impl PerInstance<Duration> {
    /// Parses a duration or a range of durations in Spin's syntax: an
    /// integer with no suffix or `s` is seconds; `ms`, `us` (or `μs`) and
    /// `ns` are the other units; `A..B` is a range (`1..8s`: the end's unit
    /// only, as in Spin, so this is 1 s to 8 s).
    pub fn parse_duration(text: &str) -> Result<Self, String> {
        match text.split_once("..") {
            Some((start, end)) => {
                let (start, end) = (parse_duration(start)?, parse_duration(end)?);
                if start >= end {
                    return Err(format!("{text:?}: the range is empty"));
                }
                Ok(PerInstance::Range(start, end))
            }
            None => Ok(PerInstance::Value(parse_duration(text)?)),
        }
    }

    fn pick(self) -> Duration {
        match self {
            PerInstance::Value(value) => value,
            PerInstance::Range(start, end) => {
                let span = (end - start).as_nanos().min(u64::MAX as u128) as u64;
                start + Duration::from_nanos(random_u64() % span.max(1))
            }
        }
    }
}

/// As it is written on the command line.
impl std::fmt::Display for PerInstance<usize> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerInstance::Value(value) => write!(f, "{value}"),
            PerInstance::Range(start, end) => write!(f, "{start}..{end}"),
        }
    }
}

/// As it is written on the command line, in the largest exact unit.
impl std::fmt::Display for PerInstance<Duration> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn one(duration: Duration) -> String {
            let nanos = duration.as_nanos();
            match nanos {
                n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
                n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
                n if n % 1_000 == 0 => format!("{}us", n / 1_000),
                n => format!("{n}ns"),
            }
        }
        match self {
            PerInstance::Value(value) => f.write_str(&one(*value)),
            PerInstance::Range(start, end) => write!(f, "{}..{}", one(*start), one(*end)),
        }
    }
}

/// One duration in Spin's syntax: `1`, `1s`, `500ms`, `250us`, `250μs`,
/// `10ns`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let error = |e: std::num::ParseIntError| {
        format!(
            "expected an integer with no suffix or `s`, `ms`, `us`, `μs` or `ns`; got {text:?}: {e}"
        )
    };
    // Longest suffixes first: `ms` also ends in `s`.
    type Unit = fn(u64) -> Duration;
    let units: [(&str, Unit); 6] = [
        ("ms", Duration::from_millis),
        ("us", Duration::from_micros),
        ("μs", Duration::from_micros),
        ("ns", Duration::from_nanos),
        ("s", Duration::from_secs),
        ("", Duration::from_secs),
    ];
    for (suffix, unit) in units {
        if let Some(number) = text.strip_suffix(suffix)
            && (suffix.is_empty() || !number.is_empty())
        {
            return number.parse::<u64>().map(unit).map_err(error);
        }
    }
    unreachable!("the empty suffix matches everything")
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: OnceLock<RandomState> = OnceLock::new();
    SEED.get_or_init(RandomState::new)
        .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// How WASI 0.3 instances are reused (the `edge-host up` flags, as data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseOptions {
    /// Requests an instance serves before it is retired.
    pub max_instance_reuse_count: PerInstance<usize>,
    /// Requests an instance serves at once.
    pub max_instance_concurrent_reuse_count: PerInstance<usize>,
    /// How long an idle instance is kept for the next request.
    pub idle_instance_timeout: PerInstance<Duration>,
}

impl Default for ReuseOptions {
    fn default() -> Self {
        ReuseOptions {
            max_instance_reuse_count: PerInstance::Value(DEFAULT_MAX_INSTANCE_REUSE_COUNT),
            max_instance_concurrent_reuse_count: PerInstance::Value(
                DEFAULT_MAX_INSTANCE_CONCURRENT_REUSE_COUNT,
            ),
            idle_instance_timeout: PerInstance::Value(DEFAULT_IDLE_INSTANCE_TIMEOUT),
        }
    }
}

/// How an instance ended, for the requests it was serving.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// Retired: reuse count, idle timeout, memory threshold, or drained
    /// after a request overran.
    Retired,
    /// Dropped by the worker's expiry: busy for the request time limit
    /// since its most recent request started (a guest that never returns to
    /// the host).
    TimedOut,
    /// Stopped by a trap or a panic; the full cause.
    Failed(Arc<str>),
}

/// One reused instance, as the requests it serves see it.
pub(crate) struct InstanceRecord {
    /// Numbered per component from 1, for the log.
    pub(crate) id: u64,
    pub(crate) memory: MemoryUse,
    in_flight: AtomicU64,
    /// Its responses' bodies still being sent.
    pub(crate) bodies: OpenBodies,
    /// Set when one of its requests ran past the time limit.
    overran: AtomicBool,
    /// Set when the worker's expiry dropped it while busy.
    expired: AtomicBool,
    ended: tokio::sync::watch::Sender<Option<Ended>>,
}

impl InstanceRecord {
    /// How the instance ended, once it has (waits at most `patience`: the
    /// worker reports right after dropping its requests).
    pub(crate) async fn ended(&self, patience: Duration) -> Option<Ended> {
        let mut receiver = self.ended.subscribe();
        let ended = tokio::time::timeout(patience, receiver.wait_for(Option::is_some)).await;
        match ended {
            Ok(Ok(ended)) => ended.clone(),
            _ => None,
        }
    }
}

/// A request's link to the instance that takes it: [`WorkerState`]'s
/// request data, filled in when an instance accepts the request.
#[derive(Default)]
pub(crate) struct Ticket {
    instance: OnceLock<Arc<InstanceRecord>>,
}

impl Ticket {
    /// The instance that took the request, if one did.
    pub(crate) fn instance(&self) -> Option<&Arc<InstanceRecord>> {
        self.instance.get()
    }
}

impl Drop for Ticket {
    /// The request has its answer (or was given up): one less in flight.
    fn drop(&mut self) {
        if let Some(instance) = self.instance.get() {
            instance.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The [`HandlerState`] of one WASI 0.3 component: makes its instances.
/// A component has one per serving lane (see `lanes`), sharing counters.
#[derive(Clone)]
pub(crate) struct ComponentHandler {
    context: Arc<LiveContext>,
    pre: Arc<ProxyPre<RequestState>>,
    engine: wasmtime::Engine,
    limits: InstanceLimits,
    reuse: ReuseOptions,
    stats: Arc<InstanceCounters>,
    /// The next instance's number, for the log (shared by the lanes).
    next_instance: Arc<AtomicU64>,
}

impl ComponentHandler {
    pub(crate) fn new(
        context: Arc<LiveContext>,
        pre: ProxyPre<RequestState>,
        engine: wasmtime::Engine,
        limits: InstanceLimits,
        reuse: ReuseOptions,
        stats: Arc<InstanceCounters>,
    ) -> Self {
        ComponentHandler {
            context,
            pre: Arc::new(pre),
            engine,
            limits,
            reuse,
            stats,
            next_instance: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl HandlerState for ComponentHandler {
    type StoreData = RequestState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<RequestState, Expiry, Worker>> {
        let limits = self.limits;
        let made_from = self.context.current();
        let state = RequestState::new(&made_from, limits.max_memory_bytes)
            .map_err(wasmtime::Error::from_anyhow)?;
        let memory = state.limits.usage();
        let mut store = Store::new(&self.engine, state);
        // Synchronous: an async limiter would hold the store (wasmtime
        // #11869) and with it every request the instance serves.
        store.limiter(|state| &mut state.limits);
        // Running guest code yields at every epoch tick, so a guest that
        // never returns to the host cannot keep the worker's expiry (polled
        // between yields) from dropping the instance.
        crate::instance::limits::yield_at_every_tick(&mut store);
        let proxy = tokio::time::timeout(
            limits.request_timeout,
            self.pre.instantiate_async(&mut store),
        )
        .await
        .map_err(|_| {
            wasmtime::format_err!(
                "instantiation took longer than the {} ms request time limit",
                limits.request_timeout.as_millis()
            )
        })??;
        let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        self.stats.created();
        let record = Arc::new(InstanceRecord {
            id,
            memory,
            in_flight: AtomicU64::new(0),
            bodies: OpenBodies::default(),
            overran: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            ended: tokio::sync::watch::Sender::new(None),
        });
        let max_reuse = self.reuse.max_instance_reuse_count.pick();
        let max_concurrent = self.reuse.max_instance_concurrent_reuse_count.pick();
        let idle_timeout = self.reuse.idle_instance_timeout.pick();
        tracing::debug!(
            component = &*self.context.id,
            instance = id,
            max_reuse,
            max_concurrent,
            idle_ms = idle_timeout.as_millis() as u64,
            "instance created"
        );
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiry {
                live: self.context.clone(),
                made_from: made_from.clone(),
                replaced: Box::pin(self.context.replaced()),
                record: record.clone(),
                idle_timeout,
                request_timeout: limits.request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: Worker {
                component: self.context.id.clone(),
                live: self.context.clone(),
                made_from,
                record,
                stats: self.stats.clone(),
                max_reuse,
                max_concurrent,
                request_timeout: limits.request_timeout,
                recycle_memory_bytes: limits.max_memory_bytes / 100 * RECYCLE_MEMORY_PERCENT,
            },
        })
    }
}

/// When a worker (one instance) is dropped regardless of its event loop:
/// idle for its idle timeout, or busy for the request time limit since its
/// most recent request started.
pub(crate) struct Expiry {
    /// The component's context and the one the instance was made with:
    /// idle once a reload replaced it, the instance is dropped at once.
    live: Arc<LiveContext>,
    made_from: Arc<ComponentContext>,
    replaced: Pin<Box<OwnedNotified>>,
    record: Arc<InstanceRecord>,
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        if status == WorkerStatus::Idle {
            // Polling the notification registers for the next reload; one
            // that fired while the context is still current (made just
            // after a reload) is armed again.
            while self.replaced.as_mut().poll(cx).is_ready() {
                if !self.live.is_current(&self.made_from) {
                    return Poll::Ready(());
                }
                self.replaced = Box::pin(self.live.replaced());
            }
            if !self.live.is_current(&self.made_from) {
                return Poll::Ready(());
            }
        }
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let expired = self.sleep.as_mut().poll(cx);
        if expired.is_ready() && status != WorkerStatus::Idle {
            self.record.expired.store(true, Ordering::SeqCst);
        }
        expired
    }
}

/// One instance's [`WorkerState`]: what it accepts and how it ends.
pub(crate) struct Worker {
    component: Arc<str>,
    /// The component's context as reloads leave it, and the one this
    /// instance was made with: once a reload replaces it, the instance
    /// takes no new request (new ones see the new configuration) and
    /// retires when its own are done, which finish with the old one.
    live: Arc<LiveContext>,
    made_from: Arc<ComponentContext>,
    record: Arc<InstanceRecord>,
    stats: Arc<InstanceCounters>,
    max_reuse: usize,
    max_concurrent: usize,
    request_timeout: Duration,
    recycle_memory_bytes: usize,
}

impl WorkerState for Worker {
    type StoreData = RequestState;
    type RequestData = Arc<Ticket>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse
            || self.record.memory.largest_memory_bytes() >= self.recycle_memory_bytes
            || !self.live.is_current(&self.made_from)
        {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, RequestState>,
        ticket: Arc<Ticket>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let in_flight = self.record.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = ticket.instance.set(self.record.clone());
        self.stats.request_started(in_flight);
        // Resolving first makes this request's answer a `500` and retires
        // the instance after its other requests.
        let record = self.record.clone();
        let timeout = self.request_timeout;
        Box::pin(async move {
            tokio::time::sleep(timeout).await;
            record.overran.store(true, Ordering::SeqCst);
        })
    }

    fn drop(&self, mut store: Store<RequestState>, result: wasmtime::Result<()>) {
        // The fill leases it took and never released: a failed instance's
        // (a retired one has released its own).
        let left = store.data_mut().left_leases();
        // A response body it had not finished ends in an error, never as
        // if whole, when the store goes.
        self.record.bodies.instance_ending();
        drop(store);
        let record = &self.record;
        let component = &*self.component;
        let instance = record.id;
        // Its requests in flight report the cause under their error ids;
        // the instance's own line says more only when none will.
        let in_flight = record.in_flight.load(Ordering::SeqCst);
        let ended = match result {
            Ok(()) => {
                tracing::debug!(component, instance, "instance retired");
                Ended::Retired
            }
            // The handler says this of a worker whose task was dropped
            // unfinished: the runtime is stopping, or the worker panicked
            // (which the panic hook has reported already).
            Err(error) if error.to_string() == "worker panicked" => {
                tracing::debug!(
                    component,
                    instance,
                    "instance dropped unfinished: the host is stopping, or its worker panicked"
                );
                Ended::Failed("its worker was dropped unfinished".into())
            }
            Err(_) if record.expired.load(Ordering::SeqCst) => {
                let message = format!(
                    "instance stopped: busy for the {} ms request time limit since its latest request started",
                    self.request_timeout.as_millis()
                );
                if in_flight == 0 {
                    tracing::warn!(component, instance, "{message}");
                } else {
                    tracing::debug!(component, instance, in_flight, "{message}");
                }
                Ended::TimedOut
            }
            Err(error) => {
                // Its requests' failures log the detail under their error
                // ids; with none in flight, this is the only record.
                let detail = format!("{error:#}");
                for line in crate::observe::failure_log::lines("instance failed", &detail) {
                    if in_flight == 0 {
                        tracing::warn!(component, instance, "{line}");
                    } else {
                        tracing::debug!(component, instance, in_flight, "{line}");
                    }
                }
                Ended::Failed(detail.into())
            }
        };
        self.stats
            .ended(record.overran.load(Ordering::SeqCst) || !matches!(ended, Ended::Retired));
        match tokio::runtime::Handle::try_current() {
            // Its requests are answered once its leases are gone, so the
            // next request for one of those keys does not wait them out.
            Ok(runtime) if !left.is_empty() => {
                let record = record.clone();
                runtime.spawn(async move {
                    left.release().await;
                    record.ended.send_replace(Some(ended));
                });
            }
            // With no runtime (the host is stopping) they lapse on their own.
            _ => {
                record.ended.send_replace(Some(ended));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_spin_reads_them() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("1"), Duration::from_secs(1));
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250μs"), Duration::from_micros(250));
        assert_eq!(ok("10ns"), Duration::from_nanos(10));
        for bad in ["", "s", "ms", "1.5s", "-1s", "1m", "soon", "1 h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            PerInstance::parse_duration("1..8s").unwrap(),
            PerInstance::Range(Duration::from_secs(1), Duration::from_secs(8))
        );
        assert!(PerInstance::parse_duration("2s..1s").is_err());
        for written in ["1s", "500ms", "250us", "10ns", "500ms..2s"] {
            let parsed = PerInstance::parse_duration(written).unwrap();
            assert_eq!(parsed.to_string(), written);
        }
        assert_eq!(PerInstance::Range(1, 8).to_string(), "1..8");
    }

    #[test]
    fn counts_are_values_or_non_empty_ranges_from_1() {
        assert_eq!(PerInstance::parse_count("16"), Ok(PerInstance::Value(16)));
        assert_eq!(
            PerInstance::parse_count("1..8"),
            Ok(PerInstance::Range(1, 8))
        );
        for bad in ["0", "0..4", "4..4", "5..2", "x", "", "-1"] {
            assert!(PerInstance::parse_count(bad).is_err(), "{bad:?} accepted");
        }
        for _ in 0..100 {
            let picked = PerInstance::Range(3, 6).pick();
            assert!((3..6).contains(&picked), "{picked}");
            let picked =
                PerInstance::Range(Duration::from_millis(1), Duration::from_millis(2)).pick();
            assert!(picked >= Duration::from_millis(1) && picked < Duration::from_millis(2));
        }
    }
}
