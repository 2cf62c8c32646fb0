//! The HTTP trigger's server: listens, accepts, admits each connection
//! under the connection cap (or answers it `503`), serves its requests
//! ([`super::request`]) on one or several serving lanes, and shuts down
//! gracefully.
//!
//! What a client can make the host do is bounded: connections at once
//! ([`ServerOptions::max_connections`]), time to send a header section and
//! time idle between requests ([`crate::net::connection`]), request body size
//! ([`crate::net::request_body`]), HTTP/2 streams and frames
//! ([`crate::net::http2`]).
//!
//! With [`ServerOptions::tls`] every connection is TLS
//! ([`crate::net::tls`]): the handshake runs in the connection's own task on
//! its serving lane, under its watchdog, so the accept thread never waits
//! for a client. Either way a connection speaks HTTP/1.1 or HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body::Body;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::request::{ClientConnection, handle};
use crate::app::App;
use crate::net::accept_failures::{AcceptFailures, LogThrottle};
use crate::net::connection::{
    Activity, ConnectionLimits, DEFAULT_CLIENT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, DEFAULT_PRESSURED_TIMEOUT,
    Expired, TrackedStream, shed, watchdog,
};
use crate::net::connection_table::{ConnectionTable, Refused, Slot};
use crate::net::http2::ConnectionBuilders;
use crate::net::request_body::{BodyWatch, DEFAULT_MAX_REQUEST_BODY_BYTES};
use crate::net::tls::TlsTermination;

/// How the HTTP trigger treats clients (the `edge-host up` flags, as data).
#[derive(Debug, Clone)]
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
    /// Serve HTTPS with this certificate (`--tls-cert`, `--tls-key`),
    /// reloaded on SIGHUP; `None`: cleartext HTTP.
    pub tls: Option<TlsTermination>,
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
            tls: None,
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
    let _reloads = reload_certificates(&options)?;
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
            let options = options.clone();
            let pressure = slots.open.pressure();
            std::thread::Builder::new()
                .name(format!("edge-lane-{lane}"))
                .spawn(move || -> std::io::Result<()> {
                    crate::net::lanes::enter(lane);
                    // The core's native tasks run on the lane's own set.
                    let tasks = std::rc::Rc::new(tokio::task::LocalSet::new());
                    crate::native_hits::local::enter(tasks.clone());
                    current_thread_runtime()?.block_on(tasks.run_until(serve_lane(
                        app,
                        Connections::Handed(handed, pressure),
                        options,
                        std::future::pending(),
                    )))
                })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    // Accepting stops at shutdown; dropping the dispatcher then tells each
    // lane that no more connections come.
    let accepted = current_thread_runtime()?.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let _reloads = reload_certificates(&slots.options)?;
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

/// With TLS, reloads its certificate on SIGHUP while the guard lives.
fn reload_certificates(
    options: &ServerOptions,
) -> std::io::Result<Option<crate::net::tls::HangupReloads>> {
    options
        .tls
        .as_ref()
        .map(TlsTermination::reload_on_hangups)
        .transpose()
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
            options: options.clone(),
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
                // A TLS client cannot read a cleartext 503, and a handshake
                // here would hold the accept thread: it is closed unanswered.
                if options.tls.is_some() {
                    return None;
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
    let builders = Arc::new(ConnectionBuilders::new(
        !options.keepalive_timeout.is_zero(),
    ));
    let max_request_body_bytes = options.max_request_body_bytes;
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
                let client = ClientConnection { peer, secure: options.tls.is_some() };
                let service = service_fn(move |request: Request<Incoming>| {
                    let watch = BodyWatch::new(request.body().is_end_stream());
                    let guard = match request.version() {
                        http::Version::HTTP_2 => requests.stream_started(watch.clone()),
                        _ => requests.request_started(watch.clone()),
                    };
                    handle(app.clone(), request, client, max_request_body_bytes, guard, watch)
                });
                let acceptor = options.tls.as_ref().map(|tls| tls.acceptor().clone());
                let builders = builders.clone();
                let watcher = graceful.watcher();
                let pressure = pressure.clone();
                let handshaken = activity.clone();
                // The handshake, if any, and every request of the
                // connection, under one watchdog.
                let serving = async move {
                    let Some(acceptor) = acceptor else {
                        let connection = builders.for_alpn(None).serve_connection(TokioIo::new(stream), service);
                        return watcher.watch(connection).await;
                    };
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(error) => return Err(format!("TLS handshake failed: {error}").into()),
                    };
                    let alpn = stream.get_ref().1.alpn_protocol();
                    if alpn == Some(crate::net::tls::ALPN_H2) {
                        handshaken.multiplexed();
                    }
                    let builder = builders.for_alpn(alpn);
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await
                };
                tokio::spawn(async move {
                    let _open = open;
                    let _load = load;
                    tokio::select! {
                        outcome = serving => {
                            if let Err(error) = outcome {
                                tracing::debug!("connection from {peer}: {error}");
                            }
                        }
                        expired = watchdog(activity, limits, pressure) => match expired {
                            Expired::Header => tracing::debug!(
                                "connection from {peer} closed: no TLS handshake and complete header section within {} ms",
                                limits.header_timeout.as_millis()
                            ),
                            Expired::Idle => tracing::debug!(
                                "connection from {peer} closed: idle too long",
                            ),
                            Expired::Evicted => tracing::debug!(
                                "connection from {peer} closed: idle, and its slot was needed"
                            ),
                            Expired::PrematureResets => tracing::info!(
                                "connection from {peer} closed: its client reset most of its HTTP/2 \
                                 streams before their response (rapid reset)"
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
