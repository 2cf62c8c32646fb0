//! The Spin adapter (WASI 0.3, `spin-sdk` 7): the only module that talks to
//! the host. It implements the core's [`Store`], [`Origin`] and [`Clock`]
//! over Spin's async key-value and `wasi:http` client, and relays the
//! pipeline's answer.
//!
//! One instance serves many requests, some at once. What does not change
//! between them is computed once per instance ([`Instance`]): the
//! configuration, the parsed rules and the opened store. A changed rules
//! file or variable is picked up by the next instance; the host retires
//! instances after a bounded number of requests or an idle timeout, which
//! bounds how long an old one lives. Nothing request-specific is kept.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Limited};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::key_value;
use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::client;
use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields, RequestOptions, Scheme};
use spin_sdk::wasip3::http_compat::IncomingRequestBody;
use spin_sdk::wasip3::wit_bindgen::{FutureReader, StreamReader, StreamResult};
use spin_sdk::wasip3::{wit_future, wit_stream};

use edge_cache::collapse::Collapser;
use edge_cache::config::{ConfigError, EdgeConfig, OriginAddress, VARIABLES};
use edge_cache::edge::{Edge, NamedOrigin};
use edge_cache::flow::answer::{body_too_large, misconfigured, plain_text, unreadable_body};
use edge_cache::http::header_list::{from_pairs, to_pairs};
use edge_cache::origin::failure::{BODY_BROKE_OFF, OriginFailure, REQUEST_NOT_SENT};
use edge_cache::policy::rules::CacheRules;
use edge_cache::purge::api::Admission;
use edge_cache::seams::{
    Body, ClientRequest, Clock, Origin, OriginRequest, Response, Store, StoreFailure,
};
use edge_cache::spin_metadata::split_fields;
use edge_cache::store::l1::{L1, l1_for};
use edge_cache::store::shared_state::SharedState;

/// What an instance computes once and every request it serves shares.
struct Instance {
    config: EdgeConfig,
    /// `None`: the rules file is broken (logged once per instance); the
    /// edge proxies without caching.
    rules: Option<CacheRules>,
    /// The entries' store, with invalidation state in the shared store
    /// where `shared_store` names one.
    store: NodeStore,
    /// Hot entries in this instance's memory, in front of the store.
    l1: Option<L1>,
    /// Concurrent misses of one key in this instance wait for one fill.
    collapser: Collapser,
}

thread_local! {
    /// The instance's shared state, set by its first request. WASI 0.3
    /// components are single-threaded: concurrent requests interleave at
    /// await points on this one thread.
    static INSTANCE: RefCell<Option<Rc<Instance>>> = const { RefCell::new(None) };
}

/// This instance's state, prepared on first use. A configuration error is
/// not kept, so a request after the variable is fixed sees the fix.
async fn instance() -> Result<Rc<Instance>, ConfigError> {
    if let Some(ready) = INSTANCE.with(|cell| cell.borrow().clone()) {
        return Ok(ready);
    }
    let mut values = HashMap::new();
    for name in VARIABLES {
        if let Ok(value) = spin_sdk::variables::get(name).await {
            values.insert(name, value);
        }
    }
    let config = EdgeConfig::from_variables(|name| values.get(name).cloned())?;
    let rules = load_rules(&config);
    let shared = match &config.shared_store {
        Some(label) => {
            let store = SpinStore::open(label).await;
            // Not fatal (the edge still answers, from the origin), but
            // nothing stored can be validated without it: say so once.
            if let Err(error) = &store.0 {
                eprintln!(
                    "edge-cache: shared_store `{label}` cannot be opened ({error}); \
                     stored responses are revalidated with the origin until it can"
                );
            }
            Some(store)
        }
        None => None,
    };
    let shield = match &config.shield_store {
        Some(label) => Some(SpinStore::open(label).await),
        None => None,
    };
    let store = SharedState::new(
        SpinStore::open(&config.store_name).await,
        shared,
        SystemClock,
        config.purge_staleness,
    )
    .with_shield(shield);
    let l1 = l1_for(config.l1_capacity_bytes);
    let ready = Rc::new(Instance {
        config,
        rules,
        store,
        l1,
        collapser: Collapser::default(),
    });
    // Two first requests may race to here; either result is the same.
    INSTANCE.with(|cell| *cell.borrow_mut() = Some(ready.clone()));
    Ok(ready)
}

