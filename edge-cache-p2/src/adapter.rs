//! The Spin adapter (WASI 0.2, `spin-sdk` 5): the only module that talks to
//! the host. It implements the flow's [`Store`], [`Origin`] and [`Clock`]
//! with Spin key-value and `wasi:http`, and relays the flow's answer.

use std::time::{Duration, SystemTime};

use http::Method as HttpMethod;
use spin_sdk::http::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use spin_sdk::key_value;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{OutgoingBody, RequestOptions};

use edge_cache::config::{EdgeConfig, OriginAddress};
use edge_cache::edge::{Edge, NamedOrigin};
use edge_cache::flow::answer::{body_too_large, misconfigured, plain_text, unreadable_body};
use edge_cache::http::header_list::{from_pairs, to_pairs};
use edge_cache::origin::failure::{
    BODY_BROKE_OFF, CONNECTION_FAILED, OriginFailure, REQUEST_NOT_SENT,
};
use edge_cache::policy::rules::CacheRules;
use edge_cache::purge::api::Admission;
use edge_cache::seams::{
    Body, ClientRequest, Clock, Origin, OriginRequest, Response, Store, StoreFailure,
};
use edge_cache::spin_metadata::split_fields;
use edge_cache::store::shared_state::SharedState;

/// `blocking-write-and-flush` accepts at most this many bytes per call.
const WRITE_CHUNK: usize = 4096;

#[spin_sdk::http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let config = match EdgeConfig::from_variables(variable) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("edge-cache: configuration error: {error}");
            let reply = misconfigured(&error);
            send_reply(response_out, reply).await;
            return;
        }
    };
    // Invalidation state in the shared store where `shared_store` names
    // one. A fresh instance per request remembers nothing between
    // requests, so this flavour reads it from there on every lookup.
    let store = SharedState::new(
        SpinStore::open(&config.store_name),
        config.shared_store.as_deref().map(SpinStore::open),
        SystemClock,
        config.purge_staleness,
    )
    .with_shield(config.shield_store.as_deref().map(SpinStore::open));
    let rules = load_rules(&config, store.local()).await;
    let primary = SpinOrigin {
        address: &config.origin,
        config: &config,
    };
    let backup = config.backup_origin.as_ref().map(|address| SpinOrigin {
        address,
        config: &config,
    });
    // Only the concurrency cap needs an id; most requests never fetch, so
    // the host call is skipped when there is no cap.
    let lease_id = match config.protection.max_concurrent {
        Some(_) => wasi::random::random::get_random_u64(),
        None => 0,
    };
    let edge = Edge::new(
        &config,
        rules.as_ref(),
        &store,
        NamedOrigin {
            name: config.origin.authority.as_str(),
            origin: &primary,
        },
        backup.as_ref().map(|origin| NamedOrigin {
            name: origin.address.authority.as_str(),
            origin,
        }),
        &SystemClock,
        lease_id,
    );
    let client_request = match read_request(request, &edge) {
        Ok(request) => request,
        Err(reply) => {
            send_reply(response_out, reply).await;
            return;
        }
    };
    let (response, refresh) = edge.handle(client_request).await;
    send_reply(response_out, response).await;
    // WASI 0.2 lets the handler keep running after the response is done:
    // stale-while-revalidate refreshes happen here, off the client's path.
    if let Some(refresh) = refresh {
        edge.refresh(refresh).await;
    }
}

fn variable(name: &'static str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

/// Loads the rules file; a broken one is reported (once per distinct
/// error, remembered in the store) and the edge proxies without caching.
async fn load_rules(config: &EdgeConfig, store: &SpinStore) -> Option<CacheRules> {
    let parsed = CacheRules::load(&config.cache_rules, |path| std::fs::read_to_string(path));
    match parsed {
        Ok(rules) => Some(rules),
        Err(message) => {
            let marker = edge_cache::store::rules_error_key(&message);
            if !matches!(store.get(&marker).await, Ok(Some(_))) {
                eprintln!("edge-cache: {message}; caching is off until it is fixed");
                let _ = store.set(&marker, b"1").await;
            }
            None
        }
    }
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Only collapsed misses pause, and a WASI 0.2 instance serves one
    /// request, so this never runs; it would block the instance, as every
    /// WASI 0.2 host call does.
    async fn pause(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// The Spin key-value store; a store that fails to open fails every call,
/// which the flow treats as "bypass the cache".
struct SpinStore(Result<key_value::Store, String>);

impl SpinStore {
    fn open(label: &str) -> Self {
        SpinStore(key_value::Store::open(label).map_err(|e| format!("open {label}: {e}")))
    }

    fn store(&self) -> Result<&key_value::Store, StoreFailure> {
        self.0.as_ref().map_err(|e| StoreFailure(e.clone()))
    }
}

impl Store for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.store()?
            .get(key)
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.store()?
            .set(key, value)
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.store()?
            .delete(key)
            .map_err(|e| StoreFailure(e.to_string()))
    }
}

struct SpinOrigin<'a> {
    address: &'a OriginAddress,
    config: &'a EdgeConfig,
}

