//! Idle keep-alive HTTP/1.1 connections to origins, shared by every
//! instance of an application (the host owns the pool, not the instance),
//! so a miss does not pay a TCP (and TLS) handshake per request.
//!
//! Why a small pool of our own over `hyper::client::conn::http1` rather
//! than `hyper-util`'s legacy `Client` (which Spin uses): the sender's
//! behaviours are per request and per phase, and the `Client` hides the
//! phases. `wasi:http` gives each request its own connect and first-byte
//! timeouts and wants them told apart (`connection-timeout` vs
//! `connection-read-timeout`); the `Client`'s connector is shared and
//! cannot see a request's options, and its connect may be spawned to finish
//! for another request. The `Client` also races a fresh connect against
//! the pool on every checkout and puts a connection back from a spawned
//! task some time after its body ended, so how many connections a burst
//! opens is not something a test can state. Here a connection goes back
//! exactly when its body was read to the end ([`Lease::release`]), a
//! checkout takes the most recently used idle connection that is still
//! open, and nothing else opens connections.
//!
//! With serving lanes ([`crate::net::lanes`]), a connection's task runs on the
//! runtime of the lane that opened it, its home. A checkout prefers a
//! connection at home on the asking lane: one from another lane makes every
//! exchange wake that lane's thread twice (the request into the connection
//! task, the response back): on the 2-core bench machine, preferring home
//! took the miss path from 135 to 129 us of edge-host CPU per request. Another lane's connection is
//! still taken when the asking lane has none idle, rather than opening one.
//!
//! Bounds: at most [`PoolOptions::max_idle_per_origin`] idle connections per
//! origin (the oldest goes first), each kept at most
//! [`PoolOptions::idle_timeout`] (90 s, hyper's default) or the origin's own
//! `Keep-Alive: timeout=N` if shorter; one closed by the origin while idle
//! is dropped when its connection task sees the close, and at checkout.
//! A reaper task prunes expired ones so an origin nobody asks for again
//! does not keep sockets open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;
use wasmtime_wasi_http::WasiBody;

/// Idle connections kept per origin unless configured otherwise.
pub const DEFAULT_MAX_IDLE_PER_ORIGIN: usize = 64;

/// How long an idle connection is kept unless configured otherwise
/// (hyper-util's pool default).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How the pool is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Idle connections kept per origin; 0 turns pooling off (a connection
    /// per request, closed after its response).
    pub max_idle_per_origin: usize,
    /// The longest an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_idle_per_origin: DEFAULT_MAX_IDLE_PER_ORIGIN,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Which connections can carry a request: scheme and `host:port`. The TLS
/// server name is derived from the host, so it adds nothing to the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginKey {
    /// `https`.
    pub tls: bool,
    /// `host:port`, the port always present.
    pub authority: String,
}

/// An idle connection: its request half (the connection itself is driven by
/// its own task) and until when it may be reused.
struct Idle {
    sender: SendRequest<WasiBody>,
    home: usize,
    expires: Instant,
}

#[derive(Default)]
struct Shared {
    idle: HashMap<OriginKey, Vec<Idle>>,
    reaper: Option<tokio::task::JoinHandle<()>>,
}

/// The host's pool of idle origin connections; cheap to clone.
#[derive(Clone)]
pub struct OriginPool {
    options: PoolOptions,
    shared: Arc<Mutex<Shared>>,
}

impl Default for OriginPool {
    fn default() -> Self {
        OriginPool::new(PoolOptions::default())
    }
}

impl OriginPool {
    /// An empty pool bounded by `options`.
    pub fn new(options: PoolOptions) -> Self {
        OriginPool {
            options,
            shared: Arc::default(),
        }
    }

    /// Whether connections are kept at all.
    pub fn enabled(&self) -> bool {
        self.options.max_idle_per_origin > 0
    }