/// Reads and parses the rules file; a broken one is logged (once per
/// instance) and the edge proxies without caching.
fn load_rules(config: &EdgeConfig) -> Option<CacheRules> {
    let parsed = CacheRules::load(&config.cache_rules, |path| std::fs::read_to_string(path));
    match parsed {
        Ok(rules) => Some(rules),
        Err(message) => {
            eprintln!("edge-cache: {message}; caching is off until it is fixed");
            None
        }
    }
}

/// The component's `wasi:http` handler. It speaks the `wasi:http` types
/// directly rather than through spin-sdk's `#[http_service]`, which turns
/// every request into an `http::Request` (each of the host's `spin-*`
/// fields parsed, the target rebuilt as a `Uri`, a body handle made) and
/// every response back (the header map cloned, the body sent through a
/// generic `http_body` writer). The hit path needs neither.
struct Component;

spin_sdk::wasip3::http::service::export!(Component);

impl Guest for Component {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        reply(handle(request).await)
    }
}

async fn handle(request: types::Request) -> Response {
    let instance = match instance().await {
        Ok(instance) => instance,
        Err(error) => {
            eprintln!("edge-cache: configuration error: {error}");
            return misconfigured(&error);
        }
    };
    let primary = primary_origin(&instance);
    let backup = backup_origin(&instance);
    let edge = edge_over(&instance, &primary, backup.as_ref());
    let client_request = match read_request(request, &edge).await {
        Ok(request) => request,
        Err(answer) => return answer,
    };
    let (response, refresh) = edge.handle(client_request).await;
    // The refresh runs after the response is returned, in this instance,
    // off the client's path (stale-while-revalidate).
    if let Some(refresh) = refresh {
        let instance = instance.clone();
        spin_sdk::wasip3::spawn(async move {
            let primary = primary_origin(&instance);
            let backup = backup_origin(&instance);
            let edge = edge_over(&instance, &primary, backup.as_ref());
            edge.refresh(refresh).await;
        });
    }
    response
}

fn primary_origin(instance: &Instance) -> SpinOrigin<'_> {
    SpinOrigin {
        address: &instance.config.origin,
        config: &instance.config,
    }
}

fn backup_origin(instance: &Instance) -> Option<SpinOrigin<'_>> {
    let config = &instance.config;
    config
        .backup_origin
        .as_ref()
        .map(|address| SpinOrigin { address, config })
}

fn lease_id(config: &EdgeConfig) -> u64 {
    // Only the concurrency cap needs an id; most requests never fetch, so
    // the host call is skipped when there is no cap.
    match config.protection.max_concurrent {
        Some(_) => spin_sdk::wasip3::random::random::get_random_u64(),
        None => 0,
    }
}

fn edge_over<'a>(
    instance: &'a Instance,
    primary: &'a SpinOrigin<'a>,
    backup: Option<&'a SpinOrigin<'a>>,
) -> Edge<'a, NodeStore, SpinOrigin<'a>, SystemClock> {
    let config = &instance.config;
    Edge::new(
        config,
        instance.rules.as_ref(),
        &instance.store,
        NamedOrigin {
            name: config.origin.authority.as_str(),
            origin: primary,
        },
        backup.map(|origin| NamedOrigin {
            name: origin.address.authority.as_str(),
            origin,
        }),
        &SystemClock,
        lease_id(config),
    )
    .with_instance_state(instance.l1.as_ref(), &instance.collapser)
}

