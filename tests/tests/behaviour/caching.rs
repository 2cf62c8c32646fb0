//! HTTP caching through the real component: every hit, miss, revalidation,
//! stale serve and bypass is proven by counting origin requests.

use std::time::Duration;

use edge_tests::{Edge, EdgeSetup, explained_edge_for as edge_for, origin_requests_reach};
use reqwest::Client;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn get(edge: &Edge, path: &str) -> reqwest::Response {
    Client::new().get(edge.url(path)).send().await.unwrap()
}

fn cache_status(response: &reqwest::Response) -> String {
    response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn fresh_response_is_served_from_cache_with_age_and_cache_status() {
    let origin = MockServer::start().await;
    Mock::given(path("/a"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string("A"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let first = get(&edge, "/a").await;
    assert_eq!(
        cache_status(&first),
        "edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    assert_eq!(first.headers()["age"], "0");
    assert_eq!(first.text().await.unwrap(), "A");

    let second = get(&edge, "/a").await;
    assert!(
        cache_status(&second).starts_with("edge-cache; hit; ttl="),
        "{}",
        cache_status(&second)
    );
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.unwrap(), "A");

    let head = Client::new().head(edge.url("/a")).send().await.unwrap();
    assert!(cache_status(&head).contains("hit"));
    assert_eq!(head.headers()["content-length"], "1");
}

#[tokio::test]
async fn uncacheable_responses_are_not_stored() {
    let origin = MockServer::start().await;
    for (p, cc) in [
        ("/nostore", "no-store"),
        ("/private", "private, max-age=60"),
        ("/unmarked", ""),
    ] {
        let mut template = ResponseTemplate::new(200).set_body_string(p);
        if !cc.is_empty() {
            template = template.insert_header("cache-control", cc);
        }
        Mock::given(path(p))
            .respond_with(template)
            .expect(2)
            .mount(&origin)
            .await;
    }
    Mock::given(path("/cookie"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("set-cookie", "session=abc"),
        )
        .expect(2)
        .mount(&origin)
        .await;
    Mock::given(path("/vary-star"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("vary", "*"),
        )
        .expect(2)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    for (p, detail) in [
        ("/nostore", "no-store"),
        ("/private", "private"),
        ("/unmarked", "no-freshness"),
        ("/cookie", "set-cookie"),
        ("/vary-star", "vary-star"),
    ] {
        for _ in 0..2 {
            let response = get(&edge, p).await;
            let status = cache_status(&response);
            assert!(
                status.contains("fwd=uri-miss") && status.contains(&format!("detail={detail}")),
                "{p}: {status}"
            );
        }
    }
}

#[tokio::test]
async fn authorization_requests_are_stored_only_when_the_response_allows_sharing() {
    let origin = MockServer::start().await;
    Mock::given(path("/secret"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=60"))
        .expect(2)
        .mount(&origin)
        .await;
    Mock::given(path("/shared"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("cache-control", "public, max-age=60"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    for p in ["/secret", "/secret", "/shared", "/shared"] {
        Client::new()
            .get(edge.url(p))
            .header("authorization", "Bearer x")
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let origin = MockServer::start().await;
    Mock::given(path("/r"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(
            ResponseTemplate::new(304)
                .insert_header("cache-control", "max-age=60")
                .insert_header("x-refreshed", "yes"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    Mock::given(path("/r"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=0")
                .insert_header("etag", "\"v1\"")
                .set_body_string("stored body"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    let first = get(&edge, "/r").await;
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    let second = get(&edge, "/r").await;
    assert_eq!(
        cache_status(&second),
        "edge-cache; fwd=stale; fwd-status=304; ttl=60; stored"
    );
    assert_eq!(second.headers()["x-refreshed"], "yes");
    assert_eq!(second.text().await.unwrap(), "stored body");
    let third = get(&edge, "/r").await;
    assert!(
        cache_status(&third).contains("hit"),
        "{}",
        cache_status(&third)
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_after_responding() {
    let origin = MockServer::start().await;
    let template = ResponseTemplate::new(200)
        .insert_header("cache-control", "max-age=0, stale-while-revalidate=60")
        .set_body_string("v");
    Mock::given(path("/swr"))
        .respond_with(template.clone())
        .up_to_n_times(1)
        .mount(&origin)
        .await;
    // The refresh is slow: the client must not wait for it.
    let refresh_delay = Duration::from_millis(1500);
    Mock::given(path("/swr"))
        .respond_with(template.set_delay(refresh_delay))
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    get(&edge, "/swr").await;
    let started = std::time::Instant::now();
    let stale = get(&edge, "/swr").await;
    let status = cache_status(&stale);
    assert!(
        status.contains("hit") && status.contains("detail=stale-while-revalidate"),
        "{status}"
    );
    assert_eq!(stale.text().await.unwrap(), "v");
    let waited = started.elapsed();
    assert!(
        waited < refresh_delay,
        "client waited {waited:?} for the refresh"
    );
    // The refresh happens after the response: the origin sees it shortly.
    origin_requests_reach(&origin, 2).await;
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_fails() {
    let origin = MockServer::start().await;
    Mock::given(path("/sie"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=0, stale-if-error=600")
                .set_body_string("good"),
        )
        .up_to_n_times(1)
        .mount(&origin)
        .await;
    Mock::given(path("/sie"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&origin)
        .await;
    Mock::given(path("/no-sie"))
        .respond_with(ResponseTemplate::new(200).insert_header(
            "cache-control",
            "max-age=0, must-revalidate, stale-if-error=600",
        ))
        .up_to_n_times(1)
        .mount(&origin)
        .await;
    Mock::given(path("/no-sie"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;

    get(&edge, "/sie").await;
    let stale = get(&edge, "/sie").await;
    assert_eq!(stale.status(), 200);
    let status = cache_status(&stale);
    assert!(
        status.contains("fwd=stale")
            && status.contains("fwd-status=503")
            && status.contains("stale-if-error"),
        "{status}"
    );
    assert_eq!(stale.text().await.unwrap(), "good");

    get(&edge, "/no-sie").await;
    assert_eq!(
        get(&edge, "/no-sie").await.status(),
        503,
        "must-revalidate forbids stale"
    );
}

#[tokio::test]
async fn vary_keeps_one_entry_per_variant() {
    let origin = MockServer::start().await;
    for (lang, body) in [("en", "hello"), ("ko", "annyeong")] {
        Mock::given(path("/v"))
            .and(header("accept-language", lang))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cache-control", "max-age=60")
                    .insert_header("vary", "Accept-Language")
                    .set_body_string(body),
            )
            .expect(1)
            .mount(&origin)
            .await;
    }
    let edge = edge_for(&origin).await;
    let fetch = |lang: &'static str| {
        let url = edge.url("/v");
        async move {
            Client::new()
                .get(url)
                .header("accept-language", lang)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(fetch("en").await.text().await.unwrap(), "hello");
    let ko = fetch("ko").await;
    assert!(
        cache_status(&ko).contains("fwd=vary-miss"),
        "{}",
        cache_status(&ko)
    );
    assert_eq!(ko.text().await.unwrap(), "annyeong");
    let en = fetch("en").await;
    assert!(cache_status(&en).contains("hit"));
    assert_eq!(en.text().await.unwrap(), "hello");
    assert_eq!(fetch("ko").await.text().await.unwrap(), "annyeong");
}

#[tokio::test]
async fn cdn_targeted_fields_win_and_are_removed_before_the_client() {
    let origin = MockServer::start().await;
    Mock::given(path("/cdn"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "no-store")
                .insert_header("cdn-cache-control", "max-age=300")
                .insert_header("surrogate-key", "product:1 home"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    for _ in 0..2 {
        let response = get(&edge, "/cdn").await;
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "browsers still get Cache-Control"
        );
        assert!(response.headers().get("cdn-cache-control").is_none());
        assert!(response.headers().get("surrogate-key").is_none());
    }
}

#[tokio::test]
async fn client_conditionals_and_ranges_are_answered_by_the_edge() {
    let origin = MockServer::start().await;
    Mock::given(path("/c"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("etag", "\"e1\"")
                .set_body_string("0123456789"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    get(&edge, "/c").await;

    let not_modified = Client::new()
        .get(edge.url("/c"))
        .header("if-none-match", "\"e1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], "\"e1\"");

    let partial = Client::new()
        .get(edge.url("/c"))
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(partial.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(partial.text().await.unwrap(), "234");

    let unsatisfiable = Client::new()
        .get(edge.url("/c"))
        .header("range", "bytes=50-")
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.status(), 416);
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_uri_and_its_location() {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/item"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=600"))
        .expect(2)
        .mount(&origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/list"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=600"))
        .expect(2)
        .mount(&origin)
        .await;
    Mock::given(method("POST"))
        .and(path("/item"))
        .respond_with(ResponseTemplate::new(204).insert_header("location", "/list"))
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    for p in ["/item", "/list"] {
        get(&edge, p).await;
        assert!(cache_status(&get(&edge, p).await).contains("hit"));
    }
    Client::new()
        .post(edge.url("/item"))
        .body("x")
        .send()
        .await
        .unwrap();
    for p in ["/item", "/list"] {
        let after = get(&edge, p).await;
        let status = cache_status(&after);
        assert!(status.contains("detail=invalidated"), "{p}: {status}");
    }
}

#[tokio::test]
async fn rules_key_by_query_and_cookie_and_forward_only_what_is_keyed() {
    let origin = MockServer::start().await;
    Mock::given(path("/products"))
        .respond_with(|request: &Request| {
            let page = request.url.query().unwrap_or("").to_owned();
            let cookie = request
                .headers
                .get("cookie")
                .map(|c| c.to_str().unwrap().to_owned())
                .unwrap_or_default();
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string(format!("{page}|{cookie}"))
        })
        .expect(3)
        .mount(&origin)
        .await;
    let rules = r#"{ "rules": [ { "path_prefix": "/products", "query": { "include": ["page"] }, "cookies": ["lang"], "other_cookies": "ignore" } ] }"#;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).explained().rules(rules))
        .await
        .unwrap();
    let fetch = |q: &'static str, cookie: &'static str| {
        let url = edge.url(&format!("/products?{q}"));
        async move {
            Client::new()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // utm_source and the session cookie are neither keyed nor forwarded.
    assert_eq!(
        fetch("page=1&utm_source=a", "lang=en; session=s1").await,
        "page=1|lang=en"
    );
    assert_eq!(
        fetch("utm_source=b&page=1", "session=s2; lang=en").await,
        "page=1|lang=en"
    );
    assert_eq!(fetch("page=2", "lang=en").await, "page=2|lang=en");
    assert_eq!(fetch("page=1", "lang=ko").await, "page=1|lang=ko");
}

#[tokio::test]
async fn an_unkeyed_cookie_goes_to_the_origin_and_its_answer_is_not_shared() {
    let origin = MockServer::start().await;
    Mock::given(path("/page"))
        .respond_with(|request: &Request| {
            let cookie = request
                .headers
                .get("cookie")
                .map(|c| c.to_str().unwrap().to_owned())
                .unwrap_or_default();
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string(format!("cookie={cookie}"))
        })
        .expect(3)
        .mount(&origin)
        .await;
    Mock::given(path("/logo.png"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=60"))
        .expect(1)
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).explained())
        .await
        .unwrap();
    let get = |path: &'static str, cookie: Option<&'static str>| {
        let mut request = Client::new().get(edge.url(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.headers()["cache-status"]
                .to_str()
                .unwrap()
                .to_owned();
            (status, response.text().await.unwrap())
        }
    };
    // A session cookie reaches the origin, whole, every time: never shared.
    for _ in 0..2 {
        let (status, body) = get("/page", Some("session=alice; _ga=GA1")).await;
        assert_eq!(body, "cookie=session=alice; _ga=GA1");
        assert!(
            status.contains("fwd=bypass") && status.contains("detail=cookie"),
            "{status}"
        );
    }
    // Alice's answer was not stored: an anonymous request gets its own,
    // stored, which an analytics cookie alone does not keep from it.
    let (status, body) = get("/page", None).await;
    assert_eq!(body, "cookie=");
    assert!(status.contains("stored"), "{status}");
    let (status, body) = get("/page", Some("_ga=GA1; _gid=x")).await;
    assert_eq!(body, "cookie=");
    assert!(status.contains("hit"), "{status}");
    // A static file's answer does not depend on cookies: they are dropped.
    for _ in 0..2 {
        get("/logo.png", Some("session=alice")).await;
    }
    let (status, _) = get("/logo.png", Some("session=bob")).await;
    assert!(status.contains("hit"), "{status}");
}

#[tokio::test]
async fn concurrent_client_forced_revalidations_make_one_origin_request_or_none_if_ignored() {
    let origin = MockServer::start().await;
    for page in ["/page", "/quiet/page"] {
        Mock::given(path(page))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cache-control", "max-age=600")
                    .insert_header("etag", "\"v1\"")
                    .set_body_string("page")
                    .set_delay(Duration::from_millis(200)),
            )
            .mount(&origin)
            .await;
    }
    let rules = r#"{ "rules": [
        { "path_prefix": "/quiet", "client_directives": "ignore" },
        { "path_prefix": "/" }
    ] }"#;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).explained().rules(rules))
        .await
        .unwrap();
    let forced = |path: &'static str, i: usize| {
        let (name, value) = match i % 3 {
            0 => ("cache-control", "no-cache"),
            1 => ("cache-control", "max-age=0"),
            _ => ("pragma", "no-cache"),
        };
        let request = Client::new().get(edge.url(path)).header(name, value);
        async move {
            let response = request.send().await.unwrap();
            let status = cache_status(&response);
            (response.text().await.unwrap(), status)
        }
    };
    let received = || async { origin.received_requests().await.unwrap().len() };
    for path in ["/page", "/quiet/page"] {
        assert_eq!(get(&edge, path).await.text().await.unwrap(), "page");
    }
    assert_eq!(received().await, 2);
    // 30 clients force a revalidation at once: about one origin request.
    let answers = edge_tests::join_all((0..30).map(|i| forced("/page", i))).await;
    let revalidations = received().await - 2;
    println!("30 concurrent forced revalidations: {revalidations} origin requests");
    assert!((1..=3).contains(&revalidations), "{revalidations}");
    assert!(
        answers.iter().all(|(body, _)| body == "page"),
        "{answers:?}"
    );
    let collapsed = answers
        .iter()
        .filter(|(_, s)| s.contains("collapsed"))
        .count();
    assert!(collapsed >= 27, "{answers:?}");
    // Where the rule ignores client directives, none reaches the origin.
    let before = received().await;
    let answers = edge_tests::join_all((0..30).map(|i| forced("/quiet/page", i))).await;
    assert_eq!(received().await, before);
    assert!(
        answers.iter().all(|(_, s)| s.contains("hit")),
        "{answers:?}"
    );
}

#[tokio::test]
async fn bypass_rule_and_default_ttl_rule() {
    let origin = MockServer::start().await;
    Mock::given(path("/account"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=60"))
        .expect(2)
        .mount(&origin)
        .await;
    Mock::given(path("/unmarked"))
        .respond_with(ResponseTemplate::new(200).set_body_string("u"))
        .expect(1)
        .mount(&origin)
        .await;
    let rules = r#"{ "rules": [
        { "path_prefix": "/account", "bypass": true },
        { "path_prefix": "/unmarked", "default_ttl_seconds": 30 }
    ] }"#;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).explained().rules(rules))
        .await
        .unwrap();
    for _ in 0..2 {
        let response = get(&edge, "/account").await;
        assert!(
            cache_status(&response).contains("fwd=bypass"),
            "{}",
            cache_status(&response)
        );
    }
    get(&edge, "/unmarked").await;
    assert!(cache_status(&get(&edge, "/unmarked").await).contains("hit"));
}

#[tokio::test]
async fn a_broken_rules_file_leaves_the_edge_proxying_without_caching() {
    let origin = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=60"))
        .expect(2)
        .mount(&origin)
        .await;
    let edge = Edge::start(
        EdgeSetup::origin(&origin.uri())
            .explained()
            .rules(r#"{ "rules": [ { "ttl": 5 } ] }"#),
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let response = get(&edge, "/x").await;
        assert_eq!(response.status(), 200);
        assert!(cache_status(&response).contains("detail=rules-error"));
    }
}

#[tokio::test]
async fn request_no_cache_forces_revalidation() {
    let origin = MockServer::start().await;
    Mock::given(path("/n"))
        .and(header_exists("if-none-match"))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&origin)
        .await;
    Mock::given(path("/n"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .insert_header("etag", "\"n\""),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge_for(&origin).await;
    get(&edge, "/n").await;
    let response = Client::new()
        .get(edge.url("/n"))
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    assert!(
        cache_status(&response).contains("fwd-status=304"),
        "{}",
        cache_status(&response)
    );
}

#[tokio::test]
async fn cache_rules_can_be_given_inline_in_the_variable() {
    let origin = MockServer::start().await;
    Mock::given(path("/private/page"))
        .respond_with(ResponseTemplate::new(200).insert_header("cache-control", "max-age=60"))
        .mount(&origin)
        .await;
    let rules = r#"{ "rules": [ { "path_prefix": "/private/", "bypass": true } ] }"#;
    let setup = EdgeSetup::origin(&origin.uri())
        .explained()
        .variable("cache_rules", rules);
    let edge = Edge::start(setup).await.unwrap();
    for _ in 0..2 {
        let fetched = edge.fetch("/private/page").await.unwrap();
        assert!(
            fetched.cache_status.contains("fwd=bypass"),
            "{}",
            fetched.cache_status
        );
    }
    assert_eq!(origin.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn without_rules_a_static_servers_files_are_fresh_by_heuristic_and_pages_are_not() {
    // What `python3 -m http.server` sends: a Last-Modified, no lifetime.
    let origin = MockServer::start().await;
    let ten_days_ago =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(10 * 24 * 3600));
    for at in ["/site.css", "/index.html"] {
        Mock::given(path(at))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("last-modified", ten_days_ago.as_str())
                    .set_body_string(at),
            )
            .mount(&origin)
            .await;
    }
    let edge = edge_for(&origin).await;
    let first = get(&edge, "/site.css").await;
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    // A tenth of ten days, within the heuristic's cap.
    let ttl: u64 = cache_status(&first)
        .split("ttl=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|ttl| ttl.parse().ok())
        .expect("a ttl");
    assert!((3600..=86_400).contains(&ttl), "ttl {ttl}");
    let second = get(&edge, "/site.css").await;
    assert!(
        cache_status(&second).starts_with("edge-cache; hit"),
        "{}",
        cache_status(&second)
    );
    for _ in 0..2 {
        let page = get(&edge, "/index.html").await;
        assert!(
            cache_status(&page).contains("detail=no-freshness"),
            "{}",
            cache_status(&page)
        );
    }
    origin_requests_reach(&origin, 3).await;
}
