//! Filling a miss: one fetch per key at a time (collapsed within the
//! instance, and across instances through a fill lease), the answer
//! stored where it may be, and served.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};

use crate::collapse::fill_lease::{Claim, FillLeases, LeaseState};
use crate::collapse::{LANDING_CHECK, Turn};
use crate::flow::answer::{Representation, answer_fetched, error_response};
use crate::flow::compressed;
use crate::flow::decision::{Decision, StoredFacts, decide, ttl};
use crate::flow::exchange::{Exchange, LeaseHolder};
use crate::flow::slice::slices_cover;
use crate::flow::{Fetched, Flow, Storing};
use crate::policy::cache_status::{CacheStatus, Forward};
use crate::policy::compression::should_compress;
use crate::policy::forwarding::client_response_headers;
use crate::policy::freshness::{
    ClientDemand, EffectiveControl, corrected_initial_age, freshness_lifetime,
};
use crate::policy::rules::{DEFAULT_MAX_OBJECT_BYTES, Rule};
use crate::policy::storability::{Candidate, check_storable};
use crate::seams::{Body, BodyStream, Clock, Origin, OriginFailure, Response};
use crate::store::capacity::object_limit;
use crate::store::chunk_fill::{ChunkFill, HeadToWrite};
use crate::store::chunk_read::StoredChunks;
use crate::store::keys::Store;
use crate::store::{Found, Lookup, StoredFetch, announced, unix_ms};

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    /// Fills a miss, one fetch per key at a time (see
    /// [`once_per_key`](Self::once_per_key)).
    pub(super) async fn fill(&self, exchange: &mut Exchange<'_>, status: CacheStatus) -> Response {
        self.once_per_key(exchange, status, Work::Fetch).await
    }

    /// Revalidates a stored response, one revalidation per key at a time:
    /// concurrent requests that must revalidate it (stale, or a client's
    /// `no-cache`) make one origin request, as concurrent misses do.
    pub(super) async fn revalidate_once(
        &self,
        exchange: &mut Exchange<'_>,
        found: Found,
        control: &EffectiveControl,
        stored: &StoredFacts,
    ) -> Response {
        let work = Work::Revalidate(found, control, stored);
        let status = CacheStatus::forward(Forward::Stale);
        self.once_per_key(exchange, status, work).await
    }

    /// Does `work` for `exchange`'s key one request at a time: concurrent
    /// requests for the key in this instance wait for the first one's, and
    /// the first one waits for another instance's if that one holds the
    /// key's lease. A waiter is answered with what that stored, or joins
    /// it as it streams, or does the work itself.
    async fn once_per_key(
        &self,
        exchange: &mut Exchange<'_>,
        status: CacheStatus,
        work: Work<'_>,
    ) -> Response {
        let _flight = match self.collapser.map(|c| c.join(&exchange.keyed.key.hash)) {
            None => None,
            Some(Turn::Lead(flight)) => Some(flight),
            Some(Turn::Follow(landing)) => {
                while !landing.landed() {
                    self.clock.pause(LANDING_CHECK).await;
                }
                return self.after_collapse(exchange, status, work).await;
            }
        };
        if !self.fill_leases {
            return self.work(exchange, status, work).await;
        }
        let leases = FillLeases {
            store: self.store,
            clock: self.clock,
        };
        let key = exchange.keyed.key.clone();
        match leases.claim(&key).await {
            Claim::Mine => {
                exchange.fill_lease.set(LeaseHolder::Fill);
                let response = self.work(exchange, status, work).await;
                // (A fill streaming into chunks ends the lease itself.)
                if exchange.fill_lease.get() == LeaseHolder::Fill {
                    leases.release(&key).await;
                }
                response
            }
            Claim::Theirs => self.after_collapse(exchange, status, work).await,
            Claim::Unknown => self.work(exchange, status, work).await,
        }
    }

    async fn work(&self, exchange: &Exchange<'_>, status: CacheStatus, work: Work<'_>) -> Response {
        match work {
            Work::Fetch => self.fetch(exchange, status, Storing::IfStorable).await,
            Work::Revalidate(found, control, stored) => {
                self.revalidate(exchange, found, control, stored).await
            }
        }
    }

    /// A request that waited for another's work on its key, once that has
    /// ended or while it streams: served from what it stored, or joins it
    /// as it streams, else does the work itself.
    async fn after_collapse(
        &self,
        exchange: &mut Exchange<'_>,
        mut status: CacheStatus,
        work: Work<'_>,
    ) -> Response {
        status.collapsed = true;
        if let Some(response) = self.collapsed_hit(exchange).await {
            return response;
        }
        if self.fill_leases {
            let leases = FillLeases {
                store: self.store,
                clock: self.clock,
            };
            let key = &exchange.keyed.key;
            let lease = match leases.read(key).await {
                LeaseState::Held => leases.wait(key).await,
                other => other,
            };
            let response = match lease {
                LeaseState::Streaming(head) => self.join_fill(exchange, &status, head).await,
                // It ended since the lookup: what it stored, if anything.
                LeaseState::Free | LeaseState::Held => self.collapsed_hit(exchange).await,
            };
            if let Some(response) = response {
                return response;
            }
        }
        self.work(exchange, status, work).await
    }

    /// What the work a request waited for stored, if it is fresh and
    /// answers this request: fetched or validated since the request came
    /// (as good as its own fetch, whatever its directives asked), or fresh
    /// enough for its directives.
    async fn collapsed_hit(&self, exchange: &mut Exchange<'_>) -> Option<Response> {
        // Past the first tier: the work may have been another instance's.
        let (keyed, headers) = (&exchange.keyed, &exchange.request.headers);
        let Ok((Lookup::Found(found), epoch)) =
            self.storage().lookup_in_store(keyed, headers).await
        else {
            return None;
        };
        exchange.epoch = epoch;
        let (_, stored) = self.facts_of(&found);
        let since_arrival = found.meta().response_time_ms >= unix_ms(exchange.arrival);
        if decide(&ClientDemand::default(), Some(&stored)) != Decision::Fresh
            || !(since_arrival || decide(&exchange.demand, Some(&stored)) == Decision::Fresh)
            || !slices_cover(&exchange.request, &found)
        {
            return None;
        }
        let mut hit = CacheStatus::hit(stored.ttl());
        hit.collapsed = true;
        self.serve_found(exchange, &found, stored.age, &hit).await
    }

    /// Answers a miss from another request's fill while it streams into
    /// chunks: the head it announced, and each chunk as it is written
    /// (`None` if the head is unusable or the first chunk never comes).
    async fn join_fill(
        &self,
        exchange: &Exchange<'_>,
        status: &CacheStatus,
        head: Vec<u8>,
    ) -> Option<Response> {
        let handles = self.handles?.clone();
        let found = announced(&head, &exchange.keyed)?;
        let layout = found.chunks()?;
        let (at, key) = (found.key.clone(), exchange.keyed.key.clone());
        let chunks = StoredChunks::while_filling(handles, at, layout, key, head);
        let body = Body::Stream(BodyStream::new(chunks, Some(layout.length)));
        let age = found.age(self.clock.now());
        self.answer_found(exchange, &found, body, age, status).await
    }
    /// Fills from the origin, storing the answer where `storing` allows.
    pub(super) async fn fetch(
        &self,
        exchange: &Exchange<'_>,
        mut status: CacheStatus,
        storing: Storing,
    ) -> Response {
        if storing == Storing::IfStorable
            && let Some(slice) = self.slice_of(exchange)
        {
            return self.fetch_slice(exchange, status, slice).await;
        }
        match self
            .send_timed(exchange.fill_request(self.trust, &[]))
            .await
        {
            Ok(fetched) => {
                fetched.answered(&mut status);
                self.store_and_serve(exchange, fetched, status, storing)
                    .await
            }
            Err(failure) => error_response(&failure, &status),
        }
    }
    /// Stores `fetched` where `storing` and its storability allow, and
    /// answers the client with it.
    pub(super) async fn store_and_serve(
        &self,
        exchange: &Exchange<'_>,
        fetched: Fetched,
        mut status: CacheStatus,
        storing: Storing,
    ) -> Response {
        let Exchange {
            request,
            rule,
            keyed,
            ..
        } = exchange;
        let Fetched {
            mut response,
            request_time,
            response_time,
            stored_chunks,
            stored_encodings,
        } = fetched;
        // A body that may be stored is held whole if it fits one entry (a
        // chunk, where large objects are stored in chunks; else the rule's
        // limit); a longer one streams through to the client, stored in
        // chunks as it passes if it may be.
        if storing == Storing::IfStorable && stored_chunks.is_none() {
            let rule_limit = rule.max_object_bytes.unwrap_or(u64::MAX);
            let whole_limit = match self.handles {
                Some(_) => rule_limit.min(self.chunk_bytes as u64),
                None => rule_limit.min(DEFAULT_MAX_OBJECT_BYTES),
            };
            match std::mem::take(&mut response.body)
                .held_whole(whole_limit)
                .await
            {
                Ok(body) => response.body = body,
                Err(_) => return error_response(&OriginFailure::BODY_BROKE_OFF, &status),
            }
        }
        let times = (request_time, response_time);
        let Assessed {
            headers,
            control,
            lifetime,
            initial_age,
        } = assess(
            exchange,
            response.status,
            &response.headers,
            times,
            &mut status,
        );

        let body_len = match (&response.body, self.handles) {
            _ if let Some(layout) = stored_chunks => layout.length,
            (Body::Full(whole), _) => whole.len() as u64,
            // Checked again as it streams, against the same limit.
            (Body::Stream(stream), Some(_)) => stream.length().unwrap_or(0),
            (Body::Stream(_), None) => u64::MAX,
        };
        let whole = matches!(response.body, Body::Full(_)).then_some(body_len);
        let max_object_bytes = self.object_limit(rule, whole).await;
        let candidate = Candidate {
            status: response.status,
            headers: &headers,
            control: &control,
            has_lifetime: lifetime.is_some(),
            body_len,
            max_object_bytes,
        };
        let has_authorization = request.headers.contains_key("authorization");
        let verdict = check_storable(has_authorization, &candidate, rule);
        // (A HEAD's answer has no body to tee: a large one is not stored.)
        if let (Storing::IfStorable, Ok(()), Some(handles), None, Body::Stream(_)) = (
            storing,
            &verdict,
            self.handles,
            stored_chunks,
            &response.body,
        ) && request.method != Method::HEAD
            && let Body::Stream(stream) = std::mem::take(&mut response.body)
        {
            let head = HeadToWrite {
                keyed: keyed.clone(),
                request_headers: request.headers.clone(),
                status: response.status,
                headers: headers.clone(),
                request_time,
                response_time,
                initial_age,
                lifetime,
                control: control.clone(),
                epoch: exchange.epoch.clone(),
            };
            let length = stream.length();
            let sizes = (self.chunk_bytes, max_object_bytes);
            // The fill lease goes with the body: waiters join it as it
            // streams, and it ends when the last chunk is stored.
            let lease = (exchange.fill_lease.get() == LeaseHolder::Fill).then(|| {
                exchange.fill_lease.set(LeaseHolder::ChunkFill);
                keyed.key.clone()
            });
            let fill = ChunkFill::new(stream, handles.clone(), head, sizes, lease);
            fill.announce().await;
            response.body = Body::Stream(BodyStream::new(fill, length).finishing());
            // Stored once its last byte has passed (a body that breaks off
            // aborts this answer and stores nothing).
            status.stored = true;
        }
        // Compressed once, here, for every hit to come; the original
        // bytes are kept for this answer (no decoding for a client that
        // takes none of the codings).
        let mut encodings = stored_encodings;
        let mut original = None;
        if encodings.is_none()
            && storing == Storing::IfStorable
            && verdict.is_ok()
            && let Body::Full(whole) = &response.body
            && should_compress(rule, response.status, &headers, whole.len() as u64)
            && let Some((packed, packed_encodings)) = compressed::pack(whole)
        {
            original = Some(std::mem::replace(&mut response.body, Body::Full(packed)));
            encodings = Some(packed_encodings);
        }
        let stored_head = stored_chunks.map(|_| Body::empty());
        match (
            storing,
            verdict,
            stored_head.as_ref().unwrap_or(&response.body),
        ) {
            (Storing::IfStorable, Ok(()), Body::Full(body)) => {
                let fetch = StoredFetch {
                    status: response.status,
                    headers: &headers,
                    body,
                    request_time,
                    response_time,
                    initial_age,
                    lifetime,
                    control: &control,
                    chunks: stored_chunks,
                    sliced: None,
                    encodings: encodings.clone(),
                };
                let stored = self
                    .storage()
                    .store(keyed, &request.headers, fetch, &exchange.epoch)
                    .await;
                match stored {
                    Ok(()) => status.stored = true,
                    Err(_) => status.detail = Some("store-error".into()),
                }
            }
            (Storing::IfStorable, Err(reason), _) if status.detail.is_none() => {
                status.detail = Some(reason.detail().into())
            }
            _ => {}
        }
        let is_head = request.method == Method::HEAD;
        let mut headers = headers;
        let body = match (&encodings, response.body) {
            (Some(encodings), Body::Full(packed)) => {
                let original = match original {
                    Some(Body::Full(original)) => Some(original),
                    _ => None,
                };
                let chosen = compressed::representation(
                    request,
                    &mut headers,
                    &packed,
                    encodings,
                    original.as_ref(),
                );
                match chosen {
                    Ok(body) => Body::Full(body),
                    Err(_) => return compressed::undecodable(&status),
                }
            }
            (_, body) => body,
        };
        let fetched = Representation {
            status: response.status,
            headers,
            body,
        };
        let delivery = self.delivery(exchange);
        answer_fetched(request, fetched, initial_age, &status, is_head, delivery)
    }
}

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    /// The largest body `rule` lets this flow store (`store::capacity`);
    /// the store's capacity is read only for a body that is not `whole`
    /// within the smallest default.
    pub(super) async fn object_limit(&self, rule: &Rule, whole: Option<u64>) -> u64 {
        let Some(handles) = self.handles else {
            return rule.max_object_bytes.unwrap_or(DEFAULT_MAX_OBJECT_BYTES);
        };
        if whole.is_some_and(|length| length <= DEFAULT_MAX_OBJECT_BYTES) {
            return rule.max_object_bytes.unwrap_or(DEFAULT_MAX_OBJECT_BYTES);
        }
        let capacity = handles.capacity.of(&*handles.store).await;
        object_limit(rule.max_object_bytes, capacity)
    }
}

