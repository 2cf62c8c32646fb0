//! Sends a component's request to its origin and returns the response:
//! what `wasmtime_wasi_http::default_send_request` does (connect and
//! first-byte timeouts, TLS with the webpki roots, a between-bytes timeout
//! on the body) with one difference: a response that has arrived is kept
//! when the connection fails after it. hyper reports bytes an origin sends
//! after the end of a response (a body longer than its `Content-Length`) as
//! an error of the connection, and the default sender let that error
//! replace the response, so the edge answered 502. RFC 9112 §6.3: the body
//! ends at the declared length, and what follows is not part of it. The
//! component gets the declared body, and the connection is closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What drives an origin connection after its response head arrived.
pub type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The default when the component gives no timeout (wasmtime's).
const NO_TIMEOUT_GIVEN: Duration = Duration::from_secs(600);

/// Sends `request` on a new connection; see the module documentation.
pub async fn send_request(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    component: Arc<str>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let authority = if authority.port().is_some() {
        authority.to_string()
    } else {
        format!("{authority}:{}", if use_tls { 443 } else { 80 })
    };
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

    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(&authority)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn Stream> = if use_tls {
        let config = tls_config()?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = tls_server_name(&authority)?;
        Box::new(connector.connect(name, tcp).await.map_err(Error::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

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

    let send = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, Error>(response.map(|incoming| BetweenBytes { incoming, timeout }.boxed_unsync()))
    };
    let mut send = std::pin::pin!(send);
    let mut connection = Some(connection);
    let mut failed_after = None;
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(outcome) = send.as_mut().poll(cx) {
            return Poll::Ready(outcome);
        }
        // Drive the connection until the response arrives.
        let Some(driving) = connection.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(ended) = Pin::new(driving).poll(cx) else {
            return Poll::Pending;
        };
        connection = None;
        // The connection may have delivered the response head before it
        // failed: that response stands.
        match (send.as_mut().poll(cx), ended) {
            (Poll::Ready(outcome), Ok(())) => Poll::Ready(outcome),
            (Poll::Ready(Ok(response)), Err(error)) => {
                failed_after = Some(error);
                Poll::Ready(Ok(response))
            }
            (Poll::Ready(Err(_)) | Poll::Pending, Err(error)) => Poll::Ready(Err(error.into())),
            // Closed cleanly with no response yet: hyper fails the request
            // itself on the next poll.
            (Poll::Pending, Ok(())) => Poll::Pending,
        }
    })
    .await?;
    if let Some(error) = failed_after {
        tracing::warn!(
            component = &*component,
            "origin {authority}: {error}; relayed the response as its framing declares it and closed the connection"
        );
    }
    let io: IoFuture = match connection {
        None => Box::new(async { Ok(()) }),
        Some(connection) => Box::new(async move {
            match connection.await {
                Ok(()) => Ok(()),
                Err(error) if error.is_timeout() => Err(Error::HttpResponseTimeout),
                Err(error) => {
                    // A body longer than declared ends here, after the
                    // component got the declared bytes; the connection is
                    // dropped, so closed.
                    tracing::warn!(
                        component = &*component,
                        "origin {authority}: {error}; connection closed"
                    );
                    Ok(())
                }
            }
        }),
    };
    Ok((response, io))
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
/// between-bytes timeout.
struct BetweenBytes {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(if error.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(error)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.timeout.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
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

    async fn fetch(url: &str) -> Result<(u16, Vec<u8>), Error> {
        let options = RequestOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            first_byte_timeout: Some(Duration::from_secs(5)),
            between_bytes_timeout: Some(Duration::from_secs(5)),
        };
        let (response, io) = send_request(get(url), Some(options), Arc::from("test")).await?;
        tokio::spawn(Box::into_pin(io));
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }

    #[tokio::test]
    async fn a_body_longer_than_its_content_length_is_cut_at_it_and_the_connection_closed() {
        let (url, origin) = origin(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n0123456789").await;
        let (status, body) = fetch(&url).await.expect("the response stands");
        assert_eq!(status, 200);
        assert_eq!(body, b"01234");
        let closed = tokio::time::timeout(Duration::from_secs(10), origin)
            .await
            .expect("the connection was closed")
            .unwrap();
        assert!(closed);
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
