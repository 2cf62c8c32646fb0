//! A plain hyper HTTP/1.1 server loop with keep-alive, shared by the origin
//! and the ceiling, so the two differ only in what they answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Answers a request from its path and query.
pub type Handler = Arc<dyn Fn(&str, Option<&str>) -> Response<Full<Bytes>> + Send + Sync>;

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
                        Ok::<_, Infallible>(handler(parts.uri.path(), parts.uri.query()))
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
