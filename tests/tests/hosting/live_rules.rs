//! A rules file edited while the edge runs (issue 26 item 3), through the
//! real component in either flavour: a broken edit keeps the last good
//! rules (kept in the node-local store, so instances made after the edit
//! find them), and a fix with other rules takes over.
//!
//! When rules are read again: a WASI 0.2 instance is one request, so each
//! request reads the file; a WASI 0.3 instance reads it once, for its
//! life. The WASI 0.3 edge here retires an instance after two requests, so
//! instances made after each edit serve what follows it.

use std::time::{Duration, Instant};

use edge_tests::{Edge, EdgeSetup, Fetched, default_flavour, reuse};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Only the rule makes `/kept/…` cacheable: the origin says nothing about
/// freshness, and the built-in rules would not store its answers.
const KEEP: &str = r#"{ "rules": [ { "path_prefix": "/kept/", "default_ttl_seconds": 300 } ] }"#;
/// A trailing comma.
const TYPO: &str = r#"{ "rules": [ { "path_prefix": "/kept/", "default_ttl_seconds": 300 }, ] }"#;
/// A different valid rule for the same paths.
const BYPASS: &str = r#"{ "rules": [ { "path_prefix": "/kept/", "bypass": true } ] }"#;

async fn fetch(edge: &Edge, path: &str) -> Fetched {
    let fetched = edge.fetch(path).await.expect("edge answers");
    assert_eq!(fetched.status, 200, "{path}: {fetched:?}");
    assert!(
        !fetched.cache_status.contains("rules-error"),
        "{path}: caching went off: {}",
        fetched.cache_status
    );
    fetched
}

async fn origin_requests(origin: &MockServer, path: &str) -> usize {
    let requests = origin.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path() == path).count()
}

#[tokio::test]
async fn a_broken_live_edit_keeps_the_last_good_rules_until_a_fix_takes_over() {
    let origin = MockServer::start().await;
    Mock::given(path_regex("^/kept/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&origin)
        .await;
    let setup = EdgeSetup::origin(&origin.uri())
        .component_only()
        .rules(KEEP)
        .flavour(default_flavour())
        .reuse(reuse(2, 1));
    let edge = Edge::start(setup).await.expect("edge starts");

    fetch(&edge, "/kept/a").await;
    assert!(fetch(&edge, "/kept/a").await.hit(), "the rule applies");

    std::fs::write(edge.rules_file(), TYPO).unwrap();
    let instances = edge.instance_stats().created;
    // Stored under the good rules: still a hit, under the same key.
    let again = fetch(&edge, "/kept/a").await;
    assert!(again.hit(), "{}", again.cache_status);
    // A path first asked for after the edit is stored as the good rule
    // says, not as the built-in rules would (not at all).
    fetch(&edge, "/kept/b").await;
    let second = fetch(&edge, "/kept/b").await;
    assert!(second.hit(), "{}", second.cache_status);
    assert_eq!(origin_requests(&origin, "/kept/b").await, 1);
    assert!(
        edge.instance_stats().created > instances,
        "instances made after the edit read the broken file"
    );

    std::fs::write(edge.rules_file(), BYPASS).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fetched = fetch(&edge, "/kept/a").await;
        if fetched.cache_status.contains("fwd=bypass") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fixed rules never applied: {}",
            fetched.cache_status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
