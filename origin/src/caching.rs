//! The caching headers of every representation the origin sends:
//! validators, freshness per endpoint, surrogate keys, and `304`s.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// Tag of the home page.
pub const TAG_HOME: &str = "home";
/// Tag of every page listing products.
pub const TAG_LIST: &str = "product-list";
/// Tag of static assets.
pub const TAG_STATIC: &str = "static";

/// Tag of everything showing product `id`.
pub fn product_tag(id: i64) -> String {
    format!("product:{id}")
}

/// Freshness for browsers (`Cache-Control`) and, where the edge may keep
/// a response longer because every write purges it, for the edge
/// (`CDN-Cache-Control`, which the edge reads instead and strips).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// `CDN-Cache-Control`.
    pub cdn_cache_control: Option<&'static str>,
}

/// The home page varies on the `lang` and `currency` cookies. Browsers key
/// their cache by URL alone, so they must revalidate (the `ETag` differs
/// per language and currency, so a cookie change is seen at once); the
/// edge keys by those cookies (cache rules) and keeps it until a purge.
pub const HOME: Policy = Policy {
    cache_control: "private, no-cache",
    cdn_cache_control: Some("public, max-age=600, stale-while-revalidate=60, stale-if-error=86400"),
};

/// Product and list pages: the same for everyone, purged on every write.
pub const CATALOG: Policy = Policy {
    cache_control: "public, max-age=60, stale-while-revalidate=30, stale-if-error=86400",
    cdn_cache_control: Some(
        "public, max-age=3600, stale-while-revalidate=60, stale-if-error=86400",
    ),
};

/// A product that does not exist (yet): briefly, and purged on creation.
pub const MISSING_PRODUCT: Policy = Policy {
    cache_control: "public, max-age=10",
    cdn_cache_control: Some("public, max-age=60"),
};

/// Assets under a content-hashed name never change.
pub const IMMUTABLE: Policy = Policy {
    cache_control: "public, max-age=31536000, immutable",
    cdn_cache_control: None,
};

/// Assets under their plain name, and the asset manifest: may change on
/// deploy, so briefly.
pub const SHORT: Policy = Policy {
    cache_control: "public, max-age=60",
    cdn_cache_control: None,
};

/// Per-user pages: no shared cache may store them, browsers revalidate.
pub const PRIVATE: Policy = Policy {
    cache_control: "private, no-cache",
    cdn_cache_control: None,
};

/// Errors, admin answers and health checks.
pub const NO_STORE: Policy = Policy {
    cache_control: "no-store",
    cdn_cache_control: None,
};

/// A representation and everything caches need to know about it.
#[derive(Debug, Clone)]
pub struct Representation {
    /// The body.
    pub body: Bytes,
    /// `Content-Type`.
    pub content_type: String,
    /// When what it shows last changed.
    pub last_modified: SystemTime,
    /// Freshness.
    pub policy: Policy,
    /// `Surrogate-Key` tags.
    pub tags: Vec<String>,
    /// `Vary`, when the body depends on request headers.
    pub vary: Option<&'static str>,
}

/// A strong entity tag: the first 128 bits of the blake3 hash of the
/// representation's bytes.
pub fn entity_tag(bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes);
    format!("\"{}\"", &hash.to_hex()[..32])
}

