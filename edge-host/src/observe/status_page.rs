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
//! prominently.

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
use crate::observe::metrics::{Metrics, Totals};
use crate::observe::reloads::{self, ReloadStatus};
use crate::observe::rules::RulesStatus;

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
}

type History = Arc<Mutex<VecDeque<Sample>>>;

fn sample(metrics: &Metrics) -> Sample {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Sample {
        t,
        totals: metrics.totals(),
    }
}

/// Serves `/metrics`, `/status.json` and `/` on `listener` until the task
/// is dropped.
pub async fn serve(listener: TcpListener, metrics: &'static Metrics) {
    let history: History = Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY)));
    let sampler = {
        let history = history.clone();
        async move {
            let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
                if history.len() == HISTORY {
                    history.pop_front();
                }
                history.push_back(sample(metrics));
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
                let answer = answer(&request, metrics, &history);
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
            let mut samples: Vec<Sample> = history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .copied()
                .collect();
            samples.push(sample(metrics));
            let status = Status {
                interval_ms: SAMPLE_INTERVAL.as_millis() as u64,
                outcomes: Outcome::ALL.iter().map(|o| o.as_str()).collect(),
                from_cache: Outcome::ALL
                    .iter()
                    .filter(|o| o.from_cache())
                    .map(|o| o.as_str())
                    .collect(),
                samples: &samples,
                rules: metrics.rules(),
                reloads: reloads::latest(),
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
