//! The front door: a [`Node`] is everything one instance serves with,
//! built once from its [`Host`] (variables, stores, origins, clock,
//! randomness, files) and then asked to [`admit`](Node::admit),
//! [`handle`](Node::handle) and [`refresh`](Node::refresh) requests. An
//! adapter implements [`Host`] over its SDK and translates `wasi:http`
//! messages; every decision about wiring (which store holds what, the
//! origins behind their guards, the rules and how their errors are
//! reported) is made here, once for both flavours.

use std::collections::HashMap;
use std::rc::Rc;

use http::HeaderMap;

use crate::collapse::Collapser;
use crate::config::last_good_rules::{RulesInUse, RulesRecord, decide};
use crate::config::{
    EdgeConfig, HostVerdict, OriginAddress, OriginEndpoint, RulesSource, VARIABLES,
};
use crate::flow::{Flow, Refresh};
use crate::origin::failover::FailoverOrigin;
use crate::origin::guard::{CleanBreakerRead, GuardedOrigin};
use crate::policy::forwarding::client_scheme;
use crate::policy::rules::CacheRules;
use crate::purge::api::{Admission, PurgeRoute, PurgeSettings};
use crate::reply::{body_too_large, misconfigured, plain_text, unreadable_body};
use crate::seams::{
    Body, BodyError, ClientConnection, ClientRequest, Clock, KeyValueStore, Origin, OriginFailure,
    OriginRequest, RequestBody, RequestHead, Response, StoreFailure,
};
use crate::store::chunk_read::{StoreHandles, StoredRange};
use crate::store::keys::{NodeLocalKey, Store};
use crate::store::l1::l1_for;
use crate::store::shared_state::SharedState;

