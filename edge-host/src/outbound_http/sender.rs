//! Sends a component's request to its origin and returns the response:
//! what `wasmtime_wasi_http::default_send_request` does (connect and
//! first-byte timeouts, TLS with the webpki roots, a between-bytes timeout
//! on the body), over a pooled keep-alive connection ([`super::pool`]),
//! with one more difference: a response that has arrived is kept when the
//! connection fails after it. hyper reports bytes an origin sends after the
//! end of a response (a body longer than its `Content-Length`) as an error
//! of the connection, and the default sender let that error replace the
//! response, so the edge answered 502. RFC 9112 §6.3: the body ends at the
//! declared length, and what follows is not part of it. The component gets
//! the declared body, and the connection is closed (its task ends on the
//! error, so the pool never hands it out again).
//!
//! Each connection is driven by a task of the host's runtime, not by the
//! instance that opened it: it outlives the request and serves the next
//! one, from any instance. The response body streams from hyper to the
//! guest frame by frame; nothing here buffers it.
//!
//! A reused connection can have been closed by the origin while it sat
//! idle, the close still on its way (the keep-alive race). The request is
//! then sent once more on a fresh connection when that is safe: hyper hands
//! it back unsent, or it was sent but no byte of a response came and it is
//! idempotent with no body (RFC 9110 §9.2.2).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderMap, HeaderValue};
use http::uri::Scheme;
use http::{Method, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::pool::{Lease, OriginKey, OriginPool};

/// What `wasmtime-wasi-http` awaits beside the response for errors of the
/// connection; ours is done at once, because the pool's task drives the
/// connection and its errors reach the guest through the body.
pub type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The default when the component gives no timeout (wasmtime's).
const NO_TIMEOUT_GIVEN: Duration = Duration::from_secs(600);

/// Sends `request` on an idle connection from `pool` or a new one; see the
/// module documentation.
pub async fn send_request(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    component: Arc<str>,
    pool: &OriginPool,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let authority = if authority.port().is_some() {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let key = OriginKey { tls, authority };
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(NO_TIMEOUT_GIVEN);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(NO_TIMEOUT_GIVEN);
    // Tokio's interval panics on zero.
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(NO_TIMEOUT_GIVEN)
        .max(Duration::from_nanos(1));

    // The request line carries only the path and query (no proxy here).
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
        )
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let request_closes = wants_close(Version::HTTP_11, request.headers());

    let idle = match pool.enabled() {
        true => pool.checkout(&key, connect_timeout).await,
        false => None,
    };
    let reused = idle.is_some();
    // A new connection's task runs on this lane (see `connect`).
    let (mut sender, mut home) = match idle {
        Some(idle) => idle,
        None => (
            connect(&key, connect_timeout, &component).await?,
            crate::net::lanes::current(),
        ),
    };
    // A copy to send again if the origin closes a reused connection after
    // the request went out (a bodiless idempotent request only: a streamed
    // body cannot be sent twice).
    let replay = (reused && is_idempotent(request.method()) && request.body().is_end_stream())
        .then(|| bodiless_copy(&request))
        .flatten();

    let first_byte_by = tokio::time::Instant::now() + first_byte_timeout;
    let sent = tokio::time::timeout_at(first_byte_by, sender.try_send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?;
    let response = match sent {
        Ok(response) => response,
        Err(mut failed) if reused => {
            let again = failed
                .take_message()
                .or_else(|| replay.filter(|_| failed.error().is_incomplete_message()));
            let Some(again) = again else {
                return Err(failed.into_error().into());
            };
            tracing::debug!(
                component = &*component,
                "origin {}: reused connection closed ({}); sending the request again on a new one",
                key.authority,
                failed.error()
            );
            sender = connect(&key, connect_timeout, &component).await?;
            home = crate::net::lanes::current();
            tokio::time::timeout_at(first_byte_by, sender.send_request(again))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)??
        }
        Err(failed) => return Err(failed.into_error().into()),
    };

    // RFC 9112 §9.3: `close` from either side, or an HTTP/1.0 response
    // without keep-alive, ends the connection after this response.
    let lease = if request_closes || wants_close(response.version(), response.headers()) {
        None
    } else {
        pool.lease(key, sender, home, keep_alive_timeout(response.headers()))
    };
    let mut timeout = tokio::time::interval(between_bytes_timeout);
    timeout.reset();
    let response = response.map(|incoming| {
        let mut body = PooledBody {
            incoming,
            timeout,
            lease,
        };
        // A response with no body (HEAD, 204, 304, `Content-Length: 0`) is
        // complete already: the connection is free even if the guest never
        // reads the empty body.
        if body.incoming.is_end_stream() {
            body.release();
        }
        body.boxed_unsync()
    });
    Ok((response, Box::new(async { Ok(()) })))
}

/// Opens a connection to `key` within `timeout` (TCP, TLS, HTTP/1.1
/// handshake) and spawns the task that drives it for as long as it lives.
async fn connect(
    key: &OriginKey,
    timeout: Duration,
    component: &Arc<str>,
) -> Result<SendRequest<WasiBody>, Error> {
    let authority = &key.authority;
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    // A reused connection carries many small writes; Nagle's algorithm
    // would hold a request back for the previous one's ACK.
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = if key.tls {
        let config = tls_config()?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = tls_server_name(authority)?;
        Box::new(connector.connect(name, tcp).await.map_err(Error::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (sender, connection) = tokio::time::timeout(
        timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    let component = component.clone();
    let authority = authority.clone();
    tokio::spawn(async move {
        // Ends when the origin closes, on an error (a body longer than
        // declared: the component already got the declared bytes, a later
        // response is never read from it), or when nothing holds its
        // sender any more.
        if let Err(error) = connection.await {
            tracing::warn!(
                component = &*component,
                "origin {authority}: {error}; connection closed"
            );
        }
    });
    Ok(sender)
}

/// Whether `headers` (of a message of `version`) end the connection after
/// this exchange (RFC 9112 §9.3).
fn wants_close(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if has("close") {
        return true;
    }
    version < Version::HTTP_11 && !has("keep-alive")
}

/// The origin's `Keep-Alive: timeout=N` (RFC 2068 §19.7.1.1, still sent by
/// Apache and others): how long it keeps an idle connection, after which
/// reusing it would race its close.
fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("keep-alive")
        .iter()
        .filter_map(|value: &HeaderValue| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|param| {
            let (name, seconds) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("timeout")
                .then(|| seconds.trim().parse::<u64>().ok())
                .flatten()
        })
        .map(Duration::from_secs)
}

/// RFC 9110 §9.2.2.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The same request with an empty body, for a replay.
fn bodiless_copy(request: &http::Request<WasiBody>) -> Option<http::Request<WasiBody>> {
    let mut copy = http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version())
        .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
        .ok()?;
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// rustls with the webpki roots and the ring provider, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::InternalError(Some(format!("TLS configuration: {e}"))))
}

/// The name a certificate must have: an IP literal as such, else the host
/// without its port (`authority` is `host:port`, IPv6 hosts bracketed).
fn tls_server_name(
    authority: &str,
) -> Result<rustls::pki_types::ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    use rustls::pki_types::ServerName;
    if let Ok(addr) = authority.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::from(addr.ip()));
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    Ok(ServerName::try_from(host)?.to_owned())
}

/// A response body that fails when the origin pauses longer than the
/// between-bytes timeout, and puts its connection back in the pool once it
/// was read to the end (never after an error, nor when dropped before).
struct PooledBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
    lease: Option<Lease>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => {
                self.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                self.lease = None;
                Poll::Ready(Some(Err(if error.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(error)
                })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                // A reader may stop at `is_end_stream` without polling for
                // the end: the last frame releases then.
                if self.incoming.is_end_stream() {
                    self.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timeout.poll_tick(cx) {
                Poll::Ready(_) => {
                    self.lease = None;
                    Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An origin that answers one request with `response`, then either
    /// closes the connection (`close`) or waits for the client to close it
    /// and reports that it did.
    async fn origin_closing(
        response: &'static [u8],
        close: bool,
    ) -> (String, tokio::task::JoinHandle<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0);
                head.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response).await.unwrap();
            if close {
                return false;
            }
            // The client closing shows as end of input.
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        });
        (format!("http://{addr}/x"), served)
    }

    async fn origin(response: &'static [u8]) -> (String, tokio::task::JoinHandle<bool>) {
        origin_closing(response, false).await
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        http::Request::get(url)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    fn options(between_bytes: Duration) -> RequestOptions {
        RequestOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            first_byte_timeout: Some(Duration::from_secs(5)),
            between_bytes_timeout: Some(between_bytes),
        }
    }

    async fn fetch_from(pool: &OriginPool, url: &str) -> Result<(u16, Vec<u8>), Error> {
        let options = options(Duration::from_secs(5));
        let (response, io) = send_request(get(url), Some(options), Arc::from("test"), pool).await?;
        tokio::spawn(Box::into_pin(io));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }

    async fn fetch(url: &str) -> Result<(u16, Vec<u8>), Error> {
        fetch_from(&OriginPool::default(), url).await
    }

    #[tokio::test]
    async fn a_body_longer_than_its_content_length_is_cut_at_it_and_the_connection_closed() {
        let (url, origin) = origin(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n0123456789").await;
        // The pool outlives the exchange: the connection closes because of
        // the extra bytes, not because its pool went away.
        let pool = OriginPool::default();
        let (status, body) = fetch_from(&pool, &url).await.expect("the response stands");
        assert_eq!(status, 200);
        assert_eq!(body, b"01234");
        let closed = tokio::time::timeout(Duration::from_secs(10), origin)
            .await
            .expect("the connection was closed")
            .unwrap();
        assert!(closed);
        let key = OriginKey {
            tls: false,
            authority: url["http://".len()..url.len() - "/x".len()].to_owned(),
        };
        assert!(pool.checkout(&key, Duration::from_secs(5)).await.is_none());
    }

    #[tokio::test]
    async fn a_well_framed_response_is_relayed_whole() {
        let (url, _origin) = origin(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        assert_eq!(fetch(&url).await.unwrap(), (200, b"hello".to_vec()));
    }

    #[tokio::test]
    async fn garbage_instead_of_a_response_is_still_an_error() {
        let (url, _origin) = origin(b"NOT HTTP AT ALL\r\n\r\n").await;
        assert!(fetch(&url).await.is_err());
    }

    #[tokio::test]
    async fn a_body_shorter_than_its_content_length_is_still_an_error() {
        let (url, _origin) =
            origin_closing(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234", true).await;
        let outcome = tokio::time::timeout(Duration::from_secs(10), fetch(&url))
            .await
            .expect("ends");
        assert!(outcome.is_err(), "{outcome:?}");
    }

    #[test]
    fn tls_names_drop_the_port_and_keep_ip_literals() {
        use rustls::pki_types::ServerName;
        assert_eq!(
            tls_server_name("example.com:443").unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
        assert_eq!(
            tls_server_name("[::1]:443").unwrap(),
            ServerName::from(std::net::Ipv6Addr::LOCALHOST)
        );
        assert!(tls_config().is_ok());
    }
}
