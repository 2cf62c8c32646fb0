//! Ranges of an object not stored yet, or stored only in part: the origin
//! is asked for the chunk-aligned slice that covers the range (nginx's
//! `slice`), the client is answered from it as it streams, and the slice
//! is stored as it passes (`store::slice_fill`). Seeking in a cold video
//! costs one slice; the parts stored answer later ranges as hits.
//!
//! Only what can be stitched together safely is stored by slices: a
//! `206` whose `Content-Range` starts where asked and states the length,
//! with a strong `ETag` or a `Last-Modified` (a later slice joins the
//! stored ones only if its validators are the same), storable as the full
//! response would be, and not varying. Anything else the origin answers
//! (a `200` for an origin without ranges) is filled and answered as a
//! whole fetch is.

use http::HeaderValue;
use http::header::{CONTENT_RANGE, ETAG, LAST_MODIFIED, RANGE};

use crate::flow::answer::{error_response, finish, strip_edge_only};
use crate::flow::exchange::Exchange;
use crate::flow::fill::{Assessed, assess};
use crate::flow::{Fetched, Flow, Storing};
use crate::http::conditional::{RangeAnswer, client_has_current, range_answer, requested_range};
use crate::policy::cache_status::CacheStatus;
use crate::policy::storability::{Candidate, check_storable};
use crate::policy::vary::VaryNames;
use crate::seams::{Body, ClientRequest, Clock, Origin, OriginFailure, Response};
use crate::store::chunk_fill::{HeadToWrite, generation_of};
use crate::store::chunks::{ChunkLayout, ChunkSet};
use crate::store::keys::Store;
use crate::store::slice_fill::SliceFill;
use crate::store::{Found, Lookup};

/// The part of an object a ranged request wants, and the chunk-aligned
/// slice of it the origin is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slice {
    /// The client's range (`None`: to the end).
    wanted: (u64, Option<u64>),
    /// The slice's first byte, and its last (`None`: to the end).
    start: u64,
    end: Option<u64>,
}

impl Slice {
    /// The slice of `chunk_bytes` chunks that covers `wanted`.
    fn covering((first, last): (u64, Option<u64>), chunk_bytes: u64) -> Slice {
        Slice {
            wanted: (first, last),
            start: first - first % chunk_bytes,
            end: last.map(|last| (last / chunk_bytes + 1) * chunk_bytes - 1),
        }
    }

    fn range_field(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }
}

/// Whether an object stored by slices holds what `request` needs: the
/// chunks its range covers (all of them for the whole body). An object
/// stored whole always does.
pub(super) fn slices_cover(request: &ClientRequest, found: &Found) -> bool {
    let (Some(stored), Some(layout)) = (&found.meta().sliced, found.chunks()) else {
        return true;
    };
    // A HEAD, a 304 or a 416 is answered from the head alone.
    if request.method == http::Method::HEAD || client_has_current(&request.headers, found.headers())
    {
        return true;
    }
    let last = layout.index_of(layout.length.saturating_sub(1));
    match range_answer(&request.headers, found.headers(), layout.length) {
        RangeAnswer::Partial { start, end, .. } => {
            stored.has_all(layout.index_of(start), layout.index_of(end))
        }
        RangeAnswer::Unsatisfiable { .. } => true,
        RangeAnswer::Full => stored.has_all(0, last),
    }
}

