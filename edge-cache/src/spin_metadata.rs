//! Spin's request metadata: the `spin-*` fields a Spin host adds to every
//! incoming request (`spin-client-addr`, `spin-full-url`, …). Only the
//! adapters read this module (through [`RequestHead::from_fields`]): they turn the fields into a
//! [`ClientConnection`] and remove them, so nothing downstream knows the
//! convention and nothing of the host's reaches the origin.

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method};

use crate::http::host::canonical_host;
use crate::seams::{ClientConnection, RequestHead};

/// Prefix of the metadata fields a Spin host adds.
const SPIN_METADATA_PREFIX: &str = "spin-";

// Here rather than beside `RequestHead` in `seams`: reading the host's
// field list is this module's convention, which the seams do not know.
impl RequestHead {
    /// The head from the host's field list (see `split_fields`: the
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
}

/// Whether a field is one of the host's `spin-*` metadata fields: the
/// adapters read and drop them, and edge-host drops any a client sent
/// (in any case) before adding its own.
pub fn is_spin_metadata(name: &str) -> bool {
    name.get(..SPIN_METADATA_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(SPIN_METADATA_PREFIX))
}

/// A request's fields as a host's field list gives them: the client's own
/// in a map, and the connection facts of the `spin-*` ones, which are not
/// kept (so nothing downstream knows the convention and nothing of the
/// host's reaches the origin); fields that are dropped are never parsed.
/// A name or value that is not valid is dropped too (the host has
/// validated them already).
pub(crate) fn split_fields(fields: Vec<(String, Vec<u8>)>) -> (HeaderMap, ClientConnection) {
    let mut headers = HeaderMap::with_capacity(fields.len());
    let (mut peer, mut full_url) = (None, None);
    for (name, value) in fields {
        if is_spin_metadata(&name) {
            let field = &name[SPIN_METADATA_PREFIX.len()..];
            if field.eq_ignore_ascii_case("client-addr") {
                peer = String::from_utf8(value).ok();
            } else if field.eq_ignore_ascii_case("full-url") {
                full_url = String::from_utf8(value).ok();
            }
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(Bytes::from(value)),
        ) {
            headers.append(name, value);
        }
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let connection = connection(peer.as_deref(), full_url.as_deref(), host);
    (headers, connection)
}

#[cfg(test)]
/// The connection facts a Spin host records in request headers; the host
/// is spelled as the cache key spells it.
pub(crate) fn connection_of(headers: &HeaderMap) -> ClientConnection {
    use crate::http::field_names::{SPIN_CLIENT_ADDR, SPIN_FULL_URL};
    use http::header::AsHeaderName;
    fn text(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }
    connection(
        text(headers, SPIN_CLIENT_ADDR),
        text(headers, SPIN_FULL_URL),
        text(headers, HOST),
    )
}

/// The connection facts from the values of `spin-client-addr`,
/// `spin-full-url` and `Host`.
fn connection(peer: Option<&str>, full_url: Option<&str>, host: Option<&str>) -> ClientConnection {
    let peer = peer.and_then(|addr| addr.parse().ok());
    let scheme = match full_url {
        Some(url) if url.starts_with("https://") => "https",
        _ => "http",
    };
    let host = host.map(str::to_owned).or_else(|| {
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

    /// `spin-*` fields of `pairs`, as a host's field list, split off.
    fn split(pairs: &[(&str, &str)]) -> (HeaderMap, ClientConnection) {
        split_fields(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn the_metadata_is_removed_and_the_rest_kept() {
        let (headers, conn) = split(&[
            ("spin-full-url", "http://shop.example/a"),
            ("spin-client-addr", "192.0.2.7:51000"),
            ("accept", "text/html"),
        ]);
        assert_eq!(conn.peer, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["accept"], "text/html");
    }

    #[test]
    fn a_field_list_splits_as_a_map_reads() {
        let fields = [
            ("Host", "Shop.Example"),
            ("spin-full-url", "https://shop.example/a"),
            ("SPIN-Client-Addr", "192.0.2.7:51000"),
            ("spin-matched-route", "/..."),
            ("accept", "text/html"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("bad name", "x"),
            ("x-bad-value", "a\nb"),
        ];
        let (headers, connection) = split(&fields);
        // The same facts as read from the whole map, and the client's own
        // fields exactly.
        assert_eq!(connection, connection_of(&map(&fields[..7])));
        assert_eq!(connection.peer, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(connection.scheme, "https");
        assert_eq!(connection.host.as_deref(), Some("shop.example"));
        let client = [fields[0], fields[4], fields[5], fields[6]];
        assert_eq!(headers, map(&client));
        assert_eq!(headers.get_all("cookie").iter().count(), 2);
        assert!(!headers.contains_key("x-bad-value"));
    }
}