/// What a request does for its key once it is its turn.
enum Work<'f> {
    /// Fetch it from the origin (a miss).
    Fetch,
    /// Revalidate the stored response.
    Revalidate(Found, &'f EffectiveControl, &'f StoredFacts),
}

/// A fetched response's head as the cache reads it.
pub(super) struct Assessed {
    /// Its fields as relayed (hop-by-hop ones removed).
    pub headers: HeaderMap,
    pub control: EffectiveControl,
    /// Its freshness lifetime, if one can be had.
    pub lifetime: Option<Duration>,
    /// Its corrected initial age (RFC 9111 §4.2.3).
    pub initial_age: Duration,
}

/// Reads a fetched response's head (as a `status` response, fetched
/// between `times`) for `exchange`, noting its TTL in `cache_status`.
pub(super) fn assess(
    exchange: &Exchange<'_>,
    status: u16,
    fields: &HeaderMap,
    (request_time, response_time): (SystemTime, SystemTime),
    cache_status: &mut CacheStatus,
) -> Assessed {
    let headers = client_response_headers(fields);
    let control = EffectiveControl::of(&headers);
    let freshness = exchange.freshness_rule();
    let lifetime = freshness_lifetime(status, &headers, &control, &freshness, response_time)
        .map(|(lifetime, _)| lifetime);
    let initial_age = corrected_initial_age(&headers, request_time, response_time);
    if let Some(lifetime) = lifetime {
        cache_status.ttl = Some(ttl(lifetime, initial_age));
    }
    Assessed {
        headers,
        control,
        lifetime,
        initial_age,
    }
}