/// `bytes first-last/total` of a `Content-Range`.
fn content_range(response: &Response) -> Option<(u64, u64, u64)> {
    let value = response.headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let (span, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let (first, last, total) = (parse(first)?, parse(last)?, parse(total)?);
    (first <= last && last < total).then_some((first, last, total))
}

/// Whether a response carries what tells its slices apart from another
/// version's: a strong `ETag` or a `Last-Modified`.
fn has_validator(headers: &http::HeaderMap) -> bool {
    same_representation(headers, headers)
}

/// Whether two responses carry the same validators: a strong `ETag`, or
/// else a `Last-Modified`.
fn same_representation(a: &http::HeaderMap, b: &http::HeaderMap) -> bool {
    let strong_etag = |h: &http::HeaderMap| {
        h.get(ETAG)
            .filter(|v| !v.as_bytes().starts_with(b"W/"))
            .cloned()
    };
    match (strong_etag(a), strong_etag(b)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => {
            a.get(LAST_MODIFIED).is_some() && a.get(LAST_MODIFIED) == b.get(LAST_MODIFIED)
        }
        _ => false,
    }
}

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    /// The slice a fill of `exchange` asks the origin for, if it is one: a
    /// GET with one `bytes=first-last` or `bytes=first-` range, where large
    /// objects are stored in chunks. (A suffix range needs the length,
    /// unknown before a fetch, and `If-Range` is answered from a whole
    /// fill: both are filled whole.)
    pub(super) fn slice_of(&self, exchange: &Exchange<'_>) -> Option<Slice> {
        let request = &exchange.request;
        if request.method != http::Method::GET
            || self.handles.is_none()
            || self.chunk_bytes == 0
            || request.headers.contains_key("if-range")
        {
            return None;
        }
        let wanted = requested_range(&request.headers)?;
        Some(Slice::covering(wanted, self.chunk_bytes as u64))
    }

    /// Fills `slice` of the object from the origin, answering the client's
    /// range from it as it streams and storing it where it may be.
    pub(super) async fn fetch_slice(
        &self,
        exchange: &Exchange<'_>,
        mut status: CacheStatus,
        slice: Slice,
    ) -> Response {
        let mut request = exchange.fill_request(self.trust, &[]);
        if let Ok(range) = HeaderValue::from_str(&slice.range_field()) {
            request.headers.insert(RANGE, range);
        }
        let fetched = match self.send_timed(request).await {
            Ok(fetched) => fetched,
            Err(failure) => return error_response(&failure, &status),
        };
        fetched.answered(&mut status);
        if fetched.response.status != 206 {
            // No ranges here (a 200), or an error: as any fill.
            return self
                .store_and_serve(exchange, fetched, status, Storing::IfStorable)
                .await;
        }
        match content_range(&fetched.response) {
            Some(range) if range.0 == slice.start => {
                self.answer_slice(exchange, fetched, status, (slice, range))
                    .await
            }
            _ => error_response(
                &OriginFailure::Protocol("the origin answered another range than asked"),
                &status,
            ),
        }
    }

    /// The client's part of a `206` for `slice`, which holds bytes
    /// `first..=last` of `total`; the slice stored as it passes.
    async fn answer_slice(
        &self,
        exchange: &Exchange<'_>,
        fetched: Fetched,
        mut status: CacheStatus,
        (slice, (first, last, total)): (Slice, (u64, u64, u64)),
    ) -> Response {
        let Fetched {
            response,
            request_time,
            response_time,
            ..
        } = fetched;
        let times = (request_time, response_time);
        // Read as the whole response it is part of.
        let Assessed {
            mut headers,
            control,
            lifetime,
            initial_age,
        } = assess(exchange, 200, &response.headers, times, &mut status);
        headers.remove(CONTENT_RANGE);
        let (wanted_first, wanted_last) = slice.wanted;
        if wanted_first >= total {
            let mut fields = http::HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                fields.insert(CONTENT_RANGE, v);
            }
            return finish(416, fields, Body::empty(), None, &status, false);
        }
        let candidate = Candidate {
            status: 200,
            headers: &headers,
            control: &control,
            has_lifetime: lifetime.is_some(),
            body_len: total,
            max_object_bytes: self.object_limit(exchange.rule, None).await,
        };
        let has_authorization = exchange.request.headers.contains_key("authorization");
        let verdict = check_storable(has_authorization, &candidate, exchange.rule)
            .map_err(|reason| reason.detail())
            .and_then(|()| match VaryNames::of(&headers) {
                VaryNames::None => Ok(()),
                _ => Err("varies"),
            })
            .and_then(|()| match has_validator(&headers) {
                true => Ok(()),
                false => Err("no-validator"),
            });
        let mut body = response.body.into_stream();
        match (verdict, self.handles) {
            (Ok(()), Some(handles)) => {
                let (layout, stored) = self.slice_layout(exchange, &headers, total).await;
                let head = HeadToWrite {
                    keyed: exchange.keyed.clone(),
                    request_headers: exchange.request.headers.clone(),
                    status: 200,
                    headers: headers.clone(),
                    request_time,
                    response_time,
                    initial_age,
                    lifetime,
                    control,
                    epoch: exchange.epoch.clone(),
                };
                let first_chunk = layout.index_of(first);
                let mut fill =
                    SliceFill::new(body, handles.clone(), head, (layout, stored), first_chunk);
                status.stored = fill.record().await;
                body = crate::seams::BodyStream::new(fill, Some(last - first + 1));
            }
            (Err(reason), _) if status.detail.is_none() => status.detail = Some(reason.into()),
            _ => {}
        }
        let wanted_last = wanted_last.unwrap_or(u64::MAX).min(last);
        let part = body.cut(wanted_first - first, wanted_last - wanted_first + 1);
        strip_edge_only(&mut headers);
        let range = format!("bytes {wanted_first}-{wanted_last}/{total}");
        if let Ok(v) = HeaderValue::from_str(&range) {
            headers.insert(CONTENT_RANGE, v);
        }
        headers.insert("accept-ranges", HeaderValue::from_static("bytes"));
        let body = Body::Stream(part);
        finish(206, headers, body, Some(initial_age), &status, false)
    }

    /// The layout a slice of a `total`-byte object with `headers` is stored
    /// in, and the chunks of it already stored: those of the object stored
    /// by slices before, if it is the same representation, else none (a
    /// new generation).
    async fn slice_layout(
        &self,
        exchange: &Exchange<'_>,
        headers: &http::HeaderMap,
        total: u64,
    ) -> (ChunkLayout, ChunkSet) {
        let chunk_bytes = self.chunk_bytes as u32;
        if let Ok((Lookup::Found(found), _)) = self.look_up(exchange).await
            && let (Some(layout), Some(stored)) = (found.chunks(), &found.meta().sliced)
            && layout.length == total
            && layout.chunk_bytes == chunk_bytes
            && same_representation(found.headers(), headers)
        {
            return (layout, stored.clone());
        }
        let seed = format!("{}|{:?}", exchange.keyed.key.canonical, self.clock.now());
        let layout = ChunkLayout {
            length: total,
            chunk_bytes,
            generation: generation_of(&seed),
        };
        (layout, ChunkSet::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_covers_the_chunks_a_range_touches() {
        let slice = Slice::covering((1000, Some(1100)), 512);
        assert_eq!((slice.start, slice.end), (512, Some(1535)));
        assert_eq!(slice.range_field(), "bytes=512-1535");
        let open = Slice::covering((1024, None), 512);
        assert_eq!(open.range_field(), "bytes=1024-");
    }

    #[test]
    fn only_a_strong_or_dated_representation_is_stitched_from_slices() {
        let h = |pairs: &[(&str, &str)]| crate::test_support::headers(pairs);
        let dated = h(&[("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        assert!(same_representation(
            &h(&[("etag", "\"a\"")]),
            &h(&[("etag", "\"a\"")])
        ));
        assert!(!same_representation(
            &h(&[("etag", "\"a\"")]),
            &h(&[("etag", "\"b\"")])
        ));
        assert!(!same_representation(
            &h(&[("etag", "W/\"a\"")]),
            &h(&[("etag", "W/\"a\"")])
        ));
        assert!(same_representation(&dated, &dated));
        assert!(!same_representation(&h(&[]), &h(&[])));
    }
}
