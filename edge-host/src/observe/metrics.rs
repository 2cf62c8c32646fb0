//! The host's Prometheus metrics: what every request, origin fetch, store
//! operation and instance did, counted where the host sees it.
//!
//! One registry per process, installed by `edge-host up --metrics-listen`
//! before the application loads ([`install`]); until then every hook is a
//! single `OnceLock` load and returns. What is counted is the process's:
//! every application loaded while metrics are on reports its stores and
//! its instances (`Metrics::report_instances`) to the one registry, and
//! every request served is counted. Label values are fixed sets, so the
//! hot paths resolve their counters once (arrays indexed by outcome and
//! status class) and pay one atomic add per event, never a map look-up.
//!
//! What cannot be seen from the host is counted by what it implies, read
//! from the component's `Cache-Status` ([`crate::observe::cache_outcome`]) and the
//! purge API's receipt ([`crate::observe::request_record`]): the breaker lives in
//! the component's store, so the host counts the answers an open breaker
//! decided (`detail=circuit-open`), not its transitions.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::observe::cache_outcome::Outcome;
use crate::observe::instances::{InstanceCounters, InstanceStats};
use crate::observe::rules::{RulesMetrics, RulesStatus};

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const OUTCOMES: usize = Outcome::ALL.len();

/// Status classes `1xx` to `5xx`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// What an origin fetch came to: its status class, or no response.
const ORIGIN_RESULTS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// The reasons `edge_requests_by_reason_total` counts: the `detail`
/// tokens the component writes in `Cache-Status`
/// (`edge-cache/src/policy/storability.rs`, `flow/`, `origin/failure.rs`),
/// `rule` for every `rule-<name>`, and `other`.
pub const REASONS: [&str; 27] = [
    "no-freshness",
    "private",
    "no-store",
    "set-cookie",
    "authorization",
    "vary-star",
    "status",
    "too-large",
    "cookie",
    "rule",
    "rules-error",
    "store-error",
    "method",
    "invalidated",
    "corrupt-entry",
    "key-collision",
    "missing-chunk",
    "partial",
    "undecodable-entry",
    "stale-while-revalidate",
    "max-stale",
    "stale-if-error",
    "grace",
    "circuit-open",
    "origin-busy",
    "only-if-cached",
    "other",
];

/// Where `detail` is counted in [`REASONS`].
fn reason_index(detail: &str) -> usize {
    let detail = if detail.starts_with("rule-") {
        "rule"
    } else {
        detail
    };
    REASONS
        .iter()
        .position(|known| *known == detail)
        .unwrap_or(REASONS.len() - 1)
}

/// Why an instance failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// A trap, a panic, an error instead of a response.
    Trap,
    /// Stopped at `--request-timeout-ms`.
    TimeLimit,
    /// Stopped at `--max-memory-mb`.
    MemoryLimit,
}

impl FailureCause {
    const ALL: [FailureCause; 3] = [
        FailureCause::Trap,
        FailureCause::TimeLimit,
        FailureCause::MemoryLimit,
    ];

    fn as_str(self) -> &'static str {
        match self {
            FailureCause::Trap => "trap",
            FailureCause::TimeLimit => "time_limit",
            FailureCause::MemoryLimit => "memory_limit",
        }
    }
}

/// The HTTP version a client spoke, as the access log and
/// `edge_requests_by_protocol_total` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 (and 0.9, which hyper does not serve).
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2, over TLS or cleartext.
    Http2,
}

impl Protocol {
    const ALL: [Protocol; 3] = [Protocol::Http10, Protocol::Http11, Protocol::Http2];

    /// The protocol of a request of `version`.
    pub fn of(version: http::Version) -> Protocol {
        match version {
            http::Version::HTTP_09 | http::Version::HTTP_10 => Protocol::Http10,
            http::Version::HTTP_2 | http::Version::HTTP_3 => Protocol::Http2,
            _ => Protocol::Http11,
        }
    }

