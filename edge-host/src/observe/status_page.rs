//! The metrics listener (`--metrics-listen`): `/metrics` for Prometheus,
//! and a live status page at `/` for a person.
//!
//! The page (`status_page.html`: one file, inline script and SVG, no
//! external assets) polls `/status.json`, a history of totals sampled
//! every [`SAMPLE_INTERVAL`] for the last [`HISTORY`] samples plus one
//! taken at the request, and draws the hit ratio, requests per second by
//! outcome and origin fetches per second from their differences. Keeping
//! the history here means a page opened now shows the last ten minutes,
//! not only what happened while it was open. It also shows the latest
//! reload (SIGHUP) of each part of the configuration, a refused one
//! prominently, and as of the request: requests by reason, origin
//! fetches by result, each store's size, latency over the last minute
//! ([`crate::observe::latency`]), the recent purges, the version and when
//! the process started. Where samples are missing (the process was
//! stopped, or the sampler fell behind) `breaks` says so, and the page
//! draws a gap rather than a line across it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::net::accept_failures::AcceptFailures;
use crate::net::connection::{Activity, ConnectionLimits, TrackedStream, watchdog};
use crate::net::connection_table::ConnectionTable;
use crate::net::request_body::BodyWatch;
use crate::observe::cache_outcome::Outcome;
use crate::observe::latency::{LatencySummary, LatencyWindow};
use crate::observe::metrics::{Metrics, Totals};
use crate::observe::purges::RecentPurge;
use crate::observe::reloads::{self, ReloadStatus};
use crate::observe::rules::RulesStatus;
use crate::observe::store_sizes::LabelledSize;

/// How often the history is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept: ten minutes.
pub const HISTORY: usize = 600;

/// Connections the metrics listener holds at once (a scraper or two and a
/// few open pages need far fewer); beyond it, as on the main listener, the
/// connection idle longest gives way, and a connection that finds every
/// slot busy is closed. Without a cap, about 1,050 idle connections to
/// this port exhausted the process's descriptors and took the main port
/// down with it.
pub const MAX_CONNECTIONS: u32 = 64;
/// Connections from one address at once.
pub const MAX_CONNECTIONS_PER_CLIENT: u32 = 16;
/// The limits each connection to the metrics listener is held to.
const LIMITS: ConnectionLimits = ConnectionLimits {
    header_timeout: Duration::from_secs(10),
    keepalive_timeout: Duration::from_secs(30),
    pressured_timeout: Duration::from_secs(2),
};

const PAGE: &str = include_str!("status_page.html");

/// One point of the history.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    /// Milliseconds since the Unix epoch.
    t: u64,
    #[serde(flatten)]
    totals: Totals,
}

/// `/status.json`.
#[derive(serde::Serialize)]
struct Status<'a> {
    interval_ms: u64,
    /// The outcome of each position in a sample's `requests`.
    outcomes: Vec<&'static str>,
    /// Which outcomes count as answered from the cache.
    from_cache: Vec<&'static str>,
    samples: &'a [Sample],
    /// Each component's cache rules as edge-host last checked them.
    rules: Vec<RulesStatus>,
    /// The latest reload's outcome for each part reloaded since start
    /// (SIGHUP); empty until the first.
    reloads: Vec<ReloadStatus>,
    /// Indices of `samples` that follow missing ones: a line is not drawn
    /// into them from the one before.
    breaks: Vec<usize>,
    /// Requests by `Cache-Status` reason since start, every known reason.
    reasons: Vec<Count>,
    /// Origin fetches by result since start: status class or `error`.
    origin: Vec<Count>,
    /// Each key-value store in use (not the component's L1, which the
    /// host cannot see).
    stores: Vec<LabelledSize>,
    /// p50 and p99 of hits and misses over the last minute.
    latency: LatencySummary,
    /// The last purges accepted, newest first.
    purges: Vec<RecentPurge>,
    /// edge-host's version and the edge-cache core it links.
    version: &'static str,
    core: &'static str,
    /// When the process started, in seconds since the Unix epoch (`None`
    /// where `/proc` cannot say).
    started_at: Option<f64>,
}

/// A count by name.
#[derive(serde::Serialize)]
struct Count {
    name: &'static str,
    total: u64,
}

/// The sampled history, and the latency buckets beside it.
#[derive(Default)]
struct Sampled {
    samples: VecDeque<Sample>,
    latency: LatencyWindow,
}

type History = Arc<Mutex<Sampled>>;

