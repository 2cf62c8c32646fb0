//! Per-connection limits of the HTTP trigger: how long a client may take
//! to send a request's header section, how long an idle keep-alive
//! connection is kept, and how many connections are served at once.
//!
//! hyper's own `header_read_timeout` starts when hyper begins waiting for a
//! request head, which on a keep-alive connection is the moment it becomes
//! idle: it cannot tell an idle connection from one sending its header
//! slowly. So the server watches each connection itself, as nginx does with
//! `client_header_timeout` and `keepalive_timeout`:
//! - first request: the header section must be complete within the header
//!   timeout from the accept;
//! - after a response: the connection may stay idle for the keep-alive
//!   timeout; once the next request's first byte arrives, its header section
//!   must be complete within the header timeout from that byte;
//! - while a request is being served, neither applies (the request time limit
//!   does);
//! - while the listener is near its connection cap
//!   ([`crate::net::connection_table`]), a connection that has not started its
//!   next request is given [`ConnectionLimits::pressured_timeout`] at most,
//!   and it may be closed at once to make room for a new connection.
//!
//! An HTTP/2 connection serves many requests at once, one per stream: it
//! is serving while any stream is open and idle when none is. Between
//! streams its client sends frames that are not requests (`PING`,
//! `WINDOW_UPDATE`, `SETTINGS` acknowledgements), so for it a byte does
//! not start the header clock: it is given the keep-alive timeout from its
//! last stream's end, whatever arrives meanwhile (a `HEADERS` frame trickled
//! in slowly is bounded by that too). Before its first request, the header
//! timeout from the accept bounds the TLS handshake, the preface and the
//! first request's header section together, as for HTTP/1.1.
//!
//! An HTTP/2 client can also open a stream and reset it at once, over and
//! over (rapid reset, CVE-2023-44487): each stream starts a request the
//! host works on until the reset arrives, and none counts against the
//! stream limit for long. h2 closes a connection whose streams are reset
//! before the server accepts them; the ones accepted first are counted
//! here: once a connection has started [`PREMATURE_RESET_MIN_STREAMS`]
//! requests, and more than half of them were given up by the client before
//! their response began, it is closed ([`Expired::PrematureResets`]), as
//! Envoy's `premature_reset_total_stream_count` does. A browser cancels
//! a request now and then (a page left), not most of them.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::net::connection_table::{Refused, Slot};
use crate::net::request_body::BodyWatch;

/// nginx's `client_header_timeout` default.
pub const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `keepalive_timeout` default.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default cap on connections served at once (nginx's `worker_connections`
/// default). It keeps the host well inside the usual 1024 open-file limit,
/// with room for a connection to the origin per request.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;
/// Default cap on connections from one client address: a quarter of the
/// default cap, far above a browser's six per host, so that one address
/// cannot hold every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 128;
/// How long a connection that has not started its next request is kept
/// while the listener is near its cap.
pub const DEFAULT_PRESSURED_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests an HTTP/2 connection must have started before its share of
/// requests reset by the client before their response can close it.
pub const PREMATURE_RESET_MIN_STREAMS: u32 = 200;

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The header section did not arrive within the header timeout.
    Header,
    /// The connection was idle for the keep-alive timeout.
    Idle,
    /// The connection was closed to make room for a new one.
    Evicted,
    /// The client reset most of its HTTP/2 streams before their response
    /// (rapid reset).
    PrematureResets,
}

#[derive(Debug)]
struct State {
    /// Requests whose response has not finished: one at a time on an
    /// HTTP/1.1 connection, up to the stream limit on an HTTP/2 one.
    in_flight: u32,
    /// Whether the connection is HTTP/2: bytes between requests are
    /// frames, not the start of a request.
    multiplexed: bool,
    /// HTTP/2 requests started on this connection.
    streams: u32,
    /// Of those, the ones the client gave up before their response began.
    premature_resets: u32,
    /// Whether a response has been sent on this connection.
    served: bool,
    /// When the connection was accepted or last became idle.
    idle_since: Instant,
    /// When the first byte of the next request arrived, while no request
    /// was in flight.
    head_started: Option<Instant>,
    /// The body of the latest request: the client may still be sending
    /// it after its response (HTTP/1.1 has no other way to refuse it).
    body: Option<Arc<BodyWatch>>,
    /// The bodies of the requests in flight (HTTP/2: one per open stream).
    open_bodies: Vec<Arc<BodyWatch>>,
}