/// Reads the request head, lets the pipeline refuse it from the head
/// alone, then reads the body up to the limit it set.
async fn read_request<S: Store, O: Origin, C: Clock>(
    request: types::Request,
    edge: &Edge<'_, S, O, C>,
) -> Result<ClientRequest, Response> {
    let method = http::Method::try_from(request.get_method())
        .map_err(|_| plain_text(400, "bad request: invalid method\n".to_owned()))?;
    let path_and_query = request
        .get_path_with_query()
        .unwrap_or_else(|| "/".to_owned());
    let (headers, mut connection) = split_fields(request.get_headers().copy_all());
    // WASI 0.3 carries the authority in the target, not in `Host`.
    if connection.host.is_none()
        && let Some(authority) = request.get_authority()
    {
        let scheme = match request.get_scheme() {
            Some(Scheme::Https) => "https",
            _ => "http",
        };
        connection.host = Some(edge_cache::policy::target::canonical_host(
            scheme, &authority,
        ));
    }
    let body = match edge.admit(&method, &path_and_query, &headers) {
        Admission::Answer(response) => return Err(response),
        Admission::NoBody => Body::empty(),
        Admission::ReadBody { limit } => {
            let body = IncomingRequestBody::new(request).map_err(|code| {
                eprintln!("edge-cache: request body unavailable: {code:?}");
                unreadable_body()
            })?;
            read_request_body(body, limit).await?
        }
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
async fn read_request_body(
    body: IncomingRequestBody,
    limit: Option<usize>,
) -> Result<Body, Response> {
    let unreadable = |detail: String| {
        eprintln!("edge-cache: request body unreadable: {detail}");
        unreadable_body()
    };
    let body = match limit {
        Some(limit) => match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(body_too_large(limit));
            }
            Err(error) => return Err(unreadable(error.to_string())),
        },
        None => body
            .bytes()
            .await
            .map_err(|e| unreadable(format!("{e:?}")))?,
    };
    Ok(Body::Full(body))
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    async fn pause(&self, duration: Duration) {
        spin_sdk::wasip3::clocks::monotonic_clock::wait_for(nanos(duration)).await;
    }
}

/// The store an instance serves from (see `edge_cache::store::shared_state`).
type NodeStore = SharedState<SpinStore, SystemClock>;

/// The Spin key-value store; a store that fails to open fails every call,
/// which the pipeline treats as "bypass the cache".
struct SpinStore(Result<key_value::Store, String>);

impl SpinStore {
    async fn open(label: &str) -> Self {
        let opened = key_value::Store::open(label).await;
        SpinStore(opened.map_err(|e| format!("open {label}: {e}")))
    }

    fn store(&self) -> Result<&key_value::Store, StoreFailure> {
        self.0.as_ref().map_err(|e| StoreFailure(e.clone()))
    }
}

impl Store for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        let store = self.store()?;
        store
            .get(key)
            .await
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        let store = self.store()?;
        store
            .set(key, value)
            .await
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        let store = self.store()?;
        store
            .delete(key)
            .await
            .map_err(|e| StoreFailure(e.to_string()))
    }
}

struct SpinOrigin<'a> {
    address: &'a OriginAddress,
    config: &'a EdgeConfig,
}

/// The most a response body's buffer is sized to up front from its
/// `Content-Length` (a larger body grows it as it arrives; a false length
/// reserves no more than this).
const BODY_CAPACITY_UP_FRONT: usize = 1 << 20;

/// What a read asks for when the buffer is full (the host's frames are at
/// most this large in practice).
const BODY_READ_SIZE: usize = 16 * 1024;

impl Origin for SpinOrigin<'_> {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        // A HEAD's `Content-Length` describes a body that is not sent.
        let bodiless = request.method == http::Method::HEAD;
        let outgoing = self.outgoing(request)?;
        let response = client::send(outgoing)
            .await
            .map_err(|code| failed(code, self))?;
        read_response(response, bodiless, self).await
    }
}

impl SpinOrigin<'_> {
    /// The request in `wasi:http` types, without spin-sdk's `http::Request`
    /// conversion: one field list (the pipeline already dropped `Host` and
    /// the hop-by-hop fields the host forbids), the origin's authority, and
    /// a body stream only when there is a body. A fill's GET has none, so
    /// no task writes an empty body and the host has no stream to drain.
    fn outgoing(&self, request: OriginRequest) -> Result<types::Request, OriginFailure> {
        let refused = |what: String| {
            eprintln!(
                "edge-cache: origin {}: the host refused the request's {what}",
                self.address.authority
            );
            OriginFailure::Protocol(REQUEST_NOT_SENT)
        };
        let fields = Fields::from_list(&to_pairs(&request.headers))
            .map_err(|e| refused(format!("fields ({e:?})")))?;
        let config = self.config;
        let options = RequestOptions::new();
        let timeout = nanos(config.origin_timeout);
        // The host may not support every option; an unsupported one is ignored.
        let _ = options.set_connect_timeout(Some(nanos(config.connect_timeout)));
        let _ = options.set_first_byte_timeout(Some(timeout));
        let _ = options.set_between_bytes_timeout(Some(timeout));
        let (outgoing, _sent) = types::Request::new(
            fields,
            body_stream(request.body),
            no_trailers(),
            Some(options),
        );
        let address = self.address;
        outgoing
            .set_method(&request.method.into())
            .map_err(|()| refused("method".into()))?;
        outgoing
            .set_scheme(Some(&(&address.scheme).into()))
            .map_err(|()| refused("scheme".into()))?;
        outgoing
            .set_authority(Some(address.authority.as_str()))
            .map_err(|()| refused("authority".into()))?;
        outgoing
            .set_path_with_query(Some(&address.target_for(&request.target)))
            .map_err(|()| refused("target".into()))?;
        Ok(outgoing)
    }
}

