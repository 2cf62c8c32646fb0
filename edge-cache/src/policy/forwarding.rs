//! What the edge adds to and removes from messages it relays (RFC 9110 §7.6).
//!
//! Every request to the origin loses hop-by-hop fields, the client's `Host`
//! (the origin gets its own authority), the host runtime's `spin-*`
//! metadata and the fields in [`EDGE_OWNED`], and gains `Via`,
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` (the
//! host as the cache key spells it).
//!
//! A *fill* — the request behind a shared, cacheable response — must carry
//! what the origin needs to choose the representation (RFC 9110 §7.6: a
//! proxy forwards fields it does not recognise) and nothing that could make
//! one client's answer everyone's: [`FILL_EXCLUDED`] lists what the edge
//! answers itself (conditionals, ranges, cache directives) and what only
//! keys may carry (cookies). Operators who want the strict old behaviour
//! choose [`ForwardHeaders::Keyed`]: only content negotiation, credentials
//! and the rule's keyed headers.
//!
//! Responses to the client lose hop-by-hop fields and gain `Via`.

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method};

use crate::config::ForwardingTrust;
use crate::http::hop_by_hop::end_to_end;
use crate::policy::key::KeyedTarget;
use crate::policy::rules::{ForwardHeaders, Rule};
use crate::policy::vary::normalise_accept_encoding;
use crate::seams::{Body, ClientConnection, ClientRequest, Fallback, OriginRequest};

/// Our entry in `Via`: protocol version and a pseudonym, never a host name.
pub(crate) const VIA_ENTRY: &str = "1.1 edge-cache";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Fields no client may send the origin through the edge: the forwarding
/// family the edge sets itself, and fields that frameworks read as a
/// different URL, host or method than the one the cache key and the
/// edge's routing saw (request-line rewriting behind the key).
pub(crate) const EDGE_OWNED: [&str; 15] = [
    // The explainer's request field (`flow::explain`): it carries the
    // purge token, and is for the edge alone.
    "edge-explain",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Fields a fill never carries: the edge answers conditionals and ranges
/// from the full stored representation, decides on its own how fresh an
/// answer it needs, sends only keyed cookies (added by the flow), and sends
/// a GET without a body.
pub(crate) const FILL_EXCLUDED: [&str; 13] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
    "cache-control",
    "pragma",
    "cookie",
    "content-length",
    "content-type",
    "content-encoding",
    "expect",
];

/// The fields a [`ForwardHeaders::Keyed`] fill carries besides the rule's
/// keyed headers, the stored `Vary` names and the forwarding fields:
/// content negotiation that origins declare with `Vary`, and credentials
/// (which restrict storing).
pub(crate) const KEYED_MODE_FIELDS: [&str; 5] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "user-agent",
    "authorization",
];

/// The header block for a request the edge passes through without caching
/// (unsafe methods, bypass rules): everything end to end but
/// [`EDGE_OWNED`], with the client's `Via` extended (RFC 9110 §7.6.3).
pub(crate) fn origin_request_headers(
    client: &HeaderMap,
    connection: &ClientConnection,
    trust: ForwardingTrust,
) -> HeaderMap {
    let mut headers = end_to_end(client, |name| !is_edge_owned_or_host(name));
    add_forwarding_fields(&mut headers, client, connection, trust);
    headers
}

/// The client's `Host` (the origin gets its own authority) and [`EDGE_OWNED`].
fn is_edge_owned_or_host(name: &HeaderName) -> bool {
    name == header::HOST || EDGE_OWNED.contains(&name.as_str())
}

/// The header block for a fill or revalidation of a shared entry.
/// `keyed` are the rule's keyed header names, `vary` the names the stored
/// response varies on (RFC 9111 §4.3.1: a revalidation carries them).
pub(crate) fn fill_request_headers(
    client: &HeaderMap,
    connection: &ClientConnection,
    trust: ForwardingTrust,
    mode: ForwardHeaders,
    keyed: &[String],
    vary: &[String],
) -> HeaderMap {
    let listed = |name: &HeaderName| {
        keyed
            .iter()
            .chain(vary)
            .any(|n| n.eq_ignore_ascii_case(name.as_str()))
    };
    // The client's own forwarding fields are kept for
    // `add_forwarding_fields`, which extends or replaces them.
    let forwarding = [
        header::VIA,
        X_FORWARDED_FOR,
        X_FORWARDED_PROTO,
        X_FORWARDED_HOST,
    ];
    let mut headers = end_to_end(client, |name| {
        !is_edge_owned_or_host(name)
            && (forwarding.contains(name)
                || listed(name)
                || match mode {
                    ForwardHeaders::All => !FILL_EXCLUDED.contains(&name.as_str()),
                    ForwardHeaders::Keyed => KEYED_MODE_FIELDS.contains(&name.as_str()),
                })
    });
    add_forwarding_fields(&mut headers, client, connection, trust);
    if trust.trusted_proxy_hops == 0 {
        // A shared entry must not depend on the path one client claims.
        headers.insert(header::VIA, HeaderValue::from_static(VIA_ENTRY));
    }
    if headers.contains_key(header::ACCEPT_ENCODING) {
        let joined: Vec<&str> = headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(normalise_accept_encoding(&joined.join(","))),
        );
    }
    headers
}

/// The request the edge sends for a cacheable GET/HEAD: always a GET
/// (HEAD is answered from it), with the fields `forwarding` allows a
/// fill and only the keyed cookies. `vary` names the fields a stored
/// response varies on (a revalidation must carry them, RFC 9111 §4.3.1).
pub(crate) fn fill_request(
    request: &ClientRequest,
    rule: &Rule,
    keyed: &KeyedTarget,
    trust: ForwardingTrust,
    vary: &[String],
) -> OriginRequest {
    let mut headers = fill_request_headers(
        &request.headers,
        &request.connection,
        trust,
        rule.forward_headers,
        &rule.headers,
        vary,
    );
    if let Some(cookie) = keyed
        .cookie
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert("cookie", cookie);
    }
    OriginRequest {
        method: Method::GET,
        target: keyed.origin_target.clone(),
        headers,
        body: Body::empty(),
        fallback: Fallback::Nothing,
    }
}

/// The header block to send to the client for an origin response.
pub(crate) fn client_response_headers(origin: &HeaderMap) -> HeaderMap {
    let mut headers = end_to_end(origin, |_| true);
    append_via(&mut headers);
    headers
}

/// The scheme the client spoke: the connection's, unless a proxy of the
/// operator's is in front (`trusted_proxy_hops`) and says in
/// `X-Forwarded-Proto` (its last member, the nearest proxy's) that the
/// client spoke `http` or `https` to it, as a TLS terminator does. The
/// cache key and the origin's `X-Forwarded-Proto` both follow it, so an
/// origin that answers `http` with a redirect to `https` does not have
/// that redirect served to its `https` clients.
pub(crate) fn client_scheme(
    client: &HeaderMap,
    connection_scheme: &str,
    trust: ForwardingTrust,
) -> String {
    let claimed = client
        .get_all(&X_FORWARDED_PROTO)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back();
    match claimed {
        Some(proto) if trust.trusted_proxy_hops > 0 => match proto.to_ascii_lowercase().as_str() {
            scheme @ ("http" | "https") => scheme.to_owned(),
            _ => connection_scheme.to_owned(),
        },
        _ => connection_scheme.to_owned(),
    }
}

/// The client's address as the edge takes it: the peer's, or, behind
/// `trusted_proxy_hops` proxies, the address the farthest trusted one
/// reports in `X-Forwarded-For` (what a client claims beyond them is not
/// believed). For logs: one definition of "the client" everywhere.
pub fn client_address(
    request: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted_proxy_hops: usize,
) -> Option<String> {
    let claimed: Vec<&str> = request
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .collect();
    match claimed
        .len()
        .checked_sub(trusted_proxy_hops.min(claimed.len()))
    {
        Some(at) if trusted_proxy_hops > 0 && !claimed.is_empty() => Some(claimed[at].to_owned()),
        _ => peer.map(|ip| ip.to_string()),
    }
}

fn add_forwarding_fields(
    headers: &mut HeaderMap,
    client: &HeaderMap,
    connection: &ClientConnection,
    trust: ForwardingTrust,
) {
    append_via(headers);
    let claimed: Vec<&str> = client
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .collect();
    let trusted = &claimed[claimed.len().saturating_sub(trust.trusted_proxy_hops)..];
    let mut chain: Vec<String> = trusted.iter().map(|m| (*m).to_owned()).collect();
    if let Some(peer) = connection.peer {
        chain.push(peer.ip().to_string());
    }
    headers.remove(&X_FORWARDED_FOR);
    if let Ok(value) = HeaderValue::from_str(&chain.join(", "))
        && !chain.is_empty()
    {
        headers.insert(X_FORWARDED_FOR, value);
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

    #[test]
    fn the_client_is_the_peer_or_what_the_farthest_trusted_proxy_saw() {
        let peer = Some(std::net::IpAddr::from([10, 0, 0, 9]));
        let xff = crate::test_support::headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(client_address(&xff, peer, 0).as_deref(), Some("10.0.0.9"));
        assert_eq!(client_address(&xff, peer, 1).as_deref(), Some("10.0.0.2"));
        assert_eq!(
            client_address(&xff, peer, 2).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(client_address(&xff, peer, 9).as_deref(), Some("6.6.6.6"));
        let none = HeaderMap::new();
        assert_eq!(client_address(&none, peer, 2).as_deref(), Some("10.0.0.9"));
        assert_eq!(client_address(&none, None, 0), None);
    }
    use crate::test_support::headers as map;

    fn connection() -> ClientConnection {
        ClientConnection {
            peer: Some("192.0.2.7:51000".parse().unwrap()),
            scheme: "http".into(),
            host: Some("shop.example".into()),
        }
    }

    #[test]
    fn request_loses_host_and_hop_by_hop_fields() {
        let client = map(&[
            ("host", "shop.example"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("accept", "text/html"),
        ]);
        let out = origin_request_headers(&client, &connection(), ForwardingTrust::default());
        assert!(out.get("host").is_none());
        assert!(out.get("x-hop").is_none());
        assert_eq!(out["accept"], "text/html");
    }

    #[test]
    fn request_gains_forwarding_fields() {
        let out =
            origin_request_headers(&HeaderMap::new(), &connection(), ForwardingTrust::default());
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
        let trusted = ForwardingTrust {
            trusted_proxy_hops: 1,
        };
        let out = origin_request_headers(&client, &connection(), trusted);
        assert_eq!(out["via"], "1.0 corp-proxy, 1.1 lb, 1.1 edge-cache");
        assert_eq!(out["x-forwarded-for"], "203.0.113.9, 192.0.2.7");
    }

    #[test]
    fn a_trusted_proxy_says_which_scheme_the_client_spoke() {
        let behind_tls = map(&[("x-forwarded-proto", "https")]);
        let none = ForwardingTrust::default();
        let one = ForwardingTrust {
            trusted_proxy_hops: 1,
        };
        assert_eq!(client_scheme(&behind_tls, "http", none), "http");
        assert_eq!(client_scheme(&behind_tls, "http", one), "https");
        assert_eq!(client_scheme(&HeaderMap::new(), "http", one), "http");
        // The nearest proxy's member counts; anything else is not a scheme.
        let appended = map(&[("x-forwarded-proto", "https, HTTP")]);
        assert_eq!(client_scheme(&appended, "https", one), "http");
        let odd = map(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(client_scheme(&odd, "http", one), "http");
    }

    #[test]
    fn untrusted_forwarded_for_is_replaced_by_the_peer() {
        let client = map(&[("x-forwarded-for", "10.9.9.9, 203.0.113.9")]);
        let out = origin_request_headers(&client, &connection(), ForwardingTrust::default());
        assert_eq!(out["x-forwarded-for"], "192.0.2.7");
        let one_hop = ForwardingTrust {
            trusted_proxy_hops: 1,
        };
        let out = origin_request_headers(&client, &connection(), one_hop);
        assert_eq!(out["x-forwarded-for"], "203.0.113.9, 192.0.2.7");
    }

    #[test]
    fn edge_owned_fields_never_reach_the_origin() {
        let client = map(&[
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("forwarded", "for=1.2.3.4;host=evil.example"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "8443"),
            ("x-custom", "kept"),
        ]);
        let out = origin_request_headers(&client, &connection(), ForwardingTrust::default());
        for name in EDGE_OWNED {
            if name != "x-forwarded-host" && name != "x-forwarded-proto" {
                assert!(out.get(name).is_none(), "{name} forwarded");
            }
        }
        assert_eq!(out["x-forwarded-host"], "shop.example");
        assert_eq!(out["x-custom"], "kept");
    }

    #[test]
    fn a_fill_carries_end_to_end_fields_but_not_what_the_edge_answers() {
        let client = map(&[
            ("abc", "123"),
            ("accept-encoding", "gzip, br"),
            ("if-none-match", "\"v1\""),
            ("range", "bytes=0-1"),
            ("cookie", "session=s"),
            ("cache-control", "no-cache"),
            ("via", "1.0 attacker"),
        ]);
        let trust = ForwardingTrust::default();
        let out =
            fill_request_headers(&client, &connection(), trust, ForwardHeaders::All, &[], &[]);
        assert_eq!(out["abc"], "123");
        assert_eq!(out["accept-encoding"], "br");
        assert_eq!(out["via"], VIA_ENTRY);
        for name in ["if-none-match", "range", "cookie", "cache-control"] {
            assert!(out.get(name).is_none(), "{name} forwarded");
        }
        let strict = fill_request_headers(
            &client,
            &connection(),
            trust,
            ForwardHeaders::Keyed,
            &[],
            &[],
        );
        assert!(strict.get("abc").is_none());
        assert_eq!(strict["accept-encoding"], "br");
        let vary = ["Abc".to_owned()];
        let revalidation = fill_request_headers(
            &client,
            &connection(),
            trust,
            ForwardHeaders::Keyed,
            &[],
            &vary,
        );
        assert_eq!(revalidation["abc"], "123");
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
}
