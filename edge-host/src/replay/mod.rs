//! `edge-host replay`: a recorded access log run through the cache again,
//! with candidate rules, to see what they would do before they are live:
//! the predicted hit ratio and origin fetches beside the recorded ones,
//! and the URLs whose decision changes.
//!
//! The requests go through the edge-cache core itself (linked natively,
//! as native hits are), so every decision is the component's own code,
//! over a memory store of the size given (edge-host's, the same eviction),
//! a clock set to each request's logged arrival, and an origin that
//! answers each URL as the log says it did (status, the lifetime it was
//! stored with, or why it was not: `log`). One thread, no wall clock, no
//! randomness (the store's shards hashed with a fixed seed): the same log
//! and rules print the same report every time.
//!
//! Each request is served as `edge-host up` serves it: a fresh hit by a
//! long-lived node of its own ([`NativeTier`], a serving lane's), whose
//! first tier (`l1_capacity_bytes`) only ever holds what it read from the
//! store, popular entries the store keeps anyway; anything else by a
//! component instance, a node retired after [`INSTANCE_REUSE`] requests,
//! whose first tier also holds what it filled. (One long-lived node for
//! everything kept every fill in a first tier of 16 MiB for thousands of
//! requests and answered from it requests for objects the store had
//! already dropped: on the bench's Zipf trace, 300,000 requests over
//! 100,000 objects of 1 KiB into a 32 MiB store, it predicted 82.4 % hits
//! where the edge recorded 81.8 %; served as edge-host serves, 81.9 %.)
//!
//! Where the store is smaller than what the log asks for, the prediction
//! is only as good as the room each entry takes, and an entry holds the
//! origin's header fields beside its body. The log has the body's length
//! but not the fields, so the replayed origin answers with `Date` (as
//! every origin with a clock does), `Cache-Control` as the log implies,
//! and whatever `origin_headers` says the real one sends besides
//! (`Content-Type`, ...). (With none of them, the same trace's entries
//! weighed 1,193 bytes on average against the edge's 1,295, the store
//! held 28,130 of them against 25,920, and too many hits were predicted;
//! with `Date`, 82.1 %; with the bench origin's `Content-Type` too,
//! 81.9 %. Of the 0.1 point left, the `public` in its `Cache-Control`,
//! which the log does not show, is 0.03; the rest is not the first tiers
//! or the lanes, since the edge recorded the same 81.77 % with
//! `l1_capacity_bytes=0` and with one serving thread, but presumably the
//! order in which 16 connections' requests reached the store, which a log
//! written as they end gives only roughly.)
//!
//! What the log does not hold cannot be replayed: cookies and request
//! fields (rules keyed on them see none), and the query unless the log was
//! written with `--access-log-query`.

mod log;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use edge_cache::{
    Body, ClientConnection, Clock, Host, KeyValueStore, Node, Origin, OriginEndpoint,
    OriginFailure, OriginRequest, RequestHead, Response, StoreFailure,
};
use http::{HeaderMap, HeaderValue, Method};

