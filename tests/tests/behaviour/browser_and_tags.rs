//! What browsers are told of a hit's lifetime (`browser_freshness`,
//! `browser_max_age`), and purges by the tags frameworks write for other
//! CDNs (`Cache-Tag`, `xkey`; `tag_headers`), through the real component.
//!
//! Entries are made old by the origin, not by waiting: an `Age: 68` and a
//! `Date` 68 s back make a response 68 s old on arrival, as one from a
//! cache behind the edge would be.

use std::time::{Duration, SystemTime};

use edge_tests::{Edge, EdgeSetup, Fetched};
use reqwest::Client;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "t0ken-for-tests";

/// The reported case: an hour at the edge, a minute in browsers.
const EDGE_FOR_AN_HOUR: &str = "max-age=3600";
const BROWSERS_FOR_A_MINUTE: &str = "public, max-age=60";
/// How old the origin's answer already is.
const AGED: u64 = 68;

const RULES: &str = r#"{ "rules": [
    { "path_prefix": "/reset/", "browser_freshness": "reset-age" },
    { "path_prefix": "/five-minutes/", "browser_max_age": 300 },
    { "path_prefix": "/only-xkey/", "tag_headers": ["xkey"] }
] }"#;

async fn edge(origin: &MockServer) -> Edge {
    let setup = EdgeSetup::origin(&origin.uri())
        .rules(RULES)
        .variable("purge_token", TOKEN);
    Edge::start(setup).await.expect("edge starts")
}

/// `at` as an IMF-fixdate, as an origin writes `Date`.
fn http_date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

/// Mounts at `p` the reported origin answer, already `AGED` seconds old.
async fn mount_aged(origin: &MockServer, p: &str, cdn: &str, browsers: &str) {
    let date = http_date(SystemTime::now() - Duration::from_secs(AGED));
    Mock::given(path(p))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cdn-cache-control", cdn)
                .insert_header("cache-control", browsers)
                .insert_header("age", AGED.to_string().as_str())
                .insert_header("date", date.as_str())
                .insert_header("etag", "\"v1\"")
                .set_body_string(p),
        )
        .mount(origin)
        .await;
}

fn field<'a>(got: &'a Fetched, name: &str) -> &'a str {
    got.headers
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or("(not text)"))
}

/// Whether `date` is an HTTP-date within a few seconds of now.
fn is_about_now(date: &str) -> bool {
    let now = SystemTime::now();
    (0..=5).any(|back| date == http_date(now + Duration::from_secs(1) - Duration::from_secs(back)))
}

/// The `ttl` `Cache-Status` reports.
fn edge_ttl(got: &Fetched) -> i64 {
    let ttl = got
        .cache_status
        .split("; ")
        .find_map(|p| p.strip_prefix("ttl="));
    ttl.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a ttl in {}", got.cache_status))
}

#[tokio::test]
async fn a_hit_reaches_browsers_stale_unless_the_rule_resets_its_age() {
    let origin = MockServer::start().await;
    for p in ["/page", "/reset/page", "/five-minutes/page"] {
        mount_aged(&origin, p, EDGE_FOR_AN_HOUR, BROWSERS_FOR_A_MINUTE).await;
    }
    let edge = edge(&origin).await;
    for p in ["/page", "/reset/page", "/five-minutes/page"] {
        let miss = edge.fetch(p).await.unwrap();
        assert!(
            miss.cache_status.contains("stored"),
            "{p}: {}",
            miss.cache_status
        );
    }

    // Today's behaviour, and RFC 9111's: the edge's Age, the origin's Date;
    // a browser takes the hit as stale on arrival (68 s > max-age=60).
    let plain = edge.fetch("/page").await.unwrap();
    assert!(plain.hit(), "{}", plain.cache_status);
    let age: u64 = field(&plain, "age").parse().unwrap();
    assert!(age >= AGED, "Age {age}");
    assert!(
        !is_about_now(field(&plain, "date")),
        "{}",
        field(&plain, "date")
    );
    assert_eq!(field(&plain, "cache-control"), BROWSERS_FOR_A_MINUTE);

    // `reset-age`: the same hit, as if fresh from the origin: a browser
    // keeps it its full minute.
    let reset = edge.fetch("/reset/page").await.unwrap();
    assert!(reset.hit(), "{}", reset.cache_status);
    assert_eq!(field(&reset, "age"), "0");
    assert!(
        is_about_now(field(&reset, "date")),
        "{}",
        field(&reset, "date")
    );
    assert_eq!(field(&reset, "cache-control"), BROWSERS_FOR_A_MINUTE);
    // The edge reports its own view: a hit 68 s into its hour.
    let ttl = edge_ttl(&reset);
    assert!((3500..=3600 - AGED as i64).contains(&ttl), "ttl {ttl}");
    assert!(!reset.headers.contains_key("cdn-cache-control"));

    // `browser_max_age`: browsers get their own lifetime, the other
    // directives kept.
    let five = edge.fetch("/five-minutes/page").await.unwrap();
    assert!(five.hit(), "{}", five.cache_status);
    assert_eq!(field(&five, "cache-control"), "public, max-age=300");
    assert_eq!(field(&five, "age"), "0");
    assert!(is_about_now(field(&five, "date")));

    // A browser's revalidation gets the same fresh lifetime on its 304.
    let revalidated = edge
        .fetch_with("/reset/page", &[("if-none-match", "\"v1\"")])
        .await
        .unwrap();
    assert_eq!(revalidated.status, 304);
    assert_eq!(field(&revalidated, "age"), "0");
    assert!(is_about_now(field(&revalidated, "date")));
    assert_eq!(
        origin.received_requests().await.unwrap().len(),
        3,
        "hits all"
    );
}

