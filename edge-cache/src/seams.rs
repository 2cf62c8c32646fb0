//! The seams of the flow: the messages it exchanges and the three things it
//! does I/O with ([`Store`], [`Origin`], [`Clock`]).
//!
//! Everything above this module is pure: the adapters (one per Spin SDK
//! flavour) implement these traits over the host, the unit tests over
//! in-memory fakes, and the origin's decorators (breaker, failover) over
//! another [`Origin`].

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::origin::breaker::Fallback;
use crate::origin::failure::OriginFailure;
use crate::policy::target::canonical_host;
use crate::spin_metadata::split_fields;
use crate::store::keys::StoreKey;

/// A request as the client sent it, its body read.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The request method, as sent (extension methods included).
    pub method: Method,
    /// Path and query exactly as received (normalised only for the key).
    pub path_and_query: String,
    /// The client's header fields (the adapter removes the host's own
    /// metadata fields).
    pub headers: HeaderMap,
    /// What the host knows of the connection it came on.
    pub connection: ClientConnection,
    /// The request content (empty for GET and HEAD in practice).
    pub body: Body,
}

/// A request's head as the host gives it, before any of its body is read.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The request method, as sent (extension methods included).
    pub method: Method,
    /// Path and query exactly as received.
    pub path_and_query: String,
    /// The client's header fields, without the host's metadata fields.
    pub headers: HeaderMap,
    /// What the host knows of the connection it came on.
    pub connection: ClientConnection,
}

impl RequestHead {
    /// The head from the host's field list (see [`split_fields`]: the
    /// `spin-*` fields become the connection facts and are dropped); a
    /// request without a target asks for `/`.
    pub fn from_fields(
        method: Method,
        path_and_query: Option<String>,
        fields: Vec<(String, Vec<u8>)>,
    ) -> Self {
        let (headers, connection) = split_fields(fields);
        RequestHead {
            method,
            path_and_query: path_and_query.unwrap_or_else(|| "/".to_owned()),
            headers,
            connection,
        }
    }

    /// The same head, its host taken from the request target's
    /// `authority` where no `Host` field names one (WASI 0.3 carries the
    /// authority there).
    pub fn or_authority(mut self, https: bool, authority: Option<String>) -> Self {
        if self.connection.host.is_none()
            && let Some(authority) = authority
        {
            let scheme = if https { "https" } else { "http" };
            self.connection.host = Some(canonical_host(scheme, &authority));
        }
        self
    }

    /// The whole request, with its `body`.
    pub fn with_body(self, body: Body) -> ClientRequest {
        ClientRequest {
            method: self.method,
            path_and_query: self.path_and_query,
            headers: self.headers,
            connection: self.connection,
            body,
        }
    }
}

/// A request body not read yet: the adapter reads it only if and as far
/// as the edge admits it (see `Node::serve`).
#[allow(async_fn_in_trait)]
pub trait RequestBody {
    /// Reads the whole body, failing with [`BodyError::TooLarge`] as soon
    /// as it passes `limit` bytes.
    async fn read(self, limit: Option<usize>) -> Result<Body, BodyError>;
}

/// Why a request body could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It went past this many bytes (a `413`).
    TooLarge(usize),
    /// The host could not give it: its error, for the log (a `400`).
    Unreadable(String),
}

/// Facts about the client connection that the host runtime tells us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConnection {
    /// The peer address, from Spin's `spin-client-addr` header.
    pub peer: Option<SocketAddr>,
    /// `http` or `https`, as the client spoke to the edge.
    pub scheme: String,
    /// The authority the client asked for (`Host`), normalised as the cache
    /// key spells it (lower case, no trailing dot, no default port).
    pub host: Option<String>,
}

/// A request the edge sends to the origin.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    /// GET for fills and revalidations; the client's method for passes.
    pub method: Method,
    /// Origin-form target (path and query), relative to the origin URL.
    pub target: String,
    /// The fields chosen by `forwarding`, plus validators on revalidation.
    pub headers: HeaderMap,
    /// The client's content, for passes; empty for fills.
    pub body: Body,
    /// What the flow can answer with if the origin is not asked (the
    /// breaker refuses only what it need not ask).
    pub(crate) fallback: Fallback,
}