use crate::key_value::StoreBackend;
use crate::key_value::memory::MemoryStore;
use crate::observe::cache_outcome::Outcome;
pub use log::{Logged, parse};

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The recorded log's text (JSON lines).
    pub log: String,
    /// The candidate rules (JSON), as `cache_rules` would hold them; empty:
    /// the built-in ones.
    pub rules: String,
    /// The memory store's size, in bytes.
    pub capacity_bytes: u64,
    /// Other edge-cache variables (`NAME=VALUE`).
    pub variables: Vec<(String, String)>,
    /// Header fields the origin sends with every answer besides
    /// `Cache-Control` and `Date` (`Content-Type`, ...): stored with each
    /// entry, they take room in the store as they did live.
    pub origin_headers: Vec<(String, String)>,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    /// Requests replayed (GET and HEAD).
    pub requests: u64,
    /// Other requests of the log, not replayed.
    pub skipped: u64,
    pub recorded_hit_ratio: f64,
    pub predicted_hit_ratio: f64,
    pub recorded_origin_fetches: u64,
    pub predicted_origin_fetches: u64,
    /// Requests whose outcome differs from the recorded one.
    pub changed_requests: u64,
    /// Per URL: recorded and predicted outcome and how many requests, most
    /// first (then by URL).
    pub changed: Vec<(String, String, String, u64)>,
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "replayed {} requests ({} other methods skipped)",
            self.requests, self.skipped
        )?;
        writeln!(f, "                 recorded   predicted")?;
        writeln!(
            f,
            "hit ratio        {:>7.2} %  {:>7.2} %",
            self.recorded_hit_ratio * 100.0,
            self.predicted_hit_ratio * 100.0
        )?;
        writeln!(
            f,
            "origin fetches   {:>9}  {:>9}",
            self.recorded_origin_fetches, self.predicted_origin_fetches
        )?;
        writeln!(
            f,
            "decisions changed: {} requests, {} URLs",
            self.changed_requests,
            self.changed.len()
        )?;
        for (url, recorded, predicted, count) in self.changed.iter().take(20) {
            writeln!(f, "  {url}  {recorded} -> {predicted}  ({count})")?;
        }
        Ok(())
    }
}

/// Replays `options.log` with `options.rules`.
pub fn replay(options: &ReplayOptions) -> Result<ReplayReport, String> {
    // The component would proxy without caching; a replay of that is
    // no use to anyone choosing rules.
    if !options.rules.trim().is_empty() {
        edge_cache::CacheRules::parse(&options.rules)
            .map_err(|e| format!("the candidate rules are not accepted: {e}"))?;
    }
    let lines = parse(&options.log)?;
    let answers = log::origin_answers(&lines);
    let clock = VirtualClock::default();
    let origin_headers = origin_headers(&options.origin_headers)?;
    let origin = ReplayOrigin {
        answers: Rc::new(answers),
        headers: Rc::new(origin_headers),
        clock: clock.clone(),
        fetches: Rc::default(),
    };
    let mut variables: BTreeMap<String, String> = options.variables.iter().cloned().collect();
    variables.insert("origin_url".into(), "http://replay.invalid".into());
    variables.insert("cache_rules".into(), options.rules.clone());
    let host = ReplayHost {
        variables: Rc::new(variables),
        // The live store's shards are picked by a hash seeded at random
        // per process; a fixed seed makes every replay split them alike.
        store: Arc::new(MemoryStore::with_fixed_seed(options.capacity_bytes)),
        clock: clock.clone(),
        origin: origin.clone(),
        random: Rc::default(),
    };
    let native = NativeTier(build(host.clone())?);
    let mut instance = Instance {
        node: build(host.clone())?,
        served: 0,
    };
    let (mut requests, mut skipped) = (0u64, 0u64);
    let (mut recorded, mut predicted) = (Ratio::default(), Ratio::default());
    let mut recorded_fetches = 0u64;
    let mut changed: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for line in &lines {
        let method = match line.method.as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            _ => {
                skipped += 1;
                continue;
            }
        };
        requests += 1;
        if let Ok(at) = humantime::parse_rfc3339(&line.time) {
            clock.set(at);
        }
        let mut headers = HeaderMap::new();
        if let Ok(host) = HeaderValue::from_str(&line.host) {
            headers.insert(http::header::HOST, host);
        }
        let head = RequestHead {
            method,
            path_and_query: line.target(),
            headers,
            connection: ClientConnection {
                peer: None,
                scheme: "http".into(),
                host: Some(line.host.clone()),
            },
        };
        let outcome = match native.answer(&head) {
            Some(outcome) => outcome,
            None => instance.serve(&host, head)?,
        };
        predicted.add(outcome);
        recorded.add(outcome_named(&line.outcome));
        if line.cache_status.contains("fwd-status=") {
            recorded_fetches += 1;
        }
        if outcome.as_str() != line.outcome {
            let key = (
                log::url_key(&line.target()),
                line.outcome.clone(),
                outcome.as_str().to_owned(),
            );
            *changed.entry(key).or_default() += 1;
        }
    }
    let changed_requests = changed.values().sum();
    let mut changed: Vec<(String, String, String, u64)> = changed
        .into_iter()
        .map(|((url, from, to), count)| (url, from, to, count))
        .collect();
    changed.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    Ok(ReplayReport {
        requests,
        skipped,
        recorded_hit_ratio: recorded.ratio(),
        predicted_hit_ratio: predicted.ratio(),
        recorded_origin_fetches: recorded_fetches,
        predicted_origin_fetches: origin.fetches.get(),
        changed_requests,
        changed,
    })
}