/// Where `samples` (in time order, one every `interval_ms`) skip: each
/// index whose sample came more than one and a half intervals after the
/// one before. The sampler skips ticks it missed rather than bunching
/// them, so a stopped process or a stalled runtime shows as such a jump.
fn breaks<T>(samples: &[T], time: impl Fn(&T) -> u64, interval_ms: u64) -> Vec<usize> {
    let limit = interval_ms + interval_ms / 2;
    (1..samples.len())
        .filter(|&i| time(&samples[i]).saturating_sub(time(&samples[i - 1])) > limit)
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sample(metrics: &Metrics) -> Sample {
    Sample {
        t: now_ms(),
        totals: metrics.totals(),
    }
}

/// Serves `/metrics`, `/status.json` and `/` on `listener` until the task
/// is dropped.
pub async fn serve(listener: TcpListener, metrics: &'static Metrics) {
    let history: History = Arc::new(Mutex::new(Sampled {
        samples: VecDeque::with_capacity(HISTORY),
        latency: LatencyWindow::default(),
    }));
    let started_at = crate::observe::process::ProcessStats::read().map(|p| p.start_time_seconds);
    let sampler = {
        let history = history.clone();
        async move {
            let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let sampled = sample(metrics);
                // Read outside the lock: it encodes a small registry.
                let buckets = metrics.latency_buckets();
                let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
                if history.samples.len() == HISTORY {
                    history.samples.pop_front();
                }
                history.samples.push_back(sampled);
                history.latency.push(sampled.t, buckets);
            }
        }
    };
    let table = ConnectionTable::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT);
    let pressure = table.pressure();
    let accept = async move {
        let mut failures = AcceptFailures::new("metrics listener");
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    failures.handle(&error).await;
                    continue;
                }
            };
            failures.succeeded();
            let activity = Activity::accepted(&stream).await;
            // Refused: closed at once. Its peer is a scraper or a page
            // that retries, and an answer would hold a descriptor longer.
            let Ok((slot, evicted)) = table.admit(peer.ip(), activity.clone()) else {
                tracing::debug!("metrics connection from {peer} refused: every slot is busy");
                continue;
            };
            crate::net::connection_table::await_evicted(evicted).await;
            let stream = TrackedStream::new(stream, activity.clone(), slot);
            let history = history.clone();
            let requests = activity.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let _serving = requests.request_started(BodyWatch::new(true));
                let answer = answer(&request, metrics, &history, started_at);
                async move { Ok::<_, Infallible>(answer) }
            });
            let pressure = pressure.clone();
            tokio::spawn(async move {
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    served = connection => if let Err(error) = served {
                        tracing::debug!("metrics connection from {peer}: {error}");
                    },
                    _ = watchdog(activity, LIMITS, pressure) => {}
                }
            });
        }
    };
    tokio::join!(sampler, accept);
}

fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    history: &History,
    started_at: Option<f64>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            crate::observe::metrics::CONTENT_TYPE,
            metrics.encode(),
        ),
        "/status.json" => {
            let now = sample(metrics);
            let buckets = metrics.latency_buckets();
            let (mut samples, latency) = {
                let history = history.lock().unwrap_or_else(|p| p.into_inner());
                let samples: Vec<Sample> = history.samples.iter().copied().collect();
                (samples, history.latency.summary(now.t, &buckets))
            };
            samples.push(now);
            let interval_ms = SAMPLE_INTERVAL.as_millis() as u64;
            let count = |(name, total)| Count { name, total };
            let status = Status {
                interval_ms,
                outcomes: Outcome::ALL.iter().map(|o| o.as_str()).collect(),
                from_cache: Outcome::ALL
                    .iter()
                    .filter(|o| o.from_cache())
                    .map(|o| o.as_str())
                    .collect(),
                breaks: breaks(&samples, |s| s.t, interval_ms),
                samples: &samples,
                rules: metrics.rules(),
                reloads: reloads::latest(),
                reasons: metrics.reasons().into_iter().map(count).collect(),
                origin: metrics.origin_results().into_iter().map(count).collect(),
                stores: crate::observe::store_sizes::current(),
                latency,
                purges: crate::observe::purges::recent(),
                version: env!("CARGO_PKG_VERSION"),
                core: edge_cache::native_hits::MARK.trim_start_matches("edge-cache core "),
                started_at,
            };
            let json = serde_json::to_string(&status).unwrap_or_else(|_| "{}".to_owned());
            reply(StatusCode::OK, "application/json", json)
        }
        "/" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE.to_owned()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /, /metrics or /status.json\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = content_type.parse() {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_of_more_than_an_interval_and_a_half_is_a_break() {
        let times = [0u64, 1000, 2000, 3400, 5600, 6600, 6601, 9000];
        assert_eq!(breaks(&times, |t| *t, 1000), [4, 7]);
        assert!(breaks(&[0u64, 1000, 2000, 2100], |t| *t, 1000).is_empty());
        assert!(breaks(&[] as &[u64], |t| *t, 1000).is_empty());
        // A clock stepped back is not a gap.
        assert!(breaks(&[5000u64, 1000], |t| *t, 1000).is_empty());
    }
}
