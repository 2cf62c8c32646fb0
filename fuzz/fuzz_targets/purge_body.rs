//! The purge API's JSON body (client bytes, after authentication) and the
//! bearer-token check (client bytes, before it).
//!
//! Input: the body. The first line also serves as an `Authorization` value.
#![no_main]

use edge_cache::fuzzing::invalidation::{MAX_PREFIX_DEPTH, prefix_depth};
use edge_cache::fuzzing::request::{MAX_BODY_BYTES, MAX_TARGETS, authorized, parse_purge_post};
use edge_fuzz::first_line;
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

const HOST: &str = "shop.example";

fuzz_target!(|data: &[u8]| {
    match parse_purge_post(&Method::POST, data, HOST) {
        Ok(p) => {
            assert!(data.len() <= MAX_BODY_BYTES);
            let targets = p.urls.len() + p.tags.len() + p.prefixes.len();
            assert!(targets <= MAX_TARGETS);
            assert!(targets > 0 || p.all);
            for url in &p.urls {
                // Without a hosts list, local targets only: a path on this host.
                assert!(url.target.starts_with('/'), "{url:?}");
                assert_eq!(url.host, HOST, "{url:?}");
            }
            for tag in &p.tags {
                assert!(!tag.is_empty() && !tag.chars().any(char::is_whitespace));
            }
            for prefix in &p.prefixes {
                assert!(prefix.starts_with('/') && !prefix.contains(['?', '*']));
                assert!(prefix_depth(prefix) <= MAX_PREFIX_DEPTH);
            }
        }
        Err(refusal) => {
            assert!(matches!(refusal.status, 400 | 413), "{refusal:?}");
            assert!(!refusal.message.is_empty());
        }
    }
    assert_eq!(
        parse_purge_post(&Method::GET, data, HOST)
            .unwrap_err()
            .status,
        405
    );

    let (line, _) = first_line(data);
    if let Ok(value) = HeaderValue::from_bytes(line) {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value);
        assert!(!authorized(&headers, ""), "an empty token never authorises");
        let _ = authorized(&headers, "dev-purge-token");
    }
});