/// What a host gives the edge. The WASI 0.2 and 0.3 adapters each
/// implement it over their SDK; the unit tests over fakes.
#[allow(async_fn_in_trait)]
pub trait Host {
    /// A key-value store (Spin key-value).
    type Store: KeyValueStore + 'static;
    /// An origin the host can send requests to (`wasi:http` outgoing).
    type Origin: Origin;
    /// The clock ages, purge times and leases are read from.
    type Clock: Clock + 'static;
    /// Whether one instance serves many requests (WASI 0.3 with instance
    /// reuse). Then it keeps a first tier and collapses concurrent misses.
    const INSTANCES_OUTLIVE_REQUESTS: bool;
    /// The value of the Spin variable `name`, if it is set.
    async fn variable(&self, name: &'static str) -> Option<String>;
    /// The key-value store labelled `label`, or why it cannot be opened.
    async fn open_store(&self, label: &str) -> Result<Self::Store, String>;
    /// An origin at `endpoint`.
    fn origin(&self, endpoint: OriginEndpoint) -> Self::Origin;
    /// One of its clocks (the node keeps two: its own and its store's).
    fn clock(&self) -> Self::Clock;
    /// A random number: the concurrency cap's lease ids, unique among
    /// concurrent requests.
    fn random_u64(&self) -> u64;
    /// The text of the file at `path` in the component's filesystem.
    fn read_file(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// A fresh hit answered by [`Node::fresh_hit`].
#[derive(Debug)]
pub struct FreshHit {
    /// The answer; its body is empty where `chunks` are to be sent.
    pub response: Response,
    /// A chunked object's bytes to send after the head, which the caller
    /// reads from the store: the first chunk before it answers (a missing
    /// one is the node's to handle: `serve`), each checked by
    /// [`StoredRange::take`].
    pub chunks: Option<StoredBody>,
}

/// Where a fresh hit's chunks are and which of their bytes to send.
#[derive(Debug)]
pub struct StoredBody {
    /// The label of the store holding them.
    pub store: String,
    pub range: StoredRange,
}

/// The store a node serves from: entries in its own store, purge state in
/// the shared one where configured, a shield behind (see `store`).
type NodeStore<H> = SharedState<Opened<<H as Host>::Store>, <H as Host>::Clock>;

/// Everything an instance serves with, built once.
pub struct Node<H: Host> {
    host: H,
    config: EdgeConfig,
    /// `None`: the rules are broken and none ever loaded on this node
    /// (reported); the edge proxies without caching.
    rules: Option<CacheRules>,
    /// `None`: no purge token, the API is off.
    purge: Option<PurgeSettings>,
    /// The stores, clock and first tier, shared with bodies that outlive a
    /// request's flow (a stored object read, a large fill written).
    handles: StoreHandles<NodeStore<H>, H::Clock>,
    primary: H::Origin,
    backup: Option<H::Origin>,
    /// Hot entries in the instance's memory, where instances outlive
    /// requests.
    /// Concurrent misses of one key wait for one fill, where requests
    /// share an instance.
    collapser: Option<Collapser>,
    /// The last clean readings of the primary's and the backup's breakers.
    primary_breaker: CleanBreakerRead,
    backup_breaker: CleanBreakerRead,
}

impl<H: Host> Node<H> {
    /// Reads the configuration, opens the stores, loads the rules. A
    /// configuration the edge cannot run with is logged, and every
    /// request is to be answered with the `Err` until it is fixed.
    pub async fn new(host: H) -> Result<Node<H>, Response> {
        let mut values = HashMap::new();
        for name in VARIABLES {
            if let Some(value) = host.variable(name).await {
                values.insert(name, value);
            }
        }
        let config = match EdgeConfig::from_variables(|name| values.get(name).cloned()) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("edge-cache: configuration error: {error}");
                return Err(misconfigured(&error));
            }
        };
        let local = Opened::of(host.open_store(&config.store_name).await);
        let shared = match &config.shared_store {
            Some(label) => {
                let store = Opened::of(host.open_store(label).await);
                // Not fatal (the edge still answers, from the origin), but
                // nothing stored can be validated without it: said once
                // per instance that lives to say it once.
                if let Opened::Failed(error) = &store
                    && H::INSTANCES_OUTLIVE_REQUESTS
                {
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
            Some(label) => Some(Opened::of(host.open_store(label).await)),
            None => None,
        };
        let store = SharedState::new(local, shared, host.clock(), config.purge_staleness)
            .with_shield(shield);
        let rules = load_rules::<H>(&host, &config, &store).await;
        // Always built: the health check answers without a token; an
        // empty token leaves the purge API itself off.
        let purge = Some(PurgeSettings {
            admin_path: config.admin_path.clone(),
            token: config.purge_token.clone().unwrap_or_default(),
            hosts: config.hosts.clone(),
            node: config.node_name.clone(),
            reporter: Default::default(),
            staleness_ms: config.purge_staleness.as_millis() as u64,
        });
        let primary = host.origin(OriginEndpoint::of(&config.origin, &config));
        let backup = config
            .backup_origin
            .as_ref()
            .map(|address| host.origin(OriginEndpoint::of(address, &config)));
        let (l1, collapser) = match H::INSTANCES_OUTLIVE_REQUESTS {
            true => (l1_for(config.l1_capacity_bytes), Some(Collapser::default())),
            false => (None, None),
        };
        Ok(Node {
            handles: StoreHandles {
                store: Rc::new(store),
                clock: Rc::new(host.clock()),
                l1: l1.map(Rc::new),
                capacity: Rc::default(),
            },
            host,
            config,
            rules,
            purge,
            primary,
            backup,
            collapser,
            primary_breaker: CleanBreakerRead::default(),
            backup_breaker: CleanBreakerRead::default(),
        })
    }

    /// What can be decided from the request head alone, before any body
    /// is read: refuse it, read its body (up to a limit), or go on without.
    pub fn admit(&self, head: &RequestHead) -> Admission {
        let flow = self.flow();
        let route = flow.purge_route(&head.method, &head.path_and_query);
        if let Err(misdirected) = self.served_connection(route, &head.headers, &head.connection) {
            return Admission::Answer(misdirected.answer());
        }
        flow.admit(&head.method, &head.path_and_query, &head.headers)
    }

    /// Handles one request; the [`Refresh`], if any, is to be run after
    /// the response is sent (`stale-while-revalidate`).
    pub async fn handle(&self, mut request: ClientRequest) -> (Response, Option<Refresh>) {
        let flow = self.flow();
        let route = flow.purge_route(&request.method, &request.path_and_query);
        match self.served_connection(route, &request.headers, &request.connection) {
            Ok(connection) => request.connection = connection,
            Err(misdirected) => return (misdirected.answer(), None),
        }
        flow.handle(request).await
    }

    /// The answer to a bodiless request if it is a plain fresh hit,
    /// exactly as [`serve`](Node::serve) would answer it; `None` for
    /// anything else, which `serve` is to handle. It reads the stores and
    /// never writes them: a host may run it natively in front of the
    /// component, which stays the only writer.
    pub async fn fresh_hit(&self, mut head: RequestHead) -> Option<FreshHit> {
        let flow = self.flow();
        let route = flow.purge_route(&head.method, &head.path_and_query);
        let connection = self
            .served_connection(route, &head.headers, &head.connection)
            .ok()?;
        if !matches!(
            flow.admit_as(route, &head.method, &head.headers),
            Admission::NoBody
        ) {
            return None;
        }
        head.connection = connection;
        let (response, range) = flow.fresh_hit(head.with_body(Body::empty())).await?;
        let chunks = match range {
            None => None,
            // Chunks a shield may hold are read through the node only.
            Some(_) if self.config.shield_store.is_some() => return None,
            Some(range) => Some(StoredBody {
                store: self.config.store_name.clone(),
                range,
            }),
        };
        Some(FreshHit { response, chunks })
    }

    /// The rules file this node read, if its rules come from one (a host
    /// keeping a node watches it to know when to build the next).
    pub fn rules_file(&self) -> Option<&str> {
        match &self.config.cache_rules {
            RulesSource::File(path) => Some(path),
            RulesSource::BuiltIn | RulesSource::Inline(_) => None,
        }
    }

    /// The connection a request is served (keyed, purged, forwarded) as:
    /// its scheme as a trusted proxy in front reports it
    /// (`forwarding::client_scheme`), and its site's key host where
    /// `hosts` lists it, its own where there is no list; a host outside
    /// the list is answered `421` before the cache or the origin is
    /// touched. The admin routes (the purge endpoint, whose URLs name
    /// their hosts, and the health check, which load balancers ask by
    /// address) are answered on any host.
    fn served_connection(
        &self,
        route: Option<PurgeRoute>,
        headers: &HeaderMap,
        connection: &ClientConnection,
    ) -> Result<ClientConnection, Misdirected> {
        let scheme = client_scheme(headers, &connection.scheme, self.config.trust);
        let host = connection.host.as_deref();
        let host = match route {
            Some(PurgeRoute::Endpoint | PurgeRoute::Health | PurgeRoute::Completion) => {
                host.map(str::to_owned)
            }
            _ => match self.config.hosts.verdict(host) {
                HostVerdict::Serve(_) if self.config.hosts.any() => host.map(str::to_owned),
                HostVerdict::Serve(key) => Some(key),
                HostVerdict::Misdirected => return Err(Misdirected(host.map(str::to_owned))),
            },
        };
        Ok(ClientConnection {
            peer: connection.peer,
            scheme,
            host,
        })
    }

    /// Runs a deferred refresh.
    pub async fn refresh(&self, refresh: Refresh) {
        self.flow().refresh(refresh).await
    }

    /// [`admit`](Node::admit)s a request from its head, reads its body as
    /// admitted (a body past the limit is a `413`, an unreadable one a
    /// `400`), and [`handle`](Node::handle)s it.
    pub async fn serve(
        &self,
        head: RequestHead,
        body: impl RequestBody,
    ) -> (Response, Option<Refresh>) {
        let flow = self.flow();
        let route = flow.purge_route(&head.method, &head.path_and_query);
        let mut head = head;
        match self.served_connection(route, &head.headers, &head.connection) {
            Ok(connection) => head.connection = connection,
            Err(misdirected) => return (misdirected.answer(), None),
        }
        let body = match flow.admit_as(route, &head.method, &head.headers) {
            Admission::Answer(response) => return (response, None),
            Admission::NoBody => Ok(Body::empty()),
            Admission::ReadBody { limit: Some(limit) } => body.read(limit).await,
            Admission::ReadBody { limit: None } => body.stream(declared_length(&head.headers)),
        };
        let body = match body {
            Ok(body) => body,
            Err(BodyError::TooLarge(limit)) => return (body_too_large(limit), None),
            Err(BodyError::Unreadable(detail)) => {
                eprintln!("edge-cache: request body unreadable: {detail}");
                return (unreadable_body(), None);
            }
        };
        flow.handle_as(route, head.with_body(body)).await
    }

    /// The pipeline over this node's parts. Nothing is built for it: the
    /// origins are guarded when a request is sent, not before.
    fn flow(&self) -> Flow<'_, NodeStore<H>, NodeOrigins<'_, H>, H::Clock> {
        Flow {
            rules: self.rules.as_ref(),
            purge: self.purge.as_ref(),
            store: &self.handles.store,
            origin: NodeOrigins { node: self },
            clock: &self.handles.clock,
            grace: self.config.grace,
            trust: self.config.trust,
            l1: self.handles.l1.as_deref(),
            handles: Some(&self.handles),
            chunk_bytes: self.config.chunk_bytes,
            collapser: self.collapser.as_ref(),
            fill_leases: true,
        }
    }

    fn guarded<'s>(
        &'s self,
        origin: &'s H::Origin,
        address: &'s OriginAddress,
        clean_read: &'s CleanBreakerRead,
        lease_id: u64,
    ) -> GuardedOrigin<'s, H::Origin, NodeStore<H>, H::Clock> {
        GuardedOrigin {
            inner: origin,
            name: address.authority.as_str(),
            store: &self.handles.store,
            clock: &self.handles.clock,
            protection: self.config.protection,
            lease_id,
            clean_read: Some(clean_read),
        }
    }
}

/// The node's origins as the flow sends to them: each behind its own
/// breaker and cap, the primary failing over to the backup (a held-back
/// primary request goes to the backup like a failed one).
struct NodeOrigins<'a, H: Host> {
    node: &'a Node<H>,
}

