//! The origin's HTTP server.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::static_files;

/// Origin settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// The directory served under `/static/` (and `/` for its files).
    pub static_dir: PathBuf,
}

type Body = Full<Bytes>;

/// Serves until the listener fails; each connection in its own task.
pub async fn serve(config: OriginConfig, listener: TcpListener) -> std::io::Result<()> {
    let config = Arc::new(config);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let config = config.clone();
                async move { Ok::<_, Infallible>(handle(&config, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(format!("{body}\n"))))
        .expect("static response parts are valid")
}

async fn handle(config: &OriginConfig, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let response = route(config, &request, &path).await;
    tracing::info!(
        status = response.status().as_u16(),
        "{} {}",
        request.method(),
        path
    );
    response
}

async fn route(config: &OriginConfig, request: &Request<Incoming>, path: &str) -> Response<Body> {
    let is_head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !is_head {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/health" {
        return text(StatusCode::OK, "ok");
    }
    let relative = path.strip_prefix("/static/").unwrap_or(path);
    let relative = if relative == "/" {
        "index.html"
    } else {
        relative
    };
    let mut response = serve_static(config, request, relative).await;
    if is_head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

async fn serve_static(
    config: &OriginConfig,
    request: &Request<Incoming>,
    relative: &str,
) -> Response<Body> {
    let file = match static_files::resolve(&config.static_dir, relative) {
        Ok(file) => file,
        Err(error) => return text(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let (bytes, modified) = match tokio::fs::metadata(&file).await {
        Ok(meta) if meta.is_file() => match tokio::fs::read(&file).await {
            Ok(bytes) => (bytes, meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
            Err(_) => return text(StatusCode::NOT_FOUND, "not found"),
        },
        _ => return text(StatusCode::NOT_FOUND, "not found"),
    };
    let etag = static_files::entity_tag(&bytes);
    let header_text = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, static_files::last_modified(modified))
        .header(header::CACHE_CONTROL, static_files::STATIC_CACHE_CONTROL);
    let unchanged = static_files::not_modified(
        &etag,
        modified,
        header_text(header::IF_NONE_MATCH),
        header_text(header::IF_MODIFIED_SINCE),
    );
    let response = if unchanged {
        builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Full::new(Bytes::new()))
    } else {
        builder
            .header(header::CONTENT_TYPE, static_files::content_type(&file))
            .body(Full::new(Bytes::from(bytes)))
    };
    response.unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"))
}
