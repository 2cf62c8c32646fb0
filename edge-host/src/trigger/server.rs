//! The HTTP trigger: accepts connections, routes each request to a
//! component instance (a fresh one for a WASI 0.2 component, a reused one
//! for WASI 0.3, [`crate::executor::reuse`]), and shuts down gracefully.
//!
//! What a client can make the host do is bounded: connections at once
//! ([`ServerOptions::max_connections`]), time to send a header section and
//! time idle between requests ([`crate::net::connection`]), request body size
//! ([`crate::net::request_body`]). A failure inside the host or a component is
//! answered with a short message and an error id; the detail (a trap and
//! its backtrace) goes to the log under that id only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, InstantiationError, ProxyHandler, TrapOrPanicError,
};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::{App, Serving, ServingComponent};
use crate::executor::reuse::{ComponentHandler, Ended, StatsCounters, Ticket};
use crate::instance::RequestState;
use crate::net::accept_failures::AcceptFailures;
use crate::net::accept_failures::LogThrottle;
use crate::net::connection::{
    Activity, ConnectionLimits, DEFAULT_CLIENT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, DEFAULT_PRESSURED_TIMEOUT,
    Expired, RequestGuard, TrackedStream, shed, watchdog,
};
use crate::net::connection_table::{ConnectionTable, Refused, Slot};
use crate::net::hop_by_hop::remove_connection_fields;
use crate::net::request_body::{BodyWatch, DEFAULT_MAX_REQUEST_BODY_BYTES, LimitedBody};
use crate::observe::request_record::RequestRecord;

/// How the HTTP trigger treats clients (the `edge-host up` flags, as data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Largest request body accepted; larger ones get `413`.
    pub max_request_body_bytes: u64,
    /// Time a client has to send a request's header section: from the
    /// accept for the first request, from its first byte for later ones.
    pub client_header_timeout: Duration,
    /// How long an idle keep-alive connection is kept; zero turns
    /// keep-alive off.
    pub keepalive_timeout: Duration,
    /// Connections open at once. A new connection beyond it takes the
    /// place of the connection idle longest; only when every one is
    /// serving a request is it answered `503` and closed.
    pub max_connections: u32,
    /// Connections open at once from one client address, with the same
    /// rule among that address's connections; zero: no such limit.
    pub max_connections_per_client: u32,
    /// The most a connection that has not started its next request is kept
    /// while three quarters of `max_connections` are open.
    pub pressured_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            client_header_timeout: DEFAULT_CLIENT_HEADER_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            pressured_timeout: DEFAULT_PRESSURED_TIMEOUT,
        }
    }
}

/// Connections over the cap that may be waiting for their `503` at once;
/// beyond that they are closed without one.
const MAX_SHEDDING: usize = 64;

/// Serves `app` on `listener` with [`ServerOptions::default`] until
/// `shutdown` resolves; see [`serve_with`].
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(app, listener, ServerOptions::default(), shutdown).await
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for in-flight requests to finish.
pub async fn serve_with(
    app: Arc<App>,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Connections::Listener(listener, Slots::new(&options));
    serve_lane(app, connections, options, shutdown).await
}

