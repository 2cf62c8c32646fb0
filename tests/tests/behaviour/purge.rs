//! The purge API through the real component: each kind of purge makes the
//! next request reach the origin; refused purges leave the cache alone.

use std::time::Duration;

use edge_tests::{Edge, EdgeSetup, FaultyStore, origin_requests_reach, purge_edge};
use reqwest::Client;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "t0ken-for-tests";

async fn mount_cacheable(origin: &MockServer, p: &str, tags: &str, expected_fetches: u64) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .insert_header("etag", "\"e\"")
                .insert_header("surrogate-key", tags)
                .set_body_string(p),
        )
        .expect(expected_fetches)
        .mount(origin)
        .await;
}

async fn get_status(edge: &Edge, p: &str) -> String {
    let response = Client::new().get(edge.url(p)).send().await.unwrap();
    response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn purge(
    edge: &Edge,
    token: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = Client::new()
        .post(edge.url("/_edge/purge"))
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn each_kind_of_purge_sends_the_next_request_to_the_origin() {
    let origin = MockServer::start().await;
    mount_cacheable(&origin, "/by-url", "x", 2).await;
    mount_cacheable(&origin, "/by-tag", "product:7 home", 2).await;
    mount_cacheable(&origin, "/static/css/a.css", "static", 2).await;
    mount_cacheable(&origin, "/untouched", "other", 1).await;
    let edge = purge_edge(&origin, TOKEN).await;
    for p in ["/by-url", "/by-tag", "/static/css/a.css", "/untouched"] {
        get_status(&edge, p).await;
        assert!(get_status(&edge, p).await.contains("hit"), "{p} cached");
    }

    let (status, _, body) = purge(
        &edge,
        Some(TOKEN),
        r#"{"urls": ["/by-url"], "tags": ["product:7"], "prefixes": ["/static"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["purged"]["urls"], 1);
    assert_eq!(answer["purged"]["tags"], 1);
    assert_eq!(answer["purged"]["prefixes"], 1);
    assert_eq!(answer["soft"], false);
    assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()));

    for p in ["/by-url", "/by-tag", "/static/css/a.css"] {
        assert!(
            get_status(&edge, p).await.contains("detail=invalidated"),
            "{p} purged"
        );
    }
    assert!(
        get_status(&edge, "/untouched").await.contains("hit"),
        "other entries survive"
    );
}

#[tokio::test]
async fn purge_all_and_the_purge_method() {
    let origin = MockServer::start().await;
    mount_cacheable(&origin, "/a", "t", 3).await;
    let edge = purge_edge(&origin, TOKEN).await;
    get_status(&edge, "/a").await;
    let (status, _, _) = purge(&edge, Some(TOKEN), r#"{"all": true}"#).await;
    assert_eq!(status, 200);
    assert!(get_status(&edge, "/a").await.contains("invalidated"));

    let purge_method = reqwest::Method::from_bytes(b"PURGE").unwrap();
    let response = Client::new()
        .request(purge_method, edge.url("/a"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(get_status(&edge, "/a").await.contains("invalidated"));
}

#[tokio::test]
async fn refused_purges_change_nothing() {
    let origin = MockServer::start().await;
    mount_cacheable(&origin, "/keep", "keep", 1).await;
    let edge = purge_edge(&origin, TOKEN).await;
    get_status(&edge, "/keep").await;

    let all = r#"{"all": true}"#;
    let (status, headers, _) = purge(&edge, None, all).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(purge(&edge, Some("wrong"), all).await.0, 401);
    let (status, _, body) = purge(&edge, Some(TOKEN), r#"{"all": true, "everything": 1}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown field `everything`"), "{body}");
    assert_eq!(purge(&edge, Some(TOKEN), "{}").await.0, 400);
    assert_eq!(
        purge(
            &edge,
            Some(TOKEN),
            r#"{"urls": ["http://elsewhere.example/keep"]}"#
        )
        .await
        .0,
        400
    );
    let big = format!(r#"{{"tags": ["{}"], "all": true}}"#, "x".repeat(70 * 1024));
    assert_eq!(purge(&edge, Some(TOKEN), &big).await.0, 413);
    let get = Client::new()
        .get(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let purge_method = reqwest::Method::from_bytes(b"PURGE").unwrap();
    let response = Client::new()
        .request(purge_method, edge.url("/keep"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert!(
        get_status(&edge, "/keep").await.contains("hit"),
        "still cached"
    );
}

#[tokio::test]
async fn soft_purge_makes_the_next_request_revalidate() {
    let origin = MockServer::start().await;
    Mock::given(path("/soft"))
        .and(header_exists("if-none-match"))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&origin)
        .await;
    mount_cacheable(&origin, "/soft", "s", 1).await;
    let edge = purge_edge(&origin, TOKEN).await;
    get_status(&edge, "/soft").await;
    let (status, _, body) = purge(&edge, Some(TOKEN), r#"{"tags": ["s"], "soft": true}"#).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"soft\":true"), "{body}");
    let revalidated = get_status(&edge, "/soft").await;
    assert!(
        revalidated.contains("fwd=stale") && revalidated.contains("fwd-status=304"),
        "{revalidated}"
    );
    assert!(
        get_status(&edge, "/soft").await.contains("hit"),
        "revalidated entry is fresh again"
    );
}

#[tokio::test]
async fn a_response_fetched_before_a_purge_does_not_survive_it() {
    let origin = MockServer::start().await;
    Mock::given(path("/race"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .set_body_string("old")
                .set_delay(Duration::from_millis(700)),
        )
        .expect(2)
        .mount(&origin)
        .await;
    let edge = purge_edge(&origin, TOKEN).await;
    let slow_get = tokio::spawn({
        let url = edge.url("/race");
        async move { Client::new().get(url).send().await.unwrap().status() }
    });
    // The signal: the origin has the request (and holds it 700 ms).
    origin_requests_reach(&origin, 1).await;
    let (status, _, _) = purge(&edge, Some(TOKEN), r#"{"urls": ["/race"]}"#).await;
    assert_eq!(status, 200);
    assert_eq!(slow_get.await.unwrap(), 200);
    assert!(get_status(&edge, "/race").await.contains("invalidated"));
}

#[tokio::test]
async fn without_a_token_the_purge_path_is_proxied() {
    let origin = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/_edge/purge"))
        .respond_with(ResponseTemplate::new(404).set_body_string("origin's own 404"))
        .expect(1)
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let (status, _, body) = purge(&edge, Some("anything"), r#"{"all": true}"#).await;
    assert_eq!(status, 404);
    assert_eq!(body, "origin's own 404");
}

#[tokio::test]
async fn a_purge_the_store_cannot_record_is_a_503_in_words() {
    // The answer used to carry the store's error as its client formats it:
    // `store unavailable: Error::Other("redis redis://…: no answer …")`.
    let origin = MockServer::start().await;
    let store = FaultyStore::new();
    let setup = EdgeSetup::origin(&origin.uri())
        .variable("purge_token", TOKEN)
        .store(&store);
    let edge = Edge::start(setup).await.unwrap();
    store.set_failing(true);
    let (status, headers, body) = purge(&edge, Some(TOKEN), r#"{"urls": ["/a"]}"#).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["error"], "store unavailable: the purge was not recorded; try again",
        "{body}"
    );
    for leak in ["Error::", "Other(", "injected fault", "::", "redis"] {
        assert!(!body.contains(leak), "{leak:?} in {body}");
    }
    assert!(store.failures() > 0);
}
