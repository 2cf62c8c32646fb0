//! Hop-by-hop header removal (RFC 9110 §7.6.1).
//!
//! A proxy must not forward connection-specific fields: the fixed set below
//! and every field named in the message's own `Connection` header.
//!
//! edge-host strips a shorter list (`edge-host/src/net/hop_by_hop.rs`)
//! because wasmtime-wasi-http already drops Transfer-Encoding and the
//! Proxy-* fields before a guest sees a message; this one stays complete
//! because the core must forward correctly under any host.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// Fields that only ever describe one connection, whether or not `Connection`
/// lists them. `Proxy-Connection` and `Keep-Alive` are legacy but still sent.
const ALWAYS_HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The end-to-end fields of `headers` that `keep` accepts, copied in one
/// pass: every hop-by-hop field is left out, including the ones the
/// message's `Connection` header nominates. (Cloning the map and removing
/// the fixed set by name hashed every name twice and shuffled the map; a
/// miss builds three such maps.)
pub(crate) fn end_to_end(headers: &HeaderMap, keep: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    let nominated: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    let mut copy = HeaderMap::with_capacity(headers.keys_len() + 4);
    for (name, value) in headers {
        let hop_by_hop = ALWAYS_HOP_BY_HOP.contains(name) || nominated.contains(name);
        if !hop_by_hop && keep(name) {
            copy.append(name.clone(), value.clone());
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn strip_hop_by_hop(map: &mut HeaderMap) {
        *map = end_to_end(map, |_| true);
    }

    #[test]
    fn removes_the_fixed_set() {
        let mut map = headers(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-authenticate", "Basic"),
            ("proxy-connection", "close"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut map);
        assert_eq!(map.len(), 1);
        assert_eq!(map["content-type"], "text/plain");
    }

    #[test]
    fn removes_fields_nominated_by_connection_in_every_instance() {
        let mut map = headers(&[
            ("connection", "X-Secret ,  x-other"),
            ("connection", "close, x-third"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-third", "3"),
            ("x-kept", "4"),
        ]);
        strip_hop_by_hop(&mut map);
        assert_eq!(map.len(), 1);
        assert_eq!(map["x-kept"], "4");
    }

    #[test]
    fn keeps_only_what_it_is_asked_to_and_every_instance_of_it() {
        let map = headers(&[
            ("connection", "x-secret"),
            ("x-secret", "1"),
            ("accept", "text/html"),
            ("accept", "*/*"),
            ("cookie", "a=1"),
        ]);
        let copy = end_to_end(&map, |name| name != "cookie");
        assert_eq!(copy.len(), 2);
        let accepts: Vec<_> = copy.get_all("accept").iter().collect();
        assert_eq!(accepts, ["text/html", "*/*"]);
    }

    #[test]
    fn ignores_malformed_connection_tokens() {
        let mut map = headers(&[("connection", "bad token, ,x-gone"), ("x-gone", "1")]);
        strip_hop_by_hop(&mut map);
        assert!(map.is_empty());
    }
}