/// Serves `app` on `listener` from `lanes` threads (see [`crate::net::lanes`]),
/// each running its own current-thread runtime, until `shutdown` turns
/// true; then each stops taking connections and waits for its requests in
/// flight. A thread of its own accepts, admits each connection under the
/// connection cap and hands it to the lane with the fewest open (threads
/// racing on one socket, or one socket per lane, can leave one lane with
/// most of a client's connections). `app` must have been loaded for as
/// many lanes ([`App::load_for_lanes`]). Blocks until every lane has
/// stopped.
pub fn serve_in_lanes(
    app: Arc<App>,
    listener: std::net::TcpListener,
    options: ServerOptions,
    lanes: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let slots = Slots::new(&options);
    let (dispatcher, receivers) = crate::net::lanes::Dispatcher::new(lanes.max(1));
    let threads = receivers
        .into_iter()
        .enumerate()
        .map(|(lane, handed)| {
            let app = app.clone();
            let pressure = slots.open.pressure();
            std::thread::Builder::new()
                .name(format!("edge-lane-{lane}"))
                .spawn(move || -> std::io::Result<()> {
                    crate::net::lanes::enter(lane);
                    current_thread_runtime()?.block_on(serve_lane(
                        app,
                        Connections::Handed(handed, pressure),
                        options,
                        std::future::pending(),
                    ))
                })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    // Accepting stops at shutdown; dropping the dispatcher then tells each
    // lane that no more connections come.
    let accepted = current_thread_runtime()?.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let mut failures = AcceptFailures::new("listener");
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        failures.succeeded();
                        if let Some((stream, admitted)) = slots.admit(stream, peer).await {
                            dispatcher.hand(stream, peer, admitted);
                        }
                    }
                    Err(error) => failures.handle(&error).await,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        std::io::Result::Ok(())
    });
    let mut outcome = accepted;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => outcome = outcome.and(Err(error)),
            Err(_) => outcome = outcome.and(Err(std::io::Error::other("a serving lane panicked"))),
        }
    }
    outcome
}

fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A connection holding a slot under the connection cap.
struct Admitted {
    activity: Arc<Activity>,
    slot: Slot,
}

/// Where an accept loop gets its connections.
enum Connections {
    /// From its own listener, admitted under its own cap.
    Listener(TcpListener, Slots),
    /// Handed over, already admitted, by the lanes' dispatcher; the cap's
    /// pressure, for the watchdogs.
    Handed(crate::net::lanes::Handed<Admitted>, watch::Receiver<bool>),
}

/// An accepted, admitted connection, ready to serve.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    load: Option<crate::net::lanes::Load>,
    admitted: Admitted,
}

impl Connections {
    /// The next admitted connection; `None` once no more can come.
    async fn next(&mut self, failures: &mut AcceptFailures) -> Option<Accepted> {
        loop {
            match self {
                Connections::Listener(listener, slots) => match listener.accept().await {
                    Ok((stream, peer)) => {
                        failures.succeeded();
                        let Some((stream, admitted)) = slots.admit(stream, peer).await else {
                            continue;
                        };
                        match TcpStream::from_std(stream) {
                            Ok(stream) => {
                                return Some(Accepted {
                                    stream,
                                    peer,
                                    load: None,
                                    admitted,
                                });
                            }
                            Err(error) => failures.handle(&error).await,
                        }
                    }
                    Err(error) => failures.handle(&error).await,
                },
                Connections::Handed(handed, _) => {
                    let (stream, peer, load, admitted) = handed.next().await?;
                    match TcpStream::from_std(stream) {
                        Ok(stream) => {
                            return Some(Accepted {
                                stream,
                                peer,
                                load: Some(load),
                                admitted,
                            });
                        }
                        Err(error) => failures.handle(&error).await,
                    }
                }
            }
        }
    }

    /// Whether the connection cap is near: the watchdogs' pressure.
    fn pressure(&self) -> watch::Receiver<bool> {
        match self {
            Connections::Listener(_, slots) => slots.open.pressure(),
            Connections::Handed(_, pressure) => pressure.clone(),
        }
    }
}

/// How long an accept loop that closed a connection to make room waits
/// for its descriptor to be released before it accepts again.
const EVICTION_PATIENCE: Duration = Duration::from_millis(100);

/// The connection cap and the budget of refusals in progress, shared by
/// every lane of a server.
#[derive(Clone)]
struct Slots {
    open: Arc<ConnectionTable>,
    shedding: Arc<Semaphore>,
    /// Refusals, logged at most once per interval.
    refusals: Arc<std::sync::Mutex<LogThrottle>>,
    options: ServerOptions,
}

impl Slots {
    fn new(options: &ServerOptions) -> Self {
        Slots {
            open: ConnectionTable::new(options.max_connections, options.max_connections_per_client),
            shedding: Arc::new(Semaphore::new(MAX_SHEDDING)),
            refusals: Arc::new(std::sync::Mutex::new(LogThrottle::default())),
            options: *options,
        }
    }