    /// `HTTP/1.1`, `HTTP/2`: as a request line and nginx's `$server_protocol` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http10 => "HTTP/1.0",
            Protocol::Http11 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }
}

/// Purge targets by kind, as the purge API's receipt counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReceipt {
    /// Soft (mark stale) rather than hard (invalidate).
    pub soft: bool,
    /// URLs purged.
    pub urls: u64,
    /// Tags (surrogate keys) purged.
    pub tags: u64,
    /// Path prefixes purged.
    pub prefixes: u64,
    /// Everything purged.
    pub all: bool,
}

/// Cumulative totals for the status page's samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Requests by outcome, in [`Outcome::ALL`] order.
    pub requests: [u64; OUTCOMES],
    /// Origin fetches, all results.
    pub origin_fetches: u64,
    /// Origin fetches that got no response.
    pub origin_errors: u64,
    /// Response body bytes sent.
    pub bytes: u64,
    /// Answers an open origin circuit breaker decided.
    pub breaker_open: u64,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    requests: [[Counter; CLASSES.len()]; OUTCOMES],
    by_protocol: [Counter; Protocol::ALL.len()],
    durations: [Histogram; OUTCOMES],
    bytes: [Counter; OUTCOMES],
    origin_fetches: [Counter; ORIGIN_RESULTS.len()],
    origin_duration: Histogram,
    stores: Family<[(&'static str, String); 3], Counter>,
    purges: [Counter; 2],
    purge_targets: [Counter; 4],
    breaker_open_answers: Counter,
    shed_connections: Counter,
    evicted_connections: Counter,
    native_hits: Counter,
    native_served: Counter,
    connections_open: Gauge,
    instance_failures: [Counter; FailureCause::ALL.len()],
    access_log_dropped: Counter,
    instances: Arc<ReportedInstances>,
    rules: RulesMetrics,
    reasons: [Counter; REASONS.len()],
    /// A registry holding only `edge_request_duration_seconds`, read by
    /// the status page's sampler for its buckets ([`Metrics::latency_buckets`]).
    latency: Registry,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turns metrics on for this process (idempotent) and returns them.
pub fn install() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The process's metrics, if [`install`]ed.
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Request and origin latencies, 100 µs to 10 s: a hit is well under a
/// millisecond, a slow origin seconds.
fn latency_buckets() -> Histogram {
    Histogram::new(crate::observe::latency::BOUNDS)
}

fn class_index(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests_family = Family::<[(&'static str, &'static str); 2], Counter>::default();
        let requests = Outcome::ALL.map(|outcome| {
            CLASSES.map(|class| {
                requests_family
                    .get_or_create_owned(&[("outcome", outcome.as_str()), ("status", class)])
            })
        });
        registry.register(
            "edge_requests",
            "Requests answered, by cache outcome (from Cache-Status) and status class",
            requests_family,
        );
        let protocol_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let by_protocol = Protocol::ALL.map(|protocol| {
            protocol_family.get_or_create_owned(&[("protocol", protocol.as_str())])
        });
        registry.register(
            "edge_requests_by_protocol",
            "Requests answered, by the HTTP version the client spoke",
            protocol_family,
        );
        let durations_family =
            Family::<[(&'static str, &'static str); 1], Histogram>::new_with_constructor(
                latency_buckets as fn() -> Histogram,
            );
        let durations = Outcome::ALL
            .map(|outcome| durations_family.get_or_create_owned(&[("outcome", outcome.as_str())]));
        let mut latency = Registry::default();
        latency.register(
            "edge_request_duration_seconds",
            "Time from a request's arrival to the end of its response body, by cache outcome",
            durations_family.clone(),
        );
        registry.register(
            "edge_request_duration_seconds",
            "Time from a request's arrival to the end of its response body, by cache outcome",
            durations_family,
        );
        let bytes_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let bytes = Outcome::ALL
            .map(|outcome| bytes_family.get_or_create_owned(&[("outcome", outcome.as_str())]));
        registry.register(
            "edge_response_bytes",
            "Response body bytes sent to clients, by cache outcome",
            bytes_family,
        );
        let origin_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let origin_fetches =
            ORIGIN_RESULTS.map(|result| origin_family.get_or_create_owned(&[("result", result)]));
        registry.register(
            "edge_origin_fetches",
            "Requests components sent to origins, by status class of the answer, or error",
            origin_family,
        );
        let origin_duration = latency_buckets();
        registry.register(
            "edge_origin_duration_seconds",
            "Time from sending an origin request to its response head (or failure)",
            origin_duration.clone(),
        );
        let stores = Family::<[(&'static str, String); 3], Counter>::default();
        registry.register(
            "edge_store_operations",
            "Key-value store operations, by store label, operation and result",
            stores.clone(),
        );
        let purge_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let purges =
            ["hard", "soft"].map(|mode| purge_family.get_or_create_owned(&[("mode", mode)]));
        registry.register(
            "edge_purges",
            "Purges the purge API accepted, by mode",
            purge_family,
        );
        let targets_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let purge_targets = ["url", "tag", "prefix", "all"]
            .map(|kind| targets_family.get_or_create_owned(&[("kind", kind)]));
        registry.register(
            "edge_purge_targets",
            "Targets of accepted purges, by kind",
            targets_family,
        );
        let breaker_open_answers = Counter::default();
        registry.register(
            "edge_breaker_open_answers",
            "Answers decided by an open origin circuit breaker (Cache-Status detail=circuit-open)",
            breaker_open_answers.clone(),
        );
        let shed_connections = Counter::default();
        registry.register(
            "edge_shed_connections",
            "Connections refused: over --max-connections or --max-connections-per-client with every slot serving a request",
            shed_connections.clone(),
        );
        let native_hits = Counter::default();
        registry.register(
            "edge_native_hits",
            "Fresh hits edge-host answered itself, with the component's core, without entering the component",
            native_hits.clone(),
        );
        let native_served = Counter::default();
        registry.register(
            "edge_native_served",
            "Requests other than fresh hits (misses, revalidations, passes) edge-host served itself with the component's core, without entering the component",
            native_served.clone(),
        );
        let evicted_connections = Counter::default();
        registry.register(
            "edge_evicted_connections",
            "Idle client connections closed to make room for a new one at the connection cap",
            evicted_connections.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "edge_connections_open",
            "Client connections open now (within --max-connections)",
            connections_open.clone(),
        );
        let failures_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let instance_failures = FailureCause::ALL
            .map(|cause| failures_family.get_or_create_owned(&[("cause", cause.as_str())]));
        registry.register(
            "edge_instance_failures",
            "Requests answered 500 because their instance failed, by cause",
            failures_family,
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "edge_access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let instances = Arc::new(ReportedInstances::default());
        registry.register_collector(Box::new(instances.clone()));
        let rules = RulesMetrics::register(&mut registry);
        registry.register_collector(Box::new(crate::observe::process::ProcessCollector));
        registry.register_collector(Box::new(crate::observe::store_sizes::StoreSizeCollector));
        let reasons_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let reasons =
            REASONS.map(|reason| reasons_family.get_or_create_owned(&[("reason", reason)]));
        registry.register(
            "edge_requests_by_reason",
            "Requests whose Cache-Status gives a reason (detail), by reason: why a request was not a plain hit (no-freshness, private, too-large, cookie, store-error, rules-error, invalidated, ...); rule-<name> counts as rule, an unknown one as other",
            reasons_family,
        );
        Metrics {
            registry,
            requests,
            by_protocol,
            durations,
            bytes,
            origin_fetches,
            origin_duration,
            stores,
            purges,
            purge_targets,
            breaker_open_answers,
            shed_connections,
            evicted_connections,
            native_hits,
            native_served,
            connections_open,
            instance_failures,
            access_log_dropped,
            instances,
            rules,
            reasons,
            latency,
        }
    }

    /// Records how edge-host found a component's cache rules.
    pub fn report_rules(&self, status: RulesStatus) {
        self.rules.report(status);
    }

    /// Every component's cache rules, as last reported.
    pub fn rules(&self) -> Vec<RulesStatus> {
        self.rules.latest()
    }

    /// Reports the instances counted by `counters` (an application's
    /// components) from now on, summed with every other application's
    /// reported so far; counters reported already are not counted twice.
    pub(crate) fn report_instances(
        &self,
        counters: impl IntoIterator<Item = Arc<InstanceCounters>>,
    ) {
        let mut reported = self.instances.lock();
        for counters in counters {
            if !reported.iter().any(|known| Arc::ptr_eq(known, &counters)) {
                reported.push(counters);
            }
        }
    }

    /// The exposition, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String fails only if an encoder does, and ours
        // don't; an empty scrape is the honest answer if one ever did.
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// One answered request.
    pub(crate) fn request(
        &self,
        outcome: Outcome,
        status: u16,
        protocol: Protocol,
        bytes: u64,
        elapsed: Duration,
    ) {
        let at = outcome.index();
        self.requests[at][class_index(status)].inc();
        self.by_protocol[protocol as usize].inc();
        self.durations[at].observe(elapsed.as_secs_f64());
        self.bytes[at].inc_by(bytes);
    }

    /// An accepted purge.
    pub(crate) fn purge(&self, receipt: PurgeReceipt) {
        self.purges[usize::from(receipt.soft)].inc();
        let [urls, tags, prefixes, all] = &self.purge_targets;
        urls.inc_by(receipt.urls);
        tags.inc_by(receipt.tags);
        prefixes.inc_by(receipt.prefixes);
        if receipt.all {
            all.inc();
        }
    }

    /// A request whose `Cache-Status` gave `detail`.
    pub(crate) fn reason(&self, detail: &str) {
        self.reasons[reason_index(detail)].inc();
    }

    /// An answer an open breaker decided.
    pub(crate) fn breaker_open_answer(&self) {
        self.breaker_open_answers.inc();
    }

    /// A request whose instance failed.
    pub(crate) fn instance_failure(&self, cause: FailureCause) {
        self.instance_failures[cause as usize].inc();
    }

    /// An access log line dropped.
    pub(crate) fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// The counters of store `label`, resolved once per store.
    pub(crate) fn store_counters(&self, label: &str) -> StoreCounters {
        let counter = |op: &'static str, result: &'static str| {
            self.stores.get_or_create_owned(&[
                ("store", label.to_owned()),
                ("op", op.to_owned()),
                ("result", result.to_owned()),
            ])
        };
        StoreCounters {
            ok: STORE_OPS.map(|op| counter(op, "ok")),
            error: STORE_OPS.map(|op| counter(op, "error")),
        }
    }

    /// What the status page samples.
    pub fn totals(&self) -> Totals {
        let requests = self
            .requests
            .each_ref()
            .map(|classes| classes.iter().map(Counter::get).sum());
        let origin_fetches = self.origin_fetches.iter().map(Counter::get).sum();
        Totals {
            requests,
            origin_fetches,
            origin_errors: self.origin_fetches[ORIGIN_RESULTS.len() - 1].get(),
            bytes: self.bytes.iter().map(Counter::get).sum(),
            breaker_open: self.breaker_open_answers.get(),
        }
    }

    /// Requests by reason since start, in [`REASONS`] order.
    pub fn reasons(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .zip(&self.reasons)
            .map(|(reason, counter)| (*reason, counter.get()))
            .collect()
    }

    /// Origin fetches by result since start (status class or `error`).
    pub fn origin_results(&self) -> Vec<(&'static str, u64)> {
        ORIGIN_RESULTS
            .iter()
            .zip(&self.origin_fetches)
            .map(|(result, counter)| (*result, counter.get()))
            .collect()
    }

    /// The cumulative duration buckets of the outcomes the status page
    /// shows ([`crate::observe::latency::SHOWN`]); all zero if unreadable.
    pub(crate) fn latency_buckets(
        &self,
    ) -> [crate::observe::latency::Buckets; crate::observe::latency::SHOWN.len()] {
        let mut text = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut text, &self.latency).is_err() {
            text.clear();
        }
        crate::observe::latency::SHOWN.map(|outcome| {
            crate::observe::latency::read_buckets(&text, outcome).unwrap_or_default()
        })
    }
}

/// The operations of the key-value interface, as labels.
pub(crate) const STORE_OPS: [&str; 5] = ["get", "set", "delete", "exists", "get-keys"];

/// One store's operation counters.
#[derive(Debug, Clone)]
pub(crate) struct StoreCounters {
    ok: [Counter; STORE_OPS.len()],
    error: [Counter; STORE_OPS.len()],
}

impl StoreCounters {
    /// Operation `op` (one of [`STORE_OPS`]) succeeded or failed.
    pub(crate) fn count(&self, op: &str, ok: bool) {
        let counters = if ok { &self.ok } else { &self.error };
        if let Some(at) = STORE_OPS.iter().position(|known| *known == op) {
            counters[at].inc();
        }
    }
}

/// Counters of a shed connection (called where the host sheds one).
pub(crate) fn connection_shed() {
    if let Some(metrics) = get() {
        metrics.shed_connections.inc();
    }
}

/// Counts a request other than a fresh hit served natively
/// (`native_hits`: a miss, a revalidation, a pass).
pub(crate) fn native_served() {
    if let Some(metrics) = get() {
        metrics.native_served.inc();
    }
}

/// Counts a fresh hit answered natively (`native_hits`).
pub(crate) fn native_hit() {
    if let Some(metrics) = get() {
        metrics.native_hits.inc();
    }
}

/// Counts `n` idle connections closed to make room for a new one.
pub(crate) fn connections_evicted(n: usize) {
    if let (Some(metrics), 1..) = (get(), n) {
        metrics.evicted_connections.inc_by(n as u64);
    }
}

/// A client connection, counted open until dropped.
pub(crate) struct OpenConnection(&'static Metrics);

/// A connection was accepted within the cap; keep the guard as long as it
/// is open.
pub(crate) fn connection_opened() -> Option<OpenConnection> {
    get().map(|metrics| {
        metrics.connections_open.inc();
        OpenConnection(metrics)
    })
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// Times one origin fetch, from sending to the response head. One the
/// guest gives up on (its own timeout drops the request) counts as an error
/// when the timer is dropped unfinished.
pub(crate) struct OriginTimer {
    metrics: &'static Metrics,
    started: Instant,
    finished: bool,
}

impl OriginTimer {
    /// Starts timing, if metrics are on.
    pub(crate) fn start() -> Option<OriginTimer> {
        get().map(|metrics| OriginTimer {
            metrics,
            started: Instant::now(),
            finished: false,
        })
    }

    /// The fetch ended with `status`, or `None` for no response.
    pub(crate) fn finish(mut self, status: Option<u16>) {
        self.record(status);
    }

    fn record(&mut self, status: Option<u16>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.metrics
            .origin_duration
            .observe(self.started.elapsed().as_secs_f64());
        let at = status.map_or(ORIGIN_RESULTS.len() - 1, class_index);
        self.metrics.origin_fetches[at].inc();
    }
}

impl Drop for OriginTimer {
    fn drop(&mut self) {
        self.record(None);
    }
}

/// The instance counters of every application reported on
/// ([`Metrics::report_instances`]); kept after an application is dropped,
/// so the sums never go back.
#[derive(Debug, Default)]
struct ReportedInstances(Mutex<Vec<Arc<InstanceCounters>>>);

impl ReportedInstances {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<InstanceCounters>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Collector for ReportedInstances {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = {
            let reported = self.lock();
            if reported.is_empty() {
                return Ok(());
            }
            reported
                .iter()
                .map(|counters| counters.snapshot())
                .fold(InstanceStats::default(), |sum, stats| sum + stats)
        };
        let counters = [
            (
                "edge_instances_created",
                "Component instances created",
                stats.created,
            ),
            (
                "edge_instance_requests",
                "Requests handed to an instance",
                stats.requests,
            ),
            (
                "edge_instances_reused",
                "Requests an already used instance took (WASI 0.3 reuse)",
                stats.requests.saturating_sub(stats.created),
            ),
            (
                "edge_instances_failed",
                "Instances ended by a trap or a time or memory limit",
                stats.failed,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let live = ConstGauge::new(stats.created.saturating_sub(stats.ended) as i64);
        live.encode(encoder.encode_descriptor(
            "edge_instances_live",
            "Instances alive now (created and not yet ended)",
            None,
            live.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_cover_every_status() {
        assert_eq!(class_index(100), 0);
        assert_eq!(class_index(204), 1);
        assert_eq!(class_index(304), 2);
        assert_eq!(class_index(499), 3);
        assert_eq!(class_index(503), 4);
        assert_eq!(class_index(0), 0);
        assert_eq!(class_index(999), 4);
    }

    #[test]
    fn the_exposition_names_every_series_before_any_traffic() {
        let metrics = Metrics::new();
        metrics.request(
            Outcome::Hit,
            200,
            Protocol::Http2,
            10,
            Duration::from_micros(300),
        );
        metrics.purge(PurgeReceipt {
            soft: true,
            urls: 2,
            tags: 1,
            ..Default::default()
        });
        let text = metrics.encode();
        assert!(
            text.contains("edge_requests_total{outcome=\"hit\",status=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("edge_requests_total{outcome=\"miss\",status=\"5xx\"} 0"));
        assert!(text.contains("edge_response_bytes_total{outcome=\"hit\"} 10"));
        assert!(
            text.contains("edge_request_duration_seconds_bucket{le=\"0.0005\",outcome=\"hit\"} 1")
                || text.contains(
                    "edge_request_duration_seconds_bucket{outcome=\"hit\",le=\"0.0005\"} 1"
                ),
            "{text}"
        );
        assert!(text.contains("edge_purges_total{mode=\"soft\"} 1"));
        assert!(text.contains("edge_purge_targets_total{kind=\"url\"} 2"));
        assert_eq!(metrics.totals().requests[Outcome::Hit.index()], 1);
        let [hits, misses] = metrics.latency_buckets();
        assert_eq!(&hits[..4], &[0, 0, 1, 1], "300 µs is in the 0.5 ms bucket");
        assert_eq!(hits[16], 1);
        assert_eq!(misses[16], 0);
        metrics.reason("no-freshness");
        metrics.reason("rule-account");
        metrics.reason("something-new");
        let text = metrics.encode();
        for counted in ["no-freshness", "rule", "other"] {
            assert!(
                text.contains(&format!(
                    "edge_requests_by_reason_total{{reason=\"{counted}\"}} 1"
                )),
                "{counted}: {text}"
            );
        }
        assert!(text.contains("edge_requests_by_reason_total{reason=\"private\"} 0"));
        assert!(text.contains("edge_build_info{version="), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
    }

    #[test]
    fn every_application_reported_is_counted_once() {
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("edge_instances"));
        let (first, second) = (
            Arc::new(InstanceCounters::default()),
            Arc::new(InstanceCounters::default()),
        );
        first.created();
        first.request_started(1);
        second.created();
        second.created();
        second.ended(true);
        metrics.report_instances([first.clone()]);
        // A second application is reported too; the first is not counted twice.
        metrics.report_instances([first, second]);
        let text = metrics.encode();
        assert!(text.contains("edge_instances_created_total 3"), "{text}");
        assert!(text.contains("edge_instances_failed_total 1"), "{text}");
        assert!(text.contains("edge_instances_live 2"), "{text}");
    }
}
