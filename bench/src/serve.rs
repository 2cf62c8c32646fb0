//! A plain hyper HTTP/1.1 server loop with keep-alive, shared by the origin
//! and the ceiling, so the two differ only in what they answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::servers::Generated;

/// Answers a request from its head (path, query and, for ranges, headers).
pub type Handler = Arc<dyn Fn(&Parts) -> Response<Served> + Send + Sync>;

/// A response body: bytes already in memory, or one generated as it is
/// sent (the large objects, which no server here ever holds whole).
#[derive(Debug)]
pub enum Served {
    Full(Full<Bytes>),
    Generated(Generated),
}

impl From<Full<Bytes>> for Served {
    fn from(full: Full<Bytes>) -> Self {
        Served::Full(full)
    }
}

impl Body for Served {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Served::Full(full) => Pin::new(full).poll_frame(context),
            Served::Generated(generated) => Poll::Ready(generated.next_frame().map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Served::Full(full) => full.is_end_stream(),
            Served::Generated(generated) => generated.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Served::Full(full) => full.size_hint(),
            Served::Generated(generated) => SizeHint::with_exact(generated.remaining()),
        }
    }
}

/// Serves `handler` on `addr` until the process is killed, on a tokio
/// runtime with one worker per core (what hyper servers use in production).
pub fn run(name: &str, addr: SocketAddr, handler: Handler) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: cannot listen on {addr}: {e}"))?;
        eprintln!("{name}: listening on http://{}", listener.local_addr()?);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                // Out of descriptors and the like: keep serving the others.
                Err(error) => {
                    eprintln!("{name}: accept: {error}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        // Read any request body so the connection stays reusable.
                        let _ = body.collect().await;
                        Ok::<_, Infallible>(handler(&parts))
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