/// The origin's response, its body read whole into one buffer sized from
/// its `Content-Length` (unless the request was `bodiless`); a body that
/// breaks off is the error the host gives for it.
async fn read_response(
    response: types::Response,
    bodiless: bool,
    origin: &SpinOrigin<'_>,
) -> Result<Response, OriginFailure> {
    let status = response.get_status_code();
    let headers = from_pairs(&response.get_headers().copy_all());
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .filter(|_| !bodiless && !matches!(status, 204 | 304))
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    // Resolved (as read) when dropped, once the body has been read.
    let (_read, done) = wit_future::new(|| Ok(()));
    let (mut contents, trailers) = types::Response::consume_body(response, done);
    let mut body = Vec::with_capacity(declared.min(BODY_CAPACITY_UP_FRONT));
    loop {
        if body.len() == body.capacity() {
            body.reserve(BODY_READ_SIZE);
        }
        let (result, filled) = contents.read(body).await;
        body = filled;
        match result {
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    if let Err(code) = trailers.await {
        return Err(match failed(code, origin) {
            OriginFailure::Protocol(_) => OriginFailure::Protocol(BODY_BROKE_OFF),
            other => other,
        });
    }
    Ok(Response {
        status,
        headers,
        body: body.into(),
    })
}

/// A message's trailers as the host reads them: none (the writer's end is
/// dropped unwritten, so the host reads the default).
fn no_trailers() -> FutureReader<Result<Option<Fields>, ErrorCode>> {
    wit_future::new(|| Ok(None)).1
}

/// A body as a stream the host reads, written by a task of its own; none
/// for an empty body.
fn body_stream(body: Body) -> Option<StreamReader<u8>> {
    (!body.is_empty()).then(|| {
        // The host's stream takes a buffer of its own: the one place the
        // content is copied, unless this answer is its only holder.
        let body = Vec::from(body.into_bytes());
        let (mut writer, reader) = wit_stream::new::<u8>();
        spin_sdk::wasip3::spawn(async move {
            // A reader that went away leaves the rest unwritten.
            let _ = writer.write_all(body).await;
        });
        reader
    })
}

/// What `code` from `origin` means for the client, in words; the code
/// itself, with its payload, goes to the log when the words leave
/// something out.
fn failed(code: ErrorCode, origin: &SpinOrigin<'_>) -> OriginFailure {
    let failure = edge_cache::origin_failure_of!(&code, origin.config, ErrorCode);
    if matches!(
        failure,
        OriginFailure::Unreachable(_) | OriginFailure::Protocol(_)
    ) {
        eprintln!("edge-cache: origin {}: {code:?}", origin.address.authority);
    }
    failure
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The pipeline's answer as the host's response: its fields in one list,
/// its body (if any) written by a task of its own once the host reads it,
/// and no trailers.
fn reply(answer: Response) -> Result<types::Response, ErrorCode> {
    let fields = Fields::from_list(&to_pairs(&answer.headers))
        .map_err(|e| ErrorCode::InternalError(Some(format!("response fields: {e:?}"))))?;
    let (response, _sent) = types::Response::new(fields, body_stream(answer.body), no_trailers());
    // A status the host refuses (outside 100-999) answers as a bad gateway.
    if response.set_status_code(answer.status).is_err() {
        let _ = response.set_status_code(502);
    }
    Ok(response)
}
