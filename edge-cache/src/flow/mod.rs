//! The request pipeline, top to bottom: route → key → look up → decide
//! (`decision`) → fill (`fill`) or revalidate (`revalidate`) → store →
//! answer (`answer`); what the cache takes no part in is passed through
//! (`pass`).
//!
//! Generic over the seams it does I/O through ([`Store`], [`Origin`],
//! [`Clock`]) so the whole flow runs natively in unit tests; the node
//! supplies the real ones. Each step's policy lives in `policy/`, the
//! cache's stores in `store/`; this module only sequences them.

pub(crate) mod answer;
mod compressed;
mod decision;
pub(crate) mod exchange;
mod explain;
mod fill;
pub(crate) mod pass;
mod revalidate;
mod slice;

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};

use crate::collapse::Collapser;
use crate::config::ForwardingTrust;
use crate::flow::answer::{Delivery, only_if_cached, serve_stored};
use crate::flow::decision::{Decision, StaleServe, StoredFacts, decide};
use crate::flow::exchange::Exchange;
use crate::http::cache_control::CacheDirectives;
use crate::policy::cache_status::{CacheStatus, Forward};
use crate::policy::freshness::{ClientDemand, EffectiveControl};
use crate::policy::rules::{CacheRules, ClientDirectives};
use crate::purge::api::{Admission, PurgeApi, PurgeRoute, PurgeSettings};
use crate::reply::body_too_large;
use crate::seams::{
    Body, BodyStream, ClientRequest, Clock, Origin, OriginFailure, OriginRequest, Response,
    StoreFailure,
};
use crate::store::chunk_read::{StoreHandles, StoredChunks, StoredRange};
use crate::store::chunks::ChunkLayout;
use crate::store::entry::Encodings;
use crate::store::keys::Store;
use crate::store::l1::L1;
use crate::store::{CacheStorage, Found, Lookup, PurgeEpoch};

/// Whether a client request may be taken as bodiless without reading its
/// body: a GET or HEAD without `Content-Length`. A GET's content has no
/// defined semantics (RFC 9110 §9.3.1) and is no part of a cache key.
/// Framing is the host's: `wasi:http` hides `Transfer-Encoding` from the
/// guest, so a chunked GET body is not seen (nor forwarded); every other
/// method's body is always read.
pub(crate) fn announces_no_body(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && !headers.contains_key(http::header::CONTENT_LENGTH)
}

/// Work left to do after the response is sent (`stale-while-revalidate`).
#[derive(Debug)]
pub struct Refresh {
    request: ClientRequest,
}

/// The pipeline over a node's parts (see `node`, which builds it), or
/// over fakes in the unit tests.
pub(crate) struct Flow<'a, S, O, C> {
    /// Cache rules (`None`: the rules file is broken; proxy without caching).
    pub rules: Option<&'a CacheRules>,
    /// The purge API (`None`: disabled, its path is proxied like any other).
    pub purge: Option<&'a PurgeSettings>,
    /// Where entries, scope times and origin state live.
    pub store: &'a S,
    /// Where requests the cache cannot answer go (with its decorators).
    pub origin: O,
    /// Ages, purge times and lease expiries are read from it.
    pub clock: &'a C,
    /// Varnish-style grace: stale content may be served this long past its
    /// freshness when the origin fails, whatever `stale-if-error` says.
    pub grace: Duration,
    /// How much of the client's forwarding history is passed on.
    pub trust: ForwardingTrust,
    /// The instance's first tier (`None`: every lookup reads the store).
    pub l1: Option<&'a L1>,
    /// The instance's flights of concurrent misses (`None`: no collapsing,
    /// as where an instance serves one request).
    pub collapser: Option<&'a Collapser>,
    /// Whether a miss takes a fill lease in the store, so misses of its key
    /// in other instances wait for its fill (`fill_lease`).
    pub fill_leases: bool,
    /// The node's stores, shared, for bodies that outlive the flow (a
    /// chunked object read or filled); `None`: large objects are not
    /// stored.
    pub handles: Option<&'a StoreHandles<S, C>>,
    /// The size of a large object's chunks (`chunk_bytes`).
    pub chunk_bytes: usize,
}

/// An origin response with the times §4.2.3 needs.
pub(crate) struct Fetched {
    pub(crate) response: Response,
    request_time: SystemTime,
    response_time: SystemTime,
    /// Where the body already is in the store: a `304` refreshing a
    /// chunked object keeps its chunks, and only its head is rewritten.
    stored_chunks: Option<ChunkLayout>,
    /// The codings the body already holds: a `304` refreshing an object
    /// the edge compressed keeps its packed body, not compressed again.
    stored_encodings: Option<Encodings>,
}

impl Fetched {
    /// How long the origin took, by the clock.
    fn origin_time(&self) -> Duration {
        self.response_time
            .duration_since(self.request_time)
            .unwrap_or_default()
    }

    /// Records in `status` that the origin answered: with which status, in
    /// how long (`Cache-Status`'s `fwd-status`, and `Server-Timing`).
    pub(crate) fn answered(&self, status: &mut CacheStatus) {
        status.fwd_status = Some(self.response.status);
        status.origin_time = Some(self.origin_time());
    }
}

/// Whether a fetched response may be written to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storing {
    /// If it is storable (RFC 9111 §3 and the rule).
    IfStorable,
    /// Never: the request said `no-store`, or the store is down.
    Never,
}

