//! The request flow: route, key, look up, validate, serve or fetch, store.
//!
//! Generic over the three things it does I/O with ([`Store`], [`Origin`],
//! [`Clock`]) so the whole flow runs natively in unit tests; the Spin
//! adapter supplies the real ones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::HeaderValue;
use http::{HeaderMap, Method};

use crate::breaker::Fallback;
use crate::cache_control::{CacheDirectives, Seconds};
use crate::cache_status::{CacheStatus, Forward};
use crate::conditional::{NOT_MODIFIED_FIELDS, RangeAnswer, client_has_current, range_answer};
use crate::entry::{self, EntryMeta, StoredValue, VaryIndex};
use crate::forwarding::{
    ClientConnection, ForwardingTrust, client_response_headers, fill_request_headers,
    origin_request_headers,
};
use crate::freshness::{EffectiveControl, corrected_initial_age, current_age, freshness_lifetime};
use crate::header_list::{from_pairs, to_pairs};
use crate::invalidation::{
    PurgeTimes, Validity, all_scope, prefix_scope, prefix_scopes, scope_store_key, tag_scope,
    url_scope,
};
use crate::key::{KeyedRequest, build_key, hash128};
use crate::origin_failure::OriginFailure;
use crate::purge::{MAX_BODY_BYTES, PurgeRequest, authorized, parse_purge_post, purge_id};
use crate::rules::{CacheRules, Rule};
use crate::seams::{ClientRequest, Clock, Origin, OriginRequest, Response, Store, StoreFailure};
use crate::target::same_host_path;
use crate::storability::{Candidate, NOT_STORED_HEADERS, check_storable};
use crate::vary::{MAX_VARIANTS, VaryNames, variance};

/// Work left to do after the response is sent (`stale-while-revalidate`).
#[derive(Debug, Clone)]
pub struct Refresh {
    request: ClientRequest,
}

/// Headers only the edge acts on; never sent to clients.
const EDGE_ONLY_HEADERS: [&str; 3] = ["surrogate-key", "surrogate-control", "cdn-cache-control"];

/// Where the purge API lives and the token it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSettings {
    /// The admin path prefix (`/_edge`): the API is `{admin_path}/purge`.
    pub admin_path: String,
    /// The bearer token.
    pub token: String,
}

/// The edge cache over a store, an origin and a clock.
pub struct EdgeCache<'a, S, O, C> {
    /// Cache rules (`None`: the rules file is broken; proxy without caching).
    pub rules: Option<&'a CacheRules>,
    /// The purge API (`None`: disabled, its path is proxied like any other).
    pub purge: Option<&'a PurgeSettings>,
    /// The store.
    pub store: &'a S,
    /// The origin.
    pub origin: &'a O,
    /// The clock.
    pub clock: &'a C,
    /// Varnish-style grace: stale content may be served this long past its
    /// freshness when the origin fails, whatever `stale-if-error` says.
    pub grace: Duration,
    /// How much of the client's forwarding history is passed on.
    pub trust: ForwardingTrust,
}

/// A stored response found for a request.
struct Found {
    meta: EntryMeta,
    /// `meta.headers` as a map, decoded once per lookup.
    headers: HeaderMap,
    body: Vec<u8>,
    /// A soft purge covers it: revalidate before reuse.
    soft_purged: bool,
}

impl Found {
    /// Its current age at `now` (RFC 9111 §4.2.3).
    fn age(&self, now: SystemTime) -> Duration {
        current_age(
            Duration::from_millis(self.meta.initial_age_ms),
            from_unix_ms(self.meta.response_time_ms),
            now,
        )
    }

    /// Its freshness lifetime, fixed when it was stored.
    fn lifetime(&self) -> Duration {
        Duration::from_millis(self.meta.lifetime_ms)
    }
}

enum Lookup {
    Found(Box<Found>),
    Miss(Forward, Option<&'static str>),
}

/// Microseconds: purge and fetch times are compared at this resolution, so
/// a fetch that starts just after a purge is rarely mistaken for one before.
fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn seconds(d: Duration) -> i64 {
    d.as_secs() as i64
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
}

/// The answer for a body that went past its [`Admission::ReadBody`] limit.
pub fn body_too_large(limit: usize) -> Response {
    json_response(
        413,
        &serde_json::json!({"error": format!("request body over {limit} bytes")}),
    )
}

impl<S: Store, O: Origin, C: Clock> EdgeCache<'_, S, O, C> {
    /// Checks what can be checked from the head alone: the purge API
    /// authenticates from headers and refuses a declared oversized body
    /// before a byte of it is read.
    pub fn admit(&self, method: &Method, path_and_query: &str, headers: &HeaderMap) -> Admission {
        let Some(settings) = self.purge else {
            return Admission::ReadBody { limit: None };
        };
        let path = path_and_query.split('?').next().unwrap_or("/");
        let endpoint = path == format!("{}/purge", settings.admin_path);
        if !endpoint && method.as_str() != "PURGE" {
            return Admission::ReadBody { limit: None };
        }
        if endpoint && method != Method::POST {
            return Admission::Answer(method_not_allowed());
        }
        if !authorized(headers, &settings.token) {
            return Admission::Answer(unauthorized());
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Admission::Answer(body_too_large(MAX_BODY_BYTES));
        }
        Admission::ReadBody {
            limit: Some(MAX_BODY_BYTES),
        }
    }

