//! The edge as a reverse proxy (no caching): the compiled component in
//! edge-host, wiremock as the origin, real sockets on 127.0.0.1.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edge_tests::{Edge, EdgeSetup, closed_port, edge_for, raw_exchange, raw_origin};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn get_is_proxied_with_status_headers_and_body() {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/products"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(203)
                .insert_header("x-origin-header", "kept")
                .insert_header("cache-control", "max-age=60")
                .append_header("set-cookie", "a=1")
                .append_header("set-cookie", "b=2")
                .set_body_string("page two"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let response = reqwest::get(edge.url("/products?page=2")).await.unwrap();
    assert_eq!(response.status(), 203);
    let headers = response.headers().clone();
    assert_eq!(headers["x-origin-header"], "kept");
    assert_eq!(headers["cache-control"], "max-age=60");
    assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(headers["via"], "1.1 edge-cache");
    assert_eq!(response.text().await.unwrap(), "page two");
}

#[tokio::test]
async fn error_statuses_pass_through_unchanged() {
    let origin = MockServer::start().await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such thing"))
        .mount(&origin)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "7"))
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let missing = reqwest::get(edge.url("/missing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.unwrap(), "no such thing");
    let broken = reqwest::get(edge.url("/broken")).await.unwrap();
    assert_eq!(broken.status(), 503);
    assert_eq!(broken.headers()["retry-after"], "7");
}

#[tokio::test]
async fn post_body_and_headers_reach_the_origin() {
    let origin = MockServer::start().await;
    let payload = "x".repeat(100_000); // several write chunks
    Mock::given(method("POST"))
        .and(path("/admin/products"))
        .and(header("content-type", "application/json"))
        .and(header("authorization", "Bearer s3cret"))
        .and(body_string(payload.clone()))
        .respond_with(ResponseTemplate::new(201).set_body_string("created"))
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let response = reqwest::Client::new()
        .post(edge.url("/admin/products"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer s3cret")
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), "created");
}

#[tokio::test]
async fn head_is_answered_from_a_get_without_a_body() {
    let origin = MockServer::start().await;
    // HEAD is answered from the GET response the edge fetches (and could
    // store), so the origin sees a GET.
    Mock::given(method("GET"))
        .and(path("/static/app.css"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_string("body{}"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let response = reqwest::Client::new()
        .head(edge.url("/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"v1\"");
    assert_eq!(response.headers()["content-length"], "6");
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn hop_by_hop_fields_are_stripped_and_forwarding_fields_added() {
    let origin = MockServer::start().await;
    // POST passes every end-to-end header through (cacheable GETs forward
    // only what the key covers; see the caching tests).
    Mock::given(method("POST"))
        .and(path("/hop"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-end-to-end", "1")
                .insert_header("proxy-authenticate", "Basic")
                .set_body_string("ok"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let response = raw_exchange(
        &edge,
        "POST /hop HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 0\r\nConnection: close, x-secret\r\n\
         X-Secret: must-not-pass\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9v\r\n\
         Via: 1.0 corp\r\nspin-client-addr: 6.6.6.6:1\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-end-to-end: 1"));
    assert!(
        !response.to_ascii_lowercase().contains("proxy-authenticate"),
        "{response}"
    );

    let received = origin.received_requests().await.unwrap();
    let sent = &received[0].headers;
    for gone in [
        "x-secret",
        "te",
        "proxy-authorization",
        "spin-client-addr",
        "spin-full-url",
    ] {
        assert!(sent.get(gone).is_none(), "{gone} reached the origin");
    }
    assert_eq!(sent["x-kept"], "yes");
    assert_eq!(sent["via"], "1.0 corp, 1.1 edge-cache");
    // The forged spin-client-addr was replaced by the host with the real peer.
    assert_eq!(sent["x-forwarded-for"], "127.0.0.1");
    assert_eq!(sent["x-forwarded-proto"], "http");
    assert_eq!(sent["x-forwarded-host"], "shop.example");
}

#[tokio::test]
async fn origin_refusing_connections_is_a_502_naming_the_cause() {
    let origin_url = format!("http://127.0.0.1:{}", closed_port());
    let edge = Edge::start(EdgeSetup::origin(&origin_url)).await.unwrap();

    let response = reqwest::get(edge.url("/anything")).await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("connection refused")
    );
}

#[tokio::test]
async fn an_origin_body_cut_short_is_a_502_and_is_not_stored() {
    // A cacheable `200` declaring 100 bytes, 10 sent, then the close.
    let (origin_url, requests) = raw_origin(|mut stream| async move {
        let cut = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\
            Content-Length: 100\r\n\r\nten bytes.";
        let _ = stream.write_all(cut).await;
        None
    })
    .await;
    let edge = Edge::start(EdgeSetup::origin(&origin_url)).await.unwrap();
    for attempt in 1..=2 {
        let response = reqwest::get(edge.url("/cut")).await.unwrap();
        assert_eq!(response.status(), 502, "attempt {attempt}");
        let text = response.text().await.unwrap();
        assert!(text.contains("response body broke off"), "{text}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 2, "nothing was stored");
}

#[tokio::test]
async fn slow_origin_is_a_504_after_the_configured_timeout() {
    let origin = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&origin)
        .await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("origin_timeout_ms", "300");
    let edge = Edge::start(setup).await.unwrap();

    let started = Instant::now();
    let response = reqwest::get(edge.url("/slow")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("origin timed out after 300 ms")
    );
    // Generous bound: the point is that we did not wait for the origin's 10 s.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn outbound_request_outside_the_allow_list_is_refused() {
    let origin = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&origin)
        .await;
    let setup = EdgeSetup {
        allowed_outbound_hosts: Some(vec![format!("http://127.0.0.1:{}", closed_port())]),
        ..EdgeSetup::origin(&origin.uri())
    };
    let edge = Edge::start(setup).await.unwrap();

    let response = reqwest::get(edge.url("/x")).await.unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("allowed_outbound_hosts")
    );
}

#[tokio::test]
async fn origin_url_can_come_from_the_environment() {
    let origin = MockServer::start().await;
    Mock::given(path("/env"))
        .respond_with(ResponseTemplate::new(200).set_body_string("via env"))
        .expect(1)
        .mount(&origin)
        .await;
    let setup = EdgeSetup {
        environment: vec![("SPIN_VARIABLE_ORIGIN_URL".into(), origin.uri())],
        ..Default::default()
    };
    let edge = Edge::start(setup).await.unwrap();

    let response = reqwest::get(edge.url("/env")).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "via env");
}

#[tokio::test]
async fn missing_required_variable_fails_at_start_naming_it() {
    let error = Edge::start(EdgeSetup::default())
        .await
        .err()
        .expect("start must fail");
    let message = format!("{error:#}");
    assert!(message.contains("origin_url"), "{message}");
    assert!(message.contains("SPIN_VARIABLE_ORIGIN_URL"), "{message}");
}
