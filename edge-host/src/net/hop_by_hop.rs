//! Hop-by-hop fields (RFC 9110 §7.6.1): the fields that describe one
//! connection and must not be forwarded by an intermediary, plus every field
//! a `Connection` header nominates.
//!
//! `wasi:http` hides `Connection` from guests (it is a forbidden field), so a
//! guest could not know which fields it nominated: the host deletes them, on
//! requests from clients and on responses from origins, before the guest
//! sees the message (RFC 9111 §3.1: they must not be stored either).
//!
//! The edge component's list (`edge-cache/src/http/hop_by_hop.rs`) also
//! names Transfer-Encoding and the Proxy-* fields, which wasmtime-wasi-http
//! already drops from every message entering a guest (its
//! `DEFAULT_FORBIDDEN_HEADERS`); the component keeps them as it cannot rely
//! on its host.

use http::{HeaderMap, HeaderName};

/// Fields that are hop-by-hop whether or not `Connection` names them.
const ALWAYS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Removes `Connection`, the fields it lists, and the standard hop-by-hop
/// fields. Tokens that are not field names are ignored.
pub fn remove_connection_fields(headers: &mut HeaderMap) {
    for name in nominated(headers) {
        headers.remove(name);
    }
    for name in ALWAYS {
        headers.remove(name);
    }
}

/// The fields `Connection` nominates (none when it is absent, as it is on
/// most requests: nothing is allocated then).
pub fn nominated(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// Whether `name` is hop-by-hop whatever `Connection` says.
pub fn is_always_hop_by_hop(name: &HeaderName) -> bool {
    ALWAYS.contains(&name.as_str())
}

/// Removes what an HTTP/2 message must not carry (RFC 9113 §8.2.2): the
/// connection-specific fields, and `TE` unless it says only `trailers`.
/// `Transfer-Encoding` goes too: HTTP/2 frames the body itself. A peer
/// must treat a message with any of them as malformed; hyper would drop
/// them with a warning, this drops them as the rule says, once, where the
/// response leaves the host.
pub fn remove_for_http2(headers: &mut HeaderMap) {
    let te_is_trailers = headers
        .get_all(http::header::TE)
        .iter()
        .all(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let nominated: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in nominated {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
    if !te_is_trailers {
        headers.remove(http::header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn nominated_fields_go_in_any_case_and_across_repeated_connection_fields() {
        let mut headers = map(&[
            ("connection", "close, X-Foo"),
            ("connection", " x-bar ,,"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("keep-alive", "timeout=5"),
            ("x-kept", "3"),
        ]);
        remove_connection_fields(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn an_http2_message_keeps_no_connection_specific_field_and_te_only_for_trailers() {
        let mut headers = map(&[
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("te", "gzip"),
            ("trailer", "server-timing"),
            ("cache-status", "edge-cache; hit"),
        ]);
        remove_for_http2(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["trailer", "cache-status"]);
        let mut trailers = map(&[("te", "Trailers")]);
        remove_for_http2(&mut trailers);
        assert!(trailers.contains_key("te"));
    }

    #[test]
    fn tokens_that_are_not_field_names_are_ignored() {
        let mut headers = map(&[("connection", "bad token, x-a"), ("x-a", "1"), ("x-b", "2")]);
        remove_connection_fields(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-b"]);
    }
}
