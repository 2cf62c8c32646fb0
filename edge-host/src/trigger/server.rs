//! The HTTP trigger's server: listens, accepts, admits each connection
//! under the connection cap (or answers it `503`), serves its requests
//! ([`super::request`]) on one or several serving lanes, and shuts down
//! gracefully.
//!
//! What a client can make the host do is bounded: connections at once
//! ([`ServerOptions::max_connections`]), time to send a header section and
//! time idle between requests ([`crate::net::connection`]), request body size
//! ([`crate::net::request_body`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::request::handle;
use crate::app::App;
use crate::net::accept_failures::{AcceptFailures, LogThrottle};
use crate::net::connection::{
    Activity, ConnectionLimits, DEFAULT_CLIENT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, DEFAULT_PRESSURED_TIMEOUT,
    Expired, TrackedStream, shed, watchdog,
};
use crate::net::connection_table::{ConnectionTable, Refused, Slot};
use crate::net::request_body::{BodyWatch, DEFAULT_MAX_REQUEST_BODY_BYTES};

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
                crate::net::connection_table::await_evicted(evicted).await;
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
                    handle(app.clone(), request, peer, options.max_request_body_bytes, guard, watch)
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