    /// Admits `stream` under the cap, waiting for connections closed to
    /// make room to release their descriptors; or answers it `503`, and
    /// `None`. The stream comes back as std's, free of this runtime.
    async fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(std::net::TcpStream, Admitted)> {
        let options = &self.options;
        let activity = Activity::accepted(&stream).await;
        match self.open.admit(peer.ip(), activity.clone()) {
            Ok((slot, evicted)) => {
                crate::observe::metrics::connections_evicted(evicted.len());
                for victim in evicted {
                    victim.closed_within(EVICTION_PATIENCE).await;
                }
                let stream = stream.into_std().ok()?;
                Some((stream, Admitted { activity, slot }))
            }
            Err(refused) => {
                crate::observe::metrics::connection_shed();
                let count = self
                    .refusals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .due(std::time::Instant::now());
                if let Some(count) = count {
                    let (cap, flag) = match refused {
                        Refused::Full => (options.max_connections, "--max-connections"),
                        Refused::ClientFull => (
                            options.max_connections_per_client,
                            "--max-connections-per-client",
                        ),
                    };
                    tracing::warn!(
                        "connection from {peer} refused ({count} refused since the last report): \
                         {cap} connections open, each serving a request ({flag})"
                    );
                }
                if let Ok(shedding) = self.shedding.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        shed(stream, refused).await;
                        drop(shedding);
                    });
                }
                None
            }
        }
    }
}

/// One accept loop: [`serve_with`]'s, and each lane's.
async fn serve_lane(
    app: Arc<App>,
    mut connections: Connections,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let limits = ConnectionLimits {
        header_timeout: options.client_header_timeout,
        keepalive_timeout: options.keepalive_timeout,
        pressured_timeout: options.pressured_timeout,
    };
    let pressure = connections.pressure();
    let mut failures = AcceptFailures::new("listener");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = connections.next(&mut failures) => {
                let Some(Accepted { stream, peer, load, admitted: Admitted { activity, slot } }) = incoming else {
                    break;
                };
                let _ = stream.set_nodelay(true);
                let open = crate::observe::metrics::connection_opened();
                let stream = TrackedStream::new(stream, activity.clone(), slot);
                let app = app.clone();
                let requests = activity.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let watch = BodyWatch::new(request.body().is_end_stream());
                    let guard = requests.request_started(watch.clone());
                    handle(app.clone(), request, peer, options, guard, watch)
                });
                let connection = http1::Builder::new()
                    .keep_alive(!options.keepalive_timeout.is_zero())
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                let pressure = pressure.clone();
                tokio::spawn(async move {
                    let _open = open;
                    let _load = load;
                    tokio::select! {
                        outcome = connection => {
                            if let Err(error) = outcome {
                                tracing::debug!("connection from {peer}: {error}");
                            }
                        }
                        expired = watchdog(activity, limits, pressure) => match expired {
                            Expired::Header => tracing::debug!(
                                "connection from {peer} closed: no complete header section within {} ms",
                                limits.header_timeout.as_millis()
                            ),
                            Expired::Idle => tracing::debug!(
                                "connection from {peer} closed: idle too long",
                            ),
                            Expired::Evicted => tracing::debug!(
                                "connection from {peer} closed: idle, and its slot was needed"
                            ),
                        },
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(connections);
    tracing::info!("shutting down: waiting for in-flight requests");
    graceful.shutdown().await;
    Ok(())
}

fn plain(status: StatusCode, text: &str, close: bool) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if close {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A short, unguessable id that ties a client's `500` to its log line.
fn error_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(&n.to_le_bytes());
    hasher.finalize().to_hex()[..16].to_owned()
}

async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
    peer: SocketAddr,
    options: ServerOptions,
    guard: RequestGuard,
    trip: Arc<BodyWatch>,
) -> Result<Response<ServerBody>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut record = RequestRecord::start(&request, started);
    let mut failure_cause = None;
    let (response, component, from_component) = match dispatch(&app, request, peer, &options, &trip)
        .await
    {
        Ok((response, component)) => (response, component, true),
        Err(failure) => {
            let Failure {
                status,
                public,
                detail,
                component,
                close,
            } = failure;
            let text = match detail {
                Some(detail) => {
                    failure_cause = Some(crate::observe::metrics::FailureCause::of_answer(&public));
                    let id = error_id();
                    let prefix = format!("{method} {path}: error id {id}");
                    for line in crate::observe::failure_log::lines(&prefix, &detail) {
                        tracing::error!(component, "{line}");
                    }
                    format!("{public} (error id {id})")
                }
                None => public,
            };
            (plain(status, &text, close), component, false)
        }
    };
    // Debug, not info: the access log (`--access-log`) is the per-request
    // record, written off the request's path.
    tracing::debug!(
        component,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "{method} {path}"
    );
    if let Some(record) = &mut record {
        record.responded(&response, &component, failure_cause);
    }
    Ok(response.map(|body| ServerBody {
        inner: body,
        trip: from_component.then_some(trip),
        guard,
        record,
    }))
}

