//! Served hosts (issue 26 item 5), through the real component: with
//! `hosts` set, an alias shares its site's entries and purges, and a host
//! outside the list is answered `421` without the cache or the origin
//! being touched; the admin routes answer on any host.

use edge_tests::{Edge, EdgeSetup, Fetched};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "hosts-token";
const HOSTS: &str = "shop.example www.shop.example 203.0.113.7, blog.example";

async fn edge(origin: &MockServer) -> Edge {
    let setup = EdgeSetup::origin(&origin.uri())
        .variable("hosts", HOSTS)
        .variable("purge_token", TOKEN);
    Edge::start(setup).await.expect("edge starts")
}

/// An origin whose `/page` may be cached for a minute.
async fn cacheable_origin() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string("page"),
        )
        .mount(&origin)
        .await;
    origin
}

async fn get_as(edge: &Edge, host: &str, target: &str) -> Fetched {
    edge.fetch_with(target, &[("host", host)])
        .await
        .expect("edge answers")
}

async fn origin_requests(origin: &MockServer) -> usize {
    origin.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn a_host_outside_the_list_gets_421_and_the_origin_sees_nothing() {
    let origin = cacheable_origin().await;
    let edge = edge(&origin).await;
    for host in [
        "evil.example",
        "shop.example.evil.example",
        "shop.example:8080",
    ] {
        let answer = get_as(&edge, host, "/page").await;
        assert_eq!(answer.status, 421, "{host}: {}", answer.text());
        assert!(
            answer.text().contains("does not serve"),
            "{}",
            answer.text()
        );
        assert!(!answer.hit(), "{host}");
    }
    // A PURGE on such a host is refused the same way.
    let purge = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            edge.url("/page"),
        )
        .header("host", "evil.example")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status().as_u16(), 421);
    assert_eq!(origin_requests(&origin).await, 0, "the origin saw nothing");
    // The health check answers load balancers that ask by address.
    let health = get_as(&edge, "10.0.0.9", "/_edge/health").await;
    assert_eq!(health.status, 200, "{}", health.text());
    // A served host is served.
    assert_eq!(get_as(&edge, "blog.example", "/page").await.status, 200);
    assert_eq!(origin_requests(&origin).await, 1);
}

#[tokio::test]
async fn aliases_share_their_site_s_entry_and_an_absolute_url_purge_of_an_alias() {
    let origin = cacheable_origin().await;
    let edge = edge(&origin).await;
    let first = get_as(&edge, "www.shop.example", "/page").await;
    assert_eq!(first.status, 200);
    assert!(!first.hit());
    for alias in [
        "shop.example",
        "203.0.113.7",
        "WWW.Shop.Example.",
        "www.shop.example",
    ] {
        let again = get_as(&edge, alias, "/page").await;
        assert!(again.hit(), "{alias}: {}", again.cache_status);
    }
    assert_eq!(origin_requests(&origin).await, 1, "one entry for the site");
    // Another site is another entry.
    assert!(!get_as(&edge, "blog.example", "/page").await.hit());

    // Purged by the alias's absolute URL, asked of the edge by address.
    let receipt = reqwest::Client::new()
        .post(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .body(r#"{"urls": ["https://www.shop.example/page"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(receipt.status().as_u16(), 200);
    let receipt: serde_json::Value = serde_json::from_str(&receipt.text().await.unwrap()).unwrap();
    // What it counted: one URL target accepted (under both names).
    assert_eq!(receipt["targets"]["urls"], 1, "{receipt}");
    assert_eq!(receipt["purged"]["urls"], 1, "{receipt}");
    let after = get_as(&edge, "shop.example", "/page").await;
    assert!(
        !after.hit(),
        "purged for every alias: {}",
        after.cache_status
    );
    assert!(
        get_as(&edge, "blog.example", "/page").await.hit(),
        "not the other site"
    );

    // A URL on a host the edge does not serve is refused, in words.
    let refused = reqwest::Client::new()
        .post(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .body(r#"{"urls": ["http://evil.example/page"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let text = refused.text().await.unwrap();
    assert!(text.contains("not on a host this edge serves"), "{text}");
}

/// The `Host` each request the origin received carried, and whether any
/// carried the field by which the edge asks edge-host for it.
async fn origin_hosts(origin: &MockServer) -> (Vec<String>, bool) {
    let requests = origin.received_requests().await.unwrap_or_default();
    let hosts = requests
        .iter()
        .map(|r| {
            r.headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let leaked = requests
        .iter()
        .any(|r| r.headers.contains_key("edge-host-origin-host"));
    (hosts, leaked)
}

#[tokio::test]
async fn with_forward_host_the_origin_is_asked_with_the_site_s_host() {
    let origin = cacheable_origin().await;
    let setup = EdgeSetup::origin(&origin.uri())
        .variable("hosts", HOSTS)
        .variable("forward_host", "true");
    let edge = Edge::start(setup).await.expect("edge starts");
    get_as(&edge, "www.shop.example", "/page").await;
    get_as(&edge, "blog.example", "/page").await;
    // A pass (not a fill) too.
    let post = reqwest::Client::new()
        .post(edge.url("/page"))
        .header("host", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_ne!(post.status().as_u16(), 421);
    let (hosts, leaked) = origin_hosts(&origin).await;
    assert_eq!(hosts, ["shop.example", "blog.example", "shop.example"]);
    assert!(!leaked, "the field is edge-host's, not the origin's");
}

#[tokio::test]
async fn without_forward_host_the_origin_is_asked_with_its_own_host_whatever_the_client_sends() {
    let origin = cacheable_origin().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()))
        .await
        .expect("edge starts");
    // A client that knows the field cannot pick the origin's Host.
    edge.fetch_with("/page", &[("edge-host-origin-host", "evil.example")])
        .await
        .unwrap();
    let (hosts, leaked) = origin_hosts(&origin).await;
    let own = origin.address().to_string();
    assert_eq!(hosts, [own]);
    assert!(!leaked);
}
