//! The origin over real HTTP with a real SQLite database: pages, caching
//! headers, conditional requests, assets, and admin refusals.

mod common;

use common::{ADMIN, admin, down_edge, product_json};
use reqwest::{Client, Method};

async fn get(url: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn raw_get(addr: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn product_pages_carry_validators_tags_and_freshness() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &down_edge())).await;

    let page = get(origin.url("/products/1"), &[]).await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "surrogate-key"), "product:1");
    assert!(header(&page, "cache-control").contains("stale-while-revalidate="));
    assert!(header(&page, "cache-control").contains("stale-if-error="));
    assert!(header(&page, "cdn-cache-control").contains("max-age=3600"));
    let etag = header(&page, "etag").to_owned();
    let last_modified = header(&page, "last-modified").to_owned();
    let body = page.text().await.unwrap();
    assert!(
        body.contains("Ceramic Mug") && body.contains("$12.00"),
        "{body}"
    );
    let blake = blake3::hash(body.as_bytes()).to_hex();
    assert_eq!(
        etag,
        format!("\"{}\"", &blake[..32]),
        "ETag is blake3 of the body"
    );

    let revalidated = get(origin.url("/products/1"), &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag"), etag);
    let by_date = get(
        origin.url("/products/1"),
        &[("if-modified-since", &last_modified)],
    )
    .await;
    assert_eq!(by_date.status(), 304);
    let other = get(origin.url("/products/1"), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(other.status(), 200);

    let api = get(origin.url("/api/products/1"), &[]).await;
    assert_eq!(header(&api, "content-type"), "application/json");
    assert_eq!(header(&api, "surrogate-key"), "product:1");
    let json: serde_json::Value = serde_json::from_str(&api.text().await.unwrap()).unwrap();
    assert_eq!(json["prices"]["KRW"], 16000);
    assert_eq!(json["name"], "Ceramic Mug");

    let missing = get(origin.url("/products/999"), &[]).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "surrogate-key"), "product:999");
    for bad in ["/products/abc", "/products/0", "/api/products/-1"] {
        let response = get(origin.url(bad), &[]).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(header(&response, "cache-control"), "no-store");
        assert!(response.text().await.unwrap().contains("bad product id"));
    }
    let head = Client::new()
        .head(origin.url("/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "etag"), etag);
    assert_eq!(head.text().await.unwrap(), "");
}

#[tokio::test]
async fn product_list_by_query_and_accept() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &down_edge())).await;
    let json = get(
        origin.url("/products?sort=price&page=1"),
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(header(&json, "vary"), "Accept");
    assert_eq!(header(&json, "surrogate-key"), "product-list");
    let list: serde_json::Value = serde_json::from_str(&json.text().await.unwrap()).unwrap();
    assert_eq!(list["total"], 12);
    assert_eq!(list["pages"], 3);
    let cheapest = list["products"][0]["prices"]["USD"].as_i64().unwrap();
    let next = list["products"][1]["prices"]["USD"].as_i64().unwrap();
    assert!(cheapest <= next);

    let html = get(
        origin.url("/products?q=%3Cscript%3Emug"),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(header(&html, "vary"), "Accept");
    assert!(header(&html, "content-type").starts_with("text/html"));
    let body = html.text().await.unwrap();
    assert!(body.contains("&lt;script&gt;mug") && !body.contains("<script>mug"));

    let searched = get(
        origin.url("/products?q=grinder"),
        &[("accept", "application/json")],
    )
    .await;
    let found: serde_json::Value = serde_json::from_str(&searched.text().await.unwrap()).unwrap();
    assert_eq!(found["total"], 1);
    assert_eq!(found["products"][0]["name"], "Hand Grinder");

    for bad in ["page=0", "sort=stock", "page=x"] {
        let response = get(origin.url(&format!("/products?{bad}")), &[]).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn home_page_follows_lang_and_currency_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &down_edge())).await;
    let en = get(origin.url("/"), &[]).await;
    assert_eq!(header(&en, "content-language"), "en");
    assert_eq!(header(&en, "surrogate-key"), "home");
    assert!(header(&en, "cdn-cache-control").contains("max-age="));
    // Browsers key by URL only: they must revalidate, never reuse blindly.
    assert!(header(&en, "cache-control").contains("no-cache"));
    assert!(
        en.headers().get("vary").is_none(),
        "cookies are keyed by the edge's rules"
    );
    let en_etag = header(&en, "etag").to_owned();
    let en_body = en.text().await.unwrap();
    assert!(en_body.contains("Our products") && en_body.contains("$12.00"));

    let ko = get(origin.url("/"), &[("cookie", "lang=ko; currency=KRW")]).await;
    assert_eq!(header(&ko, "content-language"), "ko");
    assert_ne!(header(&ko, "etag"), en_etag);
    let ko_body = ko.text().await.unwrap();
    assert!(
        ko_body.contains("상품 목록") && ko_body.contains("₩16,000"),
        "{ko_body}"
    );

    let eur = get(origin.url("/"), &[("cookie", "currency=EUR")]).await;
    assert!(eur.text().await.unwrap().contains("€11.00"));
}