/// The body of every response the server sends: it ends the connection if
/// the request body goes past the limit after a component's response
/// started, and tells the connection's watchdog when the response is over.
pub(crate) struct ServerBody {
    inner: HyperOutgoingBody,
    /// The request's body, for a component's response.
    trip: Option<Arc<BodyWatch>>,
    guard: RequestGuard,
    /// Metrics and the access log line, written when the body ends.
    record: Option<RequestRecord>,
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.trip.as_ref().is_some_and(|trip| trip.is_tripped()) {
            // The response cannot be finished honestly: an error makes hyper
            // close the connection.
            self.guard.finish();
            return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                None,
            ))));
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(record), Some(data)) = (&mut self.record, frame.data_ref()) {
                    record.sent(data);
                }
            }
            Some(Err(_)) => {}
            None => {
                self.guard.finish();
                self.record.take();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type Dispatched = (Response<HyperOutgoingBody>, String);

/// A request the host answers itself.
struct Failure {
    status: StatusCode,
    /// What the client is told: never a trap, a backtrace or host internals.
    public: String,
    /// The full cause, for the log only; its presence gives the answer an
    /// error id.
    detail: Option<String>,
    component: String,
    /// Whether the connection closes after the answer.
    close: bool,
}

impl Failure {
    fn client(status: StatusCode, public: impl Into<String>, component: &str) -> Failure {
        Failure {
            status,
            public: public.into(),
            detail: None,
            component: component.to_owned(),
            close: false,
        }
    }

    fn internal(public: impl Into<String>, detail: String, component: &str) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            public: public.into(),
            detail: Some(detail),
            component: component.to_owned(),
            close: false,
        }
    }

    fn body_too_large(limit: u64, component: &str) -> Failure {
        Failure {
            close: true,
            ..Failure::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: the limit is {limit} bytes"),
                component,
            )
        }
    }
}

/// What became of a request's instance.
enum Outcome {
    Finished,
    Failed(wasmtime::Error),
    TimedOut,
}

/// What a failed instance's client is told: the limit that stopped it, or
/// nothing more than that something failed.
fn public_cause(outcome: &Outcome, limits: &crate::InstanceLimits, memory_hit: bool) -> String {
    match outcome {
        Outcome::TimedOut => format!(
            "internal error: stopped after the {} ms request time limit",
            limits.request_timeout.as_millis()
        ),
        Outcome::Failed(_) if memory_hit => format!(
            "internal error: stopped at the {} MiB memory limit",
            limits.max_memory_bytes >> 20
        ),
        _ => "internal error".to_owned(),
    }
}

