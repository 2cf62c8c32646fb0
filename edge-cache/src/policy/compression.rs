//! Compression as policy: which responses the edge compresses when it
//! stores them, in which codings, and which stored representation a
//! client gets (`Accept-Encoding`, RFC 9110 §12.5.3).
//!
//! The edge compresses in the component, at fill: it is the part that
//! runs on every platform (Spin's HTTP trigger compresses nothing), and a
//! fill pays once for what every hit then serves. A stored object keeps
//! the codings in [`STORED_CODINGS`] side by side; a client that accepts
//! none of them gets the original bytes back by decompressing.

use http::HeaderMap;
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_RANGE, CONTENT_TYPE};

use crate::http::cache_control::CacheDirectives;
use crate::http::content_coding::Coding;
use crate::policy::rules::Rule;

/// The codings a compressed object is stored in, in the order the edge
/// prefers them when a client accepts several equally: Brotli is about a
/// fifth smaller on web text; gzip is what every client takes.
pub const STORED_CODINGS: [Coding; 2] = [Coding::Br, Coding::Gzip];

/// The media types compressed unless a rule lists its own
/// (`compress_types`): text formats browsers fetch, as Cloudflare's and
/// nginx's usual lists; `+json` and `+xml` types are matched by suffix.
/// Images, video, archives and fonts in WOFF are compressed already.
pub const DEFAULT_COMPRESS_TYPES: [&str; 17] = [
    "text/*",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "application/x-yaml",
    "application/yaml",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "image/svg+xml",
    "image/x-icon",
];

/// Bodies smaller than this are not compressed unless a rule says
/// otherwise (`compress_min_bytes`): below it a coding's framing eats the
/// saving (nginx's `gzip_min_length` is 20, Akamai's is 860 bytes).
pub const DEFAULT_COMPRESS_MIN_BYTES: u64 = 256;

/// Whether the edge compresses a `status` response with these fields and
/// a body of `body_len` bytes under `rule`: a complete `200` of a listed
/// type, not encoded already, not partial, that the origin did not mark
/// `no-transform` (RFC 9111 §5.2.2.6), and large enough.
pub fn should_compress(rule: &Rule, status: u16, headers: &HeaderMap, body_len: u64) -> bool {
    if !rule.compress.unwrap_or(true) || status != 200 || headers.contains_key(CONTENT_RANGE) {
        return false;
    }
    let encoded = headers.get_all(CONTENT_ENCODING).iter().any(|value| {
        value.to_str().map_or(true, |v| {
            v.split(',')
                .any(|c| !c.trim().eq_ignore_ascii_case("identity"))
        })
    });
    if encoded
        || body_len
            < rule
                .compress_min_bytes
                .unwrap_or(DEFAULT_COMPRESS_MIN_BYTES)
    {
        return false;
    }
    if CacheDirectives::from_headers(headers, CACHE_CONTROL).is_some_and(|d| d.has("no-transform"))
    {
        return false;
    }
    let Some(media_type) = media_type(headers) else {
        return false;
    };
    match &rule.compress_types {
        Some(types) => types.iter().any(|t| type_matches(t, &media_type)),
        None => {
            DEFAULT_COMPRESS_TYPES
                .iter()
                .any(|t| type_matches(t, &media_type))
                || media_type.ends_with("+json")
                || media_type.ends_with("+xml")
        }
    }
}

/// The response's media type, lower case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next()?.trim().to_ascii_lowercase();
    media_type.contains('/').then_some(media_type)
}

/// Whether `pattern` (`type/subtype` or `type/*`) matches `media_type`.
fn type_matches(pattern: &str, media_type: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(top) => media_type
            .split_once('/')
            .is_some_and(|(t, _)| t.eq_ignore_ascii_case(top)),
        None => pattern.eq_ignore_ascii_case(media_type),
    }
}

/// Whether `pattern` is a media type a rule may list: `type/subtype` or
/// `type/*`, in token characters.
pub fn valid_type_pattern(pattern: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    pattern
        .split_once('/')
        .is_some_and(|(top, sub)| token(top) && (sub == "*" || token(sub)))
}

