//! Purge delivery: in order, retried until acknowledged, resumed after a
//! restart. The edge is a wiremock server speaking the purge API.

mod common;

use common::{ADMIN, PURGE, admin, product_json};
use reqwest::Method;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn receipt() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(
        r#"{"id":"p1","soft":false,"purged":{"urls":2,"tags":3,"prefixes":0,"all":false}}"#,
    )
}

async fn purges(edge: &MockServer) -> Vec<serde_json::Value> {
    edge.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/_edge/purge")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_write_purges_the_edge_with_its_tags() {
    let edge = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/_edge/purge"))
        .and(header("authorization", format!("Bearer {PURGE}").as_str()))
        .respond_with(receipt())
        .mount(&edge)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &edge.uri())).await;
    let (status, _, body) = admin(
        Method::PUT,
        origin.url("/admin/products/4"),
        Some(ADMIN),
        Some(product_json(700)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    common::delivered(&origin).await;
    let sent = purges(&edge).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0],
        serde_json::json!({
            "urls": ["/products/4", "/api/products/4"],
            "tags": ["product:4", "product-list", "home"],
        })
    );
    assert_eq!(origin.outbox().borrow().pending, 0);
}

#[tokio::test]
async fn refusals_and_non_receipts_are_retried_until_acknowledged() {
    let edge = MockServer::start().await;
    Mock::given(path("/_edge/purge"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&edge)
        .await;
    // A 200 that is not a purge receipt: e.g. an edge whose purge API is
    // disabled, proxying the path to some origin.
    Mock::given(path("/_edge/purge"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>hi</html>"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&edge)
        .await;
    Mock::given(path("/_edge/purge"))
        .respond_with(receipt())
        .with_priority(3)
        .mount(&edge)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &edge.uri())).await;
    admin(
        Method::DELETE,
        origin.url("/admin/products/2"),
        Some(ADMIN),
        None,
    )
    .await;
    common::delivered(&origin).await;
    assert_eq!(
        purges(&edge).await.len(),
        4,
        "503, 503, non-receipt, receipt"
    );
}

#[tokio::test]
async fn purges_committed_while_the_edge_is_down_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let down = common::down_edge();
    let first = common::start(common::config(dir.path(), &down)).await;
    for (id, usd) in [(1, 101), (2, 202), (1, 303)] {
        let (status, _, body) = admin(
            Method::PUT,
            first.url(&format!("/admin/products/{id}")),
            Some(ADMIN),
            Some(product_json(usd)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    common::outbox_until(&first, |s| s.pending == 3 && s.head_attempts >= 1).await;
    first.stop().await;

    let edge = MockServer::start().await;
    Mock::given(path("/_edge/purge"))
        .respond_with(receipt())
        .mount(&edge)
        .await;
    let second = common::start(common::config(dir.path(), &edge.uri())).await;
    common::delivered(&second).await;
    let sent = purges(&edge).await;
    // Coalesced into one purge, in commit order, without duplicates.
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["tags"],
        serde_json::json!(["product:1", "product-list", "home", "product:2"])
    );
    let status = second.outbox().borrow().clone();
    assert_eq!((status.pending, status.delivered_through), (0, 3));
    // The data survived too.
    let product = reqwest::get(second.url("/api/products/1")).await.unwrap();
    assert!(product.text().await.unwrap().contains("\"USD\":303"));
    second.stop().await;

    // A third start has nothing left to send.
    let third = common::start(common::config(dir.path(), &edge.uri())).await;
    common::delivered(&third).await;
    assert_eq!(purges(&edge).await.len(), 1);
}

#[tokio::test]
async fn without_a_purge_token_purges_wait_in_the_outbox() {
    let edge = MockServer::start().await;
    Mock::given(path("/_edge/purge"))
        .respond_with(receipt())
        .mount(&edge)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), &edge.uri());
    config.edge.purge_token = String::new();
    let origin = common::start(config).await;
    admin(
        Method::PUT,
        origin.url("/admin/products/1"),
        Some(ADMIN),
        Some(product_json(5)),
    )
    .await;
    common::outbox_until(&origin, |s| s.pending == 1).await;
    origin.stop().await;
    assert!(purges(&edge).await.is_empty());

    let with_token = common::start(common::config(dir.path(), &edge.uri())).await;
    common::delivered(&with_token).await;
    assert_eq!(purges(&edge).await.len(), 1);
}
