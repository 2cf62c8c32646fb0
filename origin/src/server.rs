//! HTTP: routing, the handlers, admin authentication and body limits.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::assets::Manifest;
use crate::caching::{self, Policy, Representation, TAG_HOME, TAG_LIST, TAG_STATIC, product_tag};
use crate::catalog::{self, Written};
use crate::db::{Db, now_ms, system_time};
use crate::product_input::{self, ProductInput};
use crate::request_params::{self, Format};
use crate::{outbox, pages, static_files};

type Body = Full<Bytes>;

/// What every request handler shares.
pub(crate) struct State {
    pub db: Db,
    pub assets: Manifest,
    pub static_dir: PathBuf,
    /// Compared as hashes: `blake3::Hash` equality is constant-time, so
    /// response timing does not reveal how much of a guess was right.
    pub admin_token: blake3::Hash,
    pub max_body_bytes: usize,
    /// Wakes the purge worker after a write commits.
    pub wake: Arc<Notify>,
}

/// Serves until `shutdown` turns true, then lets open requests finish.
pub(crate) async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors and the like: pass, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::stopping(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, request).await) }
        });
        let connection =
            graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    // Idle keep-alive connections close at once; bound the wait for busy
    // ones so a stuck client cannot hold shutdown forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = route(state, request).await;
    tracing::debug!(status = response.status().as_u16(), "{method} {path}");
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{value}\n"))));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

fn internal(error: crate::Error) -> Response<Body> {
    tracing::error!(%error, "request failed");
    self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

async fn route(state: &State, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let method = &parts.method;
    let read = method == Method::GET || method == Method::HEAD;
    let is_head = method == Method::HEAD;
    let headers = &parts.headers;

    if let Some(rest) = path.strip_prefix("/admin/") {
        return admin(state, method, rest, headers, body).await;
    }
    if !read {
        return method_not_allowed("GET, HEAD");
    }
    let response = match path {
        "/health" => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        "/" => home(state, headers).await,
        "/products" => product_list(state, parts.uri.query(), headers).await,
        "/account" => account(state, headers),
        _ => {
            let outcome = if let Some(id) = path.strip_prefix("/products/") {
                product(state, id, Format::Html).await
            } else if let Some(id) = path.strip_prefix("/api/products/") {
                product(state, id, Format::Json).await
            } else if let Some(rest) = path.strip_prefix("/static/") {
                static_asset(state, rest).await
            } else {
                Err(error(StatusCode::NOT_FOUND, "not found"))
            };
            match outcome {
                Ok(representation) => caching::respond(representation, StatusCode::OK, headers),
                Err(response) => response,
            }
        }
    };
    if is_head {
        // Headers (Content-Length included) as for GET, no body.
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Full::new(Bytes::new()));
    }
    response
}

/// A handler's outcome: a representation to send (with validators), or a
/// finished response (an error, or a 404 that is itself cacheable).
type Outcome = Result<Representation, Response<Body>>;

fn html(
    body: String,
    last_modified: std::time::SystemTime,
    policy: Policy,
    tags: Vec<String>,
) -> Representation {
    Representation {
        body: Bytes::from(body),
        content_type: "text/html; charset=utf-8".into(),
        last_modified,
        policy,
        tags,
        vary: None,
    }
}

async fn home(state: &State, headers: &HeaderMap) -> Response<Body> {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let lang = request_params::lang(cookies);
    let currency = request_params::currency(cookies);
    let loaded = state
        .db
        .read(|c| Ok((catalog::all(c)?, catalog::changed_at_ms(c)?)))
        .await;
    let (products, changed) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return internal(e),
    };
    let page = html(
        pages::home(lang, currency, &products, &state.assets),
        system_time(changed).max(state.assets.newest()),
        caching::HOME,
        vec![TAG_HOME.into()],
    );
    let mut response = caching::respond(page, StatusCode::OK, headers);
    response.headers_mut().insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    response
}

async fn product_list(state: &State, query: Option<&str>, headers: &HeaderMap) -> Response<Body> {
    let list = match request_params::list_query(query) {
        Ok(list) => list,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = request_params::format(accept);
    let query = list.clone();
    let loaded = state
        .db
        .read(move |c| Ok((catalog::list(c, &query)?, catalog::changed_at_ms(c)?)))
        .await;
    let (page, changed) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return internal(e),
    };
    let mut representation = match format {
        Format::Html => html(
            pages::product_list(&page, &list, &state.assets),
            system_time(changed).max(state.assets.newest()),
            caching::CATALOG,
            vec![TAG_LIST.into()],
        ),
        Format::Json => {
            let body = json!({
                "page": page.page,
                "per_page": page.per_page,
                "pages": page.pages(),
                "total": page.total,
                "sort": list.sort.as_str(),
                "q": list.q,
                "products": page.products,
            });
            Representation {
                body: Bytes::from(body.to_string()),
                content_type: "application/json".into(),
                last_modified: system_time(changed),
                policy: caching::CATALOG,
                tags: vec![TAG_LIST.into()],
                vary: None,
            }
        }
    };
    representation.vary = Some("Accept");
    caching::respond(representation, StatusCode::OK, headers)
}

