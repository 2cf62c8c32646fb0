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
    pub fallback: Fallback,
}

/// A complete response: from the origin, or the edge's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields as they will be sent.
    pub headers: HeaderMap,
    /// The content (empty for HEAD, 204 and 304).
    pub body: Body,
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

/// A byte-valued key-value store (Spin key-value in the component). The
/// cache's layout over it lives in `storage`.
///
/// The I/O seams are `async` so one pipeline serves both adapters: the
/// WASI 0.2 adapter answers each call at once (Spin's blocking host calls),
/// the WASI 0.3 adapter awaits the host and so lets one instance serve
/// other requests meanwhile. The component is single-threaded, so the
/// futures need not be `Send` (hence the allowed lint).
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The value under `key`; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// The value under `key` as the store holds it now, never a copy
    /// remembered from an earlier read: what a read-modify-write starts
    /// from (`shared_state` remembers reads; plain stores need not).
    async fn get_current(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.get(key).await
    }
    /// Writes `value` under `key`, replacing what was there.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreFailure>;
}

/// Where requests the edge cannot answer go.
#[allow(async_fn_in_trait)]
pub trait Origin {
    /// Sends `request` and reads the whole response, or says why not.
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure>;
}

/// Wall-clock time (a fake in tests, so ages and purges are exact), and a
/// way to pause.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Resumes after `duration`: a collapsed miss waits for its leader's
    /// fill in such steps, because WASI 0.3 on wasmtime 48 cannot wake one
    /// request's task from another's (wit-bindgen's `inter-task-wakeup`
    /// traps there), while a host timer always can.
    async fn pause(&self, duration: Duration);
}
