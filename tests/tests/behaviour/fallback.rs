//! Fallback on failure: a failing store, a failing or slow origin, the
//! breaker, the concurrency cap, a backup origin, and clear errors that
//! say what failed in words, not in the host's types.

use std::time::{Duration, Instant};

use edge_tests::{Edge, EdgeSetup, FaultyStore, closed_port, origin_requests_reach};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn edge_with_backup(primary: &str, backup: &MockServer) -> Edge {
    let setup = EdgeSetup {
        allowed_outbound_hosts: Some(vec![primary.to_owned(), backup.uri()]),
        ..EdgeSetup::origin(primary)
    }
    .variable("backup_origin_url", &backup.uri());
    Edge::start(setup).await.expect("edge starts")
}

#[tokio::test]
async fn backup_origin_answers_when_the_primary_returns_5xx() {
    let primary = MockServer::start().await;
    let backup = MockServer::start().await;
    Mock::given(path("/p"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&primary)
        .await;
    Mock::given(path("/p"))
        .respond_with(ResponseTemplate::new(200).set_body_string("from backup"))
        .expect(1)
        .mount(&backup)
        .await;
    let edge = edge_with_backup(&primary.uri(), &backup).await;
    let response = reqwest::get(edge.url("/p")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "from backup");
}

#[tokio::test]
async fn backup_origin_answers_when_the_primary_refuses() {
    let backup = MockServer::start().await;
    Mock::given(path("/p"))
        .respond_with(ResponseTemplate::new(200).set_body_string("from backup"))
        .expect(1)
        .mount(&backup)
        .await;
    let primary = format!("http://127.0.0.1:{}", closed_port());
    let edge = edge_with_backup(&primary, &backup).await;
    let response = reqwest::get(edge.url("/p")).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "from backup");
}

#[tokio::test]
async fn without_a_backup_a_failing_primary_is_reported() {
    let primary = MockServer::start().await;
    Mock::given(path("/p"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&primary)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&primary.uri()))
        .await
        .unwrap();
    assert_eq!(reqwest::get(edge.url("/p")).await.unwrap().status(), 503);
}

#[tokio::test]
async fn a_failing_store_sends_every_request_to_the_origin_and_caching_resumes_after() {
    let origin = MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string("page"),
        )
        .mount(&origin)
        .await;
    let store = FaultyStore::new();
    store.set_failing(true);
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).store(&store))
        .await
        .unwrap();
    for _ in 0..20 {
        let page = edge.fetch("/page").await.unwrap();
        let (status, cache_status, body) = (page.status, page.cache_status.clone(), page.text());
        assert_eq!((status, body.as_str()), (200, "page"));
        assert!(
            cache_status.contains("fwd=bypass") && cache_status.contains("detail=store-error"),
            "{cache_status}"
        );
    }
    assert_eq!(origin.received_requests().await.unwrap().len(), 20);
    assert!(store.failures() >= 20);

    store.set_failing(false);
    let first = edge.fetch("/page").await.unwrap().cache_status;
    let second = edge.fetch("/page").await.unwrap().cache_status;
    assert!(
        first.contains("miss") && first.contains("stored"),
        "{first}"
    );
    assert!(second.contains("hit"), "{second}");
    assert_eq!(origin.received_requests().await.unwrap().len(), 21);
}

