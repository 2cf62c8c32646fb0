//! The decision explainer (issue 28): `GET {admin}/explain?url=…` says what
//! the edge would do with a URL and why, for the purge token's bearer
//! only. (Every `Edge::fetch_with` of an explained edge also checks the
//! explainer's prediction against the answer's `Cache-Status`: see
//! `edge_tests::explained`; the caching suite runs that way.)

use edge_tests::{EXPLAIN_TOKEN, Edge, EdgeSetup, explain};
use reqwest::Client;
use serde_json::Value;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn site() -> MockServer {
    let origin = MockServer::start().await;
    let mounts = [
        (
            "/products",
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .insert_header("surrogate-key", "product:1 list")
                .set_body_string("products"),
        ),
        (
            "/dynamic",
            ResponseTemplate::new(200).set_body_string("no lifetime given"),
        ),
    ];
    for (at, template) in mounts {
        Mock::given(path(at))
            .respond_with(template)
            .mount(&origin)
            .await;
    }
    origin
}

async fn edge(origin: &MockServer) -> Edge {
    let rules = r#"{"rules": [
        {"name": "products", "path_prefix": "/products", "query": {"include": ["page"]}},
        {"name": "pages", "path_prefix": "/"}
    ]}"#;
    Edge::start(EdgeSetup::origin(&origin.uri()).rules(rules).explained())
        .await
        .expect("edge starts")
}

async fn explained(edge: &Edge, target: &str, headers: &[(&str, &str)]) -> Value {
    explain(&edge.url(""), target, headers).await.unwrap()
}

#[tokio::test]
async fn a_url_is_explained_from_miss_to_hit_to_purged() {
    let origin = site().await;
    let edge = edge(&origin).await;
    let target = "/products?page=2&utm_source=mail";

    let before = explained(&edge, target, &[]).await;
    assert_eq!(before["rule"]["name"], "products");
    assert_eq!(before["outcome"]["hit"], false);
    assert_eq!(before["outcome"]["fwd"], "uri-miss");
    assert_eq!(before["key"]["query_kept"], serde_json::json!(["page"]));
    assert_eq!(
        before["key"]["query_dropped"],
        serde_json::json!(["utm_source"])
    );
    assert!(before["stored"].is_null());
    assert!(
        origin.received_requests().await.unwrap().is_empty(),
        "explaining asks nothing of the origin"
    );

    // (fetch_with checks each answer against the explainer's prediction.)
    assert!(!edge.fetch(target).await.unwrap().hit());
    let hit = explained(&edge, target, &[]).await;
    assert_eq!(hit["outcome"]["hit"], true, "{hit}");
    assert_eq!(hit["stored"]["lifetime_from"], "max-age");
    assert_eq!(hit["stored"]["lifetime_seconds"], 600);
    assert_eq!(
        hit["stored"]["tags"],
        serde_json::json!(["list", "product:1"])
    );
    assert!(edge.fetch(target).await.unwrap().hit());

    let purged = Client::new()
        .post(edge.url("/_edge/purge"))
        .bearer_auth(EXPLAIN_TOKEN)
        .body(r#"{"tags": ["product:1"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let receipt: Value = serde_json::from_slice(&purged.bytes().await.unwrap()).unwrap();
    let after = explained(&edge, target, &[]).await;
    assert_eq!(after["purged_by"]["id"], receipt["id"], "{after}");
    assert_eq!(after["outcome"]["hit"], false);
    assert_eq!(after["outcome"]["detail"], "invalidated");
    assert_eq!(after["purged_by"]["scope"], "tag:product:1", "{after}");
    assert_eq!(after["purged_by"]["kind"], "hard");
    assert!(!edge.fetch(target).await.unwrap().hit());
    assert_eq!(origin.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_explainer_says_why_a_page_is_not_cached_and_what_would_change_it() {
    let origin = site().await;
    let edge = edge(&origin).await;

    let cookie = explained(&edge, "/products", &[("cookie", "session=abc")]).await;
    assert_eq!(cookie["outcome"]["fwd"], "bypass");
    assert_eq!(cookie["outcome"]["detail"], "cookie");
    let advice = cookie["advice"][0].as_str().unwrap();
    assert!(
        advice.contains("`session`") && advice.contains("ignored_cookies"),
        "{advice}"
    );

    let dynamic = explain(&edge.url(""), "/dynamic", &[]).await.unwrap();
    assert!(
        dynamic["origin"].is_null(),
        "the origin is asked only with fetch=1"
    );
    let fetched = Client::new()
        .get(edge.url("/_edge/explain"))
        .query(&[("url", "/dynamic"), ("fetch", "1")])
        .bearer_auth(EXPLAIN_TOKEN)
        .send()
        .await
        .unwrap();
    let fetched: Value = serde_json::from_slice(&fetched.bytes().await.unwrap()).unwrap();
    assert_eq!(fetched["origin"]["status"], 200);
    assert_eq!(fetched["origin"]["storable"], false);
    assert_eq!(fetched["origin"]["not_storable_because"], "no-freshness");
    let advice = fetched["advice"].to_string();
    assert!(
        advice.contains("default_ttl_seconds") && advice.contains("`pages`"),
        "{advice}"
    );
    // Asked, but nothing stored: the next request is still a miss.
    assert_eq!(
        explained(&edge, "/dynamic", &[]).await["outcome"]["fwd"],
        "uri-miss"
    );
}

#[tokio::test]
async fn only_the_token_s_bearer_is_answered_and_mistakes_are_named() {
    let origin = site().await;
    let edge = edge(&origin).await;
    let client = Client::new();
    let anonymous = client
        .get(edge.url("/_edge/explain?url=/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client
        .get(edge.url("/_edge/explain?url=/products"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let post = client
        .post(edge.url("/_edge/explain?url=/products"))
        .bearer_auth(EXPLAIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    for (query, words) in [("", "name the URL"), ("?url=products", "starting with `/`")] {
        let refused = client
            .get(edge.url(&format!("/_edge/explain{query}")))
            .bearer_auth(EXPLAIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        assert!(refused.text().await.unwrap().contains(words), "{query}");
    }
    assert!(origin.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_token_s_bearer_can_ask_an_answer_to_explain_itself() {
    let origin = site().await;
    let edge = edge(&origin).await;
    let client = Client::new();
    let get = |token: &'static str| {
        client
            .get(edge.url("/products?page=1&utm_source=mail"))
            .header("edge-explain", token)
            .send()
    };
    let anonymous = get("not-the-token").await.unwrap();
    assert_eq!(anonymous.status(), 200);
    assert!(anonymous.headers().get("edge-explain").is_none());

    let answered = get(EXPLAIN_TOKEN).await.unwrap();
    assert!(
        answered.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit"),
        "the wrong token's request stored it"
    );
    let field = answered.headers()["edge-explain"]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "rule=\"products\"",
        "query-dropped=\"utm_source\"",
        "lifetime=600",
        "lifetime-from=\"max-age\"",
        "stored-age=",
    ] {
        assert!(field.contains(part), "{part} missing from {field}");
    }
    for request in origin.received_requests().await.unwrap() {
        assert!(
            !request.headers.contains_key("edge-explain"),
            "the origin saw the explainer's field (and the token in it)"
        );
    }
}
