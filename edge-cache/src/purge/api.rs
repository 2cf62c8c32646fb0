//! The purge API as an endpoint: `POST {admin_path}/purge` with a JSON
//! body, and the `PURGE` method on a URL. Authentication and the body limit
//! are checked from the request head before any body is read; applying a
//! purge writes one scope value per target (see
//! `policy::invalidation`).
//!
//! Beside it, under the same admin path, the edge's health check:
//! `GET {admin_path}/health` for load balancers and DNS failover checks,
//! unauthenticated, never a purge and never cached.

use http::{HeaderMap, Method};
use purge_wire::{Purged, Receipt};

use crate::config::ServedHosts;
use crate::policy::invalidation::{PurgeKind, all_scope, prefix_scope, tag_scope, url_scope};
use crate::policy::key::build_key;
use crate::policy::rules::{CacheRules, Rule};
use crate::purge::completion::{self, PurgeRecord, Reporter};
use crate::purge::request::{
    MAX_BODY_BYTES, PurgeRequest, PurgeUrl, authorized, check_length, check_method,
    parse_purge_body, purge_id,
};
use crate::reply::{
    body_too_large, explain_method_not_allowed, health, health_method_not_allowed, json_response,
    method_not_allowed, unauthorized,
};
use crate::seams::{ClientConnection, ClientRequest, Clock, Response, StoreFailure};
use crate::store::keys::{PurgeStateKey, Store};
use crate::store::{CacheStorage, unix_ms};

/// The `error` of a purge the store could not record (`503`): what
/// failed and what to do, never the store's own error (its address, its
/// client's types), which goes to the log.
pub(crate) const STORE_UNAVAILABLE: &str =
    "store unavailable: the purge was not recorded; try again";

/// Where the purge API lives and the token it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurgeSettings {
    /// The admin path prefix (`/_edge`): the API is `{admin_path}/purge`,
    /// the health check `{admin_path}/health`.
    pub admin_path: String,
    /// The bearer token it requires (`purge_token`). Empty: the purge API
    /// is off (its path and the `PURGE` method are proxied like any other
    /// request) and only the health check is served.
    pub token: String,
    /// The served hosts: purge URLs may name any of them.
    pub hosts: ServedHosts,
    /// This node's name, where it records its purge progress
    /// (`node_name`), and its record of what it reported.
    pub node: Option<String>,
    pub reporter: Reporter,
    /// `purge_staleness_ms`, as completion answers state it.
    pub staleness_ms: u64,
}

/// What the edge decided from a request's head, before any of its body is
/// read.
#[derive(Debug)]
pub enum Admission {
    /// Read the body, refusing it (`413`) past `limit` bytes where set (the
    /// host's own request-body limit applies anyway).
    ReadBody {
        /// The most body bytes this request may carry.
        limit: Option<usize>,
    },
    /// Answer at once without reading the body: an unauthenticated or
    /// oversized purge must not make the edge buffer anything.
    Answer(Response),
    /// Go on with an empty body without reading it: the request announces
    /// none (see `flow::announces_no_body`). Reading an
    /// empty body is not free in `wasi:http` (a stream and a trailers
    /// future, each a round trip through the host), and hits are mostly
    /// such requests.
    NoBody,
}

/// Which of the admin routes a request is: one of the purge API's two
/// forms, or the health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PurgeRoute {
    /// `{admin_path}/purge`, any method (only POST is accepted).
    Endpoint,
    /// The `PURGE` method on any other path.
    Method,
    /// `{admin_path}/health`, any method (GET and HEAD are answered, others
    /// `405`): matched first, so that no method on it is ever a purge.
    Health,
    /// `{admin_path}/explain`: the decision explainer (`flow::explain`),
    /// GET or HEAD with the token.
    Explain,
    /// `{admin_path}/purges/{id}`: which nodes have applied a purge
    /// (`purge::completion`), GET or HEAD with the token.
    Completion,
}