/// The representation a client gets of an object stored in `available`
/// codings: the one it accepts with the highest weight, the edge's order
/// breaking ties; `None` for the original bytes (identity), which is also
/// the answer when the client accepts nothing offered, as no client can
/// be refused a page for lack of a coding (RFC 9110 §12.5.3 lets a server
/// send identity then).
///
/// No `Accept-Encoding` at all gets identity too: the RFC would allow any
/// coding, but clients that send none (scripts, old tools) mostly cannot
/// decode one, and nginx and Apache answer them uncompressed.
pub fn choose_coding(request: &HeaderMap, available: &[Coding]) -> Option<Coding> {
    let mut values = request.get_all(ACCEPT_ENCODING).iter().peekable();
    values.peek()?;
    let mut weights: Vec<(String, f32)> = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else { continue };
        for member in value.split(',') {
            let mut parts = member.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .map_or(1.0, |q| q.clamp(0.0, 1.0));
            weights.push((name, weight));
        }
    }
    let weight_of = |token: &str| {
        weights
            .iter()
            .find(|(name, _)| name == token || (token == "gzip" && name == "x-gzip"))
            .or_else(|| weights.iter().find(|(name, _)| name == "*"))
            .map_or(0.0, |(_, w)| *w)
    };
    let best = available
        .iter()
        .map(|coding| (*coding, weight_of(coding.token())))
        .filter(|(_, weight)| *weight > 0.0)
        .fold(None::<(Coding, f32)>, |best, (coding, weight)| match best {
            Some((_, w)) if w >= weight => best,
            _ => Some((coding, weight)),
        })?;
    // Identity is acceptable unless excluded (§12.5.3); it wins only if
    // the client weighs it above every coding offered.
    let identity = weights
        .iter()
        .find(|(name, _)| name == "identity")
        .map_or(0.0, |(_, w)| *w);
    (best.1 >= identity).then_some(best.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn response(fields: &[(&str, &str)]) -> HeaderMap {
        headers(fields)
    }

    #[test]
    fn text_types_of_a_whole_200_are_compressed() {
        let rule = Rule::default();
        let html = response(&[("content-type", "text/html; charset=utf-8")]);
        assert!(should_compress(&rule, 200, &html, 1000));
        for (kind, yes) in [
            ("application/json", true),
            ("application/ld+json", true),
            ("image/svg+xml", true),
            ("application/javascript", true),
            ("TEXT/CSS", true),
            ("image/png", false),
            ("video/mp4", false),
            ("application/zip", false),
            ("font/woff2", false),
        ] {
            let fields = response(&[("content-type", kind)]);
            assert_eq!(should_compress(&rule, 200, &fields, 1000), yes, "{kind}");
        }
    }

    #[test]
    fn what_is_never_compressed() {
        let rule = Rule::default();
        let html = |extra: &[(&str, &str)]| {
            let mut fields = vec![("content-type", "text/html")];
            fields.extend_from_slice(extra);
            response(&fields)
        };
        assert!(!should_compress(&rule, 206, &html(&[]), 1000));
        assert!(!should_compress(&rule, 404, &html(&[]), 1000));
        assert!(!should_compress(
            &rule,
            200,
            &html(&[("content-encoding", "gzip")]),
            1000
        ));
        assert!(!should_compress(
            &rule,
            200,
            &html(&[("content-range", "bytes 0-9/10")]),
            1000
        ));
        assert!(!should_compress(
            &rule,
            200,
            &html(&[("cache-control", "max-age=60, no-transform")]),
            1000
        ));
        assert!(!should_compress(&rule, 200, &html(&[]), 100));
        assert!(!should_compress(&rule, 200, &response(&[]), 1000));
        assert!(should_compress(
            &rule,
            200,
            &html(&[("content-encoding", "identity")]),
            1000
        ));
    }

    #[test]
    fn a_rule_can_turn_it_off_or_list_its_own_types_and_size() {
        let html = response(&[("content-type", "text/html")]);
        let off = Rule {
            compress: Some(false),
            ..Rule::default()
        };
        assert!(!should_compress(&off, 200, &html, 1000));
        let own = Rule {
            compress_types: Some(vec!["application/x-custom".into()]),
            compress_min_bytes: Some(10),
            ..Rule::default()
        };
        assert!(!should_compress(&own, 200, &html, 1000));
        let custom = response(&[("content-type", "application/x-custom")]);
        assert!(should_compress(&own, 200, &custom, 20));
        assert!(!should_compress(&own, 200, &custom, 5));
    }

    #[test]
    fn a_rules_file_with_a_bad_media_type_is_refused_in_words() {
        let error = crate::policy::rules::CacheRules::parse(
            r#"{"rules": [{"path_prefix": "/", "compress_types": ["html"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cache rules: rules[0].compress_types[0]: not a media type (`type/subtype` or `type/*`)"
        );
    }

    #[test]
    fn type_patterns_are_checked() {
        assert!(valid_type_pattern("text/*"));
        assert!(valid_type_pattern("application/vnd.api+json"));
        assert!(!valid_type_pattern("text"));
        assert!(!valid_type_pattern("*/*x"));
        assert!(!valid_type_pattern("text/ html"));
    }

    fn choose(accept: &[&str]) -> Option<Coding> {
        let fields: Vec<(&str, &str)> = accept.iter().map(|v| ("accept-encoding", *v)).collect();
        choose_coding(&headers(&fields), &STORED_CODINGS)
    }

    #[test]
    fn the_client_s_weights_choose_and_the_edge_breaks_ties() {
        assert_eq!(choose(&["gzip, deflate, br, zstd"]), Some(Coding::Br));
        assert_eq!(choose(&["gzip"]), Some(Coding::Gzip));
        assert_eq!(choose(&["x-gzip"]), Some(Coding::Gzip));
        assert_eq!(choose(&["br;q=0.5, gzip"]), Some(Coding::Gzip));
        assert_eq!(choose(&["br;q=0, gzip;q=0.1"]), Some(Coding::Gzip));
        assert_eq!(choose(&["gzip", "br"]), Some(Coding::Br));
        assert_eq!(choose(&["*"]), Some(Coding::Br));
        assert_eq!(choose(&["*;q=0.5, br;q=0"]), Some(Coding::Gzip));
        assert_eq!(choose(&["zstd"]), None);
        assert_eq!(choose(&["identity"]), None);
        assert_eq!(choose(&[""]), None);
        assert_eq!(choose(&[]), None);
        assert_eq!(choose(&["identity;q=1, gzip;q=0.5"]), None);
        assert_eq!(choose(&["gzip;q=0, br;q=0"]), None);
        assert_eq!(choose(&["GZIP;Q=0.8"]), Some(Coding::Gzip));
    }
}
