//! The purge API's checks, each written once: the endpoint's method
//! ([`check_method`]), the bearer token ([`authorized`]) and the body's
//! size ([`check_length`]), which admission runs from the head, and the
//! body itself ([`parse_purge_body`]).
//!
//! `POST {admin_path}/purge` with `Authorization: Bearer <purge_token>` and
//! `{"urls": [...], "tags": [...], "prefixes": [...], "all": bool, "soft": bool}`,
//! or the `PURGE` method on a URL (the Varnish/Fastly convention). Parsing
//! is pure; applying a purge is one store write per target
//! (see `policy::invalidation`).

use http::{HeaderMap, Method};
use purge_wire::PurgeBody;

use crate::config::ServedHosts;
use crate::policy::invalidation::{MAX_PREFIX_DEPTH, prefix_depth};

pub use purge_wire::{MAX_BODY_BYTES, MAX_TARGETS};

/// A purge that passed every check, each URL a path on a served host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeRequest {
    /// URLs, each a path (with optional query) on the host it is keyed
    /// under.
    pub urls: Vec<PurgeUrl>,
    /// Surrogate keys: every entry tagged with one is purged.
    pub tags: Vec<String>,
    /// Path prefixes (segment-aligned).
    pub prefixes: Vec<String>,
    /// Purge every entry on the host.
    pub all: bool,
    /// Mark stale instead of invalid.
    pub soft: bool,
}

/// A URL to purge: a path on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeUrl {
    /// The key host of the URL's site (an alias is purged as its site).
    pub host: String,
    /// The path and optional query.
    pub target: String,
}

/// A refused purge: the status and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRefusal {
    /// The answer's status: 400, 405 or 413.
    pub status: u16,
    /// What is wrong, in words, for the answer's `error`.
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> PurgeRefusal {
    PurgeRefusal {
        status,
        message: message.into(),
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in
/// constant time (blake3 digests compare in constant time).
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme name is case-insensitive (RFC 9110 §11.1).
            let (scheme, credentials) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
        })
        .unwrap_or("");
    blake3::hash(presented.trim().as_bytes()) == blake3::hash(token.as_bytes()) && !token.is_empty()
}

/// The purge endpoint takes POST only (`405` otherwise); admission
/// checks it from the head.
pub(crate) fn check_method(method: &Method) -> Result<(), PurgeRefusal> {
    if method != Method::POST {
        return Err(refuse(405, "the purge endpoint accepts POST only"));
    }
    Ok(())
}

