//! The seams of the flow: the messages it exchanges and the three things it
//! does I/O with ([`Store`], [`Origin`], [`Clock`]).
//!
//! Everything above this module is pure: the adapters (one per Spin SDK
//! flavour) implement these traits over the host, the unit tests over
//! in-memory fakes, and the origin's decorators (breaker, failover) over
//! another [`Origin`].

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::origin::breaker::Fallback;
use crate::origin::failure::OriginFailure;
use crate::policy::target::canonical_host;
use crate::spin_metadata::split_fields;
use crate::store::keys::StoreKey;

/// A request as the client sent it, its body read.
#[derive(Debug)]
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
    /// as it passes `limit` bytes (the purge API's small bodies).
    async fn read(self, limit: usize) -> Result<Body, BodyError>;
    /// The body as a stream (an upload passed to the origin as it
    /// arrives), its sender having declared `length` bytes.
    fn stream(self, length: Option<u64>) -> Result<Body, BodyError>;
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
#[derive(Debug)]
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

impl OriginRequest {
    /// A copy to send again (to a backup origin), unless its body is a
    /// stream, which can be sent only once.
    pub(crate) fn resendable_copy(&self) -> Option<OriginRequest> {
        let Body::Full(body) = &self.body else {
            return None;
        };
        Some(OriginRequest {
            method: self.method.clone(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body: Body::Full(body.clone()),
            fallback: self.fallback,
        })
    }
}

/// A response: from the origin, or the edge's answer.
#[derive(Debug, PartialEq)]
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

/// A message's content as it crosses the seams: whole in one shared
/// buffer (small bodies, stored ones: a hit hands on the stored bytes
/// themselves, no copy), or a stream read piece by piece, so that a body
/// of any size passes through in a chunk or two of memory.
pub enum Body {
    /// All of the content, in one shared buffer.
    Full(Bytes),
    /// Content still arriving.
    Stream(BodyStream),
}

/// Where a streamed body's pieces come from: the adapter's `wasi:http`
/// stream (an origin's response, a client's request). A trait object
/// rather than a generic so that every seam keeps one [`Body`] type; a
/// boxed future per piece costs nothing beside the piece.
pub trait ByteSource {
    /// The next piece of the body; `None` once it has ended cleanly, an
    /// error if it broke off (the message is for the log).
    fn next_piece(&mut self) -> NextPiece<'_>;
}

/// A [`ByteSource`]'s next piece, to await: `None` once the body has
/// ended cleanly.
pub type NextPiece<'a> = Pin<Box<dyn Future<Output = Option<Result<Bytes, BrokenBody>>> + 'a>>;

/// Why a streamed body ended before it was complete (the sender's words,
/// for the log). A client that receives such a body has its connection
/// aborted, never a complete-looking answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenBody(pub String);

/// A body read piece by piece from its [`ByteSource`].
pub struct BodyStream {
    /// Pieces read ahead of `source` while trying to hold the body whole
    /// (see [`Body::held_whole`]): handed out first.
    read_ahead: VecDeque<Bytes>,
    source: Box<dyn ByteSource>,
    /// The length its sender declared (`Content-Length`), if it did.
    length: Option<u64>,
    /// Bytes taken from `source` so far.
    pulled: u64,
}

impl BodyStream {
    /// A stream over `source`, whose sender declared `length` bytes.
    pub fn new(source: impl ByteSource + 'static, length: Option<u64>) -> BodyStream {
        BodyStream {
            read_ahead: VecDeque::new(),
            source: Box::new(source),
            length,
            pulled: 0,
        }
    }

    /// The length its sender declared, if it did.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The next piece; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        if let Some(piece) = self.read_ahead.pop_front() {
            return Some(Ok(piece));
        }
        self.pull().await
    }

    /// The source's next piece, checked against the declared length: a
    /// body that ends short of it, or runs past it, is broken, so that no
    /// client is answered a truncated or overlong body as if complete.
    async fn pull(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let piece = self.source.next_piece().await;
        let declared = self.length;
        match &piece {
            Some(Ok(bytes)) => {
                self.pulled += bytes.len() as u64;
                if declared.is_some_and(|length| self.pulled > length) {
                    return Some(Err(BrokenBody(format!(
                        "the body ran past its declared {} bytes",
                        declared.unwrap_or_default()
                    ))));
                }
            }
            None if declared.is_some_and(|length| self.pulled < length) => {
                return Some(Err(BrokenBody(format!(
                    "the body ended after {} of its declared {} bytes",
                    self.pulled,
                    declared.unwrap_or_default()
                ))));
            }
            _ => {}
        }
        piece
    }
}

impl Body {
    /// No content.
    pub const fn empty() -> Body {
        Body::Full(Bytes::new())
    }