    /// Handles one request; the optional [`Refresh`] is to be run after the
    /// response has been sent.
    pub fn handle(&self, request: ClientRequest) -> (Response, Option<Refresh>) {
        if let Some(settings) = self.purge {
            let path = request.path_and_query.split('?').next().unwrap_or("/");
            if path == format!("{}/purge", settings.admin_path) {
                return (self.purge_endpoint(&request, settings), None);
            }
            if request.method.as_str() == "PURGE" {
                return (self.purge_method(&request, settings), None);
            }
        }
        let cacheable_method = request.method == Method::GET || request.method == Method::HEAD;
        let Some(rules) = self.rules else {
            let status = CacheStatus::forward(Forward::Bypass).with_detail("rules-error");
            return (self.pass(&request, status), None);
        };
        if !cacheable_method {
            return (self.pass_unsafe(&request, rules), None);
        }
        let rule = rules.for_target(&request.path_and_query);
        if rule.bypass {
            let status =
                CacheStatus::forward(Forward::Bypass).with_detail(format!("rule-{}", rule.label()));
            return (self.pass(&request, status), None);
        }
        self.cacheable(request, rule)
    }

    /// Runs a deferred `stale-while-revalidate` refresh.
    pub fn refresh(&self, refresh: Refresh) {
        let Some(rules) = self.rules else { return };
        let request = refresh.request;
        let rule = rules.for_target(&request.path_and_query);
        let keyed = self.key_for(&request, rule);
        if let Ok(Lookup::Found(found)) = self.lookup(&keyed, &request.headers) {
            let _ = self.revalidate(&request, rule, &keyed, *found);
        }
    }

    fn key_for(&self, request: &ClientRequest, rule: &Rule) -> KeyedRequest {
        let connection = ClientConnection::from_spin_headers(&request.headers);
        let host = connection.host.as_deref().unwrap_or("");
        build_key(
            &connection.scheme,
            host,
            &request.path_and_query,
            &request.headers,
            rule,
        )
    }

    /// Forwards a request unchanged (apart from forwarding fields).
    fn pass(&self, request: &ClientRequest, mut status: CacheStatus) -> Response {
        let connection = ClientConnection::from_spin_headers(&request.headers);
        let origin_request = OriginRequest {
            method: request.method.clone(),
            target: request.path_and_query.clone(),
            headers: origin_request_headers(&request.headers, &connection, self.trust),
            body: request.body.clone(),
            fallback: Fallback::Nothing,
        };
        match self.origin.send(origin_request) {
            Ok(response) => {
                status.fwd_status = Some(response.status);
                let mut headers = client_response_headers(&response.headers);
                strip_edge_only(&mut headers);
                finish(
                    response.status,
                    headers,
                    response.body,
                    None,
                    &status,
                    request.method == Method::HEAD,
                )
            }
            Err(failure) => error_response(&failure, &status),
        }
    }

    /// Unsafe methods go through; a non-error answer invalidates the target
    /// URI and same-host `Location`/`Content-Location` (RFC 9111 §4.4).
    fn pass_unsafe(&self, request: &ClientRequest, rules: &CacheRules) -> Response {
        let status = CacheStatus::forward(Forward::Bypass).with_detail("method");
        let response = self.pass(request, status);
        // Every method but the safe ones is unsafe, unknown ones included
        // (RFC 9110 §9.2.1, RFC 9111 §4.4).
        let unsafe_method = !matches!(request.method.as_str(), "OPTIONS" | "TRACE");
        // Edge-made errors (502/504) are >= 400 too, so they never invalidate.
        if unsafe_method && response.status < 400 {
            let connection = ClientConnection::from_spin_headers(&request.headers);
            let host = connection.host.clone().unwrap_or_default();
            let mut targets = vec![request.path_and_query.clone()];
            for name in ["location", "content-location"] {
                if let Some(target) = response.headers.get(name).and_then(|v| v.to_str().ok())
                    && let Some(path) = same_host_path(target, &connection.scheme, &host)
                {
                    targets.push(path);
                }
            }
            for target in targets {
                let rule = rules.for_target(&target);
                let keyed = build_key(&connection.scheme, &host, &target, &HeaderMap::new(), rule);
                let _ = self.invalidate_url(&keyed);
            }
        }
        response
    }

    fn purge_endpoint(&self, request: &ClientRequest, settings: &PurgeSettings) -> Response {
        if request.method != Method::POST {
            return method_not_allowed();
        }
        if !authorized(&request.headers, &settings.token) {
            return unauthorized();
        }
        let connection = ClientConnection::from_spin_headers(&request.headers);
        let host = connection.host.clone().unwrap_or_default();
        match parse_purge_post(&request.method, &request.body, &host) {
            Ok(purge) => self.apply_purge(&purge, &connection),
            Err(refusal) => json_response(
                refusal.status,
                &serde_json::json!({"error": refusal.message}),
            ),
        }
    }

    /// `PURGE /path` purges that one URL (all its variants).
    fn purge_method(&self, request: &ClientRequest, settings: &PurgeSettings) -> Response {
        if !authorized(&request.headers, &settings.token) {
            return unauthorized();
        }
        let connection = ClientConnection::from_spin_headers(&request.headers);
        let soft = request
            .headers
            .get("soft-purge")
            .is_some_and(|v| v.as_bytes() == b"1");
        let purge = PurgeRequest {
            urls: vec![request.path_and_query.clone()],
            soft,
            ..Default::default()
        };
        self.apply_purge(&purge, &connection)
    }

