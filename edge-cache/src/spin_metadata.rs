//! Spin's request metadata: the `spin-*` fields a Spin host adds to every
//! incoming request (`spin-client-addr`, `spin-full-url`, …). Only the
//! adapters read this module: they turn the fields into a
//! [`ClientConnection`] and remove them, so nothing downstream knows the
//! convention and nothing of the host's reaches the origin.

use http::HeaderMap;
use http::header::{AsHeaderName, HOST};

use crate::field_names::{SPIN_CLIENT_ADDR, SPIN_FULL_URL};

use crate::seams::ClientConnection;
use crate::target::canonical_host;

/// Prefix of the metadata fields a Spin host adds.
const SPIN_METADATA_PREFIX: &str = "spin-";

/// Reads the connection facts from `headers` and removes every `spin-*`
/// field.
pub fn take_connection(headers: &mut HeaderMap) -> ClientConnection {
    let connection = connection_of(headers);
    // A Spin host adds about seven fields to the one or two a client
    // sends: keeping the rest in a new map is cheaper than removing each.
    let mut kept = HeaderMap::with_capacity(headers.len());
    let mut keep = None;
    for (name, value) in headers.drain() {
        // `drain` names a field once, then gives its further values.
        if let Some(name) = name {
            keep = (!name.as_str().starts_with(SPIN_METADATA_PREFIX)).then_some(name);
        }
        if let Some(name) = &keep {
            kept.append(name.clone(), value);
        }
    }
    *headers = kept;
    connection
}

/// The connection facts a Spin host records in request headers; the host
/// is spelled as the cache key spells it.
pub fn connection_of(headers: &HeaderMap) -> ClientConnection {
    fn text(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }
    let peer = text(headers, SPIN_CLIENT_ADDR).and_then(|addr| addr.parse().ok());
    let full_url = text(headers, SPIN_FULL_URL);
    let scheme = match full_url {
        Some(url) if url.starts_with("https://") => "https",
        _ => "http",
    };
    let host = text(headers, HOST).map(str::to_owned).or_else(|| {
        full_url
            .and_then(|url| url.split_once("://"))
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned())
    });
    ClientConnection {
        peer,
        scheme: scheme.to_owned(),
        host: host.map(|h| canonical_host(scheme, &h)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers as map;

    #[test]
    fn connection_facts_come_from_spin_headers() {
        let headers = map(&[
            ("spin-client-addr", "[::1]:4000"),
            ("spin-full-url", "https://cdn.example:8443/x?y"),
        ]);
        let conn = connection_of(&headers);
        assert_eq!(conn.peer, Some("[::1]:4000".parse().unwrap()));
        assert_eq!(conn.scheme, "https");
        assert_eq!(conn.host.as_deref(), Some("cdn.example:8443"));
    }

    #[test]
    fn the_host_is_normalised_as_the_key_spells_it() {
        let headers = map(&[("host", "Shop.EXAMPLE.:80")]);
        assert_eq!(
            connection_of(&headers).host.as_deref(),
            Some("shop.example")
        );
    }

    #[test]
    fn unparseable_client_address_is_left_out() {
        let headers = map(&[("spin-client-addr", "not-an-address")]);
        assert_eq!(connection_of(&headers).peer, None);
    }

    #[test]
    fn the_metadata_is_removed_and_the_rest_kept() {
        let mut headers = map(&[
            ("spin-full-url", "http://shop.example/a"),
            ("spin-client-addr", "192.0.2.7:51000"),
            ("accept", "text/html"),
        ]);
        let conn = take_connection(&mut headers);
        assert_eq!(conn.peer, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["accept"], "text/html");
    }
}
