//! What the host records of each request: its metrics and its access log
//! line, written once the response body has been sent (or given up), so
//! bytes and duration are the client's.
//!
//! A purge is recognised by its receipt rather than its path: the purge
//! API's path is the component's configuration (`admin_path`), but every
//! accepted purge, `POST {admin_path}/purge` or the `PURGE` method, is
//! answered `200` with a JSON receipt counting its targets, and no
//! `Cache-Status`. Such a response's body (a few hundred bytes) is kept
//! and read when it ends.

use std::time::{Instant, SystemTime};

use http::{HeaderMap, Method, Request, Response};

use crate::observe::cache_outcome::Outcome;
use crate::observe::metrics::{FailureCause, Protocol, PurgeReceipt};

/// The most of a purge receipt kept for reading.
const RECEIPT_LIMIT: usize = 4096;

/// One request, from arrival to the end of its response.
pub(crate) struct RequestRecord {
    arrived: SystemTime,
    started: Instant,
    method: Method,
    protocol: Protocol,
    host: String,
    path: String,
    query: Option<String>,
    component: String,
    status: u16,
    cache_status: String,
    outcome: Outcome,
    bytes: u64,
    /// The origin's time for this request, as the component reported it.
    origin_ms: Option<f64>,
    receipt: Option<Vec<u8>>,
    /// The opt-in fields the access log asked for.
    client: Option<String>,
    user_agent: Option<String>,
    referrer: Option<String>,
    /// The error id of a failed request.
    error_id: Option<String>,
}

impl RequestRecord {
    /// Starts a record of `request` from `peer`, if metrics or the access
    /// log are on; `trusted_proxy_hops` is asked only if the log wants the
    /// client's address.
    pub(crate) fn start<B>(
        request: &Request<B>,
        started: Instant,
        peer: std::net::SocketAddr,
        trusted_proxy_hops: impl FnOnce() -> usize,
    ) -> Option<RequestRecord> {
        if crate::observe::metrics::get().is_none() && crate::observe::access_log::get().is_none() {
            return None;
        }
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or("")
            .to_owned();
        let query = crate::observe::access_log::get()
            .filter(|log| log.with_query())
            .and_then(|_| request.uri().query())
            .map(str::to_owned);
        let fields =
            crate::observe::access_log::get().map_or_else(Default::default, |log| log.fields());
        let header = |name: http::header::HeaderName| {
            request
                .headers()
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        };
        let client = fields.client.then(|| {
            edge_cache::client_address(request.headers(), Some(peer.ip()), trusted_proxy_hops())
                .unwrap_or_default()
        });
        let user_agent = fields
            .user_agent
            .then(|| header(http::header::USER_AGENT))
            .flatten();
        let referrer = fields
            .referrer
            .then(|| header(http::header::REFERER))
            .flatten();
        Some(RequestRecord {
            arrived: SystemTime::now(),
            started,
            method: request.method().clone(),
            protocol: Protocol::of(request.version()),
            host,
            path: request.uri().path().to_owned(),
            query,
            component: String::new(),
            status: 0,
            cache_status: String::new(),
            outcome: Outcome::None,
            bytes: 0,
            origin_ms: None,
            receipt: None,
            client,
            user_agent,
            referrer,
            error_id: None,
        })
    }

    /// The response head is ready: `component` answered (empty for the
    /// host), and `failure` says why, if its instance failed.
    pub(crate) fn responded<B>(
        &mut self,
        response: &Response<B>,
        component: &str,
        failure: Option<(FailureCause, String)>,
    ) {
        let headers = response.headers();
        self.status = response.status().as_u16();
        self.component = component.to_owned();
        self.outcome = Outcome::of(self.status, headers);
        self.cache_status = headers
            .get("cache-status")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.origin_ms = origin_ms(headers, &self.cache_status);
        if let Some((cause, id)) = failure {
            if let Some(metrics) = crate::observe::metrics::get() {
                metrics.instance_failure(cause);
            }
            self.error_id = Some(id);
        }
        if self.outcome == Outcome::None
            && self.status == 200
            && may_be_receipt(&self.method, headers)
        {
            self.receipt = Some(Vec::new());
        }
    }

    /// Body bytes sent.
    pub(crate) fn sent(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(receipt) = &mut self.receipt {
            let room = RECEIPT_LIMIT.saturating_sub(receipt.len());
            receipt.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}

/// The origin's time the component reported for an answer the origin gave
/// (`Cache-Status` has `fwd-status`): the last `origin` metric of its
/// `Server-Timing`, which the component appends after any the origin sent.
/// A hit's stored `Server-Timing` is the origin's, from another request,
/// and is not read.
fn origin_ms(headers: &HeaderMap, cache_status: &str) -> Option<f64> {
    if !cache_status.contains("fwd-status=") {
        return None;
    }
    headers
        .get_all("server-timing")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|metric| {
            let mut parts = metric.split(';').map(str::trim);
            (parts.next() == Some("origin"))
                .then_some(parts)?
                .find_map(|param| {
                    let (name, value) = param.split_once('=')?;
                    (name.trim() == "dur").then(|| value.trim().parse::<f64>().ok())?
                })
        })
        .next_back()
}

/// The cache status a line gives: the component's `Cache-Status`, or for
/// an answer the host made itself, what the host did (`edge-host; error`
/// with the error id of a failure, `none` otherwise), so the
/// field is never empty.
fn filled_cache_status<'a>(
    cache_status: &'a str,
    error_id: Option<&str>,
) -> std::borrow::Cow<'a, str> {
    match (cache_status.is_empty(), error_id) {
        (false, _) => std::borrow::Cow::Borrowed(cache_status),
        (true, Some(id)) => format!("edge-host; error; id={id}").into(),
        (true, None) => std::borrow::Cow::Borrowed("none"),
    }
}