/// A purge body is at most [`MAX_BODY_BYTES`] (`413` otherwise):
/// admission checks the length a head declares, and the body is read no
/// further than that.
pub(crate) fn check_length(length: u64) -> Result<(), PurgeRefusal> {
    if length > MAX_BODY_BYTES as u64 {
        return Err(refuse(
            413,
            format!("purge body over {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Validates a whole `POST {admin_path}/purge` handed in without a head
/// (the origin's contract test, the fuzz target): the endpoint's method
/// and size, then the body. The request path checks the first two at
/// admission and parses with `parse_purge_body`.
pub fn parse_purge_post(
    method: &Method,
    body: &[u8],
    host: &str,
) -> Result<PurgeRequest, PurgeRefusal> {
    check_method(method)?;
    check_length(body.len() as u64)?;
    parse_purge_body(body, host, &ServedHosts::default())
}

/// Validates a purge body (its request admitted: authenticated, POST,
/// within the size limit): JSON naming at most [`MAX_TARGETS`] targets,
/// each of them well formed. A path is on `host` (the purge request's);
/// an absolute URL may name any of the served `hosts` (with no list, only
/// `host`).
pub(crate) fn parse_purge_body(
    body: &[u8],
    host: &str,
    hosts: &ServedHosts,
) -> Result<PurgeRequest, PurgeRefusal> {
    let parsed: PurgeBody = serde_json::from_slice(body)
        .map_err(|e| refuse(400, format!("invalid purge body: {e}")))?;
    let targets = parsed.targets();
    if targets == 0 && !parsed.all {
        return Err(refuse(400, "empty purge: give urls, tags, prefixes or all"));
    }
    if targets > MAX_TARGETS {
        return Err(refuse(
            400,
            format!("too many targets: {targets} (at most {MAX_TARGETS})"),
        ));
    }
    let urls = parsed
        .urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            purge_url(url, host, hosts).map_err(|m| refuse(400, format!("urls[{i}]: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, tag) in parsed.tags.iter().enumerate() {
        if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse(
                400,
                format!("tags[{i}]: a tag is one non-empty word"),
            ));
        }
    }
    for (i, prefix) in parsed.prefixes.iter().enumerate() {
        if !prefix.starts_with('/') {
            return Err(refuse(400, format!("prefixes[{i}]: must start with `/`")));
        }
        if prefix.contains('?') || prefix.contains('*') {
            return Err(refuse(
                400,
                format!("prefixes[{i}]: a path prefix, without query or wildcards"),
            ));
        }
        if prefix_depth(prefix) > MAX_PREFIX_DEPTH {
            return Err(refuse(
                400,
                format!("prefixes[{i}]: deeper than {MAX_PREFIX_DEPTH} segments"),
            ));
        }
    }
    Ok(PurgeRequest {
        urls,
        tags: parsed.tags,
        prefixes: parsed.prefixes,
        all: parsed.all,
        soft: parsed.soft,
    })
}

/// Turns a purge URL into a path-and-query on a host: either a path on
/// `host` (the purge request's), or an absolute URL on a served host.
fn purge_url(url: &str, host: &str, hosts: &ServedHosts) -> Result<PurgeUrl, String> {
    if url.starts_with('/') && !url.starts_with("//") {
        return Ok(PurgeUrl {
            host: host.to_owned(),
            target: url.to_owned(),
        });
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` is neither a path nor an http(s) URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    match hosts.purge_host(authority, host) {
        Some(host) => Ok(PurgeUrl {
            host,
            target: path.to_owned(),
        }),
        None if hosts.any() => Err(format!("`{url}` is on another host than `{host}`")),
        None => Err(format!("`{url}` is not on a host this edge serves")),
    }
}

/// A short random-looking id for logs and the answer.
pub fn purge_id(seed: &[u8]) -> String {
    crate::policy::key::hash128(seed)[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> Result<PurgeRequest, PurgeRefusal> {
        parse_purge_post(&Method::POST, body.as_bytes(), "shop.example")
    }

    #[test]
    fn accepts_every_kind_of_target() {
        let p = post(r#"{"urls": ["/a?b=1", "http://shop.example/c"], "tags": ["product:1"], "prefixes": ["/static/"], "all": false, "soft": true}"#).unwrap();
        let targets: Vec<&str> = p.urls.iter().map(|u| u.target.as_str()).collect();
        assert_eq!(targets, ["/a?b=1", "/c"]);
        assert!(p.urls.iter().all(|u| u.host == "shop.example"));
        assert_eq!(p.tags, ["product:1"]);
        assert_eq!(p.prefixes, ["/static/"]);
        assert!(p.soft);
        assert!(post(r#"{"all": true}"#).unwrap().all);
    }

    #[test]
    fn refusals_name_the_problem() {
        let big = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(MAX_BODY_BYTES));
        let many = format!(
            r#"{{"tags": [{}]}}"#,
            vec!["\"t\""; MAX_TARGETS + 1].join(",")
        );
        let cases: Vec<(&str, u16, &str)> = vec![
            ("not json", 400, "invalid purge body"),
            (r#"{"url": ["/a"]}"#, 400, "unknown field `url`"),
            ("{}", 400, "empty purge"),
            (
                r#"{"urls": ["http://evil.example/a"]}"#,
                400,
                "urls[0]: `http://evil.example/a` is on another host",
            ),
            (r#"{"urls": ["ftp://x"]}"#, 400, "urls[0]"),
            (r#"{"tags": ["two words"]}"#, 400, "tags[0]"),
            (r#"{"prefixes": ["static"]}"#, 400, "prefixes[0]"),
            (
                r#"{"prefixes": ["/a/b/c/d/e/f/g/h/i"]}"#,
                400,
                "deeper than",
            ),
            (&many, 400, "too many targets"),
            (&big, 413, "over 65536 bytes"),
        ];
        for (body, status, needle) in cases {
            let refusal = post(body).unwrap_err();
            assert_eq!(refusal.status, status, "{needle}: {}", refusal.message);
            assert!(
                refusal.message.contains(needle),
                "expected `{needle}` in `{}`",
                refusal.message
            );
        }
        assert_eq!(
            parse_purge_post(&Method::GET, b"", "h").unwrap_err().status,
            405
        );
    }

    #[test]
    fn absolute_urls_name_any_served_host_and_are_purged_under_its_key_host() {
        let hosts = ServedHosts::parse("shop.example www.shop.example, blog.example").unwrap();
        let body = br#"{"urls": ["https://www.shop.example/a", "http://blog.example/b", "/c"]}"#;
        let p = parse_purge_body(body, "203.0.113.7", &hosts).unwrap();
        let urls: Vec<(&str, &str)> = p
            .urls
            .iter()
            .map(|u| (u.host.as_str(), u.target.as_str()))
            .collect();
        assert_eq!(
            urls,
            [
                ("shop.example", "/a"),
                ("blog.example", "/b"),
                ("203.0.113.7", "/c")
            ]
        );
        let refused = parse_purge_body(
            br#"{"urls": ["http://evil.example/a"]}"#,
            "shop.example",
            &hosts,
        )
        .unwrap_err();
        assert!(
            refused.message.contains("not on a host this edge serves"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn bearer_token_check() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "secret"));
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert!(authorized(&h, "secret"));
        assert!(!authorized(&h, "secret2"));
        assert!(!authorized(&h, ""), "an empty token never authorises");
        h.insert("authorization", "Basic secret".parse().unwrap());
        assert!(!authorized(&h, "secret"));
    }
}