async fn dispatch(
    app: &App,
    request: Request<Incoming>,
    peer: SocketAddr,
    options: &ServerOptions,
    trip: &Arc<BodyWatch>,
) -> Result<Dispatched, Failure> {
    let limit = options.max_request_body_bytes;
    // `Content-Length` over the limit: answered before anything reads the
    // body (hyper sends no `100 Continue` for a body never polled).
    if request.body().size_hint().lower() > limit {
        return Err(Failure::body_too_large(limit, ""));
    }
    let path = request.uri().path().to_owned();
    let Some(route) = app.router.route(&path) else {
        return Err(Failure::client(
            StatusCode::NOT_FOUND,
            "no route matches this path",
            "",
        ));
    };
    let component = &app.components[*route.handler];

    let mut request = request;
    set_spin_headers(&mut request, peer, &route.matched_route, &route.path_info);
    let request = request.map(|body| LimitedBody::new(body, limit, trip.clone()));
    match &component.serving {
        Serving::P2(pre) => dispatch_p2(app, component, pre, request, limit, trip).await,
        Serving::P3 { handlers, permits } => {
            let handler = &handlers[crate::net::lanes::current() % handlers.len()];
            dispatch_p3(app, component, handler, permits, request, limit, trip).await
        }
    }
}

/// Counts a WASI 0.2 instance as ended when its task does (or is aborted).
struct SingleUse {
    stats: Arc<StatsCounters>,
    failed: bool,
}

impl Drop for SingleUse {
    fn drop(&mut self) {
        self.stats.single_use_ended(self.failed);
    }
}

/// WASI 0.2: a fresh instance for this request.
async fn dispatch_p2(
    app: &App,
    component: &ServingComponent,
    pre: &ProxyPre<RequestState>,
    request: Request<LimitedBody<Incoming>>,
    limit: u64,
    trip: &Arc<BodyWatch>,
) -> Result<Dispatched, Failure> {
    let component_id = component.context.id.to_string();
    let internal = |detail: String| Failure::internal("internal error", detail, &component_id);

    let limits = app.limits;
    let state = RequestState::new(&component.context, limits.max_memory_bytes)
        .map_err(|e| internal(format!("preparing instance: {e:#}")))?;
    let memory_hit = state.memory_limit_hit();
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limits);
    // Yield at every epoch tick so the time limit below can stop a guest
    // that never returns to the host.
    crate::instance::limits::yield_at_every_tick(&mut store);
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(|e| {
            Failure::client(
                StatusCode::BAD_REQUEST,
                format!("bad request: {e:#}"),
                &component_id,
            )
        })?;
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let outparam = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(|e| internal(format!("{e:#}")))?;

    // The guest runs in its own task: it may keep working after it has sent
    // the response head (streaming the body, or background work).
    let pre = pre.clone();
    let id = component.context.id.clone();
    let stats = component.stats.clone();
    let mut task = tokio::spawn(async move {
        stats.single_use_started();
        let mut single_use = SingleUse {
            stats,
            failed: false,
        };
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        };
        // Dropping the future stops the guest at its next yield.
        let outcome = match tokio::time::timeout(limits.request_timeout, run).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(error)) => Outcome::Failed(error),
            Err(_) => Outcome::TimedOut,
        };
        single_use.failed = !matches!(outcome, Outcome::Finished);
        outcome
    });

    let answered = tokio::select! {
        // A body over the limit decides the answer, whatever the guest made
        // of its failed read.
        biased;
        () = trip.tripped() => None,
        answered = &mut receiver => Some(answered),
    };
    if trip.is_tripped() {
        task.abort();
        tracing::debug!(
            component = &*id,
            "request body over the {limit}-byte limit; instance stopped"
        );
        return Err(Failure::body_too_large(limit, &component_id));
    }
    match answered {
        Some(Ok(Ok(response))) => {
            // The client has its answer; a failure of the work the guest
            // still does (a refresh after responding) is only for the log.
            // A failure before responding is logged once, by `handle`.
            tokio::spawn(async move {
                match task.await {
                    Ok(Outcome::Failed(error)) => tracing::warn!(
                        component = &*id,
                        "instance failed after responding: {error:#}"
                    ),
                    Ok(Outcome::TimedOut) => tracing::warn!(
                        component = &*id,
                        "instance stopped after responding: over the {} ms request time limit",
                        limits.request_timeout.as_millis()
                    ),
                    _ => {}
                }
            });
            Ok((response, component_id))
        }
        Some(Ok(Err(code))) => Err(internal(format!(
            "component answered with an error: {code:?}"
        ))),
        Some(Err(_)) | None => {
            let outcome = (&mut task).await;
            let memory_hit = memory_hit.load(Ordering::SeqCst);
            Err(match outcome {
                Ok(outcome) => {
                    let public = public_cause(&outcome, &limits, memory_hit);
                    let detail = match outcome {
                        Outcome::Finished => {
                            "component returned without sending a response".to_owned()
                        }
                        // With the trap and its wasm backtrace: the log is
                        // where an operator looks for them.
                        Outcome::Failed(error) => format!("component failed: {error:#}"),
                        Outcome::TimedOut => format!(
                            "component stopped after the {} ms request time limit",
                            limits.request_timeout.as_millis()
                        ),
                    };
                    Failure::internal(public, detail, &component_id)
                }
                Err(error) => internal(format!("component task failed: {error}")),
            })
        }
    }
}