/// The `detail` parameter of the edge's member of a `Cache-Status` value.
fn detail_of(cache_status: &str) -> Option<&str> {
    cache_status
        .split(',')
        .find(|member| member.split(';').next().map(str::trim) == Some(purge_wire::CACHE_NAME))?
        .split(';')
        .find_map(|param| param.trim().strip_prefix("detail="))
        .map(|value| value.trim().trim_matches('"'))
}

fn may_be_receipt(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::POST || method.as_str() == "PURGE")
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"))
}

/// The purge API's receipt (`purge_wire::Receipt`), counted by kind, and
/// its id.
fn read_receipt(body: &[u8]) -> Option<(PurgeReceipt, String)> {
    let receipt: purge_wire::Receipt = serde_json::from_slice(body).ok()?;
    let purged = receipt.purged;
    let counted = PurgeReceipt {
        soft: receipt.soft,
        urls: purged.urls,
        tags: purged.tags,
        prefixes: purged.prefixes,
        all: purged.all,
    };
    Some((counted, receipt.id))
}

impl Drop for RequestRecord {
    /// The response is over (sent, or the client went away): count it and
    /// log it.
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if let Some(metrics) = crate::observe::metrics::get() {
            metrics.request(
                self.outcome,
                self.status,
                self.protocol,
                self.bytes,
                elapsed,
            );
            if let Some(detail) = detail_of(&self.cache_status) {
                metrics.reason(detail);
                if detail == "circuit-open" {
                    metrics.breaker_open_answer();
                }
            }
            if let Some((receipt, id)) = self.receipt.as_deref().and_then(read_receipt) {
                metrics.purge(receipt);
                let t = SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                crate::observe::purges::record(&id, receipt, t);
            }
        }
        if let Some(log) = crate::observe::access_log::get() {
            log.write(&crate::observe::access_log::Entry {
                time: crate::observe::access_log::rfc3339(self.arrived),
                method: self.method.as_str(),
                host: &self.host,
                path: &self.path,
                query: self.query.as_deref(),
                protocol: self.protocol.as_str(),
                status: self.status,
                cache_status: &filled_cache_status(&self.cache_status, self.error_id.as_deref()),
                outcome: self.outcome.as_str(),
                bytes: self.bytes,
                duration_ms: elapsed.as_micros() as f64 / 1000.0,
                origin_ms: self.origin_ms,
                component: &self.component,
                client: self.client.as_deref(),
                user_agent: self.user_agent.as_deref(),
                referrer: self.referrer.as_deref(),
                error_id: self.error_id.as_deref(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_time_is_the_last_origin_metric_of_a_forwarded_answer() {
        let headers = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for value in values {
                map.append("server-timing", value.parse().unwrap());
            }
            map
        };
        let forwarded = "edge-cache; fwd=uri-miss; fwd-status=200";
        let timed = headers(&["db;dur=3, origin;dur=99", "origin;desc=\"edge\";dur=12.5"]);
        assert_eq!(origin_ms(&timed, forwarded), Some(12.5));
        assert_eq!(origin_ms(&timed, "edge-cache; hit; ttl=5"), None);
        assert_eq!(origin_ms(&headers(&["origin;dur=fast"]), forwarded), None);
        assert_eq!(origin_ms(&headers(&["cdn-origin;dur=4"]), forwarded), None);
        assert_eq!(origin_ms(&HeaderMap::new(), forwarded), None);
    }

    #[test]
    fn a_line_s_cache_status_is_never_empty() {
        assert_eq!(
            filled_cache_status("edge-cache; hit", None),
            "edge-cache; hit"
        );
        assert_eq!(
            filled_cache_status("", Some("0f1e2d3c4b5a6978")),
            "edge-host; error; id=0f1e2d3c4b5a6978"
        );
        assert_eq!(filled_cache_status("", None), "none");
    }

    #[test]
    fn the_reason_is_the_edge_member_s_detail() {
        assert_eq!(
            detail_of("edge-cache; fwd=uri-miss; fwd-status=200; detail=no-freshness"),
            Some("no-freshness")
        );
        assert_eq!(
            detail_of("OriginCache; hit; detail=mine, edge-cache; hit; ttl=3"),
            None
        );
        assert_eq!(
            detail_of(
                "OriginCache; hit, edge-cache; fwd=bypass; fwd-status=200; detail=\"cookie\""
            ),
            Some("cookie")
        );
        assert_eq!(detail_of(""), None);
    }

    #[test]
    fn a_purge_receipt_is_read_and_anything_else_is_not() {
        let receipt =
            br#"{"id":"p1","soft":true,"purged":{"urls":2,"tags":1,"prefixes":0,"all":false}}"#;
        assert_eq!(
            read_receipt(receipt),
            Some((
                PurgeReceipt {
                    soft: true,
                    urls: 2,
                    tags: 1,
                    prefixes: 0,
                    all: false
                },
                "p1".to_owned()
            ))
        );
        assert_eq!(read_receipt(br#"{"error":"unauthorized"}"#), None);
        assert_eq!(read_receipt(b"{\"soft\":"), None);
        assert_eq!(read_receipt(b"\xff"), None);
    }
}