impl Origin for SpinOrigin<'_> {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        send_to_origin(self.address, self.config, request)
    }
}

/// Reads the request head, lets the flow refuse it from the head alone,
/// then reads the body up to the limit the flow set.
fn read_request<S: Store, O: Origin, C: Clock>(
    request: IncomingRequest,
    edge: &Edge<'_, S, O, C>,
) -> Result<ClientRequest, Response> {
    let method = HttpMethod::from_bytes(method_name(&request.method()).as_bytes())
        .map_err(|_| plain_text(400, "unsupported method\n".into()))?;
    let (headers, connection) = split_fields(request.headers().entries());
    let path_and_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    let body = match edge.admit(&method, &path_and_query, &headers) {
        Admission::Answer(response) => return Err(response),
        Admission::NoBody => Body::empty(),
        Admission::ReadBody { limit } => read_request_body(request, limit)?,
    };
    Ok(ClientRequest {
        method,
        path_and_query,
        headers,
        connection,
        body,
    })
}

/// The request body, refused with `413` as soon as it passes `limit`.
fn read_request_body(request: IncomingRequest, limit: Option<usize>) -> Result<Body, Response> {
    let unreadable = |detail: String| {
        eprintln!("edge-cache: request body unreadable: {detail}");
        unreadable_body()
    };
    let body = request
        .consume()
        .map_err(|()| unreadable("already consumed".into()))?;
    let stream = body.stream().map_err(|()| unreadable("no stream".into()))?;
    match read_stream(&stream, limit) {
        Ok(bytes) => Ok(bytes.into()),
        Err(StreamEnd::OverLimit(limit)) => Err(body_too_large(limit)),
        Err(StreamEnd::Failed(detail)) => Err(unreadable(detail)),
    }
}

/// Why a body stream stopped before its end.
enum StreamEnd {
    /// It went past this many bytes.
    OverLimit(usize),
    /// The host reported this error.
    Failed(String),
}

/// Reads `stream` to its end, stopping once it passes `limit` bytes.
fn read_stream(
    stream: &wasi::io::streams::InputStream,
    limit: Option<usize>,
) -> Result<Vec<u8>, StreamEnd> {
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => return Ok(out),
            Err(wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                return Err(StreamEnd::Failed(e.to_debug_string()));
            }
        }
        if let Some(limit) = limit
            && out.len() > limit
        {
            return Err(StreamEnd::OverLimit(limit));
        }
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

fn wit_method(method: &HttpMethod) -> Method {
    match *method {
        HttpMethod::GET => Method::Get,
        HttpMethod::HEAD => Method::Head,
        HttpMethod::POST => Method::Post,
        HttpMethod::PUT => Method::Put,
        HttpMethod::DELETE => Method::Delete,
        HttpMethod::CONNECT => Method::Connect,
        HttpMethod::OPTIONS => Method::Options,
        HttpMethod::TRACE => Method::Trace,
        HttpMethod::PATCH => Method::Patch,
        ref other => Method::Other(other.as_str().to_owned()),
    }
}