impl<H: Host> Origin for NodeOrigins<'_, H> {
    async fn send(&self, mut request: OriginRequest) -> Result<Response, OriginFailure> {
        let node = self.node;
        let config = &node.config;
        // Only the edge's own ask reaches the host: `X-Forwarded-Host` is
        // the edge's (the client's is dropped), the site's host.
        request.headers.remove(purge_wire::ORIGIN_HOST_FIELD);
        if config.forward_host
            && let Some(host) = request.headers.get(X_FORWARDED_HOST).cloned()
        {
            request.headers.insert(purge_wire::ORIGIN_HOST_FIELD, host);
        }
        // Only the concurrency cap needs an id, unique among concurrent
        // requests; without a cap the host is not asked for one.
        let lease_id = match config.protection.max_concurrent {
            Some(_) => node.host.random_u64(),
            None => 0,
        };
        let primary = node.guarded(
            &node.primary,
            &config.origin,
            &node.primary_breaker,
            lease_id,
        );
        let backup = node
            .backup
            .as_ref()
            .zip(config.backup_origin.as_ref())
            .map(|(origin, address)| node.guarded(origin, address, &node.backup_breaker, lease_id));
        let origins = FailoverOrigin {
            primary: &primary,
            backup: backup.as_ref(),
        };
        origins.send(request).await
    }
}