/// Requests a component instance serves before it is retired, and its
/// first tier with it: `edge-host up`'s default `--max-instance-reuse-count`
/// (Spin's).
const INSTANCE_REUSE: u64 = 128;

/// A node for `host`, or why the configuration is refused.
fn build(host: ReplayHost) -> Result<Node<ReplayHost>, String> {
    futures::executor::block_on(Node::new(host)).map_err(|_| {
        "the candidate rules or variables are not accepted (`edge-host check` names the problem)"
            .to_owned()
    })
}

/// Fresh hits, answered as a serving lane of edge-host answers them
/// (`native_hits`): its node lives as long as the lane, and its first
/// tier holds only what it read from the store.
struct NativeTier(Node<ReplayHost>);

impl NativeTier {
    /// The outcome of `head` if it is a plain fresh hit.
    fn answer(&self, head: &RequestHead) -> Option<Outcome> {
        let hit = futures::executor::block_on(self.0.fresh_hit(head.clone()))?;
        Some(Outcome::of(hit.response.status, &hit.response.headers))
    }
}

/// The component instance serving what is not a fresh hit, replaced by a
/// new one (an empty first tier) after [`INSTANCE_REUSE`] requests.
struct Instance {
    node: Node<ReplayHost>,
    served: u64,
}

impl Instance {
    fn serve(&mut self, host: &ReplayHost, head: RequestHead) -> Result<Outcome, String> {
        if self.served == INSTANCE_REUSE {
            self.node = build(host.clone())?;
            self.served = 0;
        }
        self.served += 1;
        let (response, refresh) =
            futures::executor::block_on(self.node.handle(head.with_body(Body::empty())));
        if let Some(refresh) = refresh {
            futures::executor::block_on(self.node.refresh(refresh));
        }
        Ok(Outcome::of(response.status, &response.headers))
    }
}

