//! Fallback on failure: a backup origin, and clear errors.

use edge_tests::{Edge, EdgeSetup, closed_port};
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