/// What one connection is doing, shared by its stream, its requests and its
/// watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
    /// Whether the connection is idle and has not seen the next byte yet;
    /// lets every read skip the lock.
    awaiting_first_byte: AtomicBool,
    /// Whether the connection table chose this connection to give way.
    evicted: AtomicBool,
    /// Whether the client resets most of its streams before their response.
    flooding: AtomicBool,
    changed: Notify,
    /// Whether the socket has been closed (its descriptor released).
    closed: AtomicBool,
    closing: Notify,
}

/// How a connection with no request in flight ranks for closing to make
/// room: ordered so that the least is closed first (not receiving a
/// request before receiving one, then the one idle longest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct IdleRank {
    /// Whether the next request's header section has begun to arrive.
    pub(crate) receiving: bool,
    /// When that began; if it has not, when the connection was accepted
    /// or last finished a response.
    pub(crate) since: Instant,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                multiplexed: false,
                streams: 0,
                premature_resets: 0,
                served: false,
                idle_since: Instant::now(),
                head_started: None,
                body: None,
                open_bodies: Vec::new(),
            }),
            awaiting_first_byte: AtomicBool::new(true),
            evicted: AtomicBool::new(false),
            flooding: AtomicBool::new(false),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields: a panic elsewhere cannot leave it
        // half-updated.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The activity of a connection just accepted. A client that has
    /// already sent bytes (its request waiting in the socket) counts as
    /// sending a request from the start: under a flood of new connections
    /// the edge accepts a connection long after the client wrote its
    /// request, and until the connection's task first reads, nothing else
    /// would tell it from an attacker's silent socket when the cap makes
    /// one of them give way.
    pub(crate) async fn accepted(stream: &TcpStream) -> Arc<Activity> {
        let activity = Activity::new();
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let peeked = std::future::poll_fn(|cx| Poll::Ready(stream.poll_peek(cx, &mut buf))).await;
        if matches!(peeked, Poll::Ready(Ok(1..))) {
            activity.bytes_arrived();
        }
        activity
    }

    /// A request's header section has arrived and is being served.
    pub(crate) fn request_started(self: &Arc<Self>, body: Arc<BodyWatch>) -> RequestGuard {
        self.started(body, false)
    }

    /// A request has arrived on an HTTP/2 stream and is being served.
    pub(crate) fn stream_started(self: &Arc<Self>, body: Arc<BodyWatch>) -> RequestGuard {
        self.started(body, true)
    }

    fn started(self: &Arc<Self>, body: Arc<BodyWatch>, multiplexed: bool) -> RequestGuard {
        {
            let mut state = self.state();
            state.in_flight += 1;
            state.multiplexed |= multiplexed;
            if multiplexed {
                state.streams = state.streams.saturating_add(1);
            }
            state.head_started = None;
            state.open_bodies.push(body.clone());
            state.body = Some(body.clone());
        }
        self.awaiting_first_byte.store(false, Ordering::SeqCst);
        self.changed.notify_one();
        RequestGuard {
            activity: Some(self.clone()),
            body,
            responded: false,
        }
    }

    /// The connection is HTTP/2 (negotiated by ALPN, before any request).
    pub(crate) fn multiplexed(&self) {
        self.state().multiplexed = true;
        self.awaiting_first_byte.store(false, Ordering::SeqCst);
    }

    /// A request is over; `given_up` if its client reset it before its
    /// response began.
    fn request_finished(&self, body: &Arc<BodyWatch>, given_up: bool) {
        {
            let mut state = self.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            if given_up && state.multiplexed {
                state.premature_resets += 1;
                if state.streams >= PREMATURE_RESET_MIN_STREAMS
                    && state.premature_resets > state.streams / 2
                {
                    self.flooding.store(true, Ordering::SeqCst);
                }
            }
            if let Some(at) = state.open_bodies.iter().position(|b| Arc::ptr_eq(b, body)) {
                state.open_bodies.swap_remove(at);
            }
            if state.in_flight == 0 {
                state.served = true;
                state.idle_since = Instant::now();
                state.head_started = None;
                // On HTTP/2 the next bytes may be any frame: only a stream
                // ends the idle time (see the module doc).
                self.awaiting_first_byte
                    .store(!state.multiplexed, Ordering::SeqCst);
            }
        }
        self.changed.notify_one();
    }

    fn bytes_arrived(&self) {
        if !self.awaiting_first_byte.swap(false, Ordering::SeqCst) {
            return;
        }
        {
            let mut state = self.state();
            if state.in_flight == 0 && state.head_started.is_none() {
                state.head_started = Some(Instant::now());
            }
        }
        self.changed.notify_one();
    }

    /// How this connection ranks for closing, if it has no request in
    /// flight.
    pub(crate) fn idle_rank(&self) -> Option<IdleRank> {
        let state = self.state();
        (state.in_flight == 0).then_some(match state.head_started {
            Some(started) => IdleRank {
                receiving: true,
                since: started,
            },
            None => IdleRank {
                receiving: false,
                since: state.idle_since,
            },
        })
    }

    /// Tells the connection's watchdog to close it.
    pub(crate) fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
    }

    /// Waits until the socket is closed, or `patience` has passed (see
    /// [`crate::net::connection_table::await_evicted`]).
    pub(crate) async fn closed_within(&self, patience: Duration) {
        let closing = self.closing.notified();
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let _ = tokio::time::timeout(patience, closing).await;
    }

    /// Whether [`Activity::evict`] was called.
    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }

    /// Whether the client resets most of its streams before their response.
    fn is_flooding(&self) -> bool {
        self.flooding.load(Ordering::SeqCst)
    }

    /// Whether the latest request's body, or that of a request in flight,
    /// was left (partly) unread: then the client may still be sending it.
    fn body_unread(&self) -> bool {
        let state = self.state();
        state
            .body
            .iter()
            .chain(&state.open_bodies)
            .any(|body| !body.is_finished())
    }

    /// When the connection must end if nothing changes, and why; `pressed`
    /// when the listener is near its cap.
    fn deadline(&self, limits: &ConnectionLimits, pressed: bool) -> Option<(Instant, Expired)> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        // A connection that has not started its next request holds a slot
        // for nothing: near the cap it gets the short timeout.
        let silent = |timeout: Duration| match pressed {
            true => timeout.min(limits.pressured_timeout),
            false => timeout,
        };
        Some(match (state.served, state.head_started) {
            (false, None) => (
                state.idle_since + silent(limits.header_timeout),
                Expired::Header,
            ),
            (false, Some(_)) => (state.idle_since + limits.header_timeout, Expired::Header),
            (true, Some(started)) => (started + limits.header_timeout, Expired::Header),
            (true, None) => (
                state.idle_since + silent(limits.keepalive_timeout),
                Expired::Idle,
            ),
        })
    }
}