/// How long a request whose instance failed waits for the instance's
/// worker to say why (it does so right after dropping the requests).
const FAILURE_REPORT_PATIENCE: Duration = Duration::from_secs(5);

/// WASI 0.3: the request goes to a reused instance, through the component's
/// [`ProxyHandler`].
async fn dispatch_p3(
    app: &App,
    component: &ServingComponent,
    handler: &ProxyHandler<ComponentHandler>,
    permits: &Semaphore,
    request: Request<LimitedBody<Incoming>>,
    limit: u64,
    trip: &Arc<BodyWatch>,
) -> Result<Dispatched, Failure> {
    let component_id = component.context.id.to_string();
    let request = with_absolute_uri(request).map_err(|e| {
        Failure::client(
            StatusCode::BAD_REQUEST,
            format!("bad request: {e}"),
            &component_id,
        )
    })?;
    let request = request.map(|body| body.boxed_unsync());
    let ticket = Arc::new(Ticket::default());
    let started = Instant::now();
    let handled = async {
        // Never closed: the permits live as long as the app.
        let _permit = permits.acquire().await;
        handler.handle(ticket.clone(), request).await
    };
    let answered = tokio::select! {
        // As for WASI 0.2: a body over the limit decides the answer.
        biased;
        () = trip.tripped() => None,
        answered = handled => Some(answered),
    };
    if trip.is_tripped() {
        tracing::debug!(
            component = component_id,
            "request body over the {limit}-byte limit; response dropped"
        );
        return Err(Failure::body_too_large(limit, &component_id));
    }
    match answered {
        Some(Ok(response)) => Ok((response, component_id)),
        Some(Err(error)) => {
            Err(p3_failure(error, &ticket, started, &app.limits, component_id).await)
        }
        None => unreachable!("only a tripped body stops the wait"),
    }
}

/// What the client of a failed WASI 0.3 request is told, and what the log
/// gets under its error id.
async fn p3_failure(
    error: wasmtime::Error,
    ticket: &Ticket,
    started: Instant,
    limits: &crate::InstanceLimits,
    component_id: String,
) -> Failure {
    let time_limit = format!(
        "internal error: stopped after the {} ms request time limit",
        limits.request_timeout.as_millis()
    );
    let memory_limit = format!(
        "internal error: stopped at the {} MiB memory limit",
        limits.max_memory_bytes >> 20
    );
    let instance = ticket.instance();
    let instance_id = instance.map_or(0, |instance| instance.id);
    let memory_hit = instance.is_some_and(|instance| instance.memory.limit_hit());
    if error.is::<ExpirationError>() {
        let detail = format!(
            "no response within the {} ms request time limit; instance {instance_id} takes no more requests",
            limits.request_timeout.as_millis()
        );
        return Failure::internal(time_limit, detail, &component_id);
    }
    if let Some(failed) = error.downcast_ref::<InstantiationError<Arc<Ticket>>>() {
        let detail = format!("instantiating the component: {:#}", failed.error);
        return Failure::internal("internal error", detail, &component_id);
    }
    if error.is::<TrapOrPanicError>() {
        // The instance failed while it had this request: its worker says why.
        let ended = match instance {
            Some(instance) => instance.ended(FAILURE_REPORT_PATIENCE).await,
            None => None,
        };
        let (public, detail) = match ended {
            Some(Ended::TimedOut) => (
                time_limit,
                format!(
                    "instance {instance_id} stopped: busy for the {} ms request time limit (request {} ms old)",
                    limits.request_timeout.as_millis(),
                    started.elapsed().as_millis()
                ),
            ),
            Some(Ended::Failed(cause)) => (
                if memory_hit {
                    memory_limit
                } else {
                    "internal error".to_owned()
                },
                format!("instance {instance_id} failed: {cause}"),
            ),
            Some(Ended::Retired) | None => (
                "internal error".to_owned(),
                format!("instance {instance_id} ended without answering ({error})"),
            ),
        };
        return Failure::internal(public, detail, &component_id);
    }
    // The guest's own failure: an `error-code` instead of a response, or a
    // trap in this request's call.
    let public = if memory_hit {
        memory_limit
    } else {
        "internal error".to_owned()
    };
    Failure::internal(
        public,
        format!("component failed (instance {instance_id}): {error:#}"),
        &component_id,
    )
}