/// The fields the replayed origin sends with every answer; those it
/// takes from the log or the clock cannot be given.
fn origin_headers(fields: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        let name = http::HeaderName::try_from(name.trim())
            .map_err(|e| format!("origin header `{name}`: {e}"))?;
        if [
            http::header::CACHE_CONTROL,
            http::header::SET_COOKIE,
            http::header::DATE,
            http::header::CONTENT_LENGTH,
        ]
        .contains(&name)
        {
            return Err(format!(
                "origin header `{name}`: the replay answers with the log's (or the clock's)"
            ));
        }
        let value = HeaderValue::try_from(value.trim())
            .map_err(|e| format!("origin header `{name}`: {e}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The outcome a log line names.
fn outcome_named(name: &str) -> Outcome {
    Outcome::ALL
        .into_iter()
        .find(|o| o.as_str() == name)
        .unwrap_or(Outcome::None)
}

/// Answered from the cache over every cache outcome (the status page's
/// hit ratio).
#[derive(Default)]
struct Ratio {
    from_cache: u64,
    counted: u64,
}

impl Ratio {
    fn add(&mut self, outcome: Outcome) {
        if outcome != Outcome::None {
            self.counted += 1;
            self.from_cache += u64::from(outcome.from_cache());
        }
    }

    fn ratio(&self) -> f64 {
        match self.counted {
            0 => 0.0,
            n => self.from_cache as f64 / n as f64,
        }
    }
}

/// The replay's nodes' host: their variables, one memory store for every
/// label, the virtual clock and the log's origin, shared by every node.
#[derive(Clone)]
struct ReplayHost {
    variables: Rc<BTreeMap<String, String>>,
    store: Arc<MemoryStore>,
    clock: VirtualClock,
    origin: ReplayOrigin,
    random: Rc<Cell<u64>>,
}

impl Host for ReplayHost {
    type Store = ReplayStore;
    type Origin = ReplayOrigin;
    type Clock = VirtualClock;
    // As the WASI 0.3 flavour: a first tier, collapsing.
    const INSTANCES_OUTLIVE_REQUESTS: bool = true;

    async fn variable(&self, name: &'static str) -> Option<String> {
        self.variables.get(name).cloned()
    }

    async fn open_store(&self, _label: &str) -> Result<ReplayStore, String> {
        Ok(ReplayStore(self.store.clone()))
    }

    fn origin(&self, _: OriginEndpoint) -> ReplayOrigin {
        self.origin.clone()
    }

    fn clock(&self) -> VirtualClock {
        self.clock.clone()
    }

    fn random_u64(&self) -> u64 {
        self.random.set(self.random.get() + 1);
        self.random.get()
    }
}

/// The replay's store.
struct ReplayStore(Arc<MemoryStore>);

impl KeyValueStore for ReplayStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        if key == purge_wire::STORE_CAPACITY_KEY {
            return Ok(crate::key_value::host::capacity_value(self.0.as_ref()));
        }
        self.0
            .get(key)
            .await
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.0
            .set(key, value.to_vec())
            .await
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.0
            .delete(key)
            .await
            .map_err(|e| StoreFailure(e.to_string()))
    }
}

/// An origin answering each URL as the log says it did, with `Date` (the
/// virtual clock's) and the fields `origin_headers` gives; a URL the log
/// never saw answered is `404`.
#[derive(Clone)]
struct ReplayOrigin {
    answers: Rc<BTreeMap<String, log::OriginAnswer>>,
    /// Sent with every answer.
    headers: Rc<HeaderMap>,
    clock: VirtualClock,
    fetches: Rc<Cell<u64>>,
}

impl Origin for ReplayOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        self.fetches.set(self.fetches.get() + 1);
        let key = log::url_key(&request.target);
        let path = request.target.split('?').next().unwrap_or("");
        let answer = self.answers.get(&key).or_else(|| self.answers.get(path));
        let mut headers = self.headers.as_ref().clone();
        if let Ok(date) = HeaderValue::try_from(httpdate::fmt_http_date(self.clock.now())) {
            headers.insert(http::header::DATE, date);
        }
        let Some(answer) = answer else {
            return Ok(Response {
                status: 404,
                headers,
                body: Body::empty(),
            });
        };
        if let Some(control) = answer
            .cache_control
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(http::header::CACHE_CONTROL, control);
        }
        if answer.set_cookie {
            headers.insert(
                http::header::SET_COOKIE,
                HeaderValue::from_static("replayed=1"),
            );
        }
        Ok(Response {
            status: answer.status,
            headers,
            body: vec![0u8; answer.bytes as usize].into(),
        })
    }
}

/// The time of the request being replayed; a pause passes at once (one
/// request at a time: nothing to wait for).
#[derive(Clone, Default)]
struct VirtualClock(Rc<RefCell<Option<SystemTime>>>);

impl VirtualClock {
    fn set(&self, at: SystemTime) {
        *self.0.borrow_mut() = Some(at);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        self.0.borrow().unwrap_or(SystemTime::UNIX_EPOCH)
    }