    /// An idle connection to `key` that is ready for a request, with its
    /// home lane: the most recently used at home on this lane first, else
    /// the most recently used; `None` when there is none (connect a new one).
    /// `ready_within` bounds the wait for a connection whose previous
    /// exchange hyper is still finishing; one that is not ready by then, or
    /// turns out closed, is dropped.
    pub async fn checkout(
        &self,
        key: &OriginKey,
        ready_within: Duration,
    ) -> Option<(SendRequest<WasiBody>, usize)> {
        loop {
            let (mut sender, home) = self.take_idle(key)?;
            match tokio::time::timeout(ready_within, sender.ready()).await {
                Ok(Ok(())) => return Some((sender, home)),
                // Closed by the origin or by an error after its last
                // response: try the next one.
                Ok(Err(_)) | Err(_) => continue,
            }
        }
    }

    /// Takes the newest unexpired, open idle connection to `key` at home
    /// on this lane, else the newest of any lane.
    fn take_idle(&self, key: &OriginKey) -> Option<(SendRequest<WasiBody>, usize)> {
        let mut shared = self.shared.lock().ok()?;
        let list = shared.idle.get_mut(key)?;
        let now = Instant::now();
        list.retain(|idle| idle.expires > now && !idle.sender.is_closed());
        let lane = crate::net::lanes::current();
        let taken = match list.iter().rposition(|idle| idle.home == lane) {
            Some(at_home) => Some(list.remove(at_home)),
            None => list.pop(),
        };
        if list.is_empty() {
            shared.idle.remove(key);
        }
        taken.map(|idle| (idle.sender, idle.home))
    }

    /// A lease on `sender`, a connection to `key` driven on lane `home`,
    /// that puts it back when released; `keep_for` is the origin's own
    /// keep-alive timeout if it sent one. `None` when pooling is off.
    pub fn lease(
        &self,
        key: OriginKey,
        sender: SendRequest<WasiBody>,
        home: usize,
        keep_for: Option<Duration>,
    ) -> Option<Lease> {
        if !self.enabled() {
            return None;
        }
        Some(Lease {
            pool: self.clone(),
            key,
            sender,
            home,
            keep_for,
        })
    }

    fn put(
        &self,
        key: OriginKey,
        sender: SendRequest<WasiBody>,
        home: usize,
        keep_for: Option<Duration>,
    ) {
        let keep_for = keep_for.map_or(self.options.idle_timeout, |origin| {
            origin.min(self.options.idle_timeout)
        });
        if keep_for.is_zero() || sender.is_closed() {
            return;
        }
        let Ok(mut shared) = self.shared.lock() else {
            return;
        };
        let list = shared.idle.entry(key).or_default();
        list.push(Idle {
            sender,
            home,
            expires: Instant::now() + keep_for,
        });
        if list.len() > self.options.max_idle_per_origin {
            // The oldest is the likeliest to have been closed by now.
            list.remove(0);
        }
        self.start_reaper(&mut shared);
    }

    /// Starts the task that drops expired and closed idle connections, if
    /// it is not running (it stops when the pool is dropped, or when the
    /// runtime it ran on is gone).
    fn start_reaper(&self, shared: &mut Shared) {
        if shared
            .reaper
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.shared);
        let period = (self.options.idle_timeout / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(30));
        shared.reaper = Some(runtime.spawn(reap(weak, period)));
    }

    /// Idle connections held for `key` now (for tests and diagnostics).
    pub fn idle_count(&self, key: &OriginKey) -> usize {
        self.shared
            .lock()
            .map_or(0, |shared| shared.idle.get(key).map_or(0, Vec::len))
    }
}

/// Every `period`, drops the idle connections that expired or were closed.
async fn reap(shared: Weak<Mutex<Shared>>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Ok(mut shared) = shared.lock() else {
            return;
        };
        let now = Instant::now();
        shared.idle.retain(|_, list| {
            list.retain(|idle| idle.expires > now && !idle.sender.is_closed());
            !list.is_empty()
        });
    }
}

