//! The `spin-*` request headers: what Spin tells a component about its
//! request (the full URL, the matched route, the path after it, the
//! client's address), set by the host and never taken from the client;
//! the client's hop-by-hop fields are dropped first. And an HTTP/2
//! request's target, made the one HTTP/1.1 would carry.

use std::net::SocketAddr;

use http::{HeaderName, HeaderValue, Request, Uri};

use crate::net::hop_by_hop::remove_connection_fields;

/// Makes an HTTP/2 request's target what HTTP/1.1 carries: `Host` from its
/// `:authority` (RFC 9113 §8.3.1: it takes the place of `Host`, and a
/// client's `Host` must not differ) and an origin-form target. Everything
/// after (routing, the component, native hits, the cache key) then sees
/// the same request whichever version the client spoke, and the client's
/// `:scheme` claims nothing: the connection says whether it was TLS.
pub(super) fn as_http1_target<B>(request: &mut Request<B>) {
    if let Some(authority) = request.uri().authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(http::header::HOST, host);
    }
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = request.uri().path_and_query().cloned();
        if let Ok(target) = Uri::from_parts(parts) {
            *request.uri_mut() = target;
        }
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
        .filter(|name| name.as_str().starts_with("spin-"))
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
    fn an_http2_target_becomes_host_and_origin_form() {
        let mut request = Request::get("https://edge.example:8443/a/b?c=1")
            .version(http::Version::HTTP_2)
            .header("host", "forged.example")
            .body(())
            .unwrap();
        as_http1_target(&mut request);
        assert_eq!(request.uri(), "/a/b?c=1");
        assert_eq!(request.uri().scheme(), None);
        assert_eq!(request.headers()["host"], "edge.example:8443");
        // A request without `:authority` keeps its `Host`.
        let mut request = Request::get("/x")
            .header("host", "h.example")
            .body(())
            .unwrap();
        as_http1_target(&mut request);
        assert_eq!(request.uri(), "/x");
        assert_eq!(request.headers()["host"], "h.example");
    }
}