    /// Writes one scope value per target; nothing is scanned or deleted.
    fn apply_purge(&self, purge: &PurgeRequest, connection: &ClientConnection) -> Response {
        let host = connection.host.clone().unwrap_or_default();
        let mut scopes = Vec::new();
        if purge.all {
            scopes.push(all_scope());
        }
        let default_rule = Rule::default();
        for url in &purge.urls {
            let rule = self.rules.map_or(&default_rule, |r| r.for_target(url));
            // Entries are keyed by the scheme the client used; purge both.
            for scheme in ["http", "https"] {
                let keyed = build_key(scheme, &host, url, &HeaderMap::new(), rule);
                scopes.push(url_scope(canonical_url(&keyed)));
            }
        }
        scopes.extend(purge.tags.iter().map(|tag| tag_scope(tag)));
        scopes.extend(purge.prefixes.iter().map(|prefix| prefix_scope(prefix)));

        let id = purge_id(format!("{}|{:?}|{}", unix_ms(self.clock.now()), purge, host).as_bytes());
        let caller = connection
            .peer
            .map(|p| p.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        for scope in &scopes {
            if let Err(StoreFailure(error)) = self.purge_scope(scope, purge.soft) {
                eprintln!("edge-cache: purge {id} from {caller} failed: store error: {error}");
                return json_response(
                    503,
                    &serde_json::json!({"id": id, "error": format!("store unavailable: {error}")}),
                );
            }
        }
        eprintln!(
            "edge-cache: purge {id} from {caller}: urls={:?} tags={:?} prefixes={:?} all={} soft={}",
            purge.urls, purge.tags, purge.prefixes, purge.all, purge.soft
        );
        json_response(
            200,
            &serde_json::json!({
                "id": id,
                "soft": purge.soft,
                "purged": {
                    "urls": purge.urls.len(),
                    "tags": purge.tags.len(),
                    "prefixes": purge.prefixes.len(),
                    "all": purge.all,
                }
            }),
        )
    }

    fn invalidate_url(&self, keyed: &KeyedRequest) -> Result<(), StoreFailure> {
        self.purge_scope(&url_scope(canonical_url(keyed)), false)
    }

    /// Records a purge of `scope` now: one read and one write, whatever is
    /// cached.
    pub fn purge_scope(&self, scope: &str, soft: bool) -> Result<(), StoreFailure> {
        let key = scope_store_key(scope);
        let previous = PurgeTimes::decode(self.store.get(&key)?.as_deref());
        let updated = previous.after_purge(unix_us(self.clock.now()), soft);
        self.store.set(&key, &updated.encode())
    }

    fn purge_times(&self, scope: &str) -> Result<PurgeTimes, StoreFailure> {
        Ok(PurgeTimes::decode(
            self.store.get(&scope_store_key(scope))?.as_deref(),
        ))
    }

    fn cacheable(&self, request: ClientRequest, rule: &Rule) -> (Response, Option<Refresh>) {
        let keyed = self.key_for(&request, rule);
        let request_cc = request_directives(&request.headers);
        if request_cc.has("no-store") {
            let status = CacheStatus::forward(Forward::Request).with_detail("no-store");
            return (
                self.fetch_and_maybe_store(&request, rule, &keyed, status, false),
                None,
            );
        }
        let must_validate =
            request_cc.has("no-cache") || request_cc.seconds("max-age") == Some(Seconds::Valid(0));

        let found = match self.lookup(&keyed, &request.headers) {
            Ok(Lookup::Found(found)) => *found,
            Ok(Lookup::Miss(forward, detail)) => {
                let mut status = CacheStatus::forward(forward);
                status.detail = detail.map(str::to_owned);
                return (
                    self.fetch_and_maybe_store(&request, rule, &keyed, status, true),
                    None,
                );
            }
            Err(_) => {
                // Store unavailable: fail open to the origin, store nothing.
                let status = CacheStatus::forward(Forward::Bypass).with_detail("store-error");
                return (
                    self.fetch_and_maybe_store(&request, rule, &keyed, status, false),
                    None,
                );
            }
        };

        let control = EffectiveControl::of(&found.headers);
        let age = found.age(self.clock.now());
        let lifetime = found.lifetime();
        let must_validate = must_validate || found.soft_purged;
        let fresh = age < lifetime && !must_validate && !control.directives.has("no-cache");
        if fresh {
            let status = CacheStatus::hit(seconds(lifetime) - seconds(age));
            return (self.serve_stored(&request, &found, age, &status), None);
        }

        let may_serve_stale = !control.forbids_stale() && !must_validate;
        if may_serve_stale
            && let Some(window) = control.stale_while_revalidate()
            && age < lifetime + window
        {
            let status = CacheStatus::hit(seconds(lifetime) - seconds(age))
                .with_detail("stale-while-revalidate");
            let refresh = Refresh {
                request: request.clone(),
            };
            return (
                self.serve_stored(&request, &found, age, &status),
                Some(refresh),
            );
        }
        (self.revalidate(&request, rule, &keyed, found), None)
    }

    /// Revalidates a stale entry (§4.3): a `304` refreshes it, a full answer
    /// replaces it, a failure serves it stale where `stale-if-error` allows.
    fn revalidate(
        &self,
        request: &ClientRequest,
        rule: &Rule,
        keyed: &KeyedRequest,
        found: Found,
    ) -> Response {
        let stored_headers = &found.headers;
        let control = EffectiveControl::of(stored_headers);
        let age = found.age(self.clock.now());
        let lifetime = found.lifetime();
        // Where the origin fails, stale may be served within the response's
        // `stale-if-error` or the configured grace, whichever is longer.
        let stale_by_directive = control
            .stale_if_error()
            .is_some_and(|window| age < lifetime + window);
        let stale_by_grace = !self.grace.is_zero() && age < lifetime + self.grace;
        let stale_if_error = !control.forbids_stale() && (stale_by_directive || stale_by_grace);
        let stale_reason = |failure: Option<&OriginFailure>| match failure {
            Some(held_back) if !held_back.reached_origin() => held_back.stale_detail(),
            _ if stale_by_directive => "stale-if-error",
            _ => "grace",
        };

        let vary = match VaryNames::of(stored_headers) {
            VaryNames::Names(names) => names,
            _ => Vec::new(),
        };
        let mut origin_request = cacheable_origin_request(request, rule, keyed, self.trust, &vary);
        if stale_if_error {
            origin_request.fallback = Fallback::Stale;
        }
        if let Some(etag) = stored_headers.get("etag") {
            origin_request.headers.insert("if-none-match", etag.clone());
        }
        if let Some(modified) = stored_headers.get("last-modified") {
            origin_request
                .headers
                .insert("if-modified-since", modified.clone());
        }
        let request_time = self.clock.now();
        let result = self.origin.send(origin_request);
        let response_time = self.clock.now();

        let serve_stale = |fwd_status: Option<u16>, detail: &str| {
            let mut status = CacheStatus::forward(Forward::Stale).with_detail(detail);
            status.fwd_status = fwd_status;
            status.ttl = Some(seconds(lifetime) - seconds(age));
            self.serve_stored(request, &found, age, &status)
        };
        match result {
            Ok(response) if response.status == 304 => {
                // §4.3.4: the 304's headers replace the stored ones.
                let mut headers = stored_headers.clone();
                let fresh_headers = client_response_headers(&response.headers);
                for name in fresh_headers.keys() {
                    if name == "content-length" || NOT_STORED_HEADERS.contains(&name.as_str()) {
                        continue;
                    }
                    headers.remove(name);
                    for value in fresh_headers.get_all(name) {
                        headers.append(name.clone(), value.clone());
                    }
                }
                let updated = Response {
                    status: found.meta.status,
                    headers,
                    body: found.body.clone(),
                };
                let mut status = CacheStatus::forward(Forward::Stale);
                status.fwd_status = Some(304);
                self.store_and_serve(
                    request,
                    rule,
                    keyed,
                    updated,
                    request_time,
                    response_time,
                    status,
                    true,
                )
            }
            Ok(response) if matches!(response.status, 500 | 502 | 503 | 504) && stale_if_error => {
                serve_stale(Some(response.status), stale_reason(None))
            }
            Ok(response) => {
                let mut status = CacheStatus::forward(Forward::Stale);
                status.fwd_status = Some(response.status);
                self.store_and_serve(
                    request,
                    rule,
                    keyed,
                    response,
                    request_time,
                    response_time,
                    status,
                    true,
                )
            }
            Err(failure) if stale_if_error => serve_stale(None, stale_reason(Some(&failure))),
            Err(failure) => error_response(&failure, &CacheStatus::forward(Forward::Stale)),
        }
    }

    fn fetch_and_maybe_store(
        &self,
        request: &ClientRequest,
        rule: &Rule,
        keyed: &KeyedRequest,
        status: CacheStatus,
        may_store: bool,
    ) -> Response {
        let origin_request = cacheable_origin_request(request, rule, keyed, self.trust, &[]);
        let request_time = self.clock.now();
        match self.origin.send(origin_request) {
            Ok(response) => {
                let response_time = self.clock.now();
                let mut status = status;
                status.fwd_status = Some(response.status);
                self.store_and_serve(
                    request,
                    rule,
                    keyed,
                    response,
                    request_time,
                    response_time,
                    status,
                    may_store,
                )
            }
            Err(failure) => error_response(&failure, &status),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn store_and_serve(
        &self,
        request: &ClientRequest,
        rule: &Rule,
        keyed: &KeyedRequest,
        response: Response,
        request_time: SystemTime,
        response_time: SystemTime,
        mut status: CacheStatus,
        may_store: bool,
    ) -> Response {
        let headers = client_response_headers(&response.headers);
        let control = EffectiveControl::of(&headers);
        let query_names: Vec<&str> = keyed.query_names.iter().map(String::as_str).collect();
        let versioned = rule.is_versioned(&keyed.path, &query_names);
        let lifetime = freshness_lifetime(
            response.status,
            &headers,
            &control,
            &rule.freshness(versioned),
            response_time,
        );
        let initial_age = corrected_initial_age(&headers, request_time, response_time);

        let candidate = Candidate {
            status: response.status,
            headers: &headers,
            control: &control,
            has_lifetime: lifetime.is_some(),
            body_len: response.body.len() as u64,
        };
        let verdict = check_storable(
            request.headers.contains_key("authorization"),
            &candidate,
            rule,
        );
        if let Some((lifetime, _)) = lifetime {
            status.ttl = Some(seconds(lifetime) - seconds(initial_age));
        }
        match (may_store, verdict) {
            (true, Ok(())) => {
                let mut stored_headers = headers.clone();
                for name in NOT_STORED_HEADERS {
                    stored_headers.remove(name);
                }
                let tags = surrogate_keys(&headers);
                let meta = EntryMeta {
                    key: keyed.key.canonical.clone(),
                    status: response.status,
                    headers: to_pairs(&stored_headers),
                    request_time_us: unix_us(request_time),
                    response_time_ms: unix_ms(response_time),
                    initial_age_ms: initial_age.as_millis() as u64,
                    lifetime_ms: lifetime.map(|(l, _)| l.as_millis() as u64).unwrap_or(0),
                    tags,
                };
                match self.write_entry(keyed, &request.headers, &headers, meta, &response.body) {
                    Ok(()) => status.stored = true,
                    Err(_) => status.detail = Some("store-error".into()),
                }
            }
            (true, Err(reason)) if status.detail.is_none() => {
                status.detail = Some(reason.detail().into())
            }
            _ => {}
        }
        let mut client_headers = headers;
        strip_edge_only(&mut client_headers);
        let is_head = request.method == Method::HEAD;
        if response.status == 200 {
            let representation = Representation {
                status: 200,
                headers: client_headers,
                body: response.body,
            };
            return answer(request, representation, initial_age, &status, is_head);
        }
        finish(
            response.status,
            client_headers,
            response.body,
            Some(initial_age),
            &status,
            is_head,
        )
    }

    fn write_entry(
        &self,
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
        response_headers: &HeaderMap,
        meta: EntryMeta,
        body: &[u8],
    ) -> Result<(), StoreFailure> {
        let primary = keyed.key.store_key();
        let VaryNames::Names(names) = VaryNames::of(response_headers) else {
            return self
                .store
                .set(&primary, &entry::encode(&StoredValue::Response(meta), body));
        };
        // Keep the current index if it describes the same Vary; otherwise a
        // new epoch makes every older variant unreachable.
        let existing = match self.store.get(&primary)?.map(|b| entry::decode(&b)) {
            Some(Ok((StoredValue::Vary(index), _)))
                if index.key == meta.key && index.names == names =>
            {
                Some(index)
            }
            _ => None,
        };
        let mut index = existing.unwrap_or(VaryIndex {
            key: meta.key.clone(),
            names: names.clone(),
            epoch: unix_ms(self.clock.now()) ^ (meta.request_time_us << 20),
            variants: Vec::new(),
        });
        let variant = hash128(variance(&names, request_headers).as_bytes());
        index.variants.retain(|v| *v != variant);
        index.variants.push(variant.clone());
        while index.variants.len() > MAX_VARIANTS {
            let evicted = index.variants.remove(0);
            let _ = self.store.delete(&variant_store_key(&index, &evicted));
        }
        let variant_key = variant_store_key(&index, &variant);
        self.store.set(
            &variant_key,
            &entry::encode(&StoredValue::Response(meta), body),
        )?;
        self.store
            .set(&primary, &entry::encode(&StoredValue::Vary(index), &[]))
    }

    fn lookup(
        &self,
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
    ) -> Result<Lookup, StoreFailure> {
        let primary = keyed.key.store_key();
        let Some(bytes) = self.store.get(&primary)? else {
            return Ok(Lookup::Miss(Forward::UriMiss, None));
        };
        let (value, body) = match entry::decode(&bytes) {
            Ok(decoded) => decoded,
            Err(_) => return Ok(Lookup::Miss(Forward::Miss, Some("corrupt-entry"))),
        };
        let (meta, body) = match value {
            StoredValue::Response(meta) => (meta, body),
            StoredValue::Vary(index) => {
                if index.key != keyed.key.canonical {
                    return Ok(Lookup::Miss(Forward::Miss, Some("key-collision")));
                }
                let variant = hash128(variance(&index.names, request_headers).as_bytes());
                if !index.variants.contains(&variant) {
                    return Ok(Lookup::Miss(Forward::VaryMiss, None));
                }
                let key = variant_store_key(&index, &variant);
                match self.store.get(&key)?.map(|b| entry::decode(&b)) {
                    Some(Ok((StoredValue::Response(meta), body))) => (meta, body),
                    Some(_) => return Ok(Lookup::Miss(Forward::Miss, Some("corrupt-entry"))),
                    None => return Ok(Lookup::Miss(Forward::VaryMiss, None)),
                }
            }
        };
        if meta.key != keyed.key.canonical {
            return Ok(Lookup::Miss(Forward::Miss, Some("key-collision")));
        }
        let mut scopes = vec![all_scope(), url_scope(canonical_url(keyed))];
        scopes.extend(prefix_scopes(&keyed.path));
        scopes.extend(meta.tags.iter().map(|tag| tag_scope(tag)));
        let mut validity = Validity::Valid;
        for scope in &scopes {
            validity = validity.max(self.purge_times(scope)?.validity(meta.request_time_us));
            if validity == Validity::Invalid {
                return Ok(Lookup::Miss(Forward::Miss, Some("invalidated")));
            }
        }
        Ok(Lookup::Found(Box::new(Found {
            headers: from_pairs(&meta.headers),
            meta,
            body,
            soft_purged: validity == Validity::Stale,
        })))
    }

    fn serve_stored(
        &self,
        request: &ClientRequest,
        found: &Found,
        age: Duration,
        status: &CacheStatus,
    ) -> Response {
        let mut headers = found.headers.clone();
        strip_edge_only(&mut headers);
        let representation = Representation {
            status: found.meta.status,
            headers,
            body: found.body.clone(),
        };
        answer(
            request,
            representation,
            age,
            status,
            request.method == Method::HEAD,
        )
    }
}

/// The request the edge sends for a cacheable GET/HEAD: always a GET
/// (HEAD is answered from it), with the fields `forwarding` allows a fill
/// and only the keyed cookies. `vary` names the fields a stored response
/// varies on (a revalidation must carry them, RFC 9111 §4.3.1).
fn cacheable_origin_request(
    request: &ClientRequest,
    rule: &Rule,
    keyed: &KeyedRequest,
    trust: ForwardingTrust,
    vary: &[String],
) -> OriginRequest {
    let connection = ClientConnection::from_spin_headers(&request.headers);
    let mut headers = fill_request_headers(
        &request.headers,
        &connection,
        trust,
        rule.forward_headers,
        &rule.headers,
        vary,
    );
    if let Some(cookie) = keyed
        .cookie
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert("cookie", cookie);
    }
    OriginRequest {
        method: Method::GET,
        target: keyed.origin_target.clone(),
        headers,
        body: Vec::new(),
        fallback: Fallback::Nothing,
    }
}

struct Representation {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Applies client conditionals, ranges and HEAD to a full representation.
fn answer(
    request: &ClientRequest,
    rep: Representation,
    age: Duration,
    status: &CacheStatus,
    is_head: bool,
) -> Response {
    if rep.status == 200 && client_has_current(&request.headers, &rep.headers) {
        let mut headers = HeaderMap::new();
        for name in NOT_MODIFIED_FIELDS {
            for value in rep.headers.get_all(name) {
                headers.append(name, value.clone());
            }
        }
        return finish(304, headers, Vec::new(), Some(age), status, true);
    }
    if rep.status == 200 && request.method == Method::GET {
        let total = rep.body.len() as u64;
        match range_answer(&request.headers, &rep.headers, total) {
            RangeAnswer::Full => {}
            RangeAnswer::Partial { start, end, total } => {
                let mut headers = rep.headers;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                    headers.insert("content-range", v);
                }
                let body = rep.body[start as usize..=end as usize].to_vec();
                return finish(206, headers, body, Some(age), status, false);
            }
            RangeAnswer::Unsatisfiable { total } => {
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    headers.insert("content-range", v);
                }
                return finish(416, headers, Vec::new(), Some(age), status, false);
            }
        }
    }
    let mut headers = rep.headers;
    if rep.status == 200 {
        headers.insert("accept-ranges", HeaderValue::from_static("bytes"));
    }
    finish(rep.status, headers, rep.body, Some(age), status, is_head)
}

/// Final touches: `Age`, `Cache-Status`, framing, and no body for HEAD.
fn finish(
    status: u16,
    mut headers: HeaderMap,
    body: Vec<u8>,
    age: Option<Duration>,
    cache_status: &CacheStatus,
    is_head: bool,
) -> Response {
    // Every response carries Age: ours when we know it, else the origin's,
    // else 0 (a response fresh from the origin).
    match age {
        Some(age) => {
            headers.insert("age", HeaderValue::from(age.as_secs()));
        }
        None if !headers.contains_key("age") => {
            headers.insert("age", HeaderValue::from_static("0"));
        }
        None => {}
    }
    if let Ok(value) = HeaderValue::from_str(&cache_status.header_value()) {
        headers.insert("cache-status", value);
    }
    // 204 and 304 have no content; anything else (HEAD included) states
    // the length of the full representation.
    if status == 204 || status == 304 {
        headers.remove("content-length");
    } else {
        headers.insert("content-length", HeaderValue::from(body.len()));
    }
    let no_body = is_head || status == 204 || status == 304;
    Response {
        status,
        headers,
        body: if no_body { Vec::new() } else { body },
    }
}

fn json_response(status: u16, value: &serde_json::Value) -> Response {
    let body = format!("{value}\n").into_bytes();
    let mut headers = HeaderMap::new();
    headers.insert("age", HeaderValue::from_static("0"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("content-length", HeaderValue::from(body.len()));
    Response {
        status,
        headers,
        body,
    }
}

fn method_not_allowed() -> Response {
    let mut response = json_response(
        405,
        &serde_json::json!({"error": "the purge endpoint accepts POST only"}),
    );
    response
        .headers
        .insert("allow", HeaderValue::from_static("POST"));
    response
}

fn unauthorized() -> Response {
    let mut response = json_response(
        401,
        &serde_json::json!({"error": "missing or wrong bearer token"}),
    );
    response.headers.insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer realm=\"edge-cache purge\""),
    );
    response
}

fn error_response(failure: &OriginFailure, status: &CacheStatus) -> Response {
    let error = failure.to_response();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Some(seconds) = error.retry_after {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    finish(
        error.status,
        headers,
        error.body.into_bytes(),
        None,
        status,
        false,
    )
}

fn strip_edge_only(headers: &mut HeaderMap) {
    for name in EDGE_ONLY_HEADERS {
        headers.remove(name);
    }
}

fn surrogate_keys(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = headers
        .get_all("surrogate-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split_ascii_whitespace())
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The canonical URL part of a key (without cookie and header components):
/// the scope URL invalidation works on.
fn canonical_url(keyed: &KeyedRequest) -> &str {
    keyed
        .key
        .canonical
        .split('\n')
        .next()
        .unwrap_or(&keyed.key.canonical)
}

fn variant_store_key(index: &VaryIndex, variant: &str) -> String {
    format!(
        "v:{}",
        hash128(format!("{}\n{}\n{}", index.key, index.epoch, variant).as_bytes())
    )
}

/// Request `Cache-Control` (with `Pragma: no-cache` standing in when absent).
fn request_directives(headers: &HeaderMap) -> CacheDirectives {
    match CacheDirectives::from_headers(headers, "cache-control") {
        Some(cc) => cc,
        None => {
            let pragma_no_cache = headers
                .get("pragma")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("no-cache"));
            if pragma_no_cache {
                CacheDirectives::parse("no-cache")
            } else {
                CacheDirectives::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    use crate::test_support::{FakeClock, FakeOrigin, MemStore};

    fn edge<'a>(
        rules: &'a CacheRules,
        store: &'a MemStore,
        origin: &'a FakeOrigin,
        clock: &'a FakeClock,
    ) -> EdgeCache<'a, MemStore, FakeOrigin, FakeClock> {
        EdgeCache {
            rules: Some(rules),
            purge: None,
            store,
            origin,
            clock,
            grace: Duration::ZERO,
            trust: ForwardingTrust::default(),
        }
    }

    fn clock() -> FakeClock {
        FakeClock::at_unix_ms(1_700_000_000_000)
    }

    fn ok(cache_control: &str, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cache-control",
            HeaderValue::from_str(cache_control).unwrap(),
        );
        Response {
            status: 200,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn get(path: &str, extra: &[(&str, &str)]) -> ClientRequest {
        let mut pairs = vec![("host", "shop.example")];
        pairs.extend_from_slice(extra);
        let headers = crate::test_support::headers(&pairs);
        ClientRequest {
            method: Method::GET,
            path_and_query: path.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    fn status_of(response: &Response) -> String {
        response.headers["cache-status"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_failing_store_fails_open_to_the_origin() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        store.broken.set(true);
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "x")));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        for _ in 0..3 {
            let (response, _) = edge.handle(get("/a", &[]));
            assert_eq!(response.status, 200);
            assert_eq!(response.body, b"x");
            assert_eq!(
                status_of(&response),
                "edge-cache; fwd=bypass; fwd-status=200; ttl=60; detail=store-error"
            );
        }
        assert_eq!(origin.calls.get(), 3);
    }

    #[test]
    fn a_corrupt_entry_is_a_miss_and_is_overwritten() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "fresh")));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        edge.handle(get("/a", &[]));
        for value in store.values.borrow_mut().values_mut() {
            let last = value.len() - 1;
            value[last] ^= 0xff;
        }
        let (response, _) = edge.handle(get("/a", &[]));
        assert!(
            status_of(&response).contains("detail=corrupt-entry"),
            "{}",
            status_of(&response)
        );
        assert_eq!(response.body, b"fresh");
        let (response, _) = edge.handle(get("/a", &[]));
        assert!(status_of(&response).contains("hit"));
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn an_entry_fetched_before_an_invalidation_does_not_survive_it() {
        let rules = CacheRules::default();
        let store = std::rc::Rc::new(MemStore::default());
        let scope_key = scope_store_key(&url_scope("http://shop.example/a"));
        let racing_store = store.clone();
        let clock = clock();
        let purge_time = unix_us(clock.now());
        // The invalidation lands while the origin is answering.
        let origin = FakeOrigin::new(move |_| {
            let purged = PurgeTimes::default().after_purge(purge_time, false);
            racing_store.set(&scope_key, &purged.encode()).unwrap();
            Ok(ok("max-age=60", "old"))
        });
        let edge = edge(&rules, &store, &origin, &clock);
        edge.handle(get("/a", &[]));
        let (response, _) = edge.handle(get("/a", &[]));
        assert!(
            status_of(&response).contains("detail=invalidated"),
            "{}",
            status_of(&response)
        );
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn age_grows_with_the_clock_and_expiry_forces_revalidation() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=10", "x")));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        edge.handle(get("/a", &[]));
        clock.0.set(clock.0.get() + Duration::from_secs(4));
        let (response, _) = edge.handle(get("/a", &[]));
        assert_eq!(response.headers["age"], "4");
        assert_eq!(status_of(&response), "edge-cache; hit; ttl=6");
        clock.0.set(clock.0.get() + Duration::from_secs(7));
        let (response, _) = edge.handle(get("/a", &[]));
        assert!(
            status_of(&response).starts_with("edge-cache; fwd=stale"),
            "{}",
            status_of(&response)
        );
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn variants_per_url_are_bounded() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| {
            let mut response = ok("max-age=60", "v");
            response
                .headers
                .insert("vary", HeaderValue::from_static("accept-language"));
            Ok(response)
        });
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        for i in 0..(MAX_VARIANTS + 5) {
            edge.handle(get("/a", &[("accept-language", &format!("lang-{i}"))]));
        }
        let variants = store
            .values
            .borrow()
            .keys()
            .filter(|k| k.starts_with("v:"))
            .count();
        assert_eq!(variants, MAX_VARIANTS);
        // The newest variants are hits, the oldest were evicted.
        let (newest, _) = edge.handle(get(
            "/a",
            &[("accept-language", &format!("lang-{}", MAX_VARIANTS + 4))],
        ));
        assert!(status_of(&newest).contains("hit"));
        let (oldest, _) = edge.handle(get("/a", &[("accept-language", "lang-0")]));
        assert!(
            status_of(&oldest).contains("vary-miss"),
            "{}",
            status_of(&oldest)
        );
    }

    #[test]
    fn origin_failure_without_stale_is_a_clear_error() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Err(OriginFailure::TimedOut(Duration::from_millis(250))));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        let (response, _) = edge.handle(get("/a", &[]));
        assert_eq!(response.status, 504);
        assert_eq!(response.body, b"origin timed out after 250 ms\n");
        assert!(
            store.values.borrow().keys().all(|k| !k.starts_with("c:")),
            "errors are not stored"
        );
    }

    #[test]
    fn grace_serves_stale_when_the_origin_fails_and_says_why() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let failure = std::rc::Rc::new(RefCell::new(None::<OriginFailure>));
        let scripted = failure.clone();
        let origin = FakeOrigin::new(move |_| match scripted.borrow().clone() {
            None => Ok(ok("max-age=10", "x")),
            Some(failure) => Err(failure),
        });
        let clock = clock();
        let mut edge = edge(&rules, &store, &origin, &clock);
        assert_eq!(edge.handle(get("/a", &[])).0.status, 200);
        clock.0.set(clock.0.get() + Duration::from_secs(30));

        *failure.borrow_mut() = Some(OriginFailure::Unreachable("refused".into()));
        let (response, _) = edge.handle(get("/a", &[]));
        assert_eq!(response.status, 502, "no stale-if-error, no grace");

        edge.grace = Duration::from_secs(60);
        let (response, _) = edge.handle(get("/a", &[]));
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"x"[..])
        );
        assert!(
            status_of(&response).contains("fwd=stale; ttl=-20; detail=grace"),
            "{}",
            status_of(&response)
        );

        *failure.borrow_mut() = Some(OriginFailure::CircuitOpen {
            retry_after: Duration::from_millis(2_500),
        });
        let (response, _) = edge.handle(get("/a", &[]));
        assert_eq!(response.status, 200);
        assert!(
            status_of(&response).contains("detail=circuit-open"),
            "{}",
            status_of(&response)
        );

        // Past the grace there is nothing to serve: fail fast, say when to retry.
        clock.0.set(clock.0.get() + Duration::from_secs(60));
        let (response, _) = edge.handle(get("/a", &[]));
        assert_eq!(response.status, 503);
        assert_eq!(response.headers["retry-after"], "3");
        assert_eq!(response.headers["cache-control"], "no-store");
    }

    #[test]
    fn grace_does_not_override_must_revalidate() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let failing = std::rc::Rc::new(Cell::new(false));
        let scripted = failing.clone();
        let origin = FakeOrigin::new(move |_| {
            if scripted.get() {
                Err(OriginFailure::Unreachable("refused".into()))
            } else {
                Ok(ok("max-age=10, must-revalidate", "x"))
            }
        });
        let clock = clock();
        let mut edge = edge(&rules, &store, &origin, &clock);
        edge.grace = Duration::from_secs(3_600);
        assert_eq!(edge.handle(get("/a", &[])).0.status, 200);
        clock.0.set(clock.0.get() + Duration::from_secs(30));
        failing.set(true);
        assert_eq!(edge.handle(get("/a", &[])).0.status, 502);
    }

    #[test]
    fn a_rule_may_store_cookie_setting_responses_without_the_cookie() {
        let rules = CacheRules::parse(r#"{ "rules": [ { "store_set_cookie": true } ] }"#).unwrap();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| {
            let mut response = ok("max-age=60", "x");
            response
                .headers
                .insert("set-cookie", HeaderValue::from_static("session=abc"));
            Ok(response)
        });
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        let (first, _) = edge.handle(get("/a", &[]));
        assert_eq!(
            first.headers["set-cookie"], "session=abc",
            "the fetching client keeps its cookie"
        );
        assert!(
            status_of(&first).contains("stored"),
            "{}",
            status_of(&first)
        );
        let (hit, _) = edge.handle(get("/a", &[]));
        assert!(status_of(&hit).contains("hit"));
        assert!(
            hit.headers.get("set-cookie").is_none(),
            "nobody else gets it"
        );
    }

    #[test]
    fn head_and_get_share_an_entry() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|request| {
            assert_eq!(
                request.method,
                Method::GET,
                "HEAD misses are fetched as GET"
            );
            Ok(ok("max-age=60", "body"))
        });
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        let mut head = get("/a", &[]);
        head.method = Method::HEAD;
        let (response, _) = edge.handle(head);
        assert!(response.body.is_empty());
        assert_eq!(response.headers["content-length"], "4");
        let (response, _) = edge.handle(get("/a", &[]));
        assert!(status_of(&response).contains("hit"));
        assert_eq!(response.body, b"body");
    }
}
