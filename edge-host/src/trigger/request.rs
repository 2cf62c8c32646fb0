//! One request on a connection: routed to its component's executor
//! ([`crate::executor`]), or answered by the host ([`Failure`]); the
//! response body ends the connection if the request body passes its limit
//! mid-response, logs a component's body that breaks off (the connection
//! closes unfinished), and writes the request's record when it ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::headers::{normalise_target, set_spin_headers};
use crate::app::App;
use crate::executor::Dispatched;
use crate::executor::failure::Failure;
use crate::executor::open_bodies::why_broken;
use crate::native_hits::Native;
use crate::net::connection::RequestGuard;
use crate::net::request_body::{BodyWatch, LimitedBody};
use crate::observe::metrics::FailureCause;
use crate::observe::request_record::RequestRecord;

/// What the host knows of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientConnection {
    /// The client's address.
    pub(super) peer: SocketAddr,
    /// Whether the connection is TLS (`https`).
    pub(super) secure: bool,
}

/// Serves one request from `client`, its body held to `limit` bytes:
/// routed to its component's executor, or answered by the host; recorded
/// once its response body ends. An HTTP/2 request takes the same path as
/// an HTTP/1.1 one: its target is read the same way
/// ([`normalise_target`]), and its response loses what HTTP/2 forbids.
pub(super) async fn handle(
    app: Arc<App>,
    mut request: Request<Incoming>,
    client: ClientConnection,
    limit: u64,
    mut guard: RequestGuard,
    trip: Arc<BodyWatch>,
) -> Result<Response<ServerBody>, Infallible> {
    let started = Instant::now();
    let version = request.version();
    if version == http::Version::HTTP_2 || client.secure {
        normalise_target(&mut request, client.secure);
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut record =
        RequestRecord::start(&request, started, client.peer, || app.trusted_proxy_hops());
    let (response, component, from_component, failure) =
        match dispatch(&app, request, client, limit, &trip).await {
            Ok((response, component)) => (response, component, true, None),
            Err(failure) => {
                let (response, component, failed) = failure.answer(&method, &path);
                (response, component, false, failed)
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
    guard.responded();
    let mut response = response;
    if version == http::Version::HTTP_2 {
        crate::net::hop_by_hop::remove_for_http2(response.headers_mut());
    }
    if let Some(record) = &mut record {
        record.responded(&response, &component, failure);
    }
    let sending = from_component.then(|| Sending {
        declared: response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse().ok()),
        method,
        path,
        component,
        sent: 0,
    });
    Ok(response.map(|body| ServerBody {
        flush: FirstFlush::for_body(&body),
        inner: body,
        trip: from_component.then_some(trip),
        guard,
        record,
        sending,
    }))
}

/// A component's response as it is sent, for the log line if its body
/// breaks off.
struct Sending {
    method: http::Method,
    path: String,
    component: String,
    /// Its `Content-Length`, if it declared one.
    declared: Option<u64>,
    /// Body bytes handed to the connection so far.
    sent: u64,
}

impl Sending {
    /// Logs, once per response, that its body broke off and why; hyper
    /// then closes the connection without finishing the response, so the
    /// client cannot take the part it got for the whole.
    fn broke_off(&self, error: &wasmtime_wasi_http::Error) {
        let Sending {
            method,
            path,
            component,
            declared,
            sent,
        } = self;
        let of = declared.map_or(String::new(), |declared| format!(" of {declared}"));
        tracing::warn!(
            component,
            "{method} {path}: the response body broke off after {sent}{of} bytes ({}); the connection was closed without finishing the response",
            why_broken(error)
        );
    }
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
    /// A component's response, for the log if its body breaks off.
    sending: Option<Sending>,
    /// Whether the connection is still to be let send the first piece.
    flush: FirstFlush,
}

/// Bodies at least this long, or of unknown length, have their first
/// piece sent at once ([`FirstFlush`]). Shorter ones fit hyper's write
/// buffer whole, and an extra turn of the connection's task would cost
/// every small answer something for nothing.
const FLUSH_FIRST_PIECE_FROM: u64 = 1 << 20;

/// Sends a large body's first piece as soon as it is there.
///
/// Hyper's HTTP/1.1 connection writes nothing while the body has another
/// frame ready and its write buffer (about 400 KiB) has room. A cold fill
/// from a fast origin always has the next piece ready, so the response
/// head and first byte waited for 400 KiB to pass through the component
/// (`strace`: the head went out with the first 64 KiB, after 400 KiB had
/// been read from the origin; a cold 64 MiB fetch's median first byte
/// was 2.78 ms with the wait, 2.39 ms without). Saying
/// once, after the first piece, that the next is not ready yet makes hyper
/// write what it holds; the task is woken at once, so nothing waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstFlush {
    /// Before the first piece.
    Armed,
    /// The first piece has been handed over: the next poll lets it go.
    Due,
    /// Done, or not wanted for this body.
    Off,
}

impl FirstFlush {
    fn for_body(body: &HyperOutgoingBody) -> FirstFlush {
        let large = body
            .size_hint()
            .exact()
            .is_none_or(|length| length >= FLUSH_FIRST_PIECE_FROM);
        if large && !body.is_end_stream() {
            FirstFlush::Armed
        } else {
            FirstFlush::Off
        }
    }
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
        if self.flush == FirstFlush::Due {
            self.flush = FirstFlush::Off;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if self.flush == FirstFlush::Armed && !data.is_empty() {
                        self.flush = FirstFlush::Due;
                    }
                    if let Some(record) = &mut self.record {
                        record.sent(data);
                    }
                    if let Some(sending) = &mut self.sending {
                        sending.sent += data.len() as u64;
                    }
                }
            }
            // Hyper polls no further after an error: logged once.
            Some(Err(error)) => {
                if let Some(sending) = self.sending.take() {
                    sending.broke_off(error);
                }
            }
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

/// Routes `request` to its component and runs it there; the spin-*
/// headers set, the body held to the limit.
async fn dispatch(
    app: &App,
    request: Request<Incoming>,
    client: ClientConnection,
    limit: u64,
    trip: &Arc<BodyWatch>,
) -> Result<Dispatched, Failure> {
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

    // A fresh hit is answered before the request is dressed for the
    // component: the native path reads the same facts from the request.
    let native = component.native.as_ref();
    if let Some(native) = native {
        let limit = app.limits.request_timeout;
        match native
            .respond(&request, client.peer, client.secure, limit)
            .await
        {
            Native::Answered(answer) => return Ok((answer, component.context.id.to_string())),
            Native::TimedOut => {
                let detail = format!(
                    "no native answer within the {} ms request time limit",
                    limit.as_millis()
                );
                let cause = FailureCause::TimeLimit;
                return Err(Failure::instance(
                    cause,
                    &app.limits,
                    detail,
                    &component.context.id,
                ));
            }
            Native::Declined => {}
        }
    }
    let mut request = request;
    set_spin_headers(
        &mut request,
        client.peer,
        client.secure,
        &route.matched_route,
        &route.path_info,
    );
    let request = request.map(|body| LimitedBody::new(body, limit, trip.clone()));
    component.execute(app.limits, request, limit, trip).await
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

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
            sending: None,
            flush: FirstFlush::Off,
        }
    }

    /// A body of `pieces` 64 KiB pieces of unknown total length, each
    /// ready at once (a fast origin), counting the pieces handed out.
    struct Ready {
        pieces: usize,
        handed: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Body for Ready {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            use std::sync::atomic::Ordering;
            let handed = self.handed.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(
                (handed < self.pieces).then(|| Ok(Frame::data(Bytes::from(vec![7; 64 << 10])))),
            )
        }
    }

    /// The server's end of a connection, noting how many pieces the body
    /// had handed out when the first bytes were written to the client.
    struct Observed {
        inner: tokio::io::DuplexStream,
        handed: Arc<std::sync::atomic::AtomicUsize>,
        at_first_write: Arc<std::sync::OnceLock<usize>>,
    }

    impl tokio::io::AsyncRead for Observed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for Observed {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let handed = self.handed.load(std::sync::atomic::Ordering::SeqCst);
            let _ = self.at_first_write.set(handed);
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn a_large_body_s_head_and_first_piece_are_written_before_more_is_taken() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let handed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let at_first_write = Arc::new(std::sync::OnceLock::new());
        let (server, mut client) = tokio::io::duplex(16 << 20);
        let io = Observed {
            inner: server,
            handed: handed.clone(),
            at_first_write: at_first_write.clone(),
        };
        let pieces = 32;
        let service = hyper::service::service_fn(move |_| {
            let inner = Ready {
                pieces,
                handed: handed.clone(),
            }
            .boxed_unsync();
            let body = ServerBody {
                flush: FirstFlush::for_body(&inner),
                inner,
                trip: None,
                guard: Activity::new().request_started(BodyWatch::new(true)),
                record: None,
                sending: None,
            };
            async move { Ok::<_, Infallible>(Response::new(body)) }
        });
        let serving = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(io), service),
        );
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        serving.await.unwrap().unwrap();
        // Without the flush, hyper takes about 400 KiB (7 pieces) before
        // writing a byte.
        assert_eq!(at_first_write.get(), Some(&1));
        let body_start = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let sent = answer[body_start..].iter().filter(|b| **b == 7).count();
        assert_eq!(sent, pieces * (64 << 10), "every piece arrives");
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
}