#[tokio::test]
async fn a_stale_answer_keeps_its_true_age_whatever_the_rule() {
    let origin = MockServer::start().await;
    // Stale at the edge on arrival (68 s > 60 s), served stale while it
    // is refreshed.
    let stale_at_edge = "max-age=60, stale-while-revalidate=3600";
    mount_aged(
        &origin,
        "/reset/stale",
        stale_at_edge,
        BROWSERS_FOR_A_MINUTE,
    )
    .await;
    let edge = edge(&origin).await;
    let miss = edge.fetch("/reset/stale").await.unwrap();
    assert!(
        miss.cache_status.contains("stored"),
        "{}",
        miss.cache_status
    );
    assert!(edge_ttl(&miss) <= 0, "{}", miss.cache_status);
    // As it came: the origin's age, plus the second the clock may have
    // turned since the origin's `Date` was made.
    let age: u64 = field(&miss, "age").parse().unwrap();
    assert!(
        (AGED..=AGED + 2).contains(&age),
        "not fresh: as it came, Age {age}"
    );

    let stale = edge.fetch("/reset/stale").await.unwrap();
    assert!(
        stale.cache_status.contains("hit") && stale.cache_status.contains("stale-while-revalidate"),
        "{}",
        stale.cache_status
    );
    let age: u64 = field(&stale, "age").parse().unwrap();
    assert!(
        age >= AGED,
        "a stale answer is never made to look fresh: Age {age}"
    );
}

/// A cacheable object at `p` tagged with `fields`.
async fn mount_tagged(origin: &MockServer, p: &str, fields: &[(&str, &str)]) {
    let mut answer = ResponseTemplate::new(200)
        .insert_header("cache-control", "max-age=600")
        .set_body_string(p);
    for (name, value) in fields {
        answer = answer.append_header(*name, *value);
    }
    Mock::given(path(p))
        .respond_with(answer)
        .mount(origin)
        .await;
}

async fn purge_tag(edge: &Edge, tag: &str) {
    let response = Client::new()
        .post(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .body(format!(r#"{{"tags": ["{tag}"]}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// `p` through the edge: whether it was a hit, checking that no tag field
/// reaches the client.
async fn hit(edge: &Edge, p: &str) -> bool {
    let got = edge.fetch(p).await.unwrap();
    for name in ["surrogate-key", "cache-tag", "xkey"] {
        assert!(
            !got.headers.contains_key(name),
            "{p}: {name} reached the client"
        );
    }
    got.hit()
}

#[tokio::test]
async fn cache_tag_and_xkey_objects_are_purged_by_their_tags() {
    let origin = MockServer::start().await;
    mount_tagged(&origin, "/cloudflare", &[("cache-tag", "a, b")]).await;
    mount_tagged(&origin, "/varnish", &[("xkey", "c d")]).await;
    mount_tagged(&origin, "/varnish-lines", &[("xkey", "e"), ("xkey", "f")]).await;
    mount_tagged(
        &origin,
        "/other",
        &[("cache-tag", "a,d"), ("xkey", "e"), ("surrogate-key", "z")],
    )
    .await;
    let edge = edge(&origin).await;
    let all = ["/cloudflare", "/varnish", "/varnish-lines", "/other"];
    for p in all {
        assert!(!hit(&edge, p).await, "{p}: first is a miss");
        assert!(hit(&edge, p).await, "{p}: then a hit");
    }

    purge_tag(&edge, "b").await;
    assert!(
        !hit(&edge, "/cloudflare").await,
        "Cache-Tag `a, b` purged by b"
    );
    for p in ["/varnish", "/varnish-lines", "/other"] {
        assert!(hit(&edge, p).await, "{p} untouched by b");
    }

    purge_tag(&edge, "c").await;
    assert!(!hit(&edge, "/varnish").await, "xkey `c d` purged by c");
    purge_tag(&edge, "f").await;
    assert!(
        !hit(&edge, "/varnish-lines").await,
        "a second xkey line purged by f"
    );
    assert!(
        hit(&edge, "/cloudflare").await,
        "filled again after its purge"
    );
    assert!(hit(&edge, "/other").await, "untouched by b, c and f");
}

#[tokio::test]
async fn a_rule_reading_only_xkey_ignores_the_other_tag_fields() {
    let origin = MockServer::start().await;
    let fields = [("cache-tag", "g"), ("surrogate-key", "h"), ("xkey", "i")];
    mount_tagged(&origin, "/only-xkey/page", &fields).await;
    let edge = edge(&origin).await;
    assert!(!hit(&edge, "/only-xkey/page").await);
    assert!(hit(&edge, "/only-xkey/page").await);

    purge_tag(&edge, "g").await;
    purge_tag(&edge, "h").await;
    assert!(
        hit(&edge, "/only-xkey/page").await,
        "Cache-Tag and Surrogate-Key are not read under this rule"
    );
    purge_tag(&edge, "i").await;
    assert!(!hit(&edge, "/only-xkey/page").await, "xkey is");
}