/// Marks its request finished when the response body ends or is dropped;
/// dropped before [`RequestGuard::responded`], the client gave it up.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    activity: Option<Arc<Activity>>,
    body: Arc<BodyWatch>,
    responded: bool,
}

impl RequestGuard {
    /// The response head is ready to be sent.
    pub(crate) fn responded(&mut self) {
        self.responded = true;
    }

    pub(crate) fn finish(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.request_finished(&self.body, !self.responded);
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub(crate) header_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    /// The most a connection that has not started its next request is
    /// kept while the listener is near its cap.
    pub(crate) pressured_timeout: Duration,
}

/// Resolves when `activity`'s connection has been silent too long, or was
/// chosen to make room; `pressure` says when the listener is near its cap.
pub(crate) async fn watchdog(
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    mut pressure: tokio::sync::watch::Receiver<bool>,
) -> Expired {
    loop {
        if activity.is_evicted() {
            return Expired::Evicted;
        }
        if activity.is_flooding() {
            return Expired::PrematureResets;
        }
        let pressed = *pressure.borrow_and_update();
        let pressure_changed = async {
            if pressure.changed().await.is_err() {
                // The table is gone: no more changes.
                std::future::pending::<()>().await;
            }
        };
        match activity.deadline(&limits, pressed) {
            None => tokio::select! {
                () = activity.changed.notified() => {}
                () = pressure_changed => {}
            },
            Some((deadline, why)) => {
                tokio::select! {
                    () = activity.changed.notified() => {}
                    () = pressure_changed => {}
                    () = tokio::time::sleep_until(deadline) => {
                        // Only if nothing moved the deadline meanwhile.
                        if activity
                            .deadline(&limits, pressed)
                            .is_some_and(|(now_due, _)| now_due <= Instant::now())
                        {
                            return why;
                        }
                    }
                }
            }
        }
    }
}

/// A client connection that reports what it reads to its [`Activity`] and
/// holds its slot under the connection cap until it is closed.
///
/// A connection closed while its client may still be sending a request body
/// (a `413`, or any answer given without reading the body) is not closed at
/// once: closing a socket with unread input resets the connection, and the
/// client would likely lose the answer. Its output is shut down and its
/// input read and discarded for up to [`LINGER`] first (nginx's lingering
/// close).
pub(crate) struct TrackedStream {
    stream: Option<TcpStream>,
    activity: Arc<Activity>,
    slot: Option<Slot>,
}

/// How long a closing connection's unread input is drained at most.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

impl TrackedStream {
    pub(crate) fn new(stream: TcpStream, activity: Arc<Activity>, slot: Slot) -> Self {
        TrackedStream {
            stream: Some(stream),
            activity,
            slot: Some(slot),
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        let slot = self.slot.take();
        match self.stream.take() {
            Some(stream) if self.activity.body_unread() => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let activity = self.activity.clone();
                    runtime.spawn(async move {
                        linger(stream, LINGER, slot).await;
                        activity.mark_closed();
                    });
                } else {
                    self.activity.mark_closed();
                }
            }
            stream => {
                // The slot is freed before the socket closes, so a client
                // that has seen the close can count on the slot being free.
                drop(slot);
                drop(stream);
                self.activity.mark_closed();
            }
        }
    }
}