impl PurgeSettings {
    /// Which admin route `method` on `path_and_query` is, if any.
    pub(crate) fn route(&self, method: &Method, path_and_query: &str) -> Option<PurgeRoute> {
        let path = path_and_query.split('?').next().unwrap_or("/");
        let admin = path.strip_prefix(self.admin_path.as_str());
        if admin == Some("/health") {
            Some(PurgeRoute::Health)
        } else if self.token.is_empty() {
            None
        } else if admin == Some("/purge") {
            Some(PurgeRoute::Endpoint)
        } else if admin == Some("/explain") {
            Some(PurgeRoute::Explain)
        } else if admin.is_some_and(|rest| rest.starts_with("/purges/")) {
            Some(PurgeRoute::Completion)
        } else if method.as_str() == "PURGE" {
            Some(PurgeRoute::Method)
        } else {
            None
        }
    }
}

/// The purge API over the cache's storage.
pub(crate) struct PurgeApi<'a, S, C> {
    /// Where it lives and its token.
    pub(crate) settings: &'a PurgeSettings,
    /// The rules, to key purged URLs as requests for them are keyed.
    pub(crate) rules: Option<&'a CacheRules>,
    /// Where scope times are written.
    pub(crate) storage: CacheStorage<'a, S, C>,
}

impl<S: Store, C: Clock> PurgeApi<'_, S, C> {
    /// Decides from the head alone, with every check of it in this one
    /// place: the endpoint takes POST only, the bearer token, a declared
    /// body within the limit. A request that fails one is answered before
    /// a byte of its body is read; one that passes has its body read up
    /// to the limit.
    pub(crate) fn admit(
        &self,
        route: PurgeRoute,
        method: &Method,
        headers: &HeaderMap,
    ) -> Admission {
        if route == PurgeRoute::Health {
            // No token, no body: whatever a health request carries is
            // not read.
            return match *method {
                Method::GET | Method::HEAD => Admission::NoBody,
                _ => Admission::Answer(health_method_not_allowed()),
            };
        }
        if route == PurgeRoute::Endpoint && check_method(method).is_err() {
            return Admission::Answer(method_not_allowed());
        }
        if !authorized(headers, &self.settings.token) {
            return Admission::Answer(unauthorized());
        }
        if matches!(route, PurgeRoute::Explain | PurgeRoute::Completion) {
            return match *method {
                Method::GET | Method::HEAD => Admission::NoBody,
                _ => Admission::Answer(explain_method_not_allowed()),
            };
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| check_length(length).is_err()) {
            return Admission::Answer(body_too_large(MAX_BODY_BYTES));
        }
        Admission::ReadBody {
            limit: Some(MAX_BODY_BYTES),
        }
    }

    /// The answer to a purge request [`admit`](Self::admit)ted, its body
    /// read within the limit: only the body is left to check.
    pub(crate) async fn handle(&self, route: PurgeRoute, request: &ClientRequest) -> Response {
        match route {
            PurgeRoute::Endpoint => self.endpoint(request).await,
            PurgeRoute::Method => self.method(request).await,
            PurgeRoute::Health => self.health(request).await,
            // (Answered by the flow, which the explainer needs whole.)
            PurgeRoute::Explain => explain_method_not_allowed(),
            PurgeRoute::Completion => {
                let path = request.path_and_query.split('?').next().unwrap_or("");
                let id = path.rsplit('/').next().unwrap_or("");
                completion::answer(self.storage.store, id, self.settings.staleness_ms).await
            }
        }
    }

    /// `GET {admin_path}/health`: `200` while the edge runs, and whether
    /// the store answers one read (of the purge epoch, in the store purges
    /// are recorded in). The origin is never asked: a load balancer
    /// failing the edge over must not do so because the origin is down,
    /// and a store that does not answer does not stop the edge serving
    /// (it goes to the origin), so both answers are `200`.
    async fn health(&self, request: &ClientRequest) -> Response {
        let store_answers = self
            .storage
            .store
            .get_current(&PurgeStateKey::Epoch)
            .await
            .is_ok();
        health(store_answers, request.method == Method::HEAD)
    }

    /// `POST {admin_path}/purge` with a JSON body.
    async fn endpoint(&self, request: &ClientRequest) -> Response {
        let connection = &request.connection;
        let host = connection.host.as_deref().unwrap_or_default();
        match parse_purge_body(request.body.as_slice(), host, &self.settings.hosts) {
            Ok(purge) => self.apply(&purge, connection).await,
            Err(refusal) => json_response(
                refusal.status,
                &serde_json::json!({"error": refusal.message}),
            ),
        }
    }

    /// `PURGE /path` purges that one URL (all its variants).
    async fn method(&self, request: &ClientRequest) -> Response {
        let connection = &request.connection;
        let soft = request
            .headers
            .get("soft-purge")
            .is_some_and(|v| v.as_bytes() == b"1");
        let purge = PurgeRequest {
            urls: vec![PurgeUrl {
                host: connection.host.clone().unwrap_or_default(),
                target: request.path_and_query.clone(),
            }],
            soft,
            ..Default::default()
        };
        self.apply(&purge, connection).await
    }

    /// Writes one scope value per target; nothing is scanned or deleted.
    async fn apply(&self, purge: &PurgeRequest, connection: &ClientConnection) -> Response {
        let host = connection.host.as_deref().unwrap_or_default();
        let mut scopes = Vec::new();
        if purge.all {
            scopes.push(all_scope());
        }
        let default_rule = Rule::default();
        for url in &purge.urls {
            let rule = self
                .rules
                .map_or(&default_rule, |r| r.for_target(&url.target));
            // Entries are keyed by the scheme the client used; purge both.
            for scheme in ["http", "https"] {
                let keyed = build_key(scheme, &url.host, &url.target, &HeaderMap::new(), rule);
                scopes.push(url_scope(keyed.url()));
            }
        }
        scopes.extend(purge.tags.iter().map(|tag| tag_scope(tag)));
        scopes.extend(purge.prefixes.iter().map(|prefix| prefix_scope(prefix)));

        let id = purge_id(
            format!("{}|{:?}|{}", unix_ms(self.storage.clock.now()), purge, host).as_bytes(),
        );
        let caller = connection
            .peer
            .map(|p| p.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kind = PurgeKind::from_soft(purge.soft);
        let recorded = match self.storage.purge(&scopes, kind).await {
            Ok(at_us) => {
                let record = PurgeRecord {
                    at_us,
                    targets: Purged {
                        urls: purge.urls.len() as u64,
                        tags: purge.tags.len() as u64,
                        prefixes: purge.prefixes.len() as u64,
                        all: purge.all,
                    },
                    soft: purge.soft,
                    node: self.settings.node.clone(),
                };
                // Only completion queries and the explainer read these: a
                // purge whose record failed is still a purge.
                let _ = completion::record(self.storage.store, &id, &record).await;
                for scope in &scopes {
                    let key = PurgeStateKey::scope_purge(scope, kind);
                    let _ = self.storage.store.set(&key, id.as_bytes()).await;
                }
                // The node that took it has applied it.
                if let Some(node) = &self.settings.node {
                    let (store, clock) = (self.storage.store, self.storage.clock);
                    self.settings.reporter.report(store, clock, node).await;
                }
                Ok(())
            }
            Err(failure) => Err(failure),
        };
        if let Err(StoreFailure(error)) = recorded {
            // The store's own error (its address, its client's types) is
            // for the log; the caller learns what failed and what to do.
            eprintln!("edge-cache: purge {id} from {caller} failed: store error: {error}");
            return json_response(
                503,
                &serde_json::json!({"id": id, "error": STORE_UNAVAILABLE}),
            );
        }
        // Routine: the host logs a guest's standard output at info.
        println!(
            "edge-cache: purge {id} from {caller}: urls={:?} tags={:?} prefixes={:?} all={} soft={}",
            purge
                .urls
                .iter()
                .map(|url| format!("{}{}", url.host, url.target))
                .collect::<Vec<_>>(),
            purge.tags,
            purge.prefixes,
            purge.all,
            purge.soft
        );
        // Targets accepted, under both names (see `purge_wire::Receipt`).
        let targets = Purged {
            urls: purge.urls.len() as u64,
            tags: purge.tags.len() as u64,
            prefixes: purge.prefixes.len() as u64,
            all: purge.all,
        };
        let receipt = Receipt {
            id,
            soft: purge.soft,
            purged: targets,
            targets,
        };
        json_response(200, &serde_json::json!(receipt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FakeClock, MemStore, block_on, headers};

    #[test]
    fn an_accepted_purge_is_answered_with_the_shared_receipt() {
        let settings = PurgeSettings {
            admin_path: "/_edge".into(),
            token: "t".into(),
            hosts: ServedHosts::default(),
            node: None,
            reporter: Default::default(),
            staleness_ms: 100,
        };
        let (store, clock) = (
            MemStore::default(),
            FakeClock::at_unix_ms(1_700_000_000_000),
        );
        let api = PurgeApi {
            settings: &settings,
            rules: None,
            storage: CacheStorage {
                store: &store,
                clock: &clock,
                l1: None,
            },
        };
        let request = ClientRequest {
            method: Method::POST,
            path_and_query: "/_edge/purge".into(),
            headers: headers(&[("authorization", "Bearer t")]),
            connection: ClientConnection {
                host: Some("shop.example".into()),
                ..Default::default()
            },
            body: br#"{"urls": ["/a", "/b"], "tags": ["t"], "soft": true}"#
                .to_vec()
                .into(),
        };
        let answer = block_on(api.handle(PurgeRoute::Endpoint, &request));
        assert_eq!(answer.status, 200);
        let receipt: Receipt = serde_json::from_slice(answer.body.as_slice()).unwrap();
        assert!(receipt.soft);
        let purged = Purged {
            urls: 2,
            tags: 1,
            prefixes: 0,
            all: false,
        };
        assert_eq!(receipt.purged, purged);
        assert_eq!(receipt.id.len(), 16);
    }

    #[test]
    fn the_api_is_the_endpoint_path_or_the_purge_method() {
        let settings = PurgeSettings {
            admin_path: "/_edge".into(),
            token: "t".into(),
            hosts: ServedHosts::default(),
            node: None,
            reporter: Default::default(),
            staleness_ms: 100,
        };
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let route = |method: &Method, path| settings.route(method, path);
        assert_eq!(
            route(&Method::POST, "/_edge/purge"),
            Some(PurgeRoute::Endpoint)
        );
        assert_eq!(
            route(&Method::GET, "/_edge/purge?x=1"),
            Some(PurgeRoute::Endpoint)
        );
        assert_eq!(route(&purge, "/_edge/purge"), Some(PurgeRoute::Endpoint));
        assert_eq!(route(&purge, "/a?b"), Some(PurgeRoute::Method));
        for other in [
            "/_edge/purged",
            "/_edgy/purge",
            "/_edge",
            "/purge",
            "/_edge/purge/x",
        ] {
            assert_eq!(route(&Method::POST, other), None, "{other}");
        }
    }

    /// Settings without a `purge_token`: the health check alone.
    fn health_only() -> PurgeSettings {
        PurgeSettings {
            admin_path: "/_edge".into(),
            token: String::new(),
            hosts: ServedHosts::default(),
            node: None,
            reporter: Default::default(),
            staleness_ms: 100,
        }
    }

    fn api_over<'a>(
        settings: &'a PurgeSettings,
        store: &'a MemStore,
        clock: &'a FakeClock,
    ) -> PurgeApi<'a, MemStore, FakeClock> {
        PurgeApi {
            settings,
            rules: None,
            storage: CacheStorage {
                store,
                clock,
                l1: None,
            },
        }
    }

    fn bare(method: Method, path: &str) -> ClientRequest {
        ClientRequest {
            method,
            path_and_query: path.into(),
            headers: HeaderMap::new(),
            connection: ClientConnection::default(),
            body: Vec::new().into(),
        }
    }

    #[test]
    fn health_is_its_own_route_with_or_without_a_token_and_never_a_purge() {
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let with_token = PurgeSettings {
            admin_path: "/_edge".into(),
            token: "t".into(),
            hosts: ServedHosts::default(),
            node: None,
            reporter: Default::default(),
            staleness_ms: 100,
        };
        let without = health_only();
        for settings in [&with_token, &without] {
            for method in [&Method::GET, &Method::HEAD, &Method::POST, &purge] {
                for path in ["/_edge/health", "/_edge/health?lb=1"] {
                    assert_eq!(
                        settings.route(method, path),
                        Some(PurgeRoute::Health),
                        "{method} {path}"
                    );
                }
            }
            for other in [
                "/_edge/healthz",
                "/_edge/health/x",
                "/health",
                "/_edgy/health",
            ] {
                assert_eq!(settings.route(&Method::GET, other), None, "{other}");
            }
        }
        // Without a token the purge API stays off: its path and the PURGE
        // method are proxied, as before the health check existed.
        assert_eq!(without.route(&Method::POST, "/_edge/purge"), None);
        assert_eq!(without.route(&purge, "/a"), None);
        assert_eq!(
            with_token.route(&purge, "/_edge/healthz"),
            Some(PurgeRoute::Method)
        );
    }

    #[test]
    fn health_needs_no_token_reads_no_body_and_takes_get_and_head_only() {
        let settings = PurgeSettings {
            admin_path: "/_edge".into(),
            token: "t".into(),
            hosts: ServedHosts::default(),
            node: None,
            reporter: Default::default(),
            staleness_ms: 100,
        };
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(0));
        let api = api_over(&settings, &store, &clock);
        let declared = headers(&[("content-length", "999999999")]);
        for method in [Method::GET, Method::HEAD] {
            assert!(matches!(
                api.admit(PurgeRoute::Health, &method, &declared),
                Admission::NoBody
            ));
        }
        for method in [Method::POST, Method::from_bytes(b"PURGE").unwrap()] {
            let Admission::Answer(refusal) = api.admit(PurgeRoute::Health, &method, &declared)
            else {
                panic!("{method} on the health check was admitted");
            };
            assert_eq!(refusal.status, 405);
            assert_eq!(refusal.headers["allow"], "GET, HEAD");
        }
        assert!(store.reads.borrow().is_empty(), "admission read the store");
    }

    #[test]
    fn health_answers_ok_with_one_store_read_and_says_when_the_store_does_not_answer() {
        let settings = health_only();
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(0));
        let api = api_over(&settings, &store, &clock);
        let get = block_on(api.handle(PurgeRoute::Health, &bare(Method::GET, "/_edge/health")));
        assert_eq!(get.status, 200);
        assert_eq!(
            get.body.as_slice(),
            b"{\"status\":\"ok\",\"store\":\"ok\"}\n"
        );
        assert_eq!(get.headers["cache-control"], "no-store");
        assert_eq!(get.headers["content-type"], "application/json");
        assert_eq!(*store.reads.borrow(), ["p:epoch"]);

        let head = block_on(api.handle(PurgeRoute::Health, &bare(Method::HEAD, "/_edge/health")));
        assert_eq!(head.status, 200);
        assert!(head.body.as_slice().is_empty());
        assert_eq!(
            head.headers["content-length"],
            get.headers["content-length"]
        );

        store.broken.set(true);
        let down = block_on(api.handle(PurgeRoute::Health, &bare(Method::GET, "/_edge/health")));
        assert_eq!(down.status, 200);
        assert_eq!(
            down.body.as_slice(),
            b"{\"status\":\"ok\",\"store\":\"unavailable\"}\n"
        );
        assert!(store.values.borrow().is_empty(), "the health check wrote");
    }
}