/// Where a request past the admin API goes.
enum Routed<'r> {
    /// Past the cache, its `Cache-Status` saying why (rules broken, a
    /// bypass rule, a personal cookie).
    Pass(ClientRequest, CacheStatus),
    /// A method the cache does not serve: passed, and it invalidates.
    Unsafe(ClientRequest, &'r CacheRules),
    /// To the cache, under its rule.
    Cacheable(Exchange<'r>),
}

/// What a lookup decided for a cacheable request.
enum Looked {
    /// Fetched from the origin without a fill's collapsing (`no-store`,
    /// the store unavailable), stored as allowed.
    Forward(CacheStatus, Storing),
    /// `only-if-cached` with nothing usable stored: `504`.
    Unavailable,
    /// Nothing stored: a fill.
    Miss(CacheStatus),
    /// A stored response, and what to do with it.
    Found {
        found: Found,
        control: EffectiveControl,
        stored: StoredFacts,
        decision: Decision,
    },
}

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    pub(crate) fn storage(&self) -> CacheStorage<'_, S, C> {
        CacheStorage {
            store: self.store,
            clock: self.clock,
            l1: self.l1,
        }
    }

    fn purge_api(&self) -> Option<PurgeApi<'_, S, C>> {
        Some(PurgeApi {
            settings: self.purge?,
            rules: self.rules,
            storage: self.storage(),
        })
    }

    /// Which form of the purge API a request is, if the API is on and it
    /// is one: matched once per request, then passed along.
    pub(crate) fn purge_route(&self, method: &Method, path_and_query: &str) -> Option<PurgeRoute> {
        self.purge?.route(method, path_and_query)
    }

    /// What can be decided from the request head alone, before any body
    /// is read (see [`PurgeApi::admit`]).
    pub(crate) fn admit(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Admission {
        let route = self.purge_route(method, path_and_query);
        self.admit_as(route, method, headers)
    }

    /// [`admit`](Self::admit) for a request already routed.
    pub(crate) fn admit_as(
        &self,
        route: Option<PurgeRoute>,
        method: &Method,
        headers: &HeaderMap,
    ) -> Admission {
        match (route, self.purge_api()) {
            (Some(route), Some(api)) => api.admit(route, method, headers),
            _ if announces_no_body(method, headers) => Admission::NoBody,
            _ => Admission::ReadBody { limit: None },
        }
    }

    /// Handles one request handed in whole, admitted here as `Node::serve`
    /// admits a head, its body held to the admitted limit; the optional
    /// [`Refresh`] is to be run after the response has been sent.
    pub(crate) async fn handle(&self, request: ClientRequest) -> (Response, Option<Refresh>) {
        let route = self.purge_route(&request.method, &request.path_and_query);
        match self.admit_as(route, &request.method, &request.headers) {
            Admission::Answer(refusal) => return (refusal, None),
            Admission::ReadBody { limit: Some(limit) } if request.body.as_slice().len() > limit => {
                return (body_too_large(limit), None);
            }
            _ => {}
        }
        self.handle_as(route, request).await
    }

    /// [`handle`](Self::handle) for a request already routed and admitted.
    pub(crate) async fn handle_as(
        &self,
        route: Option<PurgeRoute>,
        request: ClientRequest,
    ) -> (Response, Option<Refresh>) {
        // A named node records the newest purge state it has read
        // (`purge::completion`): a read of the epoch, remembered for
        // `purge_staleness_ms`, and a write only when it moved.
        if let Some(settings) = self.purge
            && let Some(node) = &settings.node
        {
            settings.reporter.report(self.store, self.clock, node).await;
        }
        if route == Some(PurgeRoute::Explain) && self.purge_api().is_some() {
            return (self.explain(&request).await, None);
        }
        if let (Some(route), Some(api)) = (route, self.purge_api()) {
            return (api.handle(route, &request).await, None);
        }
        let mut request = request;
        // The token's bearer may ask an answer to explain itself; the
        // explanation is taken once the answer is made (what it stored is
        // what it explains).
        let explained = self.explain_asked(&mut request).then(|| ClientRequest {
            method: request.method.clone(),
            path_and_query: request.path_and_query.clone(),
            headers: request.headers.clone(),
            connection: request.connection.clone(),
            body: Body::empty(),
        });
        let (mut response, refresh) = match self.route_past_admin(request) {
            Routed::Pass(mut request, status) => (self.pass(&mut request, status).await, None),
            Routed::Unsafe(mut request, rules) => {
                (self.pass_unsafe(&mut request, rules).await, None)
            }
            Routed::Cacheable(exchange) => self.cacheable(exchange).await,
        };
        if let Some(explained) = explained
            && let Some(field) = self.explain_field(explained).await
        {
            response.headers.insert(explain::EXPLAIN_FIELD, field);
        }
        (response, refresh)
    }

    /// Where a request that is not for the admin API goes: past the cache,
    /// or to it under its rule.
    fn route_past_admin(&self, request: ClientRequest) -> Routed<'_> {
        let Some(rules) = self.rules else {
            let status = CacheStatus::forward(Forward::Bypass).with_detail("rules-error");
            return Routed::Pass(request, status);
        };
        if request.method != Method::GET && request.method != Method::HEAD {
            return Routed::Unsafe(request, rules);
        }
        let rule = rules.for_target(&request.path_and_query);
        if rule.bypass {
            let status =
                CacheStatus::forward(Forward::Bypass).with_detail(format!("rule-{}", rule.label()));
            return Routed::Pass(request, status);
        }
        // A cookie the rule neither keys nor ignores: the answer may be
        // personal, so it goes to the origin with its cookies, unshared.
        if rule.passing_cookie(&request.headers).is_some() {
            let status = CacheStatus::forward(Forward::Bypass).with_detail("cookie");
            return Routed::Pass(request, status);
        }
        Routed::Cacheable(Exchange::new(request, rule))
    }

    /// The answer to `request` if it is a plain fresh hit, decided and
    /// answered exactly as [`handle`](Self::handle) would; `None` for
    /// anything else (a miss, stale, a revalidation, a pass, the admin
    /// API), which is left to `handle`. A chunked object's answer comes
    /// with an empty body and the [`StoredRange`] of its chunks to send,
    /// for the caller to read from the store itself. Reads the store and
    /// never writes it.
    pub(crate) async fn fresh_hit(
        &self,
        request: ClientRequest,
    ) -> Option<(Response, Option<StoredRange>)> {
        // (An answer asked to explain itself is the component's.)
        if self
            .purge_route(&request.method, &request.path_and_query)
            .is_some()
            || request.headers.contains_key(explain::EXPLAIN_FIELD)
        {
            return None;
        }
        let Routed::Cacheable(mut exchange) = self.route_past_admin(request) else {
            return None;
        };
        let Looked::Found {
            found,
            stored,
            decision: Decision::Fresh,
            ..
        } = self.look_up_and_decide(&mut exchange).await
        else {
            return None;
        };
        if found.meta().sliced.is_some() && !slice::slices_cover(&exchange.request, &found) {
            return None;
        }
        let hit = CacheStatus::hit(stored.ttl());
        if found.chunks().is_none() {
            let response = self
                .serve_found(&exchange, &found, stored.age, &hit)
                .await?;
            return Some((response, None));
        }
        // Not prefetched: the caller reads the chunks, the first before
        // it answers, as `serve_found` would.
        let body = self.stored_body(&found)?;
        let delivery = self.delivery(&exchange);
        let mut response =
            serve_stored(&exchange.request, &found, body, stored.age, &hit, delivery);
        let range = match &response.body {
            Body::Stream(stream) => Some(stream.stored_range()?),
            Body::Full(_) => None,
        };
        if range.is_some() {
            response.body = Body::empty();
        }
        Some((response, range))
    }

    /// The stored responses for `exchange`'s key and request headers, with
    /// the purge epoch the lookup saw.
    async fn look_up(&self, exchange: &Exchange<'_>) -> Result<(Lookup, PurgeEpoch), StoreFailure> {
        let request_headers = &exchange.request.headers;
        self.storage()
            .lookup(&exchange.keyed, request_headers)
            .await
    }

    /// What the decision reads of a stored response, now.
    fn facts_of(&self, found: &Found) -> (EffectiveControl, StoredFacts) {
        let control = EffectiveControl::of(found.headers());
        let stored = StoredFacts::of(found, &control, self.clock.now());
        (control, stored)
    }

    /// Runs a deferred `stale-while-revalidate` refresh.
    pub(crate) async fn refresh(&self, refresh: Refresh) {
        let Some(rules) = self.rules else { return };
        let rule = rules.for_target(&refresh.request.path_and_query);
        let mut exchange = Exchange::new(refresh.request, rule);
        if let Ok((Lookup::Found(found), epoch)) = self.look_up(&exchange).await {
            exchange.epoch = epoch;
            let (control, stored) = self.facts_of(&found);
            let _ = self.revalidate(&exchange, found, &control, &stored).await;
        }
    }
    /// Looks `exchange`'s key up and decides what its request gets from
    /// what is stored (recording the client's demand, its arrival and the
    /// purge epoch in it).
    async fn look_up_and_decide(&self, exchange: &mut Exchange<'_>) -> Looked {
        let request_cc = match exchange.rule.client_directives {
            ClientDirectives::Honour => CacheDirectives::of_request(&exchange.request.headers),
            ClientDirectives::Ignore => CacheDirectives::default(),
        };
        if request_cc.has("no-store") {
            let status = CacheStatus::forward(Forward::Request).with_detail("no-store");
            return Looked::Forward(status, Storing::Never);
        }
        let demand = ClientDemand::of(&request_cc);
        exchange.demand = demand;
        exchange.arrival = self.clock.now();
        let (found, miss) = match self.look_up(exchange).await {
            Ok((lookup, epoch)) => {
                exchange.epoch = epoch;
                match lookup {
                    Lookup::Found(found) => (Some(found), None),
                    Lookup::Miss(forward, detail) => (None, Some((forward, detail))),
                }
            }
            Err(_) => {
                // Store unavailable: fail open to the origin, store nothing.
                let status = CacheStatus::forward(Forward::Bypass).with_detail("store-error");
                return Looked::Forward(status, Storing::Never);
            }
        };
        let facts = found.as_ref().map(|found| self.facts_of(found));
        let decision = decide(&demand, facts.as_ref().map(|(_, stored)| stored));
        let (Some(found), Some((control, stored))) = (found, facts) else {
            if decision == Decision::Unavailable {
                return Looked::Unavailable;
            }
            let (forward, detail) = miss.unwrap_or((Forward::Miss, None));
            let mut status = CacheStatus::forward(forward);
            status.detail = detail.map(str::to_owned);
            return Looked::Miss(status);
        };
        Looked::Found {
            found,
            control,
            stored,
            decision,
        }
    }

    async fn cacheable(&self, mut exchange: Exchange<'_>) -> (Response, Option<Refresh>) {
        let (found, control, stored, decision) = match self.look_up_and_decide(&mut exchange).await
        {
            Looked::Forward(status, storing) => {
                return (self.fetch(&exchange, status, storing).await, None);
            }
            Looked::Unavailable => return (only_if_cached(), None),
            Looked::Miss(status) => return (self.fill(&mut exchange, status).await, None),
            Looked::Found {
                found,
                control,
                stored,
                decision,
            } => (found, control, stored, decision),
        };
        // An object stored by slices answers only what its stored chunks
        // cover, and only while fresh (a revalidation would lose which
        // chunks are stored): anything else fills (by a slice, for a range).
        if found.meta().sliced.is_some()
            && (decision != Decision::Fresh || !slice::slices_cover(&exchange.request, &found))
        {
            let status = CacheStatus::forward(Forward::Miss).with_detail("partial");
            return (self.fill(&mut exchange, status).await, None);
        }
        let hit = match decision {
            Decision::Fresh => CacheStatus::hit(stored.ttl()),
            Decision::Stale(StaleServe::MaxStale) => {
                CacheStatus::hit(stored.ttl()).with_detail("max-stale")
            }
            Decision::Stale(StaleServe::WhileRevalidate) => {
                CacheStatus::hit(stored.ttl()).with_detail("stale-while-revalidate")
            }
            Decision::Unavailable => return (only_if_cached(), None),
            Decision::Revalidate | Decision::Miss => {
                let response = self
                    .revalidate_once(&mut exchange, found, &control, &stored)
                    .await;
                return (response, None);
            }
        };
        let Some(response) = self.serve_found(&exchange, &found, stored.age, &hit).await else {
            // A chunked object whose chunks are gone: fill it again.
            let status = CacheStatus::forward(Forward::Miss).with_detail("missing-chunk");
            return (self.fill(&mut exchange, status).await, None);
        };
        let refresh = (decision == Decision::Stale(StaleServe::WhileRevalidate)).then(|| Refresh {
            request: exchange.request,
        });
        (response, refresh)
    }

    /// The body of a stored response: its bytes, or a chunked object's
    /// chunks read as the client takes them (`None` where this flow has no
    /// handle on the store to read them with).
    pub(crate) fn stored_body(&self, found: &Found) -> Option<Body> {
        Some(match found.chunks() {
            None => Body::Full(found.body().clone()),
            Some(layout) => {
                let chunks = StoredChunks::new(self.handles?.clone(), found.key.clone(), layout);
                Body::Stream(BodyStream::new(chunks, Some(layout.length)))
            }
        })
    }

    /// A stored response as `exchange`'s client gets it. A chunked
    /// object's first piece is read before the answer goes, so that an
    /// object whose chunks are gone is a miss (`None`) rather than an
    /// aborted answer.
    pub(crate) async fn serve_found(
        &self,
        exchange: &Exchange<'_>,
        found: &Found,
        age: Duration,
        status: &CacheStatus,
    ) -> Option<Response> {
        let body = self.stored_body(found)?;
        self.answer_found(exchange, found, body, age, status).await
    }

    /// [`serve_found`](Self::serve_found) with `body` as the stored body.
    pub(crate) async fn answer_found(
        &self,
        exchange: &Exchange<'_>,
        found: &Found,
        body: Body,
        age: Duration,
        status: &CacheStatus,
    ) -> Option<Response> {
        let delivery = self.delivery(exchange);
        let request = &exchange.request;
        let mut response = serve_stored(request, found, body, age, status, delivery);
        if let Body::Stream(stream) = &mut response.body {
            stream.prefetch().await.ok()?;
        }
        Some(response)
    }

    /// How `exchange`'s answer goes to browsers (its rule's
    /// `browser_freshness`), delivered now.
    pub(crate) fn delivery(&self, exchange: &Exchange<'_>) -> Delivery {
        Delivery {
            browser: exchange.rule.browser_freshness(),
            at: self.clock.now(),
        }
    }

    pub(crate) async fn send_timed(
        &self,
        request: OriginRequest,
    ) -> Result<Fetched, OriginFailure> {
        let request_time = self.clock.now();
        let response = self.origin.send(request).await?;
        Ok(Fetched {
            response,
            request_time,
            response_time: self.clock.now(),
            stored_chunks: None,
            stored_encodings: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seams::Body;
    use std::cell::{Cell, RefCell};

    use http::HeaderValue;

    use crate::http::content_coding::Coding;
    use crate::policy::invalidation::{PurgeKind, PurgeTimes};
    use crate::policy::vary::MAX_VARIANTS;
    use crate::purge::api::PurgeSettings;
    use crate::store::unix_us;
    use crate::test_support::{
        FakeClock, FakeOrigin, GatedOrigin, MemStore, Pieces, block_on, drain, run_together,
        status_response,
    };

    fn edge<'a>(
        rules: &'a CacheRules,
        store: &'a MemStore,
        origin: &'a FakeOrigin,
        clock: &'a FakeClock,
    ) -> Flow<'a, MemStore, &'a FakeOrigin, FakeClock> {
        edge_over(rules, store, origin, clock)
    }

    fn edge_over<'a, O: Origin>(
        rules: &'a CacheRules,
        store: &'a MemStore,
        origin: &'a O,
        clock: &'a FakeClock,
    ) -> Flow<'a, MemStore, &'a O, FakeClock> {
        Flow {
            rules: Some(rules),
            purge: None,
            store,
            origin,
            clock,
            grace: Duration::ZERO,
            trust: ForwardingTrust::default(),
            l1: None,
            collapser: None,
            fill_leases: false,
            handles: None,
            chunk_bytes: 0,
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
            body: body.as_bytes().to_vec().into(),
        }
    }

    fn get(path: &str, extra: &[(&str, &str)]) -> ClientRequest {
        let mut pairs = vec![("host", "shop.example")];
        pairs.extend_from_slice(extra);
        let headers = crate::test_support::headers(&pairs);
        ClientRequest {
            method: Method::GET,
            path_and_query: path.to_owned(),
            connection: crate::spin_metadata::connection_of(&headers),
            headers,
            body: Body::empty(),
        }
    }

    fn status_of(response: &Response) -> String {
        response.headers["cache-status"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    static PIECE: [u8; 600 * 1024] = [b'x'; 600 * 1024];

    fn streamed(cache_control: &str, breaks_off: bool) -> Response {
        let mut response = ok(cache_control, "");
        response.body = Pieces::body(&[&PIECE, &PIECE], None, breaks_off);
        response
    }

    #[test]
    fn a_fresh_hit_is_answered_alone_as_the_whole_flow_answers_it_and_nothing_else_is() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "stored")));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        // Nothing stored: not a fresh hit, and nothing is fetched or written.
        assert!(block_on(edge.fresh_hit(get("/a", &[]))).is_none());
        assert_eq!(origin.calls.get(), 0);
        assert!(store.values.borrow().is_empty());

        let (miss, _) = block_on(edge.handle(get("/a", &[])));
        assert!(status_of(&miss).contains("stored"));
        clock.set_unix_ms(1_700_000_010_000);
        let before = store.values.borrow().clone();
        let (alone, chunks) = block_on(edge.fresh_hit(get("/a", &[]))).expect("a fresh hit");
        assert_eq!(chunks, None);
        assert_eq!(*store.values.borrow(), before, "a fresh hit writes nothing");
        let (whole, _) = block_on(edge.handle(get("/a", &[])));
        assert_eq!(alone.status, whole.status);
        assert_eq!(alone.headers, whole.headers);
        assert!(status_of(&alone).contains("hit"), "{}", status_of(&alone));
        assert_eq!(drain(alone.body).unwrap(), drain(whole.body).unwrap());
        assert_eq!(origin.calls.get(), 1);

        // What only the whole flow answers: a client's no-cache (a
        // revalidation), a method the cache does not serve, a stale entry.
        let no_cache = get("/a", &[("cache-control", "no-cache")]);
        assert!(block_on(edge.fresh_hit(no_cache)).is_none());
        let mut post = get("/a", &[]);
        post.method = Method::POST;
        assert!(block_on(edge.fresh_hit(post)).is_none());
        clock.set_unix_ms(1_700_000_061_000);
        assert!(block_on(edge.fresh_hit(get("/a", &[]))).is_none());
        assert_eq!(origin.calls.get(), 1);
        assert_eq!(*store.values.borrow(), before);
    }

    fn page(cache_control: &str) -> Response {
        let text: String = (0..300).map(|i| format!("<p>item {i}</p>\n")).collect();
        let mut response = ok(cache_control, &text);
        response
            .headers
            .insert("content-type", HeaderValue::from_static("text/html"));
        response
            .headers
            .insert("etag", HeaderValue::from_static("\"v1\""));
        response
    }

    #[test]
    fn a_text_page_is_compressed_once_at_fill_and_each_client_gets_what_it_accepts() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(page("max-age=60")));
        let original = drain(page("max-age=60").body).unwrap();
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        let (miss, _) = block_on(edge.handle(get("/p", &[("accept-encoding", "gzip, br")])));
        assert!(status_of(&miss).contains("stored"));
        assert_eq!(miss.headers["content-encoding"], "br");
        assert_eq!(miss.headers["vary"], "Accept-Encoding");
        assert_eq!(miss.headers["etag"], "W/\"v1\"");
        let br = drain(miss.body).unwrap();
        assert_eq!(
            miss.headers["content-length"],
            br.len().to_string().as_str()
        );
        assert_eq!(
            Coding::Br.decompress(&br, original.len() as u64).unwrap(),
            original
        );
        let stored_bytes: usize = store.values.borrow().values().map(Vec::len).sum();
        assert!(stored_bytes < original.len(), "only the codings are stored");

        let (gzip, _) = block_on(edge.handle(get("/p", &[("accept-encoding", "gzip")])));
        assert!(status_of(&gzip).contains("hit"));
        assert_eq!(gzip.headers["content-encoding"], "gzip");
        let gzipped = drain(gzip.body).unwrap();
        assert_eq!(
            Coding::Gzip
                .decompress(&gzipped, original.len() as u64)
                .unwrap(),
            original
        );

        let (plain, _) = block_on(edge.handle(get("/p", &[])));
        assert!(status_of(&plain).contains("hit"));
        assert!(!plain.headers.contains_key("content-encoding"));
        assert_eq!(plain.headers["etag"], "\"v1\"");
        assert_eq!(plain.headers["vary"], "Accept-Encoding");
        assert_eq!(drain(plain.body).unwrap(), original);

        // Ranges come from the original bytes, never a compressed copy.
        let ranged = get("/p", &[("accept-encoding", "br"), ("range", "bytes=0-9")]);
        let (part, _) = block_on(edge.handle(ranged));
        assert_eq!(part.status, 206);
        assert!(!part.headers.contains_key("content-encoding"));
        assert_eq!(drain(part.body).unwrap(), &original[..10]);

        // A weak match of the compressed validator is current.
        let again = get(
            "/p",
            &[("accept-encoding", "br"), ("if-none-match", "W/\"v1\"")],
        );
        let (not_modified, _) = block_on(edge.handle(again));
        assert_eq!(not_modified.status, 304);

        let mut head = get("/p", &[("accept-encoding", "gzip")]);
        head.method = Method::HEAD;
        let (head, _) = block_on(edge.handle(head));
        assert_eq!(
            head.headers["content-length"],
            gzipped.len().to_string().as_str()
        );
        assert_eq!(origin.calls.get(), 1);
    }

    #[test]
    fn no_transform_keeps_a_page_as_the_origin_sent_it() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(page("max-age=60, no-transform")));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        for _ in 0..2 {
            let (response, _) = block_on(edge.handle(get("/p", &[("accept-encoding", "br")])));
            assert!(!response.headers.contains_key("content-encoding"));
            assert!(!response.headers.contains_key("vary"));
            assert_eq!(response.headers["etag"], "\"v1\"");
        }
        assert_eq!(origin.calls.get(), 1);
    }

    #[test]
    fn a_revalidated_compressed_page_keeps_its_codings() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|request| {
            if request.headers.contains_key("if-none-match") {
                let mut not_modified = status_response(304);
                not_modified
                    .headers
                    .insert("cache-control", HeaderValue::from_static("max-age=60"));
                return Ok(not_modified);
            }
            Ok(page("max-age=60"))
        });
        let original = drain(page("max-age=60").body).unwrap();
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        block_on(edge.handle(get("/p", &[("accept-encoding", "gzip")])));
        clock.set_unix_ms(1_700_000_061_000);
        let (refreshed, _) = block_on(edge.handle(get("/p", &[("accept-encoding", "gzip")])));
        assert_eq!(origin.calls.get(), 2);
        assert_eq!(refreshed.headers["content-encoding"], "gzip");
        let gzipped = drain(refreshed.body).unwrap();
        assert_eq!(
            Coding::Gzip
                .decompress(&gzipped, original.len() as u64)
                .unwrap(),
            original
        );
        let (plain, _) = block_on(edge.handle(get("/p", &[])));
        assert!(status_of(&plain).contains("hit"), "{}", status_of(&plain));
        assert_eq!(drain(plain.body).unwrap(), original);
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn a_body_longer_than_the_rule_allows_streams_through_unstored() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(streamed("max-age=60", false)));
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        for _ in 0..2 {
            let (response, _) = block_on(edge.handle(get("/big", &[])));
            assert_eq!(response.status, 200);
            assert!(status_of(&response).ends_with("detail=too-large"));
            assert!(!response.headers.contains_key("content-length"));
            assert!(matches!(response.body, Body::Stream(_)));
            assert_eq!(drain(response.body).unwrap().len(), 2 * PIECE.len());
        }
        assert_eq!(origin.calls.get(), 2);
        assert!(store.values.borrow().is_empty());
    }

    #[test]
    fn a_body_that_breaks_off_before_it_could_be_stored_is_a_502_and_stores_nothing() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| {
            let mut response = ok("max-age=60", "");
            response.body = Pieces::body(&[b"half"], None, true);
            Ok(response)
        });
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert_eq!(response.status, 502);
        assert!(store.values.borrow().is_empty());
    }

    #[test]
    fn a_pass_hands_the_request_body_to_the_origin_as_a_stream() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|request| {
            assert!(
                matches!(request.body, Body::Stream(_)),
                "{:?}",
                request.body
            );
            Ok(streamed("no-store", false))
        });
        let clock = clock();
        let edge = edge(&rules, &store, &origin, &clock);
        let mut upload = get("/upload", &[]);
        upload.method = Method::POST;
        upload.body = Pieces::body(&[b"up", b"load"], Some(6), false);
        let (response, _) = block_on(edge.handle(upload));
        assert_eq!(response.status, 200);
        assert_eq!(drain(response.body).unwrap().len(), 2 * PIECE.len());
        assert_eq!(origin.calls.get(), 1);
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
            let (response, _) = block_on(edge.handle(get("/a", &[])));
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
        block_on(edge.handle(get("/a", &[])));
        for value in store.values.borrow_mut().values_mut() {
            let last = value.len() - 1;
            value[last] ^= 0xff;
        }
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert!(
            status_of(&response).contains("detail=corrupt-entry"),
            "{}",
            status_of(&response)
        );
        assert_eq!(response.body, b"fresh");
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert!(status_of(&response).contains("hit"));
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn an_entry_fetched_before_an_invalidation_does_not_survive_it() {
        let rules = CacheRules::default();
        let store = std::rc::Rc::new(MemStore::default());
        let scope_key = crate::store::keys::PurgeStateKey::scope(
            &crate::policy::invalidation::url_scope("http://shop.example/a"),
        );
        let racing_store = store.clone();
        let clock = clock();
        let purge_time = unix_us(clock.now());
        // The invalidation lands while the origin is answering.
        let origin = FakeOrigin::new(move |_| {
            let purged = PurgeTimes::default().after_purge(purge_time, PurgeKind::Hard);
            block_on(racing_store.set(&scope_key, &purged.encode())).unwrap();
            Ok(ok("max-age=60", "old"))
        });
        let edge = edge(&rules, &store, &origin, &clock);
        block_on(edge.handle(get("/a", &[])));
        let (response, _) = block_on(edge.handle(get("/a", &[])));
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
        block_on(edge.handle(get("/a", &[])));
        clock.0.set(clock.0.get() + Duration::from_secs(4));
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert_eq!(response.headers["age"], "4");
        assert_eq!(status_of(&response), "edge-cache; hit; ttl=6");
        clock.0.set(clock.0.get() + Duration::from_secs(7));
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert!(
            status_of(&response).starts_with("edge-cache; fwd=stale"),
            "{}",
            status_of(&response)
        );
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn an_invalid_origin_age_is_ignored_not_relayed() {
        for invalid in ["1.5", "-3", "abc"] {
            let rules = CacheRules::default();
            let store = MemStore::default();
            let origin = FakeOrigin::new(move |_| {
                let mut response = ok("max-age=60", "x");
                response
                    .headers
                    .insert("age", HeaderValue::from_static(invalid));
                Ok(response)
            });
            let clock = clock();
            let edge = edge(&rules, &store, &origin, &clock);
            let (miss, _) = block_on(edge.handle(get("/a", &[])));
            assert_eq!(miss.headers["age"], "0", "{invalid:?}");
            assert_eq!(
                status_of(&miss),
                "edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored",
                "{invalid:?}"
            );
            clock.0.set(clock.0.get() + Duration::from_secs(4));
            let (hit, _) = block_on(edge.handle(get("/a", &[])));
            assert_eq!(hit.headers["age"], "4", "{invalid:?}");
            assert_eq!(status_of(&hit), "edge-cache; hit; ttl=56", "{invalid:?}");
            assert_eq!(origin.calls.get(), 1, "{invalid:?}");
            // Passed through unstored, it is not relayed either; a
            // readable one is, as the edge reads it.
            let mut post = get("/a", &[]);
            post.method = Method::POST;
            let (passed, _) = block_on(edge.handle(post));
            assert_eq!(passed.headers.get_all("age").iter().count(), 1);
            assert_eq!(passed.headers["age"], "0", "{invalid:?}");
        }
        let origin = FakeOrigin::new(|_| {
            let mut response = ok("no-store", "x");
            response
                .headers
                .insert("age", HeaderValue::from_static("7, 9"));
            Ok(response)
        });
        let (rules, store, clock) = (CacheRules::default(), MemStore::default(), clock());
        let edge = edge(&rules, &store, &origin, &clock);
        let mut post = get("/a", &[]);
        post.method = Method::POST;
        assert_eq!(block_on(edge.handle(post)).0.headers["age"], "7");
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
            block_on(edge.handle(get("/a", &[("accept-language", &format!("lang-{i}"))])));
        }
        let variants = store.count_under("v:");
        assert_eq!(variants, MAX_VARIANTS);
        // The newest variants are hits, the oldest were evicted.
        let (newest, _) = block_on(edge.handle(get(
            "/a",
            &[("accept-language", &format!("lang-{}", MAX_VARIANTS + 4))],
        )));
        assert!(status_of(&newest).contains("hit"));
        let (oldest, _) = block_on(edge.handle(get("/a", &[("accept-language", "lang-0")])));
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
        let (response, _) = block_on(edge.handle(get("/a", &[])));
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
        assert_eq!(block_on(edge.handle(get("/a", &[]))).0.status, 200);
        clock.0.set(clock.0.get() + Duration::from_secs(30));

        *failure.borrow_mut() = Some(OriginFailure::Unreachable("refused"));
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert_eq!(response.status, 502, "no stale-if-error, no grace");

        edge.grace = Duration::from_secs(60);
        let (response, _) = block_on(edge.handle(get("/a", &[])));
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
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert_eq!(response.status, 200);
        assert!(
            status_of(&response).contains("detail=circuit-open"),
            "{}",
            status_of(&response)
        );

        // Past the grace there is nothing to serve: fail fast, say when to retry.
        clock.0.set(clock.0.get() + Duration::from_secs(60));
        let (response, _) = block_on(edge.handle(get("/a", &[])));
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
                Err(OriginFailure::Unreachable("refused"))
            } else {
                Ok(ok("max-age=10, must-revalidate", "x"))
            }
        });
        let clock = clock();
        let mut edge = edge(&rules, &store, &origin, &clock);
        edge.grace = Duration::from_secs(3_600);
        assert_eq!(block_on(edge.handle(get("/a", &[]))).0.status, 200);
        clock.0.set(clock.0.get() + Duration::from_secs(30));
        failing.set(true);
        assert_eq!(block_on(edge.handle(get("/a", &[]))).0.status, 502);
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
        let (first, _) = block_on(edge.handle(get("/a", &[])));
        assert_eq!(
            first.headers["set-cookie"], "session=abc",
            "the fetching client keeps its cookie"
        );
        assert!(
            status_of(&first).contains("stored"),
            "{}",
            status_of(&first)
        );
        let (hit, _) = block_on(edge.handle(get("/a", &[])));
        assert!(status_of(&hit).contains("hit"));
        assert!(
            hit.headers.get("set-cookie").is_none(),
            "nobody else gets it"
        );
    }

    #[test]
    fn answers_the_origin_gave_carry_its_time_and_hits_do_not() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let clock = std::rc::Rc::new(clock());
        // The origin takes 42.5 ms by the clock.
        let origin_clock = clock.clone();
        let origin = FakeOrigin::new(move |_| {
            let now = origin_clock.now() + Duration::from_micros(42_500);
            origin_clock.0.set(now);
            Ok(ok("max-age=60", "x"))
        });
        let edge = edge(&rules, &store, &origin, &clock);
        let timing = |response: &Response| {
            response
                .headers
                .get_all("server-timing")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let (miss, _) = block_on(edge.handle(get("/t", &[])));
        assert_eq!(timing(&miss), ["origin;dur=42.500"]);
        let (hit, _) = block_on(edge.handle(get("/t", &[])));
        assert!(status_of(&hit).contains("hit"));
        assert!(timing(&hit).is_empty(), "{:?}", timing(&hit));
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
        let (response, _) = block_on(edge.handle(head));
        assert!(response.body.is_empty());
        assert_eq!(response.headers["content-length"], "4");
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert!(status_of(&response).contains("hit"));
        assert_eq!(response.body, b"body");
    }

    /// An edge with a first tier and the purge API (token `t`).
    fn edge_with_l1<'a>(
        rules: &'a CacheRules,
        store: &'a MemStore,
        origin: &'a FakeOrigin,
        clock: &'a FakeClock,
        l1: &'a L1,
        purge: &'a PurgeSettings,
    ) -> Flow<'a, MemStore, &'a FakeOrigin, FakeClock> {
        Flow {
            l1: Some(l1),
            purge: Some(purge),
            ..edge(rules, store, origin, clock)
        }
    }

    fn purge_settings() -> PurgeSettings {
        PurgeSettings {
            admin_path: "/_edge".into(),
            token: "t".into(),
            hosts: Default::default(),
            node: None,
            reporter: Default::default(),
            staleness_ms: 100,
        }
    }

    #[test]
    fn an_l1_hit_reads_only_the_purge_epoch_from_the_store() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "x")));
        let clock = clock();
        let (l1, purge) = (L1::new(1 << 20), purge_settings());
        let edge = edge_with_l1(&rules, &store, &origin, &clock, &l1, &purge);
        block_on(edge.handle(get("/a", &[])));
        // The first hit checks the entry's scopes once …
        block_on(edge.handle(get("/a", &[])));
        store.reads.borrow_mut().clear();
        // … later ones read the epoch and nothing else.
        let (response, _) = block_on(edge.handle(get("/a", &[])));
        assert!(
            status_of(&response).contains("hit"),
            "{}",
            status_of(&response)
        );
        assert_eq!(*store.reads.borrow(), ["p:epoch"]);
        assert_eq!(origin.calls.get(), 1);
    }

    #[test]
    fn a_purge_handed_in_whole_is_admitted_as_a_served_one_is() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "x")));
        let clock = clock();
        let (l1, purge) = (L1::new(1 << 20), purge_settings());
        let edge = edge_with_l1(&rules, &store, &origin, &clock, &l1, &purge);
        let purge_request = |token: &str, body: Vec<u8>| ClientRequest {
            method: Method::POST,
            body: body.into(),
            ..get("/_edge/purge", &[("authorization", token)])
        };
        let small = br#"{"urls": ["/a"]}"#.to_vec();
        let (answer, _) = block_on(edge.handle(purge_request("Bearer wrong", small.clone())));
        assert_eq!(answer.status, 401);
        let big = vec![b' '; crate::purge::MAX_BODY_BYTES + 1];
        let (answer, _) = block_on(edge.handle(purge_request("Bearer t", big)));
        assert_eq!(answer.status, 413);
        let (answer, _) = block_on(edge.handle(purge_request("Bearer t", small)));
        assert_eq!(answer.status, 200);
    }

    #[test]
    fn a_purge_the_store_cannot_record_says_so_without_the_stores_error() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "x")));
        let clock = clock();
        let (l1, purge) = (L1::new(1 << 20), purge_settings());
        let edge = edge_with_l1(&rules, &store, &origin, &clock, &l1, &purge);
        store.broken.set(true);
        let purge_request = ClientRequest {
            method: Method::POST,
            body: br#"{"urls": ["/a"]}"#.to_vec().into(),
            ..get("/_edge/purge", &[("authorization", "Bearer t")])
        };
        let (answer, _) = block_on(edge.handle(purge_request));
        assert_eq!(answer.status, 503);
        let body: serde_json::Value = serde_json::from_slice(answer.body.as_slice()).unwrap();
        assert_eq!(body["error"], crate::purge::api::STORE_UNAVAILABLE);
    }

    #[test]
    fn a_purge_answered_by_another_instance_wins_over_every_l1() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=600", "x")));
        let clock = clock();
        let purge = purge_settings();
        let (first_l1, second_l1) = (L1::new(1 << 20), L1::new(1 << 20));
        let first = edge_with_l1(&rules, &store, &origin, &clock, &first_l1, &purge);
        let second = edge_with_l1(&rules, &store, &origin, &clock, &second_l1, &purge);
        for instance in [&first, &second] {
            block_on(instance.handle(get("/a", &[])));
            let (response, _) = block_on(instance.handle(get("/a", &[])));
            assert!(status_of(&response).contains("hit"));
        }
        clock.set_unix_ms(1_700_000_001_000);
        let purge_request = ClientRequest {
            method: Method::POST,
            body: br#"{"urls": ["/a"]}"#.to_vec().into(),
            ..get("/_edge/purge", &[("authorization", "Bearer t")])
        };
        let (answer, _) = block_on(second.handle(purge_request));
        assert_eq!(answer.status, 200);
        clock.set_unix_ms(1_700_000_002_000);
        // The instance that holds the purged copy asks the origin …
        let (response, _) = block_on(first.handle(get("/a", &[])));
        assert!(
            status_of(&response).contains("fwd=miss; fwd-status=200"),
            "{}",
            status_of(&response)
        );
        // … and the other finds that fill in the store, not its own copy.
        let (response, _) = block_on(second.handle(get("/a", &[])));
        assert!(
            status_of(&response).contains("hit"),
            "{}",
            status_of(&response)
        );
        assert_eq!(origin.calls.get(), 2);
    }

    #[test]
    fn concurrent_misses_of_one_key_wait_for_one_fetch() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = GatedOrigin::new(ok("max-age=60", "filled"));
        let clock = clock();
        let collapser = Collapser::default();
        let edge = Flow {
            collapser: Some(&collapser),
            ..edge_over(&rules, &store, &origin, &clock)
        };
        let requests = (0..100).map(|_| edge.handle(get("/hot", &[]))).collect();
        let answers = run_together(requests, 10, |_| origin.open.set(true));
        assert_eq!(origin.calls.get(), 1, "one fetch for 100 concurrent misses");
        let collapsed = answers
            .iter()
            .filter(|(response, _)| {
                status_of(response).contains("; hit") && status_of(response).contains("collapsed")
            })
            .count();
        assert_eq!(collapsed, 99);
        assert!(
            answers
                .iter()
                .all(|(response, _)| response.body == b"filled")
        );
        assert_eq!(collapser.in_flight(), 0);
    }

    /// `n` concurrent requests for `path`, alternating between two
    /// instances over one store, to a gated origin that answers `answer`:
    /// the answers, the origin's fetch count and the store keys left.
    fn through_two_instances(
        answer: Response,
        path: &str,
        n: usize,
    ) -> (Vec<Response>, usize, Vec<String>) {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = GatedOrigin::new(answer);
        let clock = clock();
        let (first, second) = (Collapser::default(), Collapser::default());
        let instance = |collapser| Flow {
            collapser: Some(collapser),
            fill_leases: true,
            ..edge_over(&rules, &store, &origin, &clock)
        };
        let (a, b) = (instance(&first), instance(&second));
        let requests = (0..n)
            .map(|i| if i % 2 == 0 { &a } else { &b }.handle(get(path, &[])))
            .collect();
        let answers = run_together(requests, 10, |_| origin.open.set(true));
        let keys = store.values.borrow().keys().cloned().collect();
        let answers = answers.into_iter().map(|(response, _)| response).collect();
        (answers, origin.calls.get(), keys)
    }

    #[test]
    fn misses_of_one_key_in_two_instances_wait_for_one_fetch() {
        let (answers, fetches, keys) =
            through_two_instances(ok("max-age=60", "filled"), "/hot", 10);
        assert_eq!(fetches, 1, "one fetch for both instances");
        let collapsed = answers
            .iter()
            .filter(|response| status_of(response).contains("collapsed"))
            .count();
        assert_eq!(collapsed, 9);
        assert!(answers.iter().all(|response| response.body == b"filled"));
        assert!(
            !keys.iter().any(|key| key.starts_with("f:")),
            "the lease went with the fill"
        );
    }

    #[test]
    fn another_instance_waiting_on_an_uncacheable_fill_fetches_for_itself() {
        let (answers, fetches, _) = through_two_instances(ok("private", "mine"), "/me", 2);
        assert_eq!(fetches, 2);
        assert!(
            answers
                .iter()
                .all(|response| response.status == 200 && response.body == b"mine")
        );
    }

    #[test]
    fn waiters_of_an_uncacheable_fill_fetch_for_themselves() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = GatedOrigin::new(ok("private", "mine"));
        let clock = clock();
        let collapser = Collapser::default();
        let edge = Flow {
            collapser: Some(&collapser),
            ..edge_over(&rules, &store, &origin, &clock)
        };
        let requests = (0..3).map(|_| edge.handle(get("/me", &[]))).collect();
        let answers = run_together(requests, 10, |_| origin.open.set(true));
        assert_eq!(origin.calls.get(), 3);
        assert!(answers.iter().all(|(response, _)| response.status == 200));
    }

    #[test]
    fn only_gets_and_heads_without_a_length_skip_reading_the_body() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "x")));
        let clock = clock();
        let purge = purge_settings();
        let edge = Flow {
            purge: Some(&purge),
            ..edge(&rules, &store, &origin, &clock)
        };
        let admit = |method: Method, path: &str, pairs: &[(&str, &str)]| {
            edge.admit(&method, path, &crate::test_support::headers(pairs))
        };
        assert!(matches!(admit(Method::GET, "/a", &[]), Admission::NoBody));
        assert!(matches!(admit(Method::HEAD, "/a", &[]), Admission::NoBody));
        let read_unbounded = |a: Admission| matches!(a, Admission::ReadBody { limit: None });
        assert!(read_unbounded(admit(
            Method::GET,
            "/a",
            &[("content-length", "3")]
        )));
        assert!(read_unbounded(admit(Method::POST, "/a", &[])));
        assert!(read_unbounded(admit(Method::PUT, "/a", &[])));
        // A purge body is read, bounded, whatever its method's habits.
        let purge_request = admit(
            Method::POST,
            "/_edge/purge",
            &[("authorization", "Bearer t")],
        );
        assert!(matches!(
            purge_request,
            Admission::ReadBody { limit: Some(_) }
        ));
    }

    #[test]
    fn each_named_node_reports_the_purges_it_has_applied() {
        let rules = CacheRules::default();
        let store = MemStore::default();
        let origin = FakeOrigin::new(|_| Ok(ok("max-age=60", "x")));
        let clock = clock();
        let named = |name: &str| PurgeSettings {
            node: Some(name.into()),
            ..purge_settings()
        };
        let (a, b) = (named("node-a"), named("node-b"));
        let node_a = Flow {
            purge: Some(&a),
            ..edge(&rules, &store, &origin, &clock)
        };
        let node_b = Flow {
            purge: Some(&b),
            ..edge(&rules, &store, &origin, &clock)
        };
        let authorized = |method: Method, path: &str, body: &str| ClientRequest {
            method,
            body: body.as_bytes().to_vec().into(),
            ..get(path, &[("authorization", "Bearer t")])
        };
        // Both have answered a request before the purge.
        block_on(node_a.handle(get("/a", &[])));
        block_on(node_b.handle(get("/a", &[])));
        clock.set_unix_ms(1_700_000_001_000);
        let (receipt, _) = block_on(node_a.handle(authorized(
            Method::POST,
            "/_edge/purge",
            r#"{"urls":["/a"]}"#,
        )));
        assert_eq!(receipt.status, 200);
        let receipt: serde_json::Value =
            serde_json::from_slice(&drain(receipt.body).unwrap()).unwrap();
        let id = receipt["id"].as_str().unwrap().to_owned();
        let completion = |flow: &Flow<'_, MemStore, &FakeOrigin, FakeClock>| {
            let path = format!("/_edge/purges/{id}");
            let (answer, _) = block_on(flow.handle(authorized(Method::GET, &path, "")));
            assert_eq!(answer.status, 200);
            serde_json::from_slice::<serde_json::Value>(&drain(answer.body).unwrap()).unwrap()
        };
        let applied = |answer: &serde_json::Value, node: &str| {
            answer["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["node"] == node)
                .map(|n| n["applied"].as_bool().unwrap())
        };
        // Asked of node b: a took it; b has not read it yet (its query
        // itself is a request: asked again, b has).
        let first = completion(&node_a);
        assert_eq!(applied(&first, "node-a"), Some(true), "{first}");
        assert_eq!(applied(&first, "node-b"), Some(false), "{first}");
        assert_eq!(first["applied"], 1);
        assert_eq!(first["of"], 2);
        clock.set_unix_ms(1_700_000_001_040);
        block_on(node_b.handle(get("/b", &[])));
        let second = completion(&node_a);
        assert_eq!(applied(&second, "node-b"), Some(true), "{second}");
        let b = second["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == "node-b")
            .unwrap()
            .clone();
        assert_eq!(b["after_ms"], 40.0, "{second}");

        // An unknown id, and the query's own authentication.
        let (unknown, _) =
            block_on(node_a.handle(authorized(Method::GET, "/_edge/purges/nope", "")));
        assert_eq!(unknown.status, 404);
        let (anonymous, _) = block_on(node_a.handle(get(&format!("/_edge/purges/{id}"), &[])));
        assert_eq!(anonymous.status, 401);
    }
}