fn send_to_origin(
    address: &OriginAddress,
    config: &EdgeConfig,
    request: OriginRequest,
) -> Result<Response, OriginFailure> {
    let authority = address.authority.as_str();
    let not_sent = |what: &str| {
        eprintln!("edge-cache: origin {authority}: {what}");
        OriginFailure::Protocol(REQUEST_NOT_SENT)
    };
    let fields = Fields::from_list(&to_pairs(&request.headers))
        .map_err(|e| not_sent(&format!("request headers rejected by the host: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let scheme = if address.scheme == http::uri::Scheme::HTTPS {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let target = address.target_for(&request.target);
    let parts_set = outgoing.set_method(&wit_method(&request.method)).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing
            .set_authority(Some(address.authority.as_str()))
            .is_ok()
        && outgoing.set_path_with_query(Some(&target)).is_ok();
    if !parts_set {
        return Err(not_sent("request line rejected by the host"));
    }

    let options = RequestOptions::new();
    let timeout = nanos(config.origin_timeout);
    // The host may not support every option; an unsupported one is ignored.
    let _ = options.set_connect_timeout(Some(nanos(config.connect_timeout)));
    let _ = options.set_first_byte_timeout(Some(timeout));
    let _ = options.set_between_bytes_timeout(Some(timeout));

    let outgoing_body = outgoing
        .body()
        .map_err(|()| not_sent("request body unavailable"))?;
    let pending = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|code| failed(authority, code, config))?;
    write_body(authority, outgoing_body, request.body.as_slice())?;

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(authority, code, config)),
        Some(Err(())) | None => {
            eprintln!("edge-cache: origin {authority}: response future failed");
            return Err(OriginFailure::Protocol(CONNECTION_FAILED));
        }
    };
    let status = response.status();
    let headers = from_pairs(&response.headers().entries());
    let body = read_body(authority, response, config.origin_timeout)?;
    Ok(Response {
        status,
        headers,
        body: body.into(),
    })
}

fn read_body(
    authority: &str,
    response: spin_sdk::http::IncomingResponse,
    timeout: Duration,
) -> Result<Vec<u8>, OriginFailure> {
    let broken = |detail: &str| {
        eprintln!("edge-cache: origin {authority}: response body broke off: {detail}");
        OriginFailure::Protocol(BODY_BROKE_OFF)
    };
    let body = response.consume().map_err(|()| broken("no body"))?;
    let read = {
        let stream = body.stream().map_err(|()| broken("no stream"))?;
        read_stream(&stream, None)
    };
    let out = match read {
        Ok(bytes) => bytes,
        Err(StreamEnd::Failed(detail))
            if detail.contains("timeout") || detail.contains("Timeout") =>
        {
            return Err(OriginFailure::TimedOut(timeout));
        }
        Err(StreamEnd::Failed(detail)) => return Err(broken(&detail)),
        Err(StreamEnd::OverLimit(limit)) => return Err(broken(&format!("over {limit} bytes"))),
    };
    drop(spin_sdk::wit::wasi::http0_2_0::types::IncomingBody::finish(
        body,
    ));
    Ok(out)
}

fn write_body(authority: &str, outgoing: OutgoingBody, body: &[u8]) -> Result<(), OriginFailure> {
    let broken = |detail: String| {
        eprintln!("edge-cache: origin {authority}: sending the request body: {detail}");
        OriginFailure::Protocol(REQUEST_NOT_SENT)
    };
    {
        let stream = outgoing.write().map_err(|()| broken("no stream".into()))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| broken(format!("{e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| broken(format!("{e:?}")))
}

/// What `code` means for the client, in words; the code itself, with its
/// payload, goes to the log when the words leave something out.
fn failed(authority: &str, code: ErrorCode, config: &EdgeConfig) -> OriginFailure {
    let failure = edge_cache::origin_failure_of!(&code, config, ErrorCode);
    if matches!(
        failure,
        OriginFailure::Unreachable(_) | OriginFailure::Protocol(_)
    ) {
        eprintln!("edge-cache: origin {authority}: {code:?}");
    }
    failure
}

async fn send_reply(response_out: ResponseOutparam, reply: Response) {
    let fields = match Fields::from_list(&to_pairs(&reply.headers)) {
        Ok(fields) => fields,
        Err(error) => {
            eprintln!("edge-cache: response headers rejected by the host: {error:?}");
            Fields::new()
        }
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(reply.status).is_err() {
        let _ = response.set_status_code(502);
    }
    if let Err(error) = response_out
        .set_with_body(response, Vec::from(reply.body.into_bytes()))
        .await
    {
        eprintln!("edge-cache: client went away while sending the body: {error:?}");
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
