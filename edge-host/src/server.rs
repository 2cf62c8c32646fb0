//! The HTTP trigger: accepts connections, routes each request to a
//! component instance, and shuts down gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::App;
use crate::hop_by_hop::remove_connection_fields;
use crate::state::RequestState;

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for in-flight requests to finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!("accept failed: {error}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |request| handle(app.clone(), request, peer));
                let connection = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!("connection from {peer}: {error}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    graceful.shutdown().await;
    Ok(())
}

fn plain(status: StatusCode, text: &str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<HyperOutgoingBody>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (response, component) = match dispatch(&app, request, peer).await {
        Ok((response, component)) => (response, component),
        Err((status, message, component)) => {
            if status.is_server_error() {
                tracing::error!(component, "{method} {path}: {message}");
            }
            (plain(status, &message), component)
        }
    };
    tracing::info!(
        component,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "{method} {path}"
    );
    Ok(response)
}

type Dispatched = (Response<HyperOutgoingBody>, String);
type Failure = (StatusCode, String, String);

async fn dispatch(
    app: &App,
    mut request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Dispatched, Failure> {
    let path = request.uri().path().to_owned();
    let Some(route) = app.router.route(&path) else {
        return Err((
            StatusCode::NOT_FOUND,
            "no route matches this path".into(),
            String::new(),
        ));
    };
    let component = &app.components[*route.handler];
    let component_id = component.context.id.to_string();
    let fail = |status, message: String| (status, message, component_id.clone());

    set_spin_headers(&mut request, peer, &route.matched_route, &route.path_info);

    let limits = app.limits;
    let state =
        RequestState::new(component.context.clone(), limits.max_memory_bytes).map_err(|e| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("preparing instance: {e:#}"),
            )
        })?;
    let mut store = Store::new(component.pre.engine(), state);
    store.limiter(|state| &mut state.limits);
    // Yield at every epoch tick so the time limit below can stop a guest
    // that never returns to the host.
    store.epoch_deadline_async_yield_and_update(1);
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("bad request: {e:#}")))?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let outparam = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;

    // The guest runs in its own task: it may keep working after it has sent
    // the response head (streaming the body, or background work).
    let pre = component.pre.clone();
    let id = component.context.id.clone();
    let task = tokio::spawn(async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        };
        // Dropping the future stops the guest at its next yield.
        match tokio::time::timeout(limits.request_timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(wasmtime::Error::msg(format!(
                "stopped after the {} ms request time limit",
                limits.request_timeout.as_millis()
            ))),
        }
    });

    match receiver.await {
        Ok(Ok(response)) => {
            // The client has its answer; a failure of the work the guest
            // still does (a refresh after responding) is only for the log.
            // A failure before responding is logged once, by `handle`.
            tokio::spawn(async move {
                if let Ok(Err(error)) = task.await {
                    tracing::warn!(
                        component = &*id,
                        "instance failed after responding: {error:#}"
                    );
                }
            });
            Ok((response, component_id))
        }
        Ok(Err(code)) => Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component answered with an error: {code:?}"),
        )),
        Err(_) => {
            let cause = match task.await {
                Ok(Ok(())) => "component returned without sending a response".to_owned(),
                Ok(Err(error)) => format!("component failed: {error:#}"),
                Err(error) => format!("component task failed: {error}"),
            };
            Err(fail(StatusCode::INTERNAL_SERVER_ERROR, cause))
        }
    }
}

/// Spin tells components about the request through `spin-*` headers; any a
/// client sent are replaced, so a component can trust them.
fn set_spin_headers(
    request: &mut Request<Incoming>,
    peer: SocketAddr,
    matched_route: &str,
    path_info: &str,
) {
    let headers = request.headers_mut();
    remove_connection_fields(headers);
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .to_owned();
    let base_route = matched_route.trim_end_matches("/...");
    let values = [
        ("spin-full-url", format!("http://{host}{path_and_query}")),
        ("spin-path-info", path_info.to_owned()),
        ("spin-matched-route", matched_route.to_owned()),
        ("spin-component-route", base_route.to_owned()),
        ("spin-raw-component-route", matched_route.to_owned()),
        ("spin-base-path", "/".to_owned()),
        ("spin-client-addr", peer.to_string()),
    ];
    let headers = request.headers_mut();
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}
