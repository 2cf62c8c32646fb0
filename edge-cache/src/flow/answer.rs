//! Shaping what the client receives: conditionals, ranges and HEAD applied
//! to a full representation, `Age` and `Cache-Status` added, framing set;
//! the cache's own answers (`only-if-cached`, an origin's failure); what
//! browsers are told of a fresh answer's lifetime (`policy::browser`). The
//! edge's answers that have nothing to do with caching are `reply`'s.

use std::time::{Duration, SystemTime};

use http::header::{AGE, CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Method};

use crate::flow::compressed;
use crate::http::conditional::{
    NOT_MODIFIED_FIELDS, RangeAnswer, client_has_current, range_answer,
};
use crate::http::field_names::{
    CACHE_STATUS, CACHE_TAG, CDN_CACHE_CONTROL, SERVER_TIMING, SURROGATE_CONTROL, SURROGATE_KEY,
    XKEY,
};
use crate::policy::browser::BrowserFreshness;
use crate::policy::cache_status::{CacheStatus, server_timing};
use crate::policy::freshness::age_header;
use crate::seams::{Body, ClientRequest, OriginFailure, Response};
use crate::store::Found;

/// Headers only the edge acts on; never sent to clients. Every purge tag
/// field goes, whether or not the rule reads it: tags describe the site's
/// purge structure to nobody but its CDN (Cloudflare strips `Cache-Tag`
/// too).
pub(crate) const EDGE_ONLY_HEADERS: [HeaderName; 5] = [
    SURROGATE_KEY,
    CACHE_TAG,
    XKEY,
    SURROGATE_CONTROL,
    CDN_CACHE_CONTROL,
];

/// How an answer of the cache goes to browsers: its rule's setting, and
/// the time it is delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery {
    pub browser: BrowserFreshness,
    pub at: SystemTime,
}

impl Delivery {
    /// `response` as browsers get it, `status` saying what the cache did.
    fn to_browsers(self, mut response: Response, status: &CacheStatus) -> Response {
        let headers = &mut response.headers;
        self.browser
            .apply(response.status, headers, status, self.at);
        response
    }
}

/// A full stored or fetched response, before the client's conditionals,
/// range and method shape what is sent.
pub(crate) struct Representation {
    pub status: u16,
    /// Its header fields (edge-only ones already removed).
    pub headers: HeaderMap,
    pub body: Body,
}

/// A stored response as the client gets it: edge-only fields removed,
/// then conditionals, ranges and HEAD applied, and its lifetime told to
/// browsers as `delivery` asks.
pub(crate) fn serve_stored(
    request: &ClientRequest,
    found: &Found,
    body: Body,
    age: Duration,
    status: &CacheStatus,
    delivery: Delivery,
) -> Response {
    let mut headers = found.headers().clone();
    strip_edge_only(&mut headers);
    // An object the edge compressed: the coding this client takes.
    let body = match (&found.meta().encodings, body) {
        (Some(encodings), Body::Full(packed)) => {
            match compressed::representation(request, &mut headers, &packed, encodings, None) {
                Ok(chosen) => Body::Full(chosen),
                Err(_) => return compressed::undecodable(status),
            }
        }
        (_, body) => body,
    };
    let representation = Representation {
        status: found.meta().status,
        headers,
        body,
    };
    let is_head = request.method == Method::HEAD;
    let response = answer(request, representation, age, status, is_head);
    delivery.to_browsers(response, status)
}

/// An origin's answer as the client gets it: a `200` is a representation
/// the client's conditionals and ranges apply to, anything else goes as
/// it came; its lifetime is told to browsers as `delivery` asks.
pub(crate) fn answer_fetched(
    request: &ClientRequest,
    mut fetched: Representation,
    age: Duration,
    status: &CacheStatus,
    is_head: bool,
    delivery: Delivery,
) -> Response {
    strip_edge_only(&mut fetched.headers);
    let response = if fetched.status == 200 {
        answer(request, fetched, age, status, is_head)
    } else {
        let Representation {
            status: code,
            headers,
            body,
        } = fetched;
        finish(code, headers, body, Some(age), status, is_head)
    };
    delivery.to_browsers(response, status)
}