/// A connection in use whose response may still have its body to deliver.
/// Released when the body was read to its end: the connection is then idle
/// and goes back to the pool. Dropped otherwise (a body cut, errored or not
/// read to the end), and the connection with it: hyper closes a connection
/// whose response body was abandoned.
pub struct Lease {
    pool: OriginPool,
    key: OriginKey,
    sender: SendRequest<WasiBody>,
    home: usize,
    keep_for: Option<Duration>,
}

impl Lease {
    /// Puts the connection back for the next request.
    pub fn release(self) {
        self.pool
            .put(self.key, self.sender, self.home, self.keep_for);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use wasmtime_wasi_http::{Error, RequestOptions};

    use super::*;
    use crate::outbound_http::sender::send_request;

    const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    /// What the origin does with one request.
    #[derive(Clone, Copy)]
    enum Reply {
        /// Answers and waits for the next request on the connection.
        Answer(&'static [u8]),
        /// Answers, then closes the connection.
        AnswerAndClose(&'static [u8]),
        /// Writes these bytes, then waits for the client to close.
        Stall(&'static [u8]),
        /// Closes without answering.
        Close,
    }

    /// A loopback origin that counts the connections it accepted and those
    /// that ended, and replies as `script(connection, request)` says
    /// (both counted from 0).
    struct Origin {
        url: String,
        key: OriginKey,
        accepted: Arc<AtomicUsize>,
        ended: tokio::sync::watch::Receiver<usize>,
    }

    impl Origin {
        async fn start(script: fn(usize, usize) -> Reply) -> Origin {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let (ended_tx, ended) = tokio::sync::watch::channel(0);
            let ended_tx = Arc::new(ended_tx);
            let counter = accepted.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let connection = counter.fetch_add(1, Ordering::SeqCst);
                    let ended_tx = ended_tx.clone();
                    tokio::spawn(async move {
                        serve(stream, connection, script).await;
                        ended_tx.send_modify(|n| *n += 1);
                    });
                }
            });
            Origin {
                url: format!("http://{addr}/x"),
                key: OriginKey {
                    tls: false,
                    authority: addr.to_string(),
                },
                accepted,
                ended,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        /// Waits until `n` connections have ended (either side closed).
        async fn ended(&mut self, n: usize) {
            tokio::time::timeout(Duration::from_secs(10), self.ended.wait_for(|e| *e >= n))
                .await
                .expect("connections end")
                .unwrap();
        }
    }

    async fn serve(mut stream: TcpStream, connection: usize, script: fn(usize, usize) -> Reply) {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 1024];
        for request in 0.. {
            // Bodiless requests: a head is the whole request.
            while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let end = buffer
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(0)
                + 4;
            buffer.drain(..end);
            match script(connection, request) {
                Reply::Answer(bytes) => {
                    if stream.write_all(bytes).await.is_err() {
                        return;
                    }
                }
                Reply::AnswerAndClose(bytes) => {
                    let _ = stream.write_all(bytes).await;
                    return;
                }
                Reply::Stall(bytes) => {
                    let _ = stream.write_all(bytes).await;
                    while let Ok(n) = stream.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                    }
                    return;
                }
                Reply::Close => return,
            }
        }
    }

    fn options(between_bytes: Duration) -> RequestOptions {
        RequestOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            first_byte_timeout: Some(Duration::from_secs(5)),
            between_bytes_timeout: Some(between_bytes),
        }
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        http::Request::get(url)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    async fn fetch(pool: &OriginPool, url: &str) -> Result<Vec<u8>, Error> {
        fetch_with(pool, url, Duration::from_secs(5)).await
    }

    async fn fetch_with(
        pool: &OriginPool,
        url: &str,
        between_bytes: Duration,
    ) -> Result<Vec<u8>, Error> {
        let (response, _io) = send_request(
            get(url),
            Some(options(between_bytes)),
            Arc::from("test"),
            pool,
        )
        .await?;
        Ok(response.into_body().collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn sequential_requests_to_one_origin_use_one_connection() {
        let origin = Origin::start(|_, _| Reply::Answer(HELLO)).await;
        let pool = OriginPool::default();
        for _ in 0..10 {
            assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        }
        assert_eq!(origin.accepted(), 1);
        assert_eq!(pool.idle_count(&origin.key), 1);
    }

    #[tokio::test]
    async fn a_checkout_prefers_a_connection_at_home_on_the_asking_lane() {
        let origin = Origin::start(|_, _| Reply::Answer(HELLO)).await;
        let pool = OriginPool::default();
        let send = || send_request(get(&origin.url), None, Arc::from("test"), &pool);
        // Two connections at once, opened on lanes 0 and 1; lane 1's goes
        // back first, so lane 0's is the most recently used.
        crate::net::lanes::enter(0);
        let (on_lane_0, _) = send().await.unwrap();
        crate::net::lanes::enter(1);
        let (on_lane_1, _) = send().await.unwrap();
        on_lane_1.into_body().collect().await.unwrap();
        on_lane_0.into_body().collect().await.unwrap();
        assert_eq!(origin.accepted(), 2);

        let home = |checked_out: Option<(SendRequest<WasiBody>, usize)>| checked_out.map(|c| c.1);
        let ready_within = Duration::from_secs(5);
        assert_eq!(
            home(pool.checkout(&origin.key, ready_within).await),
            Some(1)
        );
        // None left at home: another lane's rather than a new connection.
        assert_eq!(
            home(pool.checkout(&origin.key, ready_within).await),
            Some(0)
        );
        assert!(pool.checkout(&origin.key, ready_within).await.is_none());
        crate::net::lanes::enter(0);
    }

    #[tokio::test]
    async fn with_no_idle_connections_allowed_each_request_opens_one() {
        let origin = Origin::start(|_, _| Reply::Answer(HELLO)).await;
        let pool = OriginPool::new(PoolOptions {
            max_idle_per_origin: 0,
            ..PoolOptions::default()
        });
        for _ in 0..3 {
            assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        }
        assert_eq!(origin.accepted(), 3);
    }

    #[tokio::test]
    async fn a_response_with_connection_close_is_not_reused() {
        // The origin says close but keeps the connection open: only the
        // field stops the reuse.
        let origin = Origin::start(|_, _| {
            Reply::Answer(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello")
        })
        .await;
        let pool = OriginPool::default();
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(pool.idle_count(&origin.key), 0);
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn an_http_1_0_response_without_keep_alive_is_not_reused() {
        let origin = Origin::start(|_, _| {
            Reply::Answer(b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello")
        })
        .await;
        let pool = OriginPool::default();
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn the_origins_keep_alive_timeout_bounds_the_reuse() {
        let origin = Origin::start(|_, _| {
            Reply::Answer(
                b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=0\r\ncontent-length: 5\r\n\r\nhello",
            )
        })
        .await;
        let pool = OriginPool::default();
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    const PARTIAL: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234";

    #[tokio::test]
    async fn a_body_that_errors_does_not_return_its_connection() {
        let mut origin = Origin::start(|connection, _| match connection {
            0 => Reply::Stall(PARTIAL),
            _ => Reply::Answer(HELLO),
        })
        .await;
        let pool = OriginPool::default();
        let outcome = fetch_with(&pool, &origin.url, Duration::from_millis(100)).await;
        assert!(
            matches!(outcome, Err(Error::ConnectionReadTimeout)),
            "{outcome:?}"
        );
        // The stalled connection is closed by the edge, not kept.
        origin.ended(1).await;
        assert_eq!(pool.idle_count(&origin.key), 0);
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_does_not_return_its_connection() {
        let mut origin = Origin::start(|connection, _| match connection {
            0 => Reply::Stall(PARTIAL),
            _ => Reply::Answer(HELLO),
        })
        .await;
        let pool = OriginPool::default();
        let (response, _io) = send_request(
            get(&origin.url),
            Some(options(Duration::from_secs(5))),
            Arc::from("test"),
            &pool,
        )
        .await
        .unwrap();
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"01234");
        drop(body);
        origin.ended(1).await;
        assert_eq!(pool.idle_count(&origin.key), 0);
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn a_connection_the_origin_closed_while_idle_is_replaced() {
        let mut origin = Origin::start(|connection, _| match connection {
            0 => Reply::AnswerAndClose(HELLO),
            _ => Reply::Answer(HELLO),
        })
        .await;
        let pool = OriginPool::default();
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        origin.ended(1).await;
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn a_request_the_origin_dropped_on_a_reused_connection_is_sent_again_once() {
        // The keep-alive race, made certain: the origin takes the second
        // request on the reused connection and closes without a byte.
        let origin = Origin::start(|connection, request| match (connection, request) {
            (0, 0) => Reply::Answer(HELLO),
            (0, _) => Reply::Close,
            _ => Reply::Answer(HELLO),
        })
        .await;
        let pool = OriginPool::default();
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn a_fresh_connection_closed_without_an_answer_is_not_retried() {
        let origin = Origin::start(|_, _| Reply::Close).await;
        let pool = OriginPool::default();
        assert!(fetch(&pool, &origin.url).await.is_err());
        assert_eq!(origin.accepted(), 1);
    }

    #[tokio::test]
    async fn a_bodiless_response_frees_its_connection_unread() {
        let origin = Origin::start(|_, _| Reply::Answer(b"HTTP/1.1 204 No Content\r\n\r\n")).await;
        let pool = OriginPool::default();
        for _ in 0..3 {
            let (response, _io) = send_request(
                get(&origin.url),
                Some(options(Duration::from_secs(5))),
                Arc::from("test"),
                &pool,
            )
            .await
            .unwrap();
            assert_eq!(response.status(), 204);
            // Dropped without reading the (empty) body.
        }
        assert_eq!(origin.accepted(), 1);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let mut origin = Origin::start(|_, _| Reply::Answer(HELLO)).await;
        let pool = OriginPool::new(PoolOptions {
            idle_timeout: Duration::from_millis(20),
            ..PoolOptions::default()
        });
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        // The pool is alive and nobody asks for the origin again: only the
        // reaper can close the connection.
        origin.ended(1).await;
        assert_eq!(pool.idle_count(&origin.key), 0);
        assert_eq!(fetch(&pool, &origin.url).await.unwrap(), b"hello");
        assert_eq!(origin.accepted(), 2);
    }

    #[tokio::test]
    async fn k_concurrent_requests_open_at_most_k_connections_then_reuse_them() {
        const K: usize = 4;
        let origin = Origin::start(|_, _| Reply::Answer(HELLO)).await;
        let pool = OriginPool::default();
        let round = || futures::future::join_all((0..K).map(|_| fetch(&pool, &origin.url)));
        for body in round().await {
            assert_eq!(body.unwrap(), b"hello");
        }
        let opened = origin.accepted();
        assert!((1..=K).contains(&opened), "{opened}");
        assert_eq!(pool.idle_count(&origin.key), opened);
        for _ in 0..3 {
            for body in round().await {
                assert_eq!(body.unwrap(), b"hello");
            }
        }
        assert_eq!(origin.accepted(), opened);
    }

    #[tokio::test]
    async fn idle_connections_per_origin_are_bounded() {
        const K: usize = 4;
        let origin = Origin::start(|_, _| Reply::Answer(HELLO)).await;
        let pool = OriginPool::new(PoolOptions {
            max_idle_per_origin: 2,
            ..PoolOptions::default()
        });
        // Hold K responses at once, so K connections are open.
        let mut bodies = Vec::new();
        for _ in 0..K {
            let (response, _io) = send_request(
                get(&origin.url),
                Some(options(Duration::from_secs(5))),
                Arc::from("test"),
                &pool,
            )
            .await
            .unwrap();
            bodies.push(response.into_body());
        }
        assert_eq!(origin.accepted(), K);
        for body in bodies {
            assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"hello");
        }
        assert_eq!(pool.idle_count(&origin.key), 2);
    }
}
