//! The real origin behind the real edge, with the rules file `make up`
//! uses: writes reach the next request through the edge, also when the
//! edge was down during the write; per-user pages are never stored; the
//! home page is cached once per language.

use std::net::SocketAddr;
use std::time::Duration;

use edge_tests::{Edge, EdgeSetup, Fetched, closed_port, workspace_root};
use origin::{Backoff, Config, Origin};
use reqwest::Client;

const ADMIN: &str = "e2e-admin-token";
const PURGE: &str = "e2e-purge-token";

fn rules() -> String {
    std::fs::read_to_string(workspace_root().join("fixtures/rules/cache-rules.json"))
        .expect("the rules file make up uses")
}

/// An edge address that is free now; the origin is told it before the
/// edge exists, as in `make up`.
fn edge_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], closed_port()))
}

async fn start_origin(dir: &std::path::Path, edge: SocketAddr) -> Origin {
    let fixtures = workspace_root().join("fixtures");
    let mut config = Config::new(
        dir.join("origin.db"),
        fixtures.join("static"),
        fixtures.join("seed/products.json"),
    );
    config.admin_token = ADMIN.into();
    config.edge.url = format!("http://{edge}");
    config.edge.purge_token = PURGE.into();
    config.edge.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    origin::start(config, listener)
        .await
        .expect("origin starts")
}

fn edge_setup(origin: &Origin, addr: SocketAddr, rules: &str) -> EdgeSetup {
    EdgeSetup::origin(&origin.url(""))
        .rules(rules)
        .variable("purge_token", PURGE)
        .listen(addr)
}

/// `GET path`, optionally with a `Cookie`; the answer must be a success.
async fn fetch(edge: &Edge, path: &str, cookie: Option<&str>) -> Fetched {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    let fetched = edge.fetch_with(path, &headers).await.unwrap();
    assert!(
        (200..300).contains(&fetched.status),
        "{path}: {}",
        fetched.status
    );
    fetched
}

/// Fetches until stored, then proves the next request is a hit.
async fn cached(edge: &Edge, path: &str) -> Fetched {
    fetch(edge, path, None).await;
    let hit = fetch(edge, path, None).await;
    assert!(hit.hit(), "{path} is cached: {}", hit.cache_status);
    hit
}

async fn set_usd_price(origin: &Origin, id: i64, usd: i64) {
    let body = format!(
        r#"{{"name": "Ceramic Mug", "description": "Repriced.", "prices": {{"USD": {usd}, "EUR": 1800, "KRW": 25000}}, "stock": 9}}"#
    );
    let response = Client::new()
        .put(origin.url(&format!("/admin/products/{id}")))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn purges_delivered(origin: &Origin) {
    tokio::time::timeout(Duration::from_secs(15), origin.purges_delivered())
        .await
        .expect("the outbox delivers in time")
        .expect("purge worker alive");
}

#[tokio::test]
async fn an_admin_write_shows_in_the_next_request_through_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let addr = edge_addr();
    let origin = start_origin(dir.path(), addr).await;
    let edge = Edge::start(edge_setup(&origin, addr, &rules()))
        .await
        .unwrap();

    let page = cached(&edge, "/products/1").await;
    assert!(page.text().contains("$12.00"), "{}", page.text());
    for edge_only in ["surrogate-key", "cdn-cache-control"] {
        assert!(
            !page.headers.contains_key(edge_only),
            "{edge_only} stripped"
        );
    }
    let list = cached(&edge, "/products?sort=price").await;
    assert!(list.text().contains("Ceramic Mug"));
    cached(&edge, "/api/products/1").await;
    let untouched = cached(&edge, "/products/2").await;

    set_usd_price(&origin, 1, 1999).await;
    purges_delivered(&origin).await;

    let after = fetch(&edge, "/products/1", None).await;
    assert!(!after.hit(), "purged: {}", after.cache_status);
    assert!(after.text().contains("$19.99") && !after.text().contains("$12.00"));
    let api = fetch(&edge, "/api/products/1", None).await;
    assert!(
        !api.hit() && api.text().contains("\"USD\":1999"),
        "{}",
        api.text()
    );
    let list = fetch(&edge, "/products?sort=price", None).await;
    assert!(
        !list.hit() && list.text().contains("$19.99"),
        "lists are purged by tag"
    );
    let other = fetch(&edge, "/products/2", None).await;
    assert!(
        other.hit() && other.body == untouched.body,
        "other products stay cached"
    );
    assert!(
        fetch(&edge, "/products/1", None).await.hit(),
        "the new page is cached"
    );
}

