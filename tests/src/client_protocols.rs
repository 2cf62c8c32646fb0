//! Clients of every protocol the edge speaks: certificates generated for
//! the test (`rcgen`), TLS connections offering a chosen ALPN list, and
//! HTTP/1.1 and HTTP/2 requests over any connection with hyper's client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The name the test certificates are issued for.
pub const TLS_NAME: &str = "edge.test";

/// A self-signed certificate for [`TLS_NAME`] and its key, as PEM.
#[derive(Debug, Clone)]
pub struct TestCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The certificate, DER: what a client is presented.
    pub der: Vec<u8>,
}

impl TestCertificate {
    /// A new certificate and key.
    pub fn generate() -> TestCertificate {
        let generated = rcgen::generate_simple_self_signed(vec![TLS_NAME.to_owned()])
            .expect("rcgen makes a certificate");
        TestCertificate {
            cert_pem: generated.cert.pem(),
            key_pem: generated.signing_key.serialize_pem(),
            der: generated.cert.der().to_vec(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }
}

/// A client configuration trusting `trusted` and offering `alpn` (empty:
/// no ALPN).
pub fn tls_client(trusted: &[&TestCertificate], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in trusted {
        roots
            .add(rustls::pki_types::CertificateDer::from(
                certificate.der.clone(),
            ))
            .expect("a test certificate is a usable root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("rustls defaults")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every connection a full handshake: a resumed session presents no
    // certificate (the tests look at the one served).
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A TLS connection to `addr` for [`TLS_NAME`].
pub async fn connect_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(TLS_NAME).expect("a DNS name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// What the server negotiated and presented on `stream`.
pub fn negotiated(stream: &TlsStream<TcpStream>) -> (Option<Vec<u8>>, Vec<u8>) {
    let connection = stream.get_ref().1;
    let alpn = connection.alpn_protocol().map(<[u8]>::to_vec);
    let presented = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.as_ref().to_vec())
        .unwrap_or_default();
    (alpn, presented)
}

/// An HTTP/2 client on `io` (prior knowledge, or ALPN `h2`); its
/// connection is driven by a task of its own.
pub async fn http2_client<I>(io: I) -> hyper::Result<Http2Client>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(Http2Client(sender))
}

/// An HTTP/1.1 client on `io`, its connection driven by a task of its own.
pub async fn http1_client<I>(io: I) -> hyper::Result<Http1Client>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(Http1Client(sender))
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// The version it came in.
    pub version: http::Version,
    /// Its fields.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Answer {
    /// Its `Cache-Status` ("" if none).
    pub fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn read_whole(
    response: hyper::Result<http::Response<hyper::body::Incoming>>,
) -> anyhow::Result<Answer> {
    let response = response?;
    let status = response.status().as_u16();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        version,
        headers,
        body,
    })
}

/// An HTTP/2 connection's requests; clones share the connection.
#[derive(Clone)]
pub struct Http2Client(hyper::client::conn::http2::SendRequest<Full<Bytes>>);

impl Http2Client {
    /// `GET url` on this connection (its scheme and authority become
    /// `:scheme` and `:authority`).
    pub async fn get(&mut self, url: &str) -> anyhow::Result<Answer> {
        let request = http::Request::get(url)
            .body(Full::default())
            .expect("a request");
        self.send(request).await
    }

    /// Sends `request` (an absolute URI).
    pub async fn send(&mut self, request: http::Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        self.0.ready().await?;
        read_whole(self.0.send_request(request).await).await
    }
}

/// An HTTP/1.1 connection's requests, one at a time.
pub struct Http1Client(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl Http1Client {
    /// `GET path` with `Host: host` on this connection.
    pub async fn get(&mut self, host: &str, path: &str) -> anyhow::Result<Answer> {
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Full::default())
            .expect("a request");
        self.0.ready().await?;
        read_whole(self.0.send_request(request).await).await
    }
}
