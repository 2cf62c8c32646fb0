//! The `spin-*` request headers: what Spin tells a component about its
//! request (the full URL, the matched route, the path after it, the
//! client's address), set by the host and never taken from the client;
//! the client's hop-by-hop fields are dropped first. And an HTTP/2
//! request's target, made the one HTTP/1.1 would carry.

use std::net::SocketAddr;

use http::{HeaderName, HeaderValue, Request, Uri};

use crate::net::hop_by_hop::remove_connection_fields;

/// Makes a request's target read the same whichever version the client
/// spoke and whether the connection is TLS, so that routing, the
/// component, native hits and the cache key see one request:
/// - HTTP/2: `Host` from `:authority` (RFC 9113 §8.3.1: it takes the place
///   of `Host`, and a client's `Host` must not differ);
/// - over TLS (`secure`): the absolute `https://{Host}{path}`, the scheme
///   being the connection's (native hits and the WASI 0.3 executor read it
///   from the URI);
/// - in cleartext: origin-form, as HTTP/1.1 sends it (they take `http`).
///
/// The client's own `:scheme` claims nothing.
pub(super) fn normalise_target<B>(request: &mut Request<B>, secure: bool) {
    if let Some(authority) = request.uri().authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(http::header::HOST, host);
    }
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = request.uri().path_and_query().cloned();
    if secure {
        let host = request.headers().get(http::header::HOST);
        if let Some(authority) = host.and_then(|h| h.as_bytes().try_into().ok()) {
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            parts.authority = Some(authority);
            parts.path_and_query = parts
                .path_and_query
                .or(Some(http::uri::PathAndQuery::from_static("/")));
        }
    }
    if let Ok(target) = Uri::from_parts(parts) {
        *request.uri_mut() = target;
    }
}

/// Spin tells components about the request through `spin-*` headers; any a
/// client sent are replaced, so a component can trust them. `secure`: the
/// connection is TLS, and the full URL says `https`.
pub(super) fn set_spin_headers<B>(
    request: &mut Request<B>,
    peer: SocketAddr,
    secure: bool,
    matched_route: &str,
    path_info: &str,
) {
    let headers = request.headers_mut();
    remove_connection_fields(headers);
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| edge_cache::is_spin_metadata(name.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .to_owned();
    let base_route = matched_route.trim_end_matches("/...");
    let scheme = if secure { "https" } else { "http" };
    let values = [
        (
            "spin-full-url",
            format!("{scheme}://{host}{path_and_query}"),
        ),
        ("spin-path-info", path_info.to_owned()),
        ("spin-matched-route", matched_route.to_owned()),
        ("spin-component-route", base_route.to_owned()),
        ("spin-raw-component-route", matched_route.to_owned()),
        ("spin-base-path", "/".to_owned()),
        ("spin-client-addr", peer.to_string()),
    ];
    let headers = request.headers_mut();
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_headers_are_the_hosts_and_hop_by_hop_fields_are_dropped() {
        let mut request = Request::get("/shop/item?id=7")
            .header("host", "edge.example")
            .header("spin-client-addr", "forged")
            .header("spin-forged", "yes")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("accept", "text/html")
            .body(())
            .unwrap();
        let peer: SocketAddr = "192.0.2.7:4711".parse().unwrap();
        set_spin_headers(&mut request, peer, false, "/shop/...", "/item");
        let headers = request.headers();
        let field = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(
            field("spin-full-url"),
            Some("http://edge.example/shop/item?id=7")
        );
        assert_eq!(field("spin-path-info"), Some("/item"));
        assert_eq!(field("spin-matched-route"), Some("/shop/..."));
        assert_eq!(field("spin-component-route"), Some("/shop"));
        assert_eq!(field("spin-raw-component-route"), Some("/shop/..."));
        assert_eq!(field("spin-base-path"), Some("/"));
        assert_eq!(field("spin-client-addr"), Some("192.0.2.7:4711"));
        assert_eq!(field("spin-forged"), None);
        assert_eq!(field("x-hop"), None);
        assert_eq!(field("connection"), None);
        assert_eq!(field("accept"), Some("text/html"));

        set_spin_headers(&mut request, peer, true, "/shop/...", "/item");
        assert_eq!(
            request.headers()["spin-full-url"],
            "https://edge.example/shop/item?id=7"
        );
    }

    #[test]
    fn a_target_reads_the_same_whatever_the_version_and_says_https_only_under_tls() {
        let h2 = |uri: &str| {
            Request::get(uri)
                .version(http::Version::HTTP_2)
                .header("host", "forged.example")
                .body(())
                .unwrap()
        };
        let mut request = h2("https://edge.example:8443/a/b?c=1");
        normalise_target(&mut request, false);
        assert_eq!(request.uri(), "/a/b?c=1");
        assert_eq!(request.headers()["host"], "edge.example:8443");
        let mut request = h2("http://edge.example/a?c=1");
        normalise_target(&mut request, true);
        assert_eq!(request.uri(), "https://edge.example/a?c=1");
        // HTTP/1.1 over TLS: its Host, the connection's scheme.
        let mut request = Request::get("/x")
            .header("host", "h.example")
            .body(())
            .unwrap();
        normalise_target(&mut request, true);
        assert_eq!(request.uri(), "https://h.example/x");
        assert_eq!(request.headers()["host"], "h.example");
        // No usable Host: left origin-form.
        let mut request = Request::get("/x").body(()).unwrap();
        normalise_target(&mut request, true);
        assert_eq!(request.uri(), "/x");
    }
}