#[tokio::test]
async fn grace_serves_every_stored_page_while_the_origin_is_down() {
    // Not from wiremock's pool: dropping it must really close the port.
    let origin = MockServer::builder().start().await;
    Mock::given(wiremock::matchers::method("GET"))
        .respond_with(
            // No stale-if-error: only the edge's grace allows stale here.
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=1")
                .set_body_string("stored"),
        )
        .mount(&origin)
        .await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("grace_seconds", "3600");
    let edge = Edge::start(setup).await.unwrap();
    let pages: Vec<String> = (0..10).map(|i| format!("/p{i}")).collect();
    for page in &pages {
        assert_eq!(edge.fetch(page).await.unwrap().status, 200);
    }
    // Take the origin away and let the entries expire (their TTL is 1 s).
    drop(origin);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for page in &pages {
        let fetched = edge.fetch(page).await.unwrap();
        let (status, cache_status, body) =
            (fetched.status, fetched.cache_status.clone(), fetched.text());
        assert_eq!((status, body.as_str()), (200, "stored"), "{page}");
        assert!(
            cache_status.contains("fwd=stale")
                && (cache_status.contains("detail=grace")
                    || cache_status.contains("detail=circuit-open")),
            "{page}: {cache_status}"
        );
    }
    // Nothing stored: a clear error, not a hang.
    let started = Instant::now();
    let fetched = edge.fetch("/never-stored").await.unwrap();
    let (status, body) = (fetched.status, fetched.text());
    assert!(status == 502 || status == 503, "{status} {body}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_slow_origin_without_a_stored_copy_is_a_504_within_the_timeout() {
    let origin = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&origin)
        .await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("origin_timeout_ms", "300");
    let edge = Edge::start(setup).await.unwrap();
    let started = Instant::now();
    let fetched = edge.fetch("/slow").await.unwrap();
    let (status, body) = (fetched.status, fetched.text());
    let waited = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body, "origin timed out after 300 ms\n");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_and_closes_after_a_good_probe() {
    // Timeouts: the failures where failing fast spares clients a wait.
    let origin = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&origin)
        .await;
    let setup = EdgeSetup::origin(&origin.uri())
        .variable("origin_timeout_ms", "200")
        .variable("breaker_failures", "3")
        .variable("breaker_cooldown_ms", "500");
    let edge = Edge::start(setup).await.unwrap();
    for _ in 0..3 {
        assert_eq!(edge.fetch("/api").await.unwrap().status, 504);
    }
    // Open: answered at once, without asking the origin.
    let response = reqwest::get(edge.url("/api")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.text().await.unwrap();
    assert!(body.contains("circuit breaker open"), "{body}");
    assert_eq!(origin.received_requests().await.unwrap().len(), 3);

    // The origin recovers; after the cool-down a probe closes the breaker.
    origin.reset().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(200).set_body_string("back"))
        .mount(&origin)
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..3 {
        let fetched = edge.fetch("/api").await.unwrap();
        assert_eq!((fetched.status, fetched.text().as_str()), (200, "back"));
    }
}

#[tokio::test]
async fn fetches_beyond_the_concurrency_cap_are_turned_away() {
    let origin = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(1_500))
                .set_body_string("slow"),
        )
        .mount(&origin)
        .await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("origin_max_concurrent", "1");
    let edge = Edge::start(setup).await.unwrap();
    let first_url = edge.url("/slow?n=1");
    let first = tokio::spawn(async move { reqwest::get(first_url).await.unwrap().status() });
    origin_requests_reach(&origin, 1).await;

    let turned_away = reqwest::get(edge.url("/slow?n=2")).await.unwrap();
    assert_eq!(turned_away.status(), 503);
    assert_eq!(turned_away.headers()["retry-after"], "1");
    let body = turned_away.text().await.unwrap();
    assert!(body.contains("origin busy: 1 fetches"), "{body}");
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);

    assert_eq!(first.await.unwrap(), 200);
    // The slot is free again.
    assert_eq!(edge.fetch("/slow?n=3").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_tls_mismatch_with_the_origin_is_told_in_words() {
    // An `https` origin URL for a server that speaks plain HTTP: the
    // handshake fails. The client used to read `origin failed:
    // ErrorCode::TlsProtocolError`.
    let origin = MockServer::start().await;
    let port = origin.address().port();
    let edge = Edge::start(EdgeSetup::origin(&format!("https://127.0.0.1:{port}")))
        .await
        .unwrap();
    let fetched = edge.fetch("/page").await.unwrap();
    let body = fetched.text();
    assert_eq!(fetched.status, 502, "{body}");
    assert_eq!(
        body, "origin failed: the TLS handshake did not complete\n",
        "in words"
    );
    for leak in ["ErrorCode", "::", "(", "Tls"] {
        assert!(!body.contains(leak), "{leak:?} in {body:?}");
    }
}