/// Applies client conditionals, ranges and HEAD to a full representation.
pub(crate) fn answer(
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
        return finish(304, headers, Body::empty(), Some(age), status, true);
    }
    // A range is cut from a whole body or a stored object (which reads
    // only the chunks it covers); one streaming from the origin is
    // answered whole, which RFC 9110 §14.2 allows.
    let total = match &rep.body {
        Body::Full(whole) => Some(whole.len() as u64),
        Body::Stream(stream) if stream.can_seek() => stream.length(),
        Body::Stream(_) => None,
    };
    if rep.status == 200
        && request.method == Method::GET
        && let Some(total) = total
    {
        match range_answer(&request.headers, &rep.headers, total) {
            RangeAnswer::Full => {}
            RangeAnswer::Partial { start, end, total } => {
                let mut headers = rep.headers;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                    headers.insert("content-range", v);
                }
                let body = match rep.body {
                    Body::Full(whole) => Body::Full(whole.slice(start as usize..=end as usize)),
                    Body::Stream(stream) => match stream.range(start, end) {
                        Ok(part) => Body::Stream(part),
                        // (It said it could seek.) Answered whole.
                        Err(whole) => {
                            headers.remove("content-range");
                            let whole = Body::Stream(whole);
                            return finish(200, headers, whole, Some(age), status, is_head);
                        }
                    },
                };
                return finish(206, headers, body, Some(age), status, false);
            }
            RangeAnswer::Unsatisfiable { total } => {
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    headers.insert("content-range", v);
                }
                return finish(416, headers, Body::empty(), Some(age), status, false);
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
pub(crate) fn finish(
    status: u16,
    mut headers: HeaderMap,
    body: Body,
    age: Option<Duration>,
    cache_status: &CacheStatus,
    is_head: bool,
) -> Response {
    // Every response carries one Age: ours when we know it, else the
    // origin's as the edge reads it, else 0 (a response fresh from the
    // origin). An Age the edge cannot read is ignored (RFC 9111 §5.1),
    // never relayed.
    let age = age.or_else(|| age_header(&headers)).unwrap_or_default();
    headers.insert(AGE, HeaderValue::from(age.as_secs()));
    if let Ok(value) = HeaderValue::from_str(&cache_status.header_value()) {
        headers.insert(CACHE_STATUS, value);
    }
    if let Some(origin_time) = cache_status.origin_time
        && let Ok(value) = HeaderValue::from_str(&server_timing(origin_time))
    {
        headers.append(SERVER_TIMING, value);
    }
    // 204 and 304 have no content; anything else (HEAD included) states
    // the length of the full representation, where it is known (a stream
    // without one goes chunked).
    match body.length() {
        Some(length) if status != 204 && status != 304 => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        _ => {
            headers.remove(CONTENT_LENGTH);
        }
    }
    let no_body = is_head || status == 204 || status == 304;
    Response {
        status,
        headers,
        body: if no_body { Body::empty() } else { body },
    }
}

/// `504` for an `only-if-cached` request the cache cannot answer as it
/// is (RFC 9111 §5.2.1.7): the origin is not asked.
pub(crate) fn only_if_cached() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    let status = CacheStatus::default().with_detail("only-if-cached");
    let body = Body::from(&b"not in cache (only-if-cached)\n"[..]);
    finish(504, headers, body, None, &status, false)
}

/// The edge's answer when the origin gave none: a short plain message
/// naming the cause, never stored.
pub(crate) fn error_response(failure: &OriginFailure, status: &CacheStatus) -> Response {
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
        error.body.into(),
        None,
        status,
        false,
    )
}

/// Removes the fields meant for this cache only.
pub(crate) fn strip_edge_only(headers: &mut HeaderMap) {
    for name in &EDGE_ONLY_HEADERS {
        headers.remove(name);
    }
}
