//! The messages the edge exchanges: the client's request (its head first,
//! then with its body), the request the edge sends the origin, and the
//! response either way.

use std::net::SocketAddr;

use http::{HeaderMap, Method};

use crate::http::host::canonical_host;
use crate::seams::Body;

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

// `RequestHead::from_fields`, the head from a Spin host's field list, is
// `spin_metadata`'s: that convention is not the seams' business.
impl RequestHead {
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

    /// The head from a host that knows the connection itself rather than
    /// telling it in `spin-*` fields (edge-host's native hits): the
    /// client's own `headers` (`Host` and the host's metadata already
    /// out), its address, whether it came over TLS, and the `Host` it
    /// asked for. The same head [`from_fields`](Self::from_fields) makes
    /// of the fields a Spin host adds for these facts.
    pub fn from_connection(
        method: Method,
        path_and_query: String,
        headers: HeaderMap,
        peer: SocketAddr,
        https: bool,
        host: &str,
    ) -> Self {
        let scheme = if https { "https" } else { "http" };
        RequestHead {
            method,
            path_and_query,
            headers,
            connection: ClientConnection {
                peer: Some(peer),
                scheme: scheme.to_owned(),
                host: Some(canonical_host(scheme, host)),
            },
        }
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

/// What a request has to fall back on if the origin is not asked (the
/// origin's breaker decides by it, see `origin::breaker`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Nothing: refusing it is an error for the client.
    #[default]
    Nothing,
    /// A stored response it may be answered with instead.
    Stale,
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
