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
use crate::net::connection::RequestGuard;
use crate::net::request_body::{BodyWatch, LimitedBody};
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
                if let Some(data) = frame.data_ref() {
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

    let mut request = request;
    set_spin_headers(
        &mut request,
        client.peer,
        client.secure,
        &route.matched_route,
        &route.path_info,
    );
    if let Some(answer) = component.native.as_ref().and_then(|n| n.answer(&request)) {
        return Ok((answer, component.context.id.to_string()));
    }
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
}