/// WASI 0.3 takes a request's authority from its URI only (`Host` is a
/// forbidden field there): the origin-form URI a server receives becomes
/// absolute, `http://{Host}{path}`, as Spin does. An absolute-form request
/// keeps its own.
fn with_absolute_uri<B>(request: Request<B>) -> Result<Request<B>, String> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() {
        let host = parts
            .headers
            .get(http::header::HOST)
            .map(|host| {
                host.to_str()
                    .map_err(|_| "the Host field is not text".to_owned())
            })
            .transpose()?
            .unwrap_or("localhost");
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(host)
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| format!("the Host field is not an authority: {e}"))?;
    } else if parts.uri.scheme().is_none() {
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        parts.uri = http::Uri::from_parts(uri).map_err(|e| e.to_string())?;
    }
    Ok(Request::from_parts(parts, body))
}

/// Spin tells components about the request through `spin-*` headers; any a
/// client sent are replaced, so a component can trust them.
fn set_spin_headers<B>(
    request: &mut Request<B>,
    peer: SocketAddr,
    matched_route: &str,
    path_info: &str,
) {
    let headers = request.headers_mut();
    remove_connection_fields(headers);
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .to_owned();
    let base_route = matched_route.trim_end_matches("/...");
    let values = [
        ("spin-full-url", format!("http://{host}{path_and_query}")),
        ("spin-path-info", path_info.to_owned()),
        ("spin-matched-route", matched_route.to_owned()),
        ("spin-component-route", base_route.to_owned()),
        ("spin-raw-component-route", matched_route.to_owned()),
        ("spin-base-path", "/".to_owned()),
        ("spin-client-addr", peer.to_string()),
    ];
    let headers = request.headers_mut();
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::connection::Activity;

    fn body(trip: Option<Arc<BodyWatch>>) -> ServerBody {
        let guard = Activity::new().request_started(BodyWatch::new(true));
        ServerBody {
            inner: Full::new(Bytes::from_static(b"streaming"))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
            trip,
            guard,
            record: None,
        }
    }

    #[tokio::test]
    async fn a_component_response_is_broken_off_once_the_request_body_passes_the_limit() {
        let watch = BodyWatch::new(false);
        let mut tripped = LimitedBody::new(
            Full::<Bytes>::new(Bytes::from_static(b"too long")),
            3,
            watch.clone(),
        );
        assert!(tripped.frame().await.unwrap().is_err());
        let error = body(Some(watch.clone())).collect().await.err();
        assert!(
            matches!(
                error,
                Some(wasmtime_wasi_http::Error::HttpRequestBodySize(_))
            ),
            "{error:?}"
        );
        // The host's own answer (the 413) is sent whole.
        let own = body(None).collect().await.unwrap().to_bytes();
        assert_eq!(&own[..], b"streaming");
        // And a component's response with a body under the limit too.
        let within = body(Some(BodyWatch::new(false))).collect().await.unwrap();
        assert_eq!(&within.to_bytes()[..], b"streaming");
    }

    #[test]
    fn error_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (error_id(), error_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
    }
}
