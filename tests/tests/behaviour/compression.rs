//! Compression (issue 27): a text response the origin sends uncompressed
//! is compressed once, when it is stored, and every client gets the
//! coding it accepts, or the original bytes; what must not be compressed
//! goes as the origin sent it.

use std::io::Read;

use edge_tests::{Edge, EdgeSetup, edge_for};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A page of about 20 KiB of HTML.
fn html() -> String {
    (0..400)
        .map(|i| format!("<li><a href=\"/products/{i}\">Product number {i}</a></li>\n"))
        .collect()
}

async fn origin_with(at: &str, template: ResponseTemplate) -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path(at))
        .respond_with(template)
        .mount(&origin)
        .await;
    origin
}

fn page(cache_control: &str, content_type: &str, body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("cache-control", cache_control)
        .insert_header("etag", "\"v1\"")
        .set_body_raw(body, content_type)
}

#[derive(Debug, Clone, Copy)]
enum Coding {
    Br,
    Gzip,
}

/// `body` decoded by the reference decoder of `coding`; it must come to
/// `length` bytes.
fn decoded(coding: Coding, body: &[u8], length: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let read = match coding {
        Coding::Br => brotli::Decompressor::new(body, 4096).read_to_end(&mut out),
        Coding::Gzip => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
    };
    read.unwrap_or_else(|e| panic!("{coding:?} body does not decode: {e}"));
    assert_eq!(out.len(), length, "{coding:?}");
    out
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_page_is_compressed_once_and_each_client_gets_the_coding_it_accepts() {
    let original = html().into_bytes();
    let origin = origin_with(
        "/page",
        page("max-age=600", "text/html; charset=utf-8", original.clone()),
    )
    .await;
    let edge = edge_for(&origin).await;

    let miss = edge
        .fetch_with("/page", &[("accept-encoding", "gzip, deflate, br, zstd")])
        .await
        .unwrap();
    assert_eq!(miss.status, 200);
    assert!(
        miss.cache_status.contains("stored"),
        "{}",
        miss.cache_status
    );
    assert_eq!(miss.headers["content-encoding"], "br");
    assert_eq!(miss.headers["vary"], "Accept-Encoding");
    assert_eq!(miss.headers["etag"], "W/\"v1\"");
    assert_eq!(decoded(Coding::Br, &miss.body, original.len()), original);
    assert!(miss.body.len() * 4 < original.len(), "{}", miss.body.len());

    let gzip = edge
        .fetch_with("/page", &[("accept-encoding", "gzip")])
        .await
        .unwrap();
    assert!(gzip.hit(), "{}", gzip.cache_status);
    assert_eq!(gzip.headers["content-encoding"], "gzip");
    assert_eq!(
        gzip.headers["content-length"],
        gzip.body.len().to_string().as_str()
    );
    assert_eq!(decoded(Coding::Gzip, &gzip.body, original.len()), original);

    // A client that accepts none of the stored codings: the original bytes.
    for accept in [
        None,
        Some("identity"),
        Some("zstd"),
        Some("br;q=0, gzip;q=0"),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let plain = edge.fetch_with("/page", &headers).await.unwrap();
        assert!(plain.hit(), "{accept:?}: {}", plain.cache_status);
        assert!(
            plain.headers.get("content-encoding").is_none(),
            "{accept:?}"
        );
        assert_eq!(plain.headers["etag"], "\"v1\"");
        assert_eq!(plain.body, original, "{accept:?}");
    }

    // Ranges are cut from the original, never from a compressed copy.
    let part = edge
        .fetch_with(
            "/page",
            &[("accept-encoding", "br"), ("range", "bytes=4-13")],
        )
        .await
        .unwrap();
    assert_eq!(part.status, 206);
    assert!(part.headers.get("content-encoding").is_none());
    assert_eq!(part.body, &original[4..14]);

    // The compressed representation's weak validator revalidates it.
    let current = edge
        .fetch_with(
            "/page",
            &[("accept-encoding", "br"), ("if-none-match", "W/\"v1\"")],
        )
        .await
        .unwrap();
    assert_eq!(current.status, 304);
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn what_must_not_be_compressed_goes_as_the_origin_sent_it() {
    let text = html().into_bytes();
    let origin = MockServer::start().await;
    let mounts = [
        (
            "/no-transform",
            page("max-age=600, no-transform", "text/html", text.clone()),
        ),
        ("/image", page("max-age=600", "image/png", text.clone())),
        (
            "/tiny",
            page("max-age=600", "text/html", b"<p>hi</p>".to_vec()),
        ),
        (
            "/encoded",
            page("max-age=600", "text/html", gzipped(&text))
                .insert_header("content-encoding", "gzip"),
        ),
    ];
    for (at, template) in mounts {
        Mock::given(path(at))
            .respond_with(template)
            .mount(&origin)
            .await;
    }
    let edge = edge_for(&origin).await;
    for at in ["/no-transform", "/image", "/tiny", "/encoded"] {
        for round in 0..2 {
            let fetched = edge
                .fetch_with(at, &[("accept-encoding", "br")])
                .await
                .unwrap();
            assert_eq!(fetched.status, 200, "{at}");
            assert_eq!(fetched.hit(), round == 1, "{at}: {}", fetched.cache_status);
            assert_eq!(fetched.headers["etag"], "\"v1\"", "{at}");
            assert!(fetched.headers.get("vary").is_none(), "{at}");
            let expected_encoding = (at == "/encoded").then_some("gzip");
            assert_eq!(
                fetched
                    .headers
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap()),
                expected_encoding,
                "{at}"
            );
        }
    }
}

#[tokio::test]
async fn a_rule_turns_compression_off_or_chooses_its_types() {
    let original = html().into_bytes();
    let origin = MockServer::start().await;
    for (at, content_type) in [
        ("/plain/page", "text/html"),
        ("/custom/data", "application/x-ndjson"),
    ] {
        Mock::given(path(at))
            .respond_with(page("max-age=600", content_type, original.clone()))
            .mount(&origin)
            .await;
    }
    let rules = r#"{"rules": [
        {"path_prefix": "/plain/", "compress": false},
        {"path_prefix": "/custom/", "compress_types": ["application/x-ndjson"], "compress_min_bytes": 1000}
    ]}"#;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).rules(rules))
        .await
        .expect("edge starts");
    let plain = edge
        .fetch_with("/plain/page", &[("accept-encoding", "gzip")])
        .await
        .unwrap();
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.body, original);
    let custom = edge
        .fetch_with("/custom/data", &[("accept-encoding", "gzip")])
        .await
        .unwrap();
    assert_eq!(custom.headers["content-encoding"], "gzip");
    assert_eq!(
        decoded(Coding::Gzip, &custom.body, original.len()),
        original
    );
}