/// `Last-Modified` for a time.
pub fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Whether a conditional GET can be answered `304` (RFC 9110 §13.1:
/// `If-None-Match`, compared weakly, wins over `If-Modified-Since`).
pub fn not_modified(
    etag: &str,
    modified: SystemTime,
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
) -> bool {
    if let Some(candidates) = if_none_match {
        let weak_eq = |tag: &str| tag.trim().trim_start_matches("W/") == etag;
        return candidates.trim() == "*" || candidates.split(',').any(weak_eq);
    }
    match if_modified_since.and_then(|d| httpdate::parse_http_date(d).ok()) {
        // Dates have one-second resolution; compare at that resolution.
        Some(since) => httpdate::HttpDate::from(modified) <= httpdate::HttpDate::from(since),
        None => false,
    }
}

/// The response for `representation`: `status` with the body, or `304`
/// when the request's validators match.
pub fn respond(
    representation: Representation,
    status: StatusCode,
    request: &HeaderMap,
) -> Response<Full<Bytes>> {
    let etag = entity_tag(&representation.body);
    let text = |name| {
        request
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let unchanged = status == StatusCode::OK
        && not_modified(
            &etag,
            representation.last_modified,
            text(header::IF_NONE_MATCH),
            text(header::IF_MODIFIED_SINCE),
        );
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        // Every value here is built from ASCII we control or from asset
        // paths, which cannot hold control characters; a value that still
        // fails is dropped rather than sent malformed.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("etag", &etag);
    set("last-modified", &http_date(representation.last_modified));
    set("cache-control", representation.policy.cache_control);
    if let Some(cdn) = representation.policy.cdn_cache_control {
        set("cdn-cache-control", cdn);
    }
    if !representation.tags.is_empty() {
        set("surrogate-key", &representation.tags.join(" "));
    }
    if let Some(vary) = representation.vary {
        set("vary", vary);
    }
    if unchanged {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    set("content-type", &representation.content_type);
    set("content-length", &representation.body.len().to_string());
    *response.status_mut() = status;
    *response.body_mut() = Full::new(representation.body);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn page(body: &'static str) -> Representation {
        Representation {
            body: Bytes::from_static(body.as_bytes()),
            content_type: "text/html; charset=utf-8".into(),
            last_modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            policy: CATALOG,
            tags: vec!["product:1".into(), TAG_LIST.into()],
            vary: Some("Accept"),
        }
    }

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn full_response_carries_every_caching_header() {
        let response = respond(page("hello"), StatusCode::OK, &HeaderMap::new());
        let h = response.headers();
        assert_eq!(response.status(), 200);
        assert_eq!(h["etag"], entity_tag(b"hello"));
        assert_eq!(h["last-modified"], "Tue, 14 Nov 2023 22:13:20 GMT");
        assert!(
            h["cache-control"]
                .to_str()
                .unwrap()
                .contains("stale-if-error")
        );
        assert!(
            h["cdn-cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age=3600")
        );
        assert_eq!(h["surrogate-key"], "product:1 product-list");
        assert_eq!(h["vary"], "Accept");
        assert_eq!(h["content-length"], "5");
    }

    #[test]
    fn validators_answer_304_with_the_caching_headers() {
        let etag = entity_tag(b"hello");
        for conditional in [
            request(&[("if-none-match", &etag)]),
            request(&[("if-none-match", &format!("\"x\", W/{etag}"))]),
            request(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]),
        ] {
            let response = respond(page("hello"), StatusCode::OK, &conditional);
            assert_eq!(response.status(), 304, "{conditional:?}");
            assert_eq!(response.headers()["etag"], etag.as_str());
            assert_eq!(
                response.headers()["surrogate-key"],
                "product:1 product-list"
            );
            assert!(!response.headers().contains_key("content-type"));
        }
        // If-None-Match decides when present, even if the date would match.
        let stale = request(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert_eq!(respond(page("hello"), StatusCode::OK, &stale).status(), 200);
        let older = request(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]);
        assert_eq!(respond(page("hello"), StatusCode::OK, &older).status(), 200);
        // Only successes are answered 304.
        let matching = request(&[("if-none-match", &etag)]);
        assert_eq!(
            respond(page("hello"), StatusCode::NOT_FOUND, &matching).status(),
            404
        );
    }

    #[test]
    fn conditional_edge_cases() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(not_modified("\"a\"", t, Some("*"), None));
        assert!(!not_modified("\"a\"", t, None, Some("garbage")));
        assert!(!not_modified("\"a\"", t, None, None));
    }

    #[test]
    fn etags_are_strong_and_content_derived() {
        assert_eq!(entity_tag(b"a"), entity_tag(b"a"));
        assert_ne!(entity_tag(b"a"), entity_tag(b"b"));
        assert!(entity_tag(b"a").starts_with('"') && !entity_tag(b"a").starts_with("W/"));
    }
}