#[tokio::test]
async fn account_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &down_edge())).await;
    let alice = get(
        origin.url("/account"),
        &[("cookie", "session=alice-secret")],
    )
    .await;
    assert!(header(&alice, "cache-control").starts_with("private"));
    assert!(alice.headers().get("cdn-cache-control").is_none());
    assert!(alice.headers().get("surrogate-key").is_none());
    let body = alice.text().await.unwrap();
    assert!(body.contains("Signed in as user-") && !body.contains("alice-secret"));
    let bob = get(origin.url("/account"), &[("cookie", "session=bob")]).await;
    assert_ne!(bob.text().await.unwrap(), body);
}

#[tokio::test]
async fn assets_under_hashed_names_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let edge = down_edge();
    let origin = common::start(common::config(dir.path(), &edge)).await;
    let home = get(origin.url("/"), &[]).await.text().await.unwrap();
    let js = home
        .split('"')
        .find(|s| s.starts_with("/static/js/app.") && s.ends_with(".js"))
        .expect("home links the hashed script")
        .to_owned();
    // At the edge, falling back to the origin's own path.
    assert!(
        home.contains(&format!("src=\"{edge}{js}\" data-origin=\"{js}\"")),
        "{home}"
    );
    let hash = js
        .trim_start_matches("/static/js/app.")
        .trim_end_matches(".js");
    assert_eq!(hash.len(), 16);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));

    let hashed = get(origin.url(&js), &[]).await;
    assert_eq!(hashed.status(), 200);
    assert_eq!(
        header(&hashed, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&hashed, "surrogate-key"), "static");
    let bytes = hashed.bytes().await.unwrap();
    let on_disk = std::fs::read(common::fixtures().join("static/js/app.js")).unwrap();
    assert_eq!(&bytes[..], &on_disk[..]);
    assert_eq!(&blake3::hash(&on_disk).to_hex()[..16], hash);

    let plain = get(origin.url("/static/js/app.js"), &[]).await;
    assert_eq!(header(&plain, "cache-control"), "public, max-age=60");

    let manifest = get(origin.url("/static/manifest.json"), &[]).await;
    let manifest: serde_json::Value =
        serde_json::from_str(&manifest.text().await.unwrap()).unwrap();
    assert_eq!(manifest["js/app.js"], js.as_str());

    // Sent raw: HTTP clients normalise `..` (and `%2e%2e`) away.
    for evil in [
        "/static/../../Cargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/static/..%2f..%2fCargo.toml",
        "/static/a%5c..%5cb",
    ] {
        let answer = raw_get(origin.addr(), evil).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{evil}: {answer}");
    }
    assert_eq!(get(origin.url("/static/nope.css"), &[]).await.status(), 404);
    assert_eq!(
        get(origin.url("/static/js/app.0000000000000000.js"), &[])
            .await
            .status(),
        404
    );
    assert_eq!(get(origin.url("/health"), &[]).await.status(), 200);
    let post = Client::new()
        .post(origin.url("/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn bad_admin_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), &down_edge());
    config.max_body_bytes = 1024;
    let origin = common::start(config).await;
    let before = get(origin.url("/api/products/1"), &[])
        .await
        .text()
        .await
        .unwrap();
    let put = |token: Option<&'static str>, path: &str, body: Option<String>| {
        admin(Method::PUT, origin.url(path), token, body)
    };
    let good = product_json(1);

    let (status, headers, body) = put(None, "/admin/products/1", Some(good.clone())).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        put(Some("wrong"), "/admin/products/1", Some(good.clone()))
            .await
            .0,
        401
    );

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        (
            "/admin/products/1",
            Some("{\"name\": ".into()),
            400,
            "invalid product JSON",
        ),
        (
            "/admin/products/1",
            Some(good.replace("\"stock\"", "\"colour\": 1, \"stock\"")),
            400,
            "unknown field `colour`",
        ),
        (
            "/admin/products/1",
            Some(good.replace("\"USD\": 1", "\"USD\": -100")),
            400,
            "prices.USD must not be negative",
        ),
        (
            "/admin/products/abc",
            Some(good.clone()),
            400,
            "bad product id",
        ),
        (
            "/admin/products/999",
            Some(good.clone()),
            404,
            "no product 999",
        ),
        (
            "/admin/products/1",
            Some(format!("{{\"name\": \"{}\"}}", "x".repeat(2000))),
            413,
            "larger than 1024",
        ),
    ];
    for (path, body, expected, message) in cases {
        let (status, headers, text) = put(Some(ADMIN), path, body).await;
        assert_eq!(status, expected, "{path}: {text}");
        assert_eq!(headers["content-type"], "application/json");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].as_str().unwrap().contains(message), "{text}");
    }
    let no_type = Client::new()
        .put(origin.url("/admin/products/1"))
        .bearer_auth(ADMIN)
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 415);
    let (status, _, _) = admin(
        Method::DELETE,
        origin.url("/admin/products/999"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = admin(
        Method::PATCH,
        origin.url("/admin/products/1"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 405);

    let after = get(origin.url("/api/products/1"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(after, before, "the product is untouched");
    let (_, _, outbox) = admin(Method::GET, origin.url("/admin/outbox"), Some(ADMIN), None).await;
    let outbox: serde_json::Value = serde_json::from_str(&outbox).unwrap();
    assert_eq!(outbox["last_id"], 0, "no purge was queued: {outbox}");
}

#[tokio::test]
async fn admin_writes_change_pages_and_queue_their_purge() {
    let dir = tempfile::tempdir().unwrap();
    let origin = common::start(common::config(dir.path(), &down_edge())).await;
    let old = get(origin.url("/products/1"), &[]).await;
    let old_etag = header(&old, "etag").to_owned();

    let (status, _, body) = admin(
        Method::PUT,
        origin.url("/admin/products/1"),
        Some(ADMIN),
        Some(product_json(1555)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let written: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(written["product"]["prices"]["USD"], 1555);
    let new = get(origin.url("/products/1"), &[("if-none-match", &old_etag)]).await;
    assert_eq!(new.status(), 200, "the old validator no longer matches");
    assert!(new.text().await.unwrap().contains("$15.55"));

    let (status, headers, body) = admin(
        Method::POST,
        origin.url("/admin/products"),
        Some(ADMIN),
        Some(product_json(99).replace("Ceramic Mug", "Saucer")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["location"], "/api/products/13");
    assert_eq!(get(origin.url("/api/products/13"), &[]).await.status(), 200);
    let (status, _, _) = admin(
        Method::DELETE,
        origin.url("/admin/products/13"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(get(origin.url("/api/products/13"), &[]).await.status(), 404);

    // The edge is down: three purges wait, and the worker keeps trying.
    common::outbox_until(&origin, |s| s.pending == 3 && s.head_attempts >= 2).await;
    let status = origin.outbox().borrow().clone();
    assert!(
        status.last_error.unwrap().contains("onnect"),
        "a connection error is recorded"
    );
}