/// A complete response: from the origin, or the edge's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code as sent (a host refusing it answers `502`).
    pub status: u16,
    /// Header fields as they will be sent.
    pub headers: HeaderMap,
    /// The content (empty for HEAD, 204 and 304).
    pub body: Body,
}

impl Response {
    /// `400` for a request whose method the edge cannot read.
    pub fn invalid_method() -> Response {
        crate::flow::answer::plain_text(400, "bad request: invalid method\n".to_owned())
    }
}

/// A message's content as it crosses the seams. Whole in memory today,
/// and shared rather than copied (a hit hands on the stored bytes
/// themselves); the large-content work adds a streaming variant beside
/// [`Body::Full`], so every seam already passes this type, never a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// All of the content, in one shared buffer.
    Full(Bytes),
}

impl Body {
    /// No content.
    pub const fn empty() -> Body {
        Body::Full(Bytes::new())
    }

    /// The content's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Body::Full(bytes) => bytes,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is no content.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content as one shared buffer (no copy).
    pub fn into_bytes(self) -> Bytes {
        match self {
            Body::Full(bytes) => bytes,
        }
    }

    /// Bytes `start..=end` of the content, sharing its buffer.
    pub fn slice(&self, start: usize, end: usize) -> Body {
        match self {
            Body::Full(bytes) => Body::Full(bytes.slice(start..=end)),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::Full(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Full(bytes.into())
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Full(text.into())
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body::Full(Bytes::from_static(bytes))
    }
}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Body {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Body {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// A failed store operation, with the store's message; the flow then
/// bypasses the cache rather than failing the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure(pub String);

/// A byte-valued key-value store as the host has it (Spin key-value):
/// keys are text, and it holds whatever it is given. Which of the
/// host's stores a value goes to is the core's business (see [`Store`]).
///
/// The I/O seams are `async` so one pipeline serves both adapters: the
/// WASI 0.2 adapter answers each call at once (Spin's blocking host calls),
/// the WASI 0.3 adapter awaits the host and so lets one instance serve
/// other requests meanwhile. The component is single-threaded, so the
/// futures need not be `Send` (hence the allowed lint).
#[allow(async_fn_in_trait)]
pub trait KeyValueStore {
    /// The value under `key`; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// Writes `value` under `key`, replacing what was there.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreFailure>;
}

/// The cache's stores as the flow uses them: addressed by typed keys,
/// whose type says which store holds the value (`store::keys`). One host
/// store serves every role by itself; `store::shared_state` routes each
/// role to its own.
#[allow(async_fn_in_trait)]
pub(crate) trait Store {
    /// The value under `key`; `Ok(None)` when there is none.
    async fn get<K: StoreKey + ?Sized>(&self, key: &K) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// The value under `key` as the store holds it now, never a copy
    /// remembered from an earlier read: what a read-modify-write starts
    /// from (`shared_state` remembers reads; plain stores need not).
    async fn get_current<K: StoreKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.get(key).await
    }
    /// Writes `value` under `key`, replacing what was there.
    async fn set<K: StoreKey + ?Sized>(&self, key: &K, value: &[u8]) -> Result<(), StoreFailure>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete<K: StoreKey + ?Sized>(&self, key: &K) -> Result<(), StoreFailure>;
}

/// Where requests the edge cannot answer go.
#[allow(async_fn_in_trait)]
pub trait Origin {
    /// Sends `request` and reads the whole response, or says why not.
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure>;
}

impl<O: Origin + ?Sized> Origin for &O {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        (**self).send(request).await
    }
}

/// Wall-clock time (a fake in tests, so ages and purges are exact), and a
/// way to pause.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current time (the system's, unless a test fakes it).
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    /// Resumes after `duration`: a collapsed miss waits for its leader's
    /// fill in such steps, because WASI 0.3 on wasmtime 48 cannot wake one
    /// request's task from another's (wit-bindgen's `inter-task-wakeup`
    /// traps there), while a host timer always can.
    async fn pause(&self, duration: Duration);
}
