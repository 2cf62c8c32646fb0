//! `edge-host replay`: a recorded access log run through the cache again,
//! with candidate rules, to see what they would do before they are live:
//! the predicted hit ratio and origin fetches beside the recorded ones,
//! and the URLs whose decision changes.
//!
//! The requests go through the edge-cache core itself (linked natively,
//! as native hits are), so every decision is the component's own code, in
//! a node of its own: a memory store of the size given (edge-host's, the
//! same eviction), a clock set to each request's logged arrival, and an
//! origin that answers each URL as the log says it did (status, the
//! lifetime it was stored with, or why it was not: `log`). One thread, no
//! wall clock, no randomness: the same log and rules print the same
//! report every time.
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
    Body, ClientConnection, ClientRequest, Clock, Host, KeyValueStore, Node, Origin,
    OriginEndpoint, OriginFailure, OriginRequest, Response, StoreFailure,
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
    let origin = ReplayOrigin {
        answers: Rc::new(answers),
        fetches: Rc::default(),
    };
    let mut variables: BTreeMap<String, String> = options.variables.iter().cloned().collect();
    variables.insert("origin_url".into(), "http://replay.invalid".into());
    variables.insert("cache_rules".into(), options.rules.clone());
    let host = ReplayHost {
        variables,
        store: Arc::new(MemoryStore::new(options.capacity_bytes)),
        clock: clock.clone(),
        origin: origin.clone(),
        random: Cell::new(0),
    };
    let node = futures::executor::block_on(Node::new(host))
        .map_err(|_| "the candidate rules or variables are not accepted (`edge-host check` names the problem)".to_owned())?;
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
        let request = ClientRequest {
            method,
            path_and_query: line.target(),
            headers,
            connection: ClientConnection {
                peer: None,
                scheme: "http".into(),
                host: Some(line.host.clone()),
            },
            body: Body::empty(),
        };
        let (response, refresh) = futures::executor::block_on(node.handle(request));
        if let Some(refresh) = refresh {
            futures::executor::block_on(node.refresh(refresh));
        }
        let outcome = Outcome::of(response.status, &response.headers);
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

/// The replay's node: its variables, one memory store for every label,
/// the virtual clock and the log's origin.
struct ReplayHost {
    variables: BTreeMap<String, String>,
    store: Arc<MemoryStore>,
    clock: VirtualClock,
    origin: ReplayOrigin,
    random: Cell<u64>,
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

/// An origin answering each URL as the log says it did; a URL the log
/// never saw answered is `404`.
#[derive(Clone)]
struct ReplayOrigin {
    answers: Rc<BTreeMap<String, log::OriginAnswer>>,
    fetches: Rc<Cell<u64>>,
}

impl Origin for ReplayOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        self.fetches.set(self.fetches.get() + 1);
        let key = log::url_key(&request.target);
        let path = request.target.split('?').next().unwrap_or("");
        let answer = self.answers.get(&key).or_else(|| self.answers.get(path));
        let mut headers = HeaderMap::new();
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
    fn broken_rules_are_refused_in_words() {
        let error = replay(&options(r#"{"rules": [{"path_prefix": "x"}]}"#)).unwrap_err();
        assert_eq!(
            error,
            "the candidate rules are not accepted: cache rules: rules[0].path_prefix: must start with `/`"
        );
    }
}
