//! RFC 9110/9111 behaviour a shared cache owes its origin and its clients,
//! through the real component: what a fill forwards, how `Age` and unsafe
//! methods are read, `private` and `no-cache` with and without field
//! names, and a breaker that cannot take a healthy site down.

use edge_tests::{Edge, EdgeSetup, header_of};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// An origin whose answer depends on the `Abc` request field, as its
/// `Vary` says.
async fn origin_varying_on_abc() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path("/v"))
        .respond_with(|request: &Request| {
            let abc = header_of(request, "abc");
            if !header_of(request, "if-none-match").is_empty() {
                return ResponseTemplate::new(304)
                    .insert_header("etag", "\"v\"")
                    .insert_header("vary", "Abc")
                    .insert_header("cache-control", "max-age=0");
            }
            ResponseTemplate::new(200)
                .insert_header("vary", "Abc")
                .insert_header("etag", "\"v\"")
                .insert_header("cache-control", "max-age=0")
                .set_body_string(format!("abc={abc}"))
        })
        .mount(&origin)
        .await;
    origin
}

#[tokio::test]
async fn a_fill_forwards_the_fields_its_vary_names() {
    let origin = origin_varying_on_abc().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let one = edge.fetch_with("/v", &[("abc", "123")]).await.unwrap();
    assert_eq!(one.text(), "abc=123");
    let two = edge.fetch_with("/v", &[("abc", "456")]).await.unwrap();
    assert_eq!(two.text(), "abc=456");
}

#[tokio::test]
async fn a_revalidation_carries_the_stored_vary_fields_even_in_keyed_mode() {
    let origin = origin_varying_on_abc().await;
    let rules = r#"{ "rules": [ { "path_prefix": "/", "forward_headers": "keyed" } ] }"#;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).rules(rules))
        .await
        .unwrap();
    // Keyed mode: the miss carries only the strict list.
    let first = edge.fetch_with("/v", &[("abc", "123")]).await.unwrap();
    assert_eq!(first.text(), "abc=");
    // Stale at once (max-age=0): the revalidation names what Vary names.
    let second = edge.fetch_with("/v", &[("abc", "123")]).await.unwrap();
    assert_eq!(second.status, 200);
    let requests = origin.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(header_of(&requests[1], "if-none-match"), "\"v\"");
    assert_eq!(header_of(&requests[1], "abc"), "123");
}

