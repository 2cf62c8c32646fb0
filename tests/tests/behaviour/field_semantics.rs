//! Field semantics through the real component: `CDN-Cache-Control` read as
//! a Structured Field (RFC 9213 §2), every end-to-end field of a stored
//! response kept (RFC 9111 §3.1), HTTP-dates in every form a recipient must
//! read (RFC 9110 §5.6.7), and interim responses (RFC 9110 §15.2).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edge_tests::{Edge, EdgeSetup, Fetched, edge_for, raw_exchange, raw_origin};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn requests_to(origin: &MockServer, p: &str) -> usize {
    origin
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

fn values(fetched: &Fetched, name: &str) -> Vec<String> {
    fetched
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_cdn_cache_control_that_is_no_structured_dictionary_is_ignored_whole() {
    // Each would give the edge a lifetime under the lenient Cache-Control
    // parser; as Structured Fields they are invalid, so `Cache-Control:
    // no-store` decides.
    let invalid = [
        r#"max-age="60""#,
        "max-age=60.0",
        "max-age=-1",
        "Max-Age=60",
        "max-age=60, public junk",
        "max-age=60;;",
        "max-age=60, stale-if-error=?1",
        "max-age=60, s-maxage",
    ];
    let origin = MockServer::start().await;
    for (i, value) in invalid.iter().enumerate() {
        Mock::given(path(format!("/bad/{i}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cdn-cache-control", *value)
                    .insert_header("cache-control", "no-store")
                    .set_body_string("x"),
            )
            .mount(&origin)
            .await;
    }
    let edge = edge_for(&origin).await;
    for (i, value) in invalid.iter().enumerate() {
        let p = format!("/bad/{i}");
        for _ in 0..2 {
            let got = edge.fetch(&p).await.unwrap();
            assert_eq!(got.status, 200);
            assert!(
                got.cache_status.contains("fwd=uri-miss")
                    && got.cache_status.contains("detail=no-store"),
                "{value}: {}",
                got.cache_status
            );
            assert!(!got.headers.contains_key("cdn-cache-control"), "{value}");
            assert_eq!(values(&got, "cache-control"), ["no-store"], "{value}");
        }
        assert_eq!(requests_to(&origin, &p).await, 2, "{value}");
    }
}

#[tokio::test]
async fn a_valid_cdn_cache_control_over_several_lines_governs_the_edge_only() {
    let origin = MockServer::start().await;
    Mock::given(path("/targeted"))
        .respond_with(
            ResponseTemplate::new(200)
                .append_header("cdn-cache-control", "max-age=60;ignored=1")
                .append_header("cdn-cache-control", "stale-if-error=600, public")
                .insert_header("cache-control", "no-store")
                .set_body_string("t"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    let first = edge.fetch("/targeted").await.unwrap();
    assert!(
        first.cache_status.contains("stored"),
        "{}",
        first.cache_status
    );
    let second = edge.fetch("/targeted").await.unwrap();
    assert!(second.hit(), "{}", second.cache_status);
    for got in [&first, &second] {
        assert_eq!(values(got, "cache-control"), ["no-store"]);
        assert!(!got.headers.contains_key("cdn-cache-control"));
    }
}

#[tokio::test]
async fn a_hit_carries_every_end_to_end_field_the_origin_sent() {
    let fields: [(&str, &str); 11] = [
        ("cache-control", "max-age=60"),
        ("x-anything", "at all"),
        ("link", "</a.css>; rel=preload; as=style"),
        ("content-language", "de-CH"),
        ("server", "origin/1.0"),
        ("x-repeated", "first"),
        ("link", "</b.js>; rel=preload; as=script"),
        ("x-repeated", "second"),
        ("x-repeated", "third"),
        ("etag", "\"e1\""),
        ("x-empty-ish", "-"),
    ];
    let origin = MockServer::start().await;
    let mut template =
        ResponseTemplate::new(200).set_body_raw(b"all".to_vec(), "text/plain; charset=utf-8");
    for (name, value) in fields {
        template = template.append_header(name, value);
    }
    Mock::given(path("/all"))
        .respond_with(template)
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    let miss = edge.fetch("/all").await.unwrap();
    assert!(
        miss.cache_status.contains("stored"),
        "{}",
        miss.cache_status
    );
    let hit = edge.fetch("/all").await.unwrap();
    assert!(hit.hit(), "{}", hit.cache_status);
    assert_eq!(hit.text(), "all");
    let sent = fields
        .iter()
        .copied()
        .chain([("content-type", "text/plain; charset=utf-8")]);
    for (name, _) in sent.clone() {
        let expected: Vec<&str> = sent
            .clone()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values(&miss, name), expected, "{name} on the miss");
        assert_eq!(values(&hit, name), expected, "{name} on the hit");
    }
}

#[tokio::test]
async fn set_cookie2_is_a_cookie_like_set_cookie() {
    let origin = MockServer::start().await;
    Mock::given(path("/c2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("set-cookie2", "session=abc; Version=1")
                .insert_header("x-kept", "yes")
                .set_body_string("c"),
        )
        .mount(&origin)
        .await;

    // By default a response setting a cookie is not stored...
    let edge = edge_for(&origin).await;
    for _ in 0..2 {
        let got = edge.fetch("/c2").await.unwrap();
        assert!(
            got.cache_status.contains("fwd=uri-miss")
                && got.cache_status.contains("detail=set-cookie"),
            "{}",
            got.cache_status
        );
        assert_eq!(values(&got, "set-cookie2"), ["session=abc; Version=1"]);
    }
    assert_eq!(requests_to(&origin, "/c2").await, 2);

    // ...and with `store_set_cookie` it is stored without the cookie.
    let rules = r#"{ "rules": [ { "path_prefix": "/", "store_set_cookie": true } ] }"#;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).rules(rules))
        .await
        .unwrap();
    let first = edge.fetch("/c2").await.unwrap();
    assert!(
        first.cache_status.contains("stored"),
        "{}",
        first.cache_status
    );
    assert_eq!(values(&first, "set-cookie2"), ["session=abc; Version=1"]);
    let hit = edge.fetch("/c2").await.unwrap();
    assert!(hit.hit(), "{}", hit.cache_status);
    assert!(!hit.headers.contains_key("set-cookie2"));
    assert_eq!(values(&hit, "x-kept"), ["yes"]);
    assert_eq!(requests_to(&origin, "/c2").await, 3);
}

#[tokio::test]
async fn expires_in_any_case_form_or_weekday_gives_freshness() {
    // 18 Aug 2050 is a Thursday, 8 Aug 2050 a Monday.
    let valid = [
        "THU, 18 Aug 2050 02:01:18 GMT",
        "Thu, 18 AUG 2050 02:01:18 GMT",
        "Thu, 18 Aug 2050 02:01:18 gMT",
        "Mon, 18 Aug 2050 02:01:18 GMT",
        "Thursday, 18-Aug-50 02:01:18 GMT",
        "Thu Aug  8 02:01:18 2050",
    ];
    let invalid = [
        "Thu, 18 Aug 2050 02:01:18 UTC",
        "Thu, 18 Aug 2050 02:01:18 AEST",
        "Thu, 18 Aug 50 02:01:18 GMT",
        "Thu 18 Aug 2050 02:01:18 GMT",
        "Thu, 18  Aug  2050 02:01:18 GMT",
        "Thu, 18-Aug-2050 02:01:18 GMT",
        "Thu, 18 Aug 2050 02.01.18 GMT",
        "Thu, 18 Aug 2050 2:01:18 GMT",
    ];
    let origin = MockServer::start().await;
    for (prefix, list) in [("valid", &valid[..]), ("invalid", &invalid[..])] {
        for (i, expires) in list.iter().enumerate() {
            Mock::given(path(format!("/{prefix}/{i}")))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("expires", *expires)
                        .set_body_string("e"),
                )
                .mount(&origin)
                .await;
        }
    }
    let edge = edge_for(&origin).await;
    for (i, expires) in valid.iter().enumerate() {
        let p = format!("/valid/{i}");
        edge.fetch(&p).await.unwrap();
        let second = edge.fetch(&p).await.unwrap();
        assert!(second.hit(), "{expires}: {}", second.cache_status);
        assert_eq!(requests_to(&origin, &p).await, 1, "{expires}");
    }
    for (i, expires) in invalid.iter().enumerate() {
        let p = format!("/invalid/{i}");
        edge.fetch(&p).await.unwrap();
        let second = edge.fetch(&p).await.unwrap();
        assert!(!second.hit(), "{expires}: {}", second.cache_status);
        assert_eq!(requests_to(&origin, &p).await, 2, "{expires}");
    }
}

#[tokio::test]
async fn client_dates_in_any_form_are_compared_by_the_edge() {
    let origin = MockServer::start().await;
    Mock::given(path("/lm"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")
                .set_body_string("0123456789"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    edge.fetch("/lm").await.unwrap();
    for since in [
        "TUE, 14 NOV 2023 22:13:20 GMT",
        "Tuesday, 14-Nov-23 22:13:20 GMT",
        "Tue Nov 14 22:13:20 2023",
        "Fri, 14 Nov 2023 22:13:20 GMT",
    ] {
        let got = edge
            .fetch_with("/lm", &[("if-modified-since", since)])
            .await
            .unwrap();
        assert_eq!(got.status, 304, "{since}: {}", got.cache_status);
    }
    let ignored = edge
        .fetch_with(
            "/lm",
            &[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 UTC")],
        )
        .await
        .unwrap();
    assert_eq!(ignored.status, 200);
    for (if_range, status) in [
        ("tue, 14 nov 2023 22:13:20 gmt", 206),
        ("Tue Nov 14 22:13:20 2023", 206),
        ("Tue, 14 Nov 2023 22:13:21 GMT", 200),
    ] {
        let got = edge
            .fetch_with("/lm", &[("range", "bytes=0-3"), ("if-range", if_range)])
            .await
            .unwrap();
        assert_eq!(got.status, status, "{if_range}");
    }
}

/// An origin on a raw socket that sends `100 Continue` and `103 Early
/// Hints` before every final `200` (fresh for 60 s); counts requests.
async fn origin_with_interim_responses() -> (String, Arc<AtomicUsize>) {
    raw_origin(|mut stream| async move {
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
        stream.write_all(interim).await.ok()?;
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let last = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\
            Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal";
        stream.write_all(last).await.ok()?;
        Some(stream)
    })
    .await
}

/// Everything the edge writes for one `GET path`, as text.
async fn raw_get(edge: &Edge, p: &str) -> String {
    let request = format!("GET {p} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
    raw_exchange(edge, &request).await
}

#[tokio::test]
async fn interim_responses_are_never_stored_or_replayed() {
    let (origin_url, requests) = origin_with_interim_responses().await;
    let edge = Edge::start(EdgeSetup::origin(&origin_url)).await.unwrap();
    let miss = raw_get(&edge, "/hinted").await;
    let hit = raw_get(&edge, "/hinted").await;
    for (answer, expected) in [(&miss, "stored"), (&hit, "; hit")] {
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        // One status line: no 1xx reaches the client (wasi:http cannot hand
        // one to the component, so nothing forwards it; see README).
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert!(answer.ends_with("\r\n\r\nfinal"), "{answer}");
        assert!(!answer.to_ascii_lowercase().contains("a.css"), "{answer}");
        let cache_status = answer
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("cache-status:"))
            .unwrap_or_default();
        assert!(cache_status.contains(expected), "{answer}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
