//! What the edge adds to and removes from messages it relays (RFC 9110 §7.6).
//!
//! Requests to the origin lose hop-by-hop fields, the client's `Host` (the
//! origin gets its own authority) and the host runtime's `spin-*` metadata,
//! and gain `Via`, `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `X-Forwarded-Host`. Responses to the client lose hop-by-hop fields and
//! gain `Via`.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::hop_by_hop::strip_hop_by_hop;

/// Our entry in `Via`: protocol version and a pseudonym, never a host name.
pub const VIA_ENTRY: &str = "1.1 edge-cache";

/// Prefix of the metadata headers a Spin host adds to incoming requests
/// (`spin-full-url`, `spin-client-addr`, …). They describe the host, not the
/// client's request, and must never reach the origin.
const SPIN_METADATA_PREFIX: &str = "spin-";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Facts about the client connection that the host runtime tells us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConnection {
    /// The peer address, from Spin's `spin-client-addr` header.
    pub peer: Option<SocketAddr>,
    /// `http` or `https`, as the client spoke to the edge.
    pub scheme: String,
    /// The authority the client asked for (`Host`).
    pub host: Option<String>,
}

impl ClientConnection {
    /// Reads the connection facts a Spin host records in request headers.
    pub fn from_spin_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let peer = text("spin-client-addr").and_then(|addr| addr.parse().ok());
        let full_url = text("spin-full-url");
        let scheme = match full_url {
            Some(url) if url.starts_with("https://") => "https",
            _ => "http",
        };
        let host = text("host").map(str::to_owned).or_else(|| {
            full_url
                .and_then(|url| url.split_once("://"))
                .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned())
        });
        ClientConnection {
            peer,
            scheme: scheme.to_owned(),
            host,
        }
    }
}

/// The header block to send to the origin for a client request.
pub fn origin_request_headers(client: &HeaderMap, connection: &ClientConnection) -> HeaderMap {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    let spin_metadata: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(SPIN_METADATA_PREFIX))
        .cloned()
        .collect();
    for name in spin_metadata {
        headers.remove(name);
    }

    append_via(&mut headers);
    if let Some(peer) = connection.peer {
        append_list_member(&mut headers, X_FORWARDED_FOR, &peer.ip().to_string());
    }
    if let Ok(proto) = HeaderValue::from_str(&connection.scheme) {
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    if let Some(host) = connection
        .host
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers
}

/// The header block to send to the client for an origin response.
pub fn client_response_headers(origin: &HeaderMap) -> HeaderMap {
    let mut headers = origin.clone();
    strip_hop_by_hop(&mut headers);
    append_via(&mut headers);
    headers
}

fn append_via(headers: &mut HeaderMap) {
    append_list_member(headers, header::VIA, VIA_ENTRY);
}

/// Appends `member` to a comma-separated list field, folding any existing
/// instances into one line so the order of hops is kept.
fn append_list_member(headers: &mut HeaderMap, name: HeaderName, member: &str) {
    let existing: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut folded = existing.join(", ");
    if !folded.is_empty() {
        folded.push_str(", ");
    }
    folded.push_str(member);
    if let Ok(value) = HeaderValue::from_str(&folded) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers as map;

    fn connection() -> ClientConnection {
        ClientConnection {
            peer: Some("192.0.2.7:51000".parse().unwrap()),
            scheme: "http".into(),
            host: Some("shop.example".into()),
        }
    }

    #[test]
    fn request_loses_host_hop_by_hop_and_spin_metadata() {
        let client = map(&[
            ("host", "shop.example"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("spin-full-url", "http://shop.example/a"),
            ("spin-client-addr", "192.0.2.7:51000"),
            ("accept", "text/html"),
        ]);
        let out = origin_request_headers(&client, &connection());
        assert!(out.get("host").is_none());
        assert!(out.get("x-hop").is_none());
        assert!(out.keys().all(|k| !k.as_str().starts_with("spin-")));
        assert_eq!(out["accept"], "text/html");
    }

    #[test]
    fn request_gains_forwarding_fields() {
        let out = origin_request_headers(&HeaderMap::new(), &connection());
        assert_eq!(out["via"], VIA_ENTRY);
        assert_eq!(out["x-forwarded-for"], "192.0.2.7");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "shop.example");
    }

    #[test]
    fn existing_via_and_forwarded_for_are_extended_in_order() {
        let client = map(&[
            ("via", "1.0 corp-proxy"),
            ("via", "1.1 lb"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let out = origin_request_headers(&client, &connection());
        assert_eq!(out["via"], "1.0 corp-proxy, 1.1 lb, 1.1 edge-cache");
        assert_eq!(out["x-forwarded-for"], "203.0.113.9, 192.0.2.7");
    }

    #[test]
    fn response_keeps_end_to_end_fields_and_gains_via() {
        let origin = map(&[
            ("content-type", "text/css"),
            ("etag", "\"abc\""),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let out = client_response_headers(&origin);
        assert_eq!(out["content-type"], "text/css");
        assert_eq!(out["etag"], "\"abc\"");
        assert_eq!(out.get_all("set-cookie").iter().count(), 2);
        assert!(out.get("transfer-encoding").is_none());
        assert!(out.get("keep-alive").is_none());
        assert_eq!(out["via"], VIA_ENTRY);
    }

    #[test]
    fn connection_facts_come_from_spin_headers() {
        let headers = map(&[
            ("spin-client-addr", "[::1]:4000"),
            ("spin-full-url", "https://cdn.example:8443/x?y"),
        ]);
        let conn = ClientConnection::from_spin_headers(&headers);
        assert_eq!(conn.peer, Some("[::1]:4000".parse().unwrap()));
        assert_eq!(conn.scheme, "https");
        assert_eq!(conn.host.as_deref(), Some("cdn.example:8443"));
    }

    #[test]
    fn unparseable_client_address_is_left_out() {
        let headers = map(&[("spin-client-addr", "not-an-address")]);
        let conn = ClientConnection::from_spin_headers(&headers);
        assert_eq!(conn.peer, None);
        let out = origin_request_headers(&HeaderMap::new(), &conn);
        assert!(out.get("x-forwarded-for").is_none());
    }
}
