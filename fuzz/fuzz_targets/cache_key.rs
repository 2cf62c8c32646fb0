//! The cache key (client bytes): path normalisation, query and cookie
//! selection, keyed headers, host spelling. Keying is idempotent: what the
//! edge forwards (target, cookies, host) keys to the same entry again, and
//! the forwarded target is a valid request target.
//!
//! Input: `scheme host path?query` on the first line, one rule as JSON on
//! the second (checked as a rules file; the default rule if it is not one
//! or does not match), then the request's header block.
#![no_main]

use edge_cache::fuzzing::host::canonical_host;
use edge_cache::fuzzing::key::{build_key, hash128};
use edge_cache::fuzzing::rules::CacheRules;
use edge_cache::fuzzing::target::normalise_path;
use edge_fuzz::{first_line, header_block};
use http::HeaderValue;
use http::uri::PathAndQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (line, rest) = first_line(data);
    let (rule_line, headers) = first_line(rest);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.splitn(3, ' ');
    let scheme = parts.next().unwrap_or("http");
    let host = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let rules = CacheRules::parse(&format!(
        "{{\"rules\": [{}]}}",
        String::from_utf8_lossy(rule_line)
    ))
    .unwrap_or_default();
    let rule = rules.for_target(target);
    let headers = header_block(headers);

    let keyed = build_key(scheme, host, target, &headers, rule);
    assert_eq!(keyed.key.hash, hash128(keyed.key.canonical.as_bytes()));
    assert_eq!(keyed.key.hash.len(), 32);
    assert!(keyed.path.starts_with('/'), "{:?}", keyed.path);
    assert_eq!(
        normalise_path(&keyed.path),
        keyed.path,
        "path normalisation is idempotent"
    );
    assert!(keyed.origin_target.starts_with(keyed.path.as_str()));
    // What the host hands the component: a valid target, fragment-free.
    if target
        .parse::<PathAndQuery>()
        .is_ok_and(|pq| pq.as_str() == target)
    {
        assert!(
            keyed.origin_target.parse::<PathAndQuery>().is_ok(),
            "{target:?} forwarded as {:?}",
            keyed.origin_target
        );
    }
    if rule.cookies.is_empty() {
        assert_eq!(keyed.cookie, None);
    }

    // The forwarded request keys to the same entry: its target, its
    // cookies (only the keyed ones) and the host as the key spells it.
    let mut forwarded = headers.clone();
    forwarded.remove("cookie");
    if let Some(cookie) = &keyed.cookie {
        forwarded.insert(
            "cookie",
            HeaderValue::from_str(cookie).expect("forwarded cookie is a field value"),
        );
    }
    let again = build_key(scheme, host, &keyed.origin_target, &forwarded, rule);
    assert_eq!(again.key, keyed.key, "re-keying {:?}", keyed.origin_target);
    assert_eq!(again.origin_target, keyed.origin_target);
    assert_eq!(again.cookie, keyed.cookie);

    let host_once = canonical_host(scheme, host);
    assert_eq!(
        canonical_host(scheme, &host_once),
        host_once,
        "host {host:?}"
    );

    let prefix = format!("{}://", scheme.to_ascii_lowercase());
    if !host.contains(['/', '?', '\n']) && !scheme.contains(['/', ':']) {
        let after = &keyed.key.canonical[prefix.len()..];
        let canonical_host = &after[..after.find('/').expect("the path follows the host")];
        let respelled = build_key(scheme, canonical_host, target, &headers, rule);
        assert_eq!(
            respelled.key, keyed.key,
            "host {host:?} keys as {canonical_host:?}, which keys differently"
        );
    }

    // Any text, not only request paths.
    let text = String::from_utf8_lossy(data);
    let once = normalise_path(&text);
    assert_eq!(normalise_path(&once), once);
});