    /// The content held in memory: all of a [`Body::Full`], nothing of a
    /// stream (whose bytes are not here yet).
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Body::Full(bytes) => bytes,
            Body::Stream(_) => &[],
        }
    }

    /// Its length in bytes, where it is known: a whole body's, or what a
    /// stream's sender declared.
    pub fn length(&self) -> Option<u64> {
        match self {
            Body::Full(bytes) => Some(bytes.len() as u64),
            Body::Stream(stream) => stream.length,
        }
    }

    /// Whether it is known to have no content.
    pub fn is_empty(&self) -> bool {
        self.length() == Some(0)
    }

    /// Holds a stream whole if it ends within `limit` bytes, so that it
    /// can be stored and answered as today; a longer one stays a stream
    /// (what was read of it is handed out first). A stream that declares
    /// more than `limit` is not read at all. Memory: `limit` plus one
    /// piece.
    pub(crate) async fn held_whole(self, limit: u64) -> Result<Body, BrokenBody> {
        let mut stream = match self {
            Body::Stream(stream) if stream.length.is_none_or(|length| length <= limit) => stream,
            whole_or_long => return Ok(whole_or_long),
        };
        let mut pieces = std::mem::take(&mut stream.read_ahead);
        let mut held: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        while held <= limit {
            match stream.pull().await {
                Some(Ok(piece)) => {
                    held += piece.len() as u64;
                    pieces.push_back(piece);
                }
                Some(Err(broken)) => return Err(broken),
                None => return Ok(Body::Full(concatenated(pieces.into()))),
            }
        }
        stream.read_ahead = pieces;
        Ok(Body::Stream(stream))
    }
}

/// The pieces as one buffer: the piece itself when there is one (a body
/// read in one go is not copied).
fn concatenated(mut pieces: Vec<Bytes>) -> Bytes {
    match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.remove(0),
        _ => {
            let mut whole = bytes::BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for piece in pieces {
                whole.extend_from_slice(&piece);
            }
            whole.freeze()
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            Body::Stream(stream) => f
                .debug_struct("Stream")
                .field("length", &stream.length)
                .finish_non_exhaustive(),
        }
    }
}

/// Whole bodies compare by content; a stream equals nothing (its content
/// is not here to compare).
impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        match (self, other) {
            (Body::Full(a), Body::Full(b)) => a == b,
            _ => false,
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
        matches!(self, Body::Full(bytes) if bytes == other)
    }
}

impl PartialEq<&[u8]> for Body {
    fn eq(&self, other: &&[u8]) -> bool {
        self == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Body {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self == other.as_slice()
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self == other.as_slice()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Pieces, block_on, drain};

    #[test]
    fn a_stream_that_ends_within_the_limit_is_held_whole_in_one_buffer() {
        let body = Pieces::body(&[b"ab", b"cd"], None, false);
        let held = block_on(body.held_whole(4)).unwrap();
        assert!(matches!(&held, Body::Full(bytes) if bytes == &b"abcd"[..]));
    }

    #[test]
    fn a_longer_stream_stays_a_stream_and_loses_nothing_read_ahead() {
        let body = Pieces::body(&[b"ab", b"cd", b"ef", b"gh"], None, false);
        let held = block_on(body.held_whole(3)).unwrap();
        assert!(matches!(held, Body::Stream(_)));
        assert_eq!(drain(held).unwrap(), b"abcdefgh");
    }

    #[test]
    fn a_stream_declared_longer_than_the_limit_is_not_read() {
        let body = Pieces::body(&[b"abcdef"], Some(6), false);
        let Body::Stream(stream) = block_on(body.held_whole(5)).unwrap() else {
            panic!("held a body longer than the limit");
        };
        assert!(stream.read_ahead.is_empty());
        assert_eq!(stream.pulled, 0);
    }

    #[test]
    fn a_stream_that_breaks_while_held_is_an_error() {
        let body = Pieces::body(&[b"ab"], None, true);
        assert_eq!(
            block_on(body.held_whole(10)).unwrap_err(),
            BrokenBody("broke".into())
        );
    }

    #[test]
    fn a_stream_shorter_or_longer_than_declared_is_broken() {
        let short = Pieces::body(&[b"ab"], Some(3), false);
        assert_eq!(
            drain(short).unwrap_err().0,
            "the body ended after 2 of its declared 3 bytes"
        );
        let long = Pieces::body(&[b"ab", b"cd"], Some(3), false);
        assert_eq!(
            drain(long).unwrap_err().0,
            "the body ran past its declared 3 bytes"
        );
        let exact = Pieces::body(&[b"ab", b"c"], Some(3), false);
        assert_eq!(drain(exact).unwrap(), b"abc");
    }
}
