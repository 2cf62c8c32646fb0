//! A response body that breaks off (the component fails it, ends it short
//! of its `Content-Length`, or traps while sending it) must never reach the
//! client as a whole response: edge-host ends the connection before the
//! declared length, or without the last chunk, so a client or a cache in
//! front sees a failure, not a short page. Other connections go on being
//! served. Through the misbehaving component of the flavour under test
//! (`/break-off…`: `Content-Length: 1000000`, 100000 bytes, then the
//! failure).

use std::time::Duration;

use edge_host::{AppOptions, Flavour, InstanceLimits};
use edge_tests::{Edge, default_flavour, read_to_close, reuse, single_component_app};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What `/break-off` declares, and what it sends of it.
const DECLARED: usize = 1_000_000;
const WRITTEN: usize = 100_000;

async fn misbehaving_edge() -> Edge {
    let name = match default_flavour() {
        Flavour::P2 => "misbehaving_component",
        Flavour::P3 => "misbehaving_component_p3",
    };
    let limits = InstanceLimits {
        request_timeout: Duration::from_secs(10),
        ..InstanceLimits::default()
    };
    let (options, workdir) = single_component_app(name, "breaks-off", limits);
    let options = AppOptions {
        reuse: Some(reuse(128, 4)),
        ..options
    };
    Edge::serve_app(options, workdir)
        .await
        .expect("host starts")
}

/// Sends `GET path` on a connection of its own and reads until the edge
/// ends it: the head, and the body bytes as they came (chunked framing
/// included).
async fn get_until_closed(edge: &Edge, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: edge.test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let received = read_to_close(&mut stream).await;
    let (head, body) = received
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{path}: no head in {received:?}"));
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn a_body_that_breaks_off_ends_the_connection_short_of_a_whole_response() {
    let edge = misbehaving_edge().await;
    for path in ["/break-off", "/break-off/trap"] {
        let (head, body) = get_until_closed(&edge, path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-length: {DECLARED}")),
            "{path}: {head}"
        );
        assert!(
            body.len() < DECLARED,
            "{path}: {} bytes of a {DECLARED}-byte body",
            body.len()
        );
        assert!(body.len() <= WRITTEN, "{path}: {} bytes", body.len());
    }
    let path = "/break-off/chunked-trap";
    let (head, body) = get_until_closed(&edge, path).await;
    assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
    assert!(
        head.contains("transfer-encoding: chunked"),
        "{path}: {head}"
    );
    assert!(
        !body.ends_with("0\r\n\r\n"),
        "{path}: the body was ended as if whole ({} bytes)",
        body.len()
    );

    // The edge goes on serving other connections.
    let ok = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "ok\n");
}