    async fn pause(&self, duration: Duration) {
        let now = self.now();
        self.set(now + duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at_ms: u64, path: &str, outcome: &str, cache_status: &str) -> String {
        let time =
            humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(at_ms));
        format!(
            r#"{{"time":"{time}","method":"GET","host":"shop.example","path":"{path}","protocol":"HTTP/1.1","status":200,"cache_status":"{cache_status}","outcome":"{outcome}","bytes":64,"duration_ms":1.0,"component":"edge"}}"#
        )
    }

    fn recorded() -> String {
        let miss = "edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored";
        let private = "edge-cache; fwd=uri-miss; fwd-status=200; detail=private";
        let start = 1_796_500_000_000;
        [
            line(start, "/a", "miss", miss),
            line(start + 1_000, "/a", "hit", "edge-cache; hit; ttl=59"),
            line(start + 2_000, "/b", "miss", miss),
            line(start + 3_000, "/p", "miss", private),
            line(start + 4_000, "/p", "miss", private),
            line(start + 5_000, "/a", "hit", "edge-cache; hit; ttl=55"),
            line(start + 90_000, "/a", "miss", miss),
        ]
        .join("\n")
    }

    fn options(rules: &str) -> ReplayOptions {
        ReplayOptions {
            log: recorded(),
            rules: rules.to_owned(),
            capacity_bytes: 1 << 20,
            variables: Vec::new(),
            origin_headers: Vec::new(),
        }
    }

    #[test]
    fn the_same_rules_predict_what_was_recorded() {
        let report = replay(&options(r#"{"rules": []}"#)).unwrap();
        assert_eq!(report.requests, 7);
        assert_eq!(report.recorded_hit_ratio, 2.0 / 7.0);
        assert_eq!(
            report.predicted_hit_ratio, report.recorded_hit_ratio,
            "{report}"
        );
        assert_eq!(report.predicted_origin_fetches, 5);
        assert_eq!(report.recorded_origin_fetches, 5);
        assert!(report.changed.is_empty(), "{report}");
    }

    #[test]
    fn a_longer_lifetime_by_rule_turns_the_refetch_into_a_hit_and_says_so() {
        let rules = r#"{"rules": [{"path_prefix": "/a", "ttl_seconds": 600}]}"#;
        let first = replay(&options(rules)).unwrap();
        assert_eq!(first.predicted_origin_fetches, 4);
        assert_eq!(
            first.changed,
            vec![("/a".to_owned(), "miss".to_owned(), "hit".to_owned(), 1)]
        );
        // Deterministic: the same report, word for word.
        let second = replay(&options(rules)).unwrap();
        assert_eq!(first.to_string(), second.to_string());
    }

    #[test]
    fn a_bypass_rule_is_predicted_as_bypasses() {
        let rules = r#"{"rules": [{"path_prefix": "/", "bypass": true}]}"#;
        let report = replay(&options(rules)).unwrap();
        assert_eq!(report.predicted_hit_ratio, 0.0);
        assert_eq!(report.predicted_origin_fetches, 7);
    }

    #[test]
    fn origin_headers_are_sent_but_never_the_ones_the_log_gives() {
        let mut with_type = options(r#"{"rules": []}"#);
        with_type.origin_headers = vec![("Content-Type".into(), "text/html".into())];
        let report = replay(&with_type).unwrap();
        assert!(report.changed.is_empty(), "{report}");
        with_type.origin_headers = vec![("Cache-Control".into(), "max-age=600".into())];
        assert_eq!(
            replay(&with_type).unwrap_err(),
            "origin header `cache-control`: the replay answers with the log's (or the clock's)"
        );
    }

    #[test]
    fn broken_rules_are_refused_in_words() {
        let error = replay(&options(r#"{"rules": [{"path_prefix": "x"}]}"#)).unwrap_err();
        assert_eq!(
            error,
            "the candidate rules are not accepted: cache rules: rules[0].path_prefix: must start with `/`"
        );
    }
}