async fn product(state: &State, id: &str, format: Format) -> Outcome {
    let id = product_input::parse_id(id).map_err(|e| error(StatusCode::BAD_REQUEST, &e.0))?;
    let found = state.db.read(move |c| catalog::get(c, id)).await;
    let product = match found {
        Ok(Some(product)) => product,
        // Cacheable briefly, and tagged so that creating the product
        // purges it.
        Ok(None) => {
            let mut response = error(StatusCode::NOT_FOUND, &format!("no product {id}"));
            let h = response.headers_mut();
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(caching::MISSING_PRODUCT.cache_control),
            );
            if let Some(cdn) = caching::MISSING_PRODUCT.cdn_cache_control {
                h.insert("cdn-cache-control", HeaderValue::from_static(cdn));
            }
            if let Ok(tag) = HeaderValue::from_str(&product_tag(id)) {
                h.insert("surrogate-key", tag);
            }
            return Err(response);
        }
        Err(e) => return Err(internal(e)),
    };
    let updated = system_time(product.updated_at_ms);
    let tags = vec![product_tag(id)];
    Ok(match format {
        Format::Html => html(
            pages::product(&product, &state.assets),
            updated.max(state.assets.newest()),
            caching::CATALOG,
            tags,
        ),
        Format::Json => Representation {
            body: Bytes::from(serde_json::to_vec(&product).unwrap_or_default()),
            content_type: "application/json".into(),
            last_modified: updated,
            policy: caching::CATALOG,
            tags,
            vary: None,
        },
    })
}

fn account(state: &State, headers: &HeaderMap) -> Response<Body> {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    // A label derived from the session: the page never echoes the secret.
    let user = request_params::cookie(cookies, "session")
        .filter(|s| !s.is_empty())
        .map(|s| format!("user-{}", &blake3::hash(s.as_bytes()).to_hex()[..8]));
    let page = html(
        pages::account(user.as_deref(), &state.assets),
        std::time::SystemTime::now(),
        caching::PRIVATE,
        Vec::new(),
    );
    caching::respond(page, StatusCode::OK, headers)
}

async fn static_asset(state: &State, rest: &str) -> Outcome {
    let tags = vec![TAG_STATIC.to_owned()];
    if rest == "manifest.json" {
        return Ok(Representation {
            body: Bytes::from(state.assets.to_json()),
            content_type: "application/json".into(),
            last_modified: state.assets.newest(),
            policy: caching::SHORT,
            tags,
            vary: None,
        });
    }
    if let Some(asset) = state.assets.by_hashed(rest) {
        return Ok(Representation {
            body: asset.bytes.clone(),
            content_type: asset.content_type.clone(),
            last_modified: asset.modified,
            policy: caching::IMMUTABLE,
            tags,
            vary: None,
        });
    }
    let file = static_files::resolve(&state.static_dir, rest)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let not_found = || error(StatusCode::NOT_FOUND, "not found");
    let meta = tokio::fs::metadata(&file).await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let bytes = tokio::fs::read(&file).await.map_err(|_| not_found())?;
    Ok(Representation {
        body: Bytes::from(bytes),
        content_type: static_files::content_type(&file),
        last_modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        policy: caching::SHORT,
        tags,
        vary: None,
    })
}

// ---- admin ----

fn authorized(state: &State, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    presented.is_some_and(|token| blake3::hash(token.as_bytes()) == state.admin_token)
}

async fn admin(
    state: &State,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Body> {
    // Authentication first: without the token, nothing about the request
    // (ids, bodies) is looked at.
    if !authorized(state, headers) {
        let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong admin token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"origin-admin\""),
        );
        return response;
    }
    match rest {
        "outbox" if method == Method::GET => match state.db.read(outbox::status).await {
            Ok(status) => json_response(StatusCode::OK, &json!(status)),
            Err(e) => internal(e),
        },
        "outbox" => method_not_allowed("GET"),
        "products" if method == Method::POST => {
            let input = match read_product(state, headers, body).await {
                Ok(input) => input,
                Err(response) => return response,
            };
            let written = state
                .db
                .write(move |c| catalog::create(c, &input, now_ms()))
                .await;
            match written {
                Ok(written) => {
                    state.wake.notify_one();
                    let mut response = written_response(StatusCode::CREATED, &written);
                    if let Some(product) = &written.product
                        && let Ok(location) =
                            HeaderValue::from_str(&format!("/api/products/{}", product.id))
                    {
                        response.headers_mut().insert(header::LOCATION, location);
                    }
                    response
                }
                Err(e) => internal(e),
            }
        }
        "products" => method_not_allowed("POST"),
        _ => {
            let Some(id) = rest.strip_prefix("products/") else {
                return error(StatusCode::NOT_FOUND, "not found");
            };
            let id = match product_input::parse_id(id) {
                Ok(id) => id,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.0),
            };
            let written = if method == Method::PUT {
                let input = match read_product(state, headers, body).await {
                    Ok(input) => input,
                    Err(response) => return response,
                };
                state
                    .db
                    .write(move |c| catalog::update(c, id, &input, now_ms()))
                    .await
            } else if method == Method::DELETE {
                state
                    .db
                    .write(move |c| catalog::delete(c, id, now_ms()))
                    .await
            } else {
                return method_not_allowed("PUT, DELETE");
            };
            match written {
                Ok(Some(written)) => {
                    state.wake.notify_one();
                    written_response(StatusCode::OK, &written)
                }
                Ok(None) => error(StatusCode::NOT_FOUND, &format!("no product {id}")),
                Err(e) => internal(e),
            }
        }
    }
}

fn written_response(status: StatusCode, written: &Written) -> Response<Body> {
    json_response(
        status,
        &json!({ "product": written.product, "purge_id": written.purge_id }),
    )
}

/// The body of an admin write: JSON, within the size limit, a valid
/// product.
async fn read_product(
    state: &State,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<ProductInput, Response<Body>> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/json") {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    let limit = state.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => return Err(error(StatusCode::BAD_REQUEST, "could not read the body")),
    };
    product_input::parse_product(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &e.0))
}