/// A request for a host the edge does not serve (the host it named, if
/// any).
struct Misdirected(Option<String>);

impl Misdirected {
    /// `421 Misdirected Request` (RFC 9110 §15.5.20): the client asked the
    /// wrong server, nothing was cached or fetched. Never stored by anyone
    /// (`no-store`).
    fn answer(&self) -> Response {
        let what = match &self.0 {
            Some(host) => format!("`{host}`"),
            None => "requests without a host".to_owned(),
        };
        let mut response = plain_text(
            421,
            format!("misdirected request: this edge does not serve {what}\n"),
        );
        response.headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// The field the edge names the site's host in to the origin.
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");

/// The `Content-Length` a request declares, if it declares one that can
/// be read (the host has already refused a malformed one).
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads and parses the rules. A broken text is never served from: the
/// last good rules, kept in the node-local store, are used instead; only
/// if none ever loaded does the edge proxy without caching. Each new text
/// is logged once per node, by the first instance to read it (see
/// `config::last_good_rules` for why the store, not the instance, keeps
/// them).
async fn load_rules<H: Host>(
    host: &H,
    config: &EdgeConfig,
    store: &NodeStore<H>,
) -> Option<CacheRules> {
    // The text as the loader reads it, kept to be hashed and stored.
    let mut text = String::new();
    let loaded = CacheRules::load(&config.cache_rules, |path| {
        let read = host.read_file(path);
        if let Ok(read) = &read {
            text.clone_from(read);
        }
        read
    });
    let source = match &config.cache_rules {
        // Nothing to change while the edge runs, nothing to break.
        RulesSource::BuiltIn => return loaded.ok(),
        // Unchangeable while the edge runs: good ones need no record.
        RulesSource::Inline(json) => match loaded {
            Ok(rules) => return Some(rules),
            Err(_) => {
                text.clone_from(json);
                "inline cache rules"
            }
        },
        RulesSource::File(path) => path.as_str(),
    };
    let key = NodeLocalKey::last_good_rules(source);
    // A store that cannot be read is a node without a record: good rules
    // are still served, broken ones are reported by each instance.
    let (record, readable) = match store.get(&key).await {
        Ok(Some(bytes)) => (RulesRecord::decode(&bytes), true),
        Ok(None) => (None, true),
        Err(_) => (None, false),
    };
    let now = host
        .clock()
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let problem = loaded.as_ref().err().map(String::as_str);
    let verdict = decide(source, &text, problem, record, now);
    let recorded = match &verdict.store {
        Some(record) => store.set(&key, &record.encode()).await.is_ok(),
        None => false,
    };
    // The instance that records a change says it. One that reads the
    // store but cannot write it (a host running the core natively in
    // front of the component, read-only) leaves that to the component,
    // which reads the same text; where nothing can be read, each says it.
    if let Some(line) = &verdict.log
        && (recorded || !readable)
    {
        eprintln!("{line}");
    }
    match verdict.use_ {
        RulesInUse::Current => loaded.ok(),
        // Parsed by this same loader when it was stored; a text that no
        // longer parses (a newer edge with stricter rules) is none.
        RulesInUse::LastGood(good) => CacheRules::parse(&good.text).ok(),
        RulesInUse::None => None,
    }
}

/// A store as opened: one that failed to open fails every call, which the
/// flow treats as "bypass the cache".
pub(crate) enum Opened<S> {
    Ready(S),
    Failed(String),
}

impl<S> Opened<S> {
    fn of(opened: Result<S, String>) -> Self {
        match opened {
            Ok(store) => Opened::Ready(store),
            Err(error) => Opened::Failed(error),
        }
    }

    fn store(&self) -> Result<&S, StoreFailure> {
        match self {
            Opened::Ready(store) => Ok(store),
            Opened::Failed(error) => Err(StoreFailure(error.clone())),
        }
    }
}

impl<S: KeyValueStore> KeyValueStore for Opened<S> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.store()?.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.store()?.set(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.store()?.delete(key).await
    }
}