/// Shuts `stream`'s output down, then reads and discards its input until the
/// client closes or `time` has passed; `slot` is held until then.
async fn linger(mut stream: TcpStream, time: Duration, slot: Option<Slot>) {
    let _ = tokio::time::timeout(time, async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 16 << 10];
        while let Ok(1..) = stream.read(&mut sink).await {}
    })
    .await;
    drop(slot);
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.stream()?.poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection is ending: free its slot before the client sees
        // the close (unless it lingers, see `Drop`).
        if !self.activity.body_unread() {
            self.slot.take();
        }
        self.stream()?.poll_shutdown(cx)
    }
}

/// The answer to a connection over the cap.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 21\r\n\
retry-after: 1\r\n\
cache-control: no-store\r\n\
connection: close\r\n\
\r\n\
too many connections\n";

/// The answer to a connection over its client address's cap.
const CLIENT_SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 39\r\n\
retry-after: 1\r\n\
cache-control: no-store\r\n\
connection: close\r\n\
\r\n\
too many connections from your address\n";

/// How long a shed connection is given to take its 503 before it is closed.
const SHED_LINGER: Duration = Duration::from_secs(1);

/// Answers a connection that was `refused` a slot with `503` and closes
/// it, lingering (see [`TrackedStream`]) so the client sees the answer, not
/// a reset.
pub(crate) async fn shed(mut stream: TcpStream, refused: Refused) {
    let answer = match refused {
        Refused::Full => SHED_RESPONSE,
        Refused::ClientFull => CLIENT_SHED_RESPONSE,
    };
    let written = tokio::time::timeout(SHED_LINGER, stream.write_all(answer)).await;
    if matches!(written, Ok(Ok(()))) {
        linger(stream, SHED_LINGER, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(30),
        pressured_timeout: Duration::from_secs(2),
    };

    #[test]
    fn shed_responses_declare_their_body_length() {
        for answer in [SHED_RESPONSE, CLIENT_SHED_RESPONSE] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("content-length: {}", body.len())));
        }
    }

    /// `deadline` is within `[before + d, after + d]`.
    fn due_between(
        deadline: Option<(Instant, Expired)>,
        before: Instant,
        after: Instant,
        d: Duration,
        why: Expired,
    ) {
        let (at, kind) = deadline.expect("a deadline");
        assert_eq!(kind, why);
        assert!(
            at >= before + d && at <= after + d,
            "{at:?} not in [{before:?}+{d:?}, {after:?}+{d:?}]"
        );
    }

    #[test]
    fn deadlines_follow_the_connection_through_its_requests() {
        let before = Instant::now();
        let activity = Activity::new();
        let after = Instant::now();
        // First request: the header timeout runs from the accept, bytes or not.
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.header_timeout,
            Expired::Header,
        );
        activity.bytes_arrived();
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.header_timeout,
            Expired::Header,
        );
        let mut request = activity.request_started(BodyWatch::new(true));
        assert_eq!(
            activity.deadline(&LIMITS, false),
            None,
            "no deadline while serving"
        );
        // Bytes read while serving (a body, a pipelined request) start nothing.
        activity.bytes_arrived();
        assert_eq!(activity.deadline(&LIMITS, false), None);

        let before = Instant::now();
        request.finish();
        let after = Instant::now();
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.keepalive_timeout,
            Expired::Idle,
        );
        let before = Instant::now();
        activity.bytes_arrived();
        let after = Instant::now();
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.header_timeout,
            Expired::Header,
        );
        // Only the first byte starts the clock.
        activity.bytes_arrived();
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.header_timeout,
            Expired::Header,
        );
    }

    #[test]
    fn an_http2_connection_serves_while_any_stream_is_open_and_frames_between_do_not_start_a_header_clock()
     {
        let activity = Activity::new();
        let unread = BodyWatch::new(false);
        let mut streams: Vec<RequestGuard> = (0..100)
            .map(|i| match i {
                7 => activity.stream_started(unread.clone()),
                _ => activity.stream_started(BodyWatch::new(true)),
            })
            .collect();
        // Stream 99's body is read; stream 7's is not: the connection
        // must linger when it closes.
        assert!(activity.body_unread());
        for stream in streams.iter_mut().rev().take(99) {
            stream.finish();
            assert_eq!(activity.deadline(&LIMITS, false), None, "a stream is open");
        }
        assert!(activity.idle_rank().is_none());
        let before = Instant::now();
        streams[0].finish();
        let after = Instant::now();
        // Each finished stream's unread body was refused by h2 itself
        // (`RST_STREAM`): nothing left to drain.
        assert!(!activity.body_unread());
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.keepalive_timeout,
            Expired::Idle,
        );
        // A PING while idle is not a request's first byte.
        activity.bytes_arrived();
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.keepalive_timeout,
            Expired::Idle,
        );
        // Negotiated by ALPN before any request: the same from the start
        // of its idle time.
        let negotiated = Activity::new();
        negotiated.multiplexed();
        negotiated.stream_started(BodyWatch::new(true)).finish();
        negotiated.bytes_arrived();
        assert_eq!(
            negotiated.deadline(&LIMITS, false).map(|(_, why)| why),
            Some(Expired::Idle)
        );
    }

    #[tokio::test]
    async fn an_http2_client_resetting_most_streams_before_their_response_is_cut_off() {
        let (_pressure, calm) = tokio::sync::watch::channel(false);
        let flooded = Activity::new();
        let watchdog = tokio::spawn(watchdog(flooded.clone(), LIMITS, calm.clone()));
        for i in 0..PREMATURE_RESET_MIN_STREAMS {
            let mut stream = flooded.stream_started(BodyWatch::new(true));
            // One in three answered, the rest reset before their response.
            if i % 3 == 0 {
                stream.responded();
            }
            drop(stream);
            tokio::task::yield_now().await;
            if i + 1 < PREMATURE_RESET_MIN_STREAMS {
                assert!(!watchdog.is_finished(), "too few streams to judge: {i}");
            }
        }
        let fired = tokio::time::timeout(Duration::from_secs(10), watchdog).await;
        assert_eq!(fired.unwrap().unwrap(), Expired::PrematureResets);

        // Half given up is a client that cancels a lot, not a flood; and
        // HTTP/1.1 requests are dropped only with their connection.
        let (browsing, serial) = (Activity::new(), Activity::new());
        for i in 0..2 * PREMATURE_RESET_MIN_STREAMS {
            let mut stream = browsing.stream_started(BodyWatch::new(true));
            if i % 2 == 0 {
                stream.responded();
            }
            drop(stream);
            drop(serial.request_started(BodyWatch::new(true)));
        }
        assert!(!browsing.is_flooding() && !serial.is_flooding());
    }

    #[tokio::test]
    async fn the_watchdog_fires_only_once_the_connection_is_idle_past_its_deadline() {
        let limits = ConnectionLimits {
            header_timeout: Duration::from_millis(20),
            keepalive_timeout: Duration::from_millis(50),
            pressured_timeout: Duration::from_millis(10),
        };
        let activity = Activity::new();
        let request = activity.request_started(BodyWatch::new(true));
        let (_pressure, calm) = tokio::sync::watch::channel(false);
        let watchdog = tokio::spawn(watchdog(activity.clone(), limits, calm));
        // Far past both timeouts while a request is served: nothing fires.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!watchdog.is_finished(), "no deadline while serving");
        let idle = Instant::now();
        drop(request);
        assert_eq!(watchdog.await.unwrap(), Expired::Idle);
        assert!(idle.elapsed() >= limits.keepalive_timeout);
    }

    #[tokio::test]
    async fn a_connection_whose_request_is_already_waiting_counts_as_sending_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let _silent = TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let rank = Activity::accepted(&accepted).await.idle_rank().unwrap();
        assert!(!rank.receiving);

        let mut asking = TcpStream::connect(address).await.unwrap();
        asking.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        // The bytes are in the socket once the peer can read them.
        accepted.readable().await.unwrap();
        let rank = Activity::accepted(&accepted).await.idle_rank().unwrap();
        assert!(rank.receiving);
    }

    #[test]
    fn near_the_cap_only_a_silent_connection_gets_the_short_timeout() {
        let before = Instant::now();
        let activity = Activity::new();
        let after = Instant::now();
        let short = LIMITS.pressured_timeout;
        // Accepted, nothing sent: the short timeout.
        due_between(
            activity.deadline(&LIMITS, true),
            before,
            after,
            short,
            Expired::Header,
        );
        // Its header section begun: the full header timeout.
        activity.bytes_arrived();
        due_between(
            activity.deadline(&LIMITS, true),
            before,
            after,
            LIMITS.header_timeout,
            Expired::Header,
        );
        let mut request = activity.request_started(BodyWatch::new(true));
        assert_eq!(activity.deadline(&LIMITS, true), None);
        let before = Instant::now();
        request.finish();
        let after = Instant::now();
        // Idle in keep-alive: the short timeout, and the full one once calm.
        due_between(
            activity.deadline(&LIMITS, true),
            before,
            after,
            short,
            Expired::Idle,
        );
        due_between(
            activity.deadline(&LIMITS, false),
            before,
            after,
            LIMITS.keepalive_timeout,
            Expired::Idle,
        );
    }

    #[tokio::test]
    async fn the_watchdog_shortens_a_silent_connection_when_pressure_comes_and_obeys_an_eviction() {
        let limits = ConnectionLimits {
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            pressured_timeout: Duration::from_millis(20),
        };
        let activity = Activity::new();
        let (pressure, pressed) = tokio::sync::watch::channel(false);
        let silent = tokio::spawn(watchdog(activity.clone(), limits, pressed.clone()));
        tokio::task::yield_now().await;
        assert!(!silent.is_finished());
        let _ = pressure.send(true);
        let fired = tokio::time::timeout(Duration::from_secs(10), silent).await;
        assert_eq!(fired.unwrap().unwrap(), Expired::Header);

        let busy = Activity::new();
        let _request = busy.request_started(BodyWatch::new(true));
        let evicted = tokio::spawn(watchdog(busy.clone(), limits, pressed));
        busy.evict();
        let fired = tokio::time::timeout(Duration::from_secs(10), evicted).await;
        assert_eq!(fired.unwrap().unwrap(), Expired::Evicted);
    }
}