#[tokio::test]
async fn purges_written_while_the_edge_is_down_arrive_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let addr = edge_addr();
    let origin = start_origin(dir.path(), addr).await;
    // A store that outlives the edge: without it a restarted edge would be
    // empty and this test would pass without any purge.
    let store = format!(
        "[key_value_store.default]\ntype = \"spin\"\npath = {:?}\n",
        dir.path().join("edge-kv.db").display().to_string()
    );
    let setup = edge_setup(&origin, addr, &rules()).runtime_config(&store);
    let edge = Edge::start(setup.clone()).await.unwrap();
    cached(&edge, "/products/1").await;
    let untouched = cached(&edge, "/products/2").await;
    edge.stop().await;

    set_usd_price(&origin, 1, 2500).await;
    // The worker tried and failed while the edge was away.
    let mut outbox = origin.outbox();
    tokio::time::timeout(
        Duration::from_secs(10),
        outbox.wait_for(|s| s.pending == 1 && s.head_attempts >= 1),
    )
    .await
    .expect("a failed delivery attempt")
    .unwrap();

    let edge = Edge::start(setup).await.unwrap();
    purges_delivered(&origin).await;
    let other = fetch(&edge, "/products/2", None).await;
    assert!(
        other.hit() && other.body == untouched.body,
        "the cache survived the restart: {}",
        other.cache_status
    );
    let after = fetch(&edge, "/products/1", None).await;
    assert!(
        !after.hit(),
        "purged after the restart: {}",
        after.cache_status
    );
    assert!(after.text().contains("$25.00"), "{}", after.text());
}

#[tokio::test]
async fn the_account_page_is_never_a_hit() {
    let dir = tempfile::tempdir().unwrap();
    let addr = edge_addr();
    let origin = start_origin(dir.path(), addr).await;
    let edge = Edge::start(edge_setup(&origin, addr, &rules()))
        .await
        .unwrap();
    let alice = fetch(&edge, "/account", Some("session=alice")).await;
    assert!(
        alice.text().contains("Signed in as user-"),
        "the session reaches the origin"
    );
    assert!(
        alice.headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    let mut statuses = vec![alice.cache_status.clone()];
    for _ in 0..2 {
        let again = fetch(&edge, "/account", Some("session=alice")).await;
        assert_eq!(again.body, alice.body);
        statuses.push(again.cache_status);
    }
    let bob = fetch(&edge, "/account", Some("session=bob")).await;
    assert_ne!(bob.body, alice.body, "each user sees their own page");
    statuses.push(bob.cache_status);
    assert!(statuses.iter().all(|s| !s.contains("hit")), "{statuses:?}");
}

#[tokio::test]
async fn private_keeps_the_account_page_out_even_without_the_bypass_rule() {
    let mut doc: serde_json::Value = serde_json::from_str(&rules()).unwrap();
    // The account rule keys the session instead of bypassing: the page
    // goes through the cache's path, and only `private` keeps it unshared.
    // (With no rule at all the session cookie would make it a pass.)
    for rule in doc["rules"].as_array_mut().unwrap() {
        if rule["name"] == "account" {
            *rule = serde_json::json!({
                "name": "account", "path_prefix": "/account", "cookies": ["session"]
            });
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let addr = edge_addr();
    let origin = start_origin(dir.path(), addr).await;
    let edge = Edge::start(edge_setup(&origin, addr, &doc.to_string()))
        .await
        .unwrap();
    for _ in 0..3 {
        let page = fetch(&edge, "/account", Some("session=alice")).await;
        assert!(
            !page.hit() && page.cache_status.contains("detail=private"),
            "{}",
            page.cache_status
        );
    }
}

#[tokio::test]
async fn each_lang_cookie_gets_its_own_cached_home_page() {
    let dir = tempfile::tempdir().unwrap();
    let addr = edge_addr();
    let origin = start_origin(dir.path(), addr).await;
    let edge = Edge::start(edge_setup(&origin, addr, &rules()))
        .await
        .unwrap();

    let en = fetch(&edge, "/", Some("lang=en")).await;
    assert!(!en.hit() && en.text().contains("Our products"));
    let ko = fetch(&edge, "/", Some("lang=ko")).await;
    assert!(
        !ko.hit(),
        "a new language is a new entry: {}",
        ko.cache_status
    );
    assert!(ko.text().contains("상품 목록") && !ko.text().contains("Our products"));
    let en_again = fetch(&edge, "/", Some("lang=en; tracking=abc")).await;
    assert!(
        en_again.hit() && en_again.body == en.body,
        "{}",
        en_again.cache_status
    );
    let ko_again = fetch(&edge, "/", Some("lang=ko")).await;
    assert!(ko_again.hit() && ko_again.body == ko.body);
    let krw = fetch(&edge, "/", Some("lang=ko; currency=KRW")).await;
    assert!(!krw.hit() && krw.text().contains("₩16,000"));

    // A write purges every variant of the home page.
    set_usd_price(&origin, 1, 1300).await;
    purges_delivered(&origin).await;
    let en_after = fetch(&edge, "/", Some("lang=en")).await;
    assert!(!en_after.hit() && en_after.text().contains("$13.00"));
    assert!(!fetch(&edge, "/", Some("lang=ko")).await.hit());
}

#[tokio::test]
async fn hashed_assets_are_versioned_objects_at_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let addr = edge_addr();
    let origin = start_origin(dir.path(), addr).await;
    let edge = Edge::start(edge_setup(&origin, addr, &rules()))
        .await
        .unwrap();
    let home = fetch(&edge, "/", None).await;
    let css = home
        .text()
        .split('"')
        .find(|s| s.starts_with("/static/css/app.") && s.ends_with(".css"))
        .expect("the page links the hashed stylesheet")
        .to_owned();
    let asset = cached(&edge, &css).await;
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // A year of freshness at the edge, not the heuristic or a default.
    let ttl: u64 = asset
        .cache_status
        .split("ttl=")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.trim().parse().ok())
        .expect("a ttl");
    assert!(ttl > 31_000_000, "{}", asset.cache_status);
}
