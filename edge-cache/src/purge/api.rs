//! The purge API as an endpoint: `POST {admin_path}/purge` with a JSON
//! body, and the `PURGE` method on a URL. Authentication and the body limit
//! are checked from the request head before any body is read; applying a
//! purge writes one scope value per target (see
//! `policy::invalidation`).

use http::{HeaderMap, Method};
use purge_wire::{Purged, Receipt};

use crate::policy::invalidation::{PurgeKind, all_scope, prefix_scope, tag_scope, url_scope};
use crate::policy::key::build_key;
use crate::policy::rules::{CacheRules, Rule};
use crate::purge::request::{
    MAX_BODY_BYTES, PurgeRequest, authorized, check_length, check_method, parse_purge_body,
    purge_id,
};
use crate::reply::{body_too_large, json_response, method_not_allowed, unauthorized};
use crate::seams::{ClientConnection, ClientRequest, Clock, Response, StoreFailure};
use crate::store::keys::Store;
use crate::store::{CacheStorage, unix_ms};

/// The `error` of a purge the store could not record (`503`): what
/// failed and what to do, never the store's own error (its address, its
/// client's types), which goes to the log.
pub(crate) const STORE_UNAVAILABLE: &str =
    "store unavailable: the purge was not recorded; try again";

/// Where the purge API lives and the token it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurgeSettings {
    /// The admin path prefix (`/_edge`): the API is `{admin_path}/purge`.
    pub admin_path: String,
    /// The bearer token it requires (`purge_token`).
    pub token: String,
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

/// Which of the API's two forms a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PurgeRoute {
    /// `{admin_path}/purge`, any method (only POST is accepted).
    Endpoint,
    /// The `PURGE` method on any other path.
    Method,
}

impl PurgeSettings {
    /// Which form of the API `method` on `path_and_query` is, if either.
    pub(crate) fn route(&self, method: &Method, path_and_query: &str) -> Option<PurgeRoute> {
        let path = path_and_query.split('?').next().unwrap_or("/");
        if path.strip_prefix(self.admin_path.as_str()) == Some("/purge") {
            Some(PurgeRoute::Endpoint)
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
        if route == PurgeRoute::Endpoint && check_method(method).is_err() {
            return Admission::Answer(method_not_allowed());
        }
        if !authorized(headers, &self.settings.token) {
            return Admission::Answer(unauthorized());
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
        }
    }

    /// `POST {admin_path}/purge` with a JSON body.
    async fn endpoint(&self, request: &ClientRequest) -> Response {
        let connection = &request.connection;
        let host = connection.host.as_deref().unwrap_or_default();
        match parse_purge_body(request.body.as_slice(), host) {
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
            urls: vec![request.path_and_query.clone()],
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
            let rule = self.rules.map_or(&default_rule, |r| r.for_target(url));
            // Entries are keyed by the scheme the client used; purge both.
            for scheme in ["http", "https"] {
                let keyed = build_key(scheme, host, url, &HeaderMap::new(), rule);
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
        if let Err(StoreFailure(error)) = self.storage.purge(&scopes, kind).await {
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
            purge.urls, purge.tags, purge.prefixes, purge.all, purge.soft
        );
        let receipt = Receipt {
            id,
            soft: purge.soft,
            purged: Purged {
                urls: purge.urls.len() as u64,
                tags: purge.tags.len() as u64,
                prefixes: purge.prefixes.len() as u64,
                all: purge.all,
            },
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
}
