//! Attacks on the shared cache from one client, through the real component:
//! negative answers a client provokes are never kept beyond what the origin
//! allows, purge bodies are bounded and authenticated before they are read,
//! and what reaches the origin is what the key saw.

use std::time::Duration;

use edge_tests::{Edge, EdgeSetup, header_of, purge_edge, read_until, workspace_root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The repository's own rules: `/static/` holds versioned objects.
fn shipped_rules() -> String {
    std::fs::read_to_string(workspace_root().join("fixtures/rules/cache-rules.json"))
        .expect("fixtures/rules/cache-rules.json")
}

/// An origin that, like many, refuses an oversized `User-Agent` with a
/// plain `400` and otherwise serves the asset without caching headers.
async fn origin_refusing_long_user_agents(asset: &'static str) -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path(asset))
        .respond_with(|request: &Request| {
            let agent_len = request
                .headers
                .get("user-agent")
                .map_or(0, |v| v.as_bytes().len());
            if agent_len > 4096 {
                ResponseTemplate::new(400).set_body_string("header too large")
            } else {
                ResponseTemplate::new(200).set_body_string("console.log(1)")
            }
        })
        .mount(&origin)
        .await;
    origin
}

fn long_agent() -> String {
    "x".repeat(9_000)
}

async fn versioned_edge(origin: &MockServer) -> Edge {
    Edge::start(EdgeSetup::origin(&origin.uri()).rules(&shipped_rules()))
        .await
        .expect("edge starts")
}

#[tokio::test]
async fn a_provoked_400_on_a_versioned_asset_is_not_stored() {
    const ASSET: &str = "/static/js/app.3f2a1b9c.js";
    let origin = origin_refusing_long_user_agents(ASSET).await;
    let edge = versioned_edge(&origin).await;
    let attack = edge
        .fetch_with(ASSET, &[("user-agent", &long_agent())])
        .await
        .unwrap();
    assert_eq!(attack.status, 400, "{}", attack.cache_status);
    assert!(
        !attack.cache_status.contains("stored"),
        "{}",
        attack.cache_status
    );
    let user = edge.fetch(ASSET).await.unwrap();
    assert_eq!((user.status, user.text().as_str()), (200, "console.log(1)"));
    assert!(
        user.cache_status.contains("stored"),
        "{}",
        user.cache_status
    );
    assert_eq!(origin.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_forced_revalidation_that_fails_keeps_the_good_asset() {
    const ASSET: &str = "/static/js/app.9e8d7c6b.js";
    let origin = origin_refusing_long_user_agents(ASSET).await;
    let edge = versioned_edge(&origin).await;
    assert_eq!(edge.fetch(ASSET).await.unwrap().status, 200);
    let attack = edge
        .fetch_with(
            ASSET,
            &[("user-agent", &long_agent()), ("cache-control", "no-cache")],
        )
        .await
        .unwrap();
    assert_eq!(attack.status, 400);
    let user = edge.fetch(ASSET).await.unwrap();
    assert_eq!(user.status, 200);
    assert!(user.hit(), "{}", user.cache_status);
    assert_eq!(origin.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_404_for_a_version_not_yet_released_is_asked_again() {
    let origin = MockServer::start().await;
    Mock::given(path("/static/lib.js"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such version"))
        .up_to_n_times(1)
        .mount(&origin)
        .await;
    Mock::given(path("/static/lib.js"))
        .respond_with(ResponseTemplate::new(200).set_body_string("v2"))
        .mount(&origin)
        .await;
    let edge = versioned_edge(&origin).await;
    assert_eq!(edge.fetch("/static/lib.js?v=2").await.unwrap().status, 404);
    // Released: the next request is asked again, and the 200 is kept.
    let released = edge.fetch("/static/lib.js?v=2").await.unwrap();
    assert_eq!((released.status, released.text().as_str()), (200, "v2"));
    assert!(edge.fetch("/static/lib.js?v=2").await.unwrap().hit());
}

#[tokio::test]
async fn an_origin_may_still_ask_for_a_negative_answer_to_be_kept() {
    let origin = MockServer::start().await;
    Mock::given(path("/static/gone.css"))
        .respond_with(
            ResponseTemplate::new(404)
                .insert_header("cache-control", "max-age=30")
                .set_body_string("gone"),
        )
        .mount(&origin)
        .await;
    let edge = versioned_edge(&origin).await;
    let first = edge.fetch("/static/gone.css?v=1").await.unwrap();
    assert!(
        first.cache_status.contains("ttl=30"),
        "{}",
        first.cache_status
    );
    let second = edge.fetch("/static/gone.css?v=1").await.unwrap();
    assert!(second.hit(), "{}", second.cache_status);
}

/// Sends `head` (no body follows) and reads the answer's status line,
/// failing if the edge waits for a body instead of answering.
async fn status_of_head_only(edge: &Edge, head: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn purge_requests_are_refused_from_their_head_before_the_body_is_read() {
    let origin = MockServer::start().await;
    let edge = purge_edge(&origin, "s3cret").await;
    let unauthenticated = "POST /_edge/purge HTTP/1.1\r\nHost: shop.example\r\n\
                           Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n";
    assert_eq!(
        status_of_head_only(&edge, unauthenticated).await,
        "HTTP/1.1 401 Unauthorized"
    );
    let oversized = "POST /_edge/purge HTTP/1.1\r\nHost: shop.example\r\n\
                     Authorization: Bearer s3cret\r\nContent-Length: 100000\r\n\r\n";
    assert_eq!(
        status_of_head_only(&edge, oversized).await,
        "HTTP/1.1 413 Payload Too Large"
    );
    assert!(origin.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_streamed_purge_body_is_cut_off_at_the_limit() {
    let origin = MockServer::start().await;
    let edge = purge_edge(&origin, "s3cret").await;
    // No Content-Length: the limit holds while the body streams in.
    let mut stream = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let head = "POST /_edge/purge HTTP/1.1\r\nHost: shop.example\r\n\
                Authorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
    for _ in 0..20 {
        // The edge may answer and stop reading before all is sent.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let text = read_until(&mut stream, "over 65536 bytes").await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let origin = MockServer::start().await;
    let edge = purge_edge(&origin, "s3cret").await;
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let response = reqwest::Client::new()
            .post(edge.url("/_edge/purge"))
            .header("authorization", format!("{scheme} s3cret"))
            .body(r#"{"all": true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

/// An origin echoing the request fields named in `names`, one per line.
async fn echoing_origin(names: &'static [&'static str]) -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(move |request: &Request| {
            let echoed: Vec<String> = names
                .iter()
                .map(|name| format!("{name}={}", header_of(request, name)))
                .collect();
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string(echoed.join("\n"))
        })
        .mount(&origin)
        .await;
    origin
}

#[tokio::test]
async fn the_origin_sees_the_host_as_the_key_spells_it() {
    let origin = echoing_origin(&["x-forwarded-host"]).await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let odd = edge
        .fetch_with("/page", &[("host", "Shop.EXAMPLE.")])
        .await
        .unwrap();
    assert_eq!(odd.text(), "x-forwarded-host=shop.example");
    let plain = edge
        .fetch_with("/page", &[("host", "shop.example")])
        .await
        .unwrap();
    assert!(plain.hit(), "one entry for both spellings");
}

#[tokio::test]
async fn client_forwarding_claims_do_not_shape_a_shared_entry() {
    let origin = echoing_origin(&["x-forwarded-for", "via"]).await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let fetched = edge
        .fetch_with(
            "/page",
            &[("x-forwarded-for", "6.6.6.6"), ("via", "1.0 attacker")],
        )
        .await
        .unwrap();
    assert_eq!(
        fetched.text(),
        "x-forwarded-for=127.0.0.1\nvia=1.1 edge-cache"
    );
}

#[tokio::test]
async fn a_trusted_proxy_in_front_keeps_its_forwarded_for_entry() {
    let origin = echoing_origin(&["x-forwarded-for"]).await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("trusted_proxy_hops", "1");
    let edge = Edge::start(setup).await.unwrap();
    let fetched = edge
        .fetch_with("/page", &[("x-forwarded-for", "10.1.1.1, 203.0.113.5")])
        .await
        .unwrap();
    assert_eq!(fetched.text(), "x-forwarded-for=203.0.113.5, 127.0.0.1");
}

#[tokio::test]
async fn a_trusted_tls_terminator_s_scheme_keys_and_is_forwarded_and_a_client_s_is_not() {
    // The origin echoes the scheme it is told; answers are cacheable, so
    // an answer stored for one scheme served to the other would show.
    let origin = echoing_origin(&["x-forwarded-proto"]).await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("trusted_proxy_hops", "1");
    let behind_tls = Edge::start(setup).await.unwrap();
    for _ in 0..2 {
        let https = behind_tls
            .fetch_with("/page", &[("x-forwarded-proto", "https")])
            .await
            .unwrap();
        assert_eq!(https.text(), "x-forwarded-proto=https");
        let http = behind_tls
            .fetch_with("/page", &[("x-forwarded-proto", "http")])
            .await
            .unwrap();
        assert_eq!(http.text(), "x-forwarded-proto=http");
    }
    // Two entries, each filled once.
    assert_eq!(origin.received_requests().await.unwrap().len(), 2);
    // With no proxy trusted, a client's claim is ignored: one entry, http.
    let exposed = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let claimed = exposed
        .fetch_with("/page", &[("x-forwarded-proto", "https")])
        .await
        .unwrap();
    assert_eq!(claimed.text(), "x-forwarded-proto=http");
}