#[tokio::test]
async fn fields_that_rewrite_a_request_behind_the_key_never_reach_the_origin() {
    let origin = MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(|request: &Request| {
            let seen: Vec<String> = [
                "x-original-url",
                "x-rewrite-url",
                "x-http-method-override",
                "x-host",
                "forwarded",
                "x-forwarded-host",
                "x-custom",
            ]
            .iter()
            .map(|name| format!("{name}={}", header_of(request, name)))
            .collect();
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string(seen.join(" "))
        })
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let fetched = edge
        .fetch_with(
            "/page",
            &[
                ("host", "shop.example"),
                ("x-original-url", "/admin"),
                ("x-rewrite-url", "/admin"),
                ("x-http-method-override", "DELETE"),
                ("x-host", "evil.example"),
                ("forwarded", "host=evil.example"),
                ("x-forwarded-host", "evil.example"),
                ("x-custom", "kept"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        fetched.text(),
        "x-original-url= x-rewrite-url= x-http-method-override= x-host= forwarded= \
         x-forwarded-host=shop.example x-custom=kept"
    );
}

/// An origin that fails on `/bad/…` (a bug on some pages) and is healthy
/// everywhere else.
async fn origin_failing_on_some_pages() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path_regex("^/bad/"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&origin)
        .await;
    Mock::given(path_regex("^/good/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&origin)
        .await;
    origin
}

#[tokio::test]
async fn failing_pages_do_not_take_a_healthy_site_down() {
    let origin = origin_failing_on_some_pages().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    for i in 0..8 {
        let bad = edge.fetch(&format!("/bad/{i}")).await.unwrap();
        assert_eq!(bad.status, 500, "the origin's own answer");
    }
    for i in 0..5 {
        let good = edge.fetch(&format!("/good/{i}")).await.unwrap();
        assert_eq!((good.status, good.text().as_str()), (200, "fine"));
    }
}

#[tokio::test]
async fn even_counted_statuses_let_pages_with_nothing_stored_through() {
    let origin = origin_failing_on_some_pages().await;
    let setup = EdgeSetup::origin(&origin.uri()).variable("breaker_status_codes", "500");
    let edge = Edge::start(setup).await.unwrap();
    for i in 0..5 {
        assert_eq!(edge.fetch(&format!("/bad/{i}")).await.unwrap().status, 500);
    }
    // The breaker is open; a page with nothing stored still asks the
    // origin (one at a time), and its success closes the breaker.
    for i in 0..5 {
        let good = edge.fetch(&format!("/good/{i}")).await.unwrap();
        assert_eq!(good.status, 200, "{}", good.text());
    }
    assert_eq!(origin.received_requests().await.unwrap().len(), 10);
}

#[tokio::test]
async fn an_age_list_counts_by_its_first_member() {
    let origin = MockServer::start().await;
    Mock::given(path("/aged"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=3600")
                .insert_header("age", "7200, 0")
                .set_body_string("old"),
        )
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    edge.fetch("/aged").await.unwrap();
    let again = edge.fetch("/aged").await.unwrap();
    assert!(!again.hit(), "already stale: {}", again.cache_status);
    assert_eq!(origin.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_invalid_age_is_ignored_not_relayed() {
    // RFC 9111 §5.1: a cache SHOULD ignore an invalid Age. Read as "as old
    // as can be", each was relayed as 2147483648 and stored already stale.
    let origin = MockServer::start().await;
    let invalid = ["1.5", "-3", "abc"];
    for (i, age) in invalid.iter().enumerate() {
        Mock::given(path(format!("/aged/{i}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cache-control", "max-age=60")
                    .insert_header("age", *age)
                    .set_body_string("fresh"),
            )
            .expect(1)
            .mount(&origin)
            .await;
    }
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    for (i, age) in invalid.iter().enumerate() {
        let p = format!("/aged/{i}");
        for attempt in ["miss", "hit"] {
            let got = edge.fetch(&p).await.unwrap();
            let ages: Vec<&str> = got
                .headers
                .get_all("age")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            let [relayed] = ages[..] else {
                panic!("Age {age:?}, {attempt}: one Age, not {ages:?}");
            };
            let seconds: u64 = relayed.parse().unwrap();
            assert!(seconds < 10, "Age {age:?}, {attempt}: relayed {relayed}");
            assert_eq!(
                got.hit(),
                attempt == "hit",
                "Age {age:?}, {attempt}: {}",
                got.cache_status
            );
        }
    }
}

/// An origin answering each path with its `Cache-Control` field lines,
/// an `ETag` and `X-Internal`.
async fn origin_with_cache_control(pages: &[(&str, &[&str])]) -> MockServer {
    let origin = MockServer::start().await;
    for (p, lines) in pages {
        let mut answer = ResponseTemplate::new(200)
            .insert_header("etag", "\"v1\"")
            .insert_header("x-internal", "for-alice")
            .set_body_string("alice's page");
        for line in *lines {
            answer = answer.append_header("cache-control", *line);
        }
        Mock::given(path(*p))
            .respond_with(answer)
            .mount(&origin)
            .await;
    }
    origin
}

fn requests_for(requests: &[Request], p: &str) -> Vec<Request> {
    requests
        .iter()
        .filter(|r| r.url.path() == p)
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_unqualified_private_anywhere_keeps_the_answer_from_other_clients() {
    // Only the first `private` was looked at: `private="X-Internal"`
    // first made the whole answer shareable.
    let pages: [(&str, &[&str]); 5] = [
        (
            "/one-field",
            &[r#"private="X-Internal", private, max-age=60"#],
        ),
        (
            "/reversed",
            &[r#"private, private="X-Internal", max-age=60"#],
        ),
        ("/unquoted", &["private=X-Internal, private, max-age=60"]),
        (
            "/two-fields",
            &[r#"private="X-Internal", max-age=60"#, "private"],
        ),
        (
            "/two-reversed",
            &["private", r#"private="X-Internal", max-age=60"#],
        ),
    ];
    let origin = origin_with_cache_control(&pages).await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    for (p, lines) in pages {
        let first = edge.fetch(p).await.unwrap();
        assert_eq!(first.headers["x-internal"], "for-alice", "{lines:?}");
        let second = edge.fetch(p).await.unwrap();
        assert!(!second.hit(), "{lines:?}: {}", second.cache_status);
        let requests = origin.received_requests().await.unwrap();
        assert_eq!(requests_for(&requests, p).len(), 2, "{lines:?}: shared");
    }
}

#[tokio::test]
async fn an_unqualified_no_cache_anywhere_makes_every_reuse_a_revalidation() {
    // Only the first `no-cache` was looked at: `no-cache="X"` first made
    // the stored answer reusable without asking the origin.
    let pages: [(&str, &[&str]); 4] = [
        ("/one-field", &[r#"no-cache="X", no-cache, max-age=60"#]),
        ("/reversed", &[r#"no-cache, no-cache="X", max-age=60"#]),
        ("/unquoted", &["no-cache=X, no-cache, max-age=60"]),
        ("/two-fields", &[r#"no-cache="X", max-age=60"#, "no-cache"]),
    ];
    let origin = origin_with_cache_control(&pages).await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    for (p, lines) in pages {
        edge.fetch(p).await.unwrap();
        let second = edge.fetch(p).await.unwrap();
        assert!(!second.hit(), "{lines:?}: {}", second.cache_status);
        let requests = origin.received_requests().await.unwrap();
        let requests = requests_for(&requests, p);
        assert_eq!(requests.len(), 2, "{lines:?}: reused without asking");
        assert_eq!(
            header_of(&requests[1], "if-none-match"),
            "\"v1\"",
            "{lines:?}: a revalidation"
        );
    }
}

#[tokio::test]
async fn an_unknown_method_is_unsafe_and_invalidates_its_target() {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=600"))
        .mount(&origin)
        .await;
    Mock::given(method("M-SEARCH"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&origin)
        .await;
    Mock::given(method("OPTIONS"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let client = reqwest::Client::new();
    edge.fetch("/thing").await.unwrap();
    // A safe method leaves the entry alone.
    let options = reqwest::Method::OPTIONS;
    client
        .request(options, edge.url("/thing"))
        .send()
        .await
        .unwrap();
    assert!(edge.fetch("/thing").await.unwrap().hit());
    let m_search = reqwest::Method::from_bytes(b"M-SEARCH").unwrap();
    let answer = client
        .request(m_search, edge.url("/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(!edge.fetch("/thing").await.unwrap().hit());
}

/// An origin answering `/aged` with `max-age=60` and `Age: 30`, counting
/// the requests it gets.
async fn origin_with_a_30_second_old_answer() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path("/aged"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("age", "30")
                .set_body_string("stored"),
        )
        .mount(&origin)
        .await;
    origin
}

#[tokio::test]
async fn request_directives_shape_only_the_asking_clients_answer() {
    let origin = origin_with_a_30_second_old_answer().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    edge.fetch("/aged").await.unwrap();
    let asks = |cc: &'static str| {
        let edge = &edge;
        async move {
            let fetched = edge
                .fetch_with("/aged", &[("cache-control", cc)])
                .await
                .unwrap();
            fetched.hit()
        }
    };
    assert!(asks("max-age=45").await, "30 s old is young enough");
    assert!(!asks("max-age=10").await, "too old for this client");
    assert!(asks("min-fresh=20").await, "30 s of freshness left");
    assert!(
        !asks("min-fresh=40").await,
        "not fresh enough for this client"
    );
    // Every other client still gets the stored answer.
    assert!(edge.fetch("/aged").await.unwrap().hit());
}

#[tokio::test]
async fn max_stale_takes_a_stale_answer_and_only_if_cached_never_asks_the_origin() {
    let origin = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("age", "90")
                .set_body_string("stale"),
        )
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    edge.fetch("/old").await.unwrap();
    let stale = edge
        .fetch_with("/old", &[("cache-control", "max-stale=60")])
        .await
        .unwrap();
    assert!(stale.hit(), "{}", stale.cache_status);
    assert!(stale.cache_status.contains("detail=max-stale"));
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);

    let not_stored = edge
        .fetch_with("/never", &[("cache-control", "only-if-cached")])
        .await
        .unwrap();
    assert_eq!(not_stored.status, 504);
    let too_stale = edge
        .fetch_with("/old", &[("cache-control", "only-if-cached")])
        .await
        .unwrap();
    assert_eq!(
        too_stale.status, 504,
        "stale, and the client takes no staleness"
    );
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn field_qualified_private_and_no_cache_store_the_response_without_those_fields() {
    let origin = MockServer::start().await;
    Mock::given(path("/greeting"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "cache-control",
                    r#"max-age=60, private="x-user", no-cache="x-session""#,
                )
                .insert_header("x-user", "alice")
                .insert_header("x-session", "s1")
                .insert_header("x-shared", "yes")
                .set_body_string("hello"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let first = edge.fetch("/greeting").await.unwrap();
    assert_eq!(
        first.headers["x-user"], "alice",
        "the fetching client gets it"
    );
    let second = edge.fetch("/greeting").await.unwrap();
    assert!(second.hit(), "{}", second.cache_status);
    assert!(second.headers.get("x-user").is_none());
    assert!(second.headers.get("x-session").is_none());
    assert_eq!(second.headers["x-shared"], "yes");
}
