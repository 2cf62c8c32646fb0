//! What edge-host does for every request, whatever the component: the
//! removal of `Connection`-nominated fields both ways, and relaying an
//! origin body at its declared length. Over real sockets, through the real
//! compiled component.

use std::net::SocketAddr;
use std::time::Duration;

use edge_tests::{Edge, EdgeSetup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The longest any single test waits for the edge to do something.
const BOUND: Duration = Duration::from_secs(10);

async fn cache_edge(origin: &str) -> Edge {
    Edge::start(EdgeSetup::origin(origin))
        .await
        .expect("edge starts")
}

/// Reads until the peer closes; panics if that takes longer than [`BOUND`].
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the edge closed the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

async fn connect(edge: &Edge) -> TcpStream {
    TcpStream::connect(edge.addr).await.unwrap()
}

// --- Connection-nominated fields and the declared body length -----------

/// An origin on a raw socket: answers every request on a connection with
/// `response`, and reports on the channel when the edge closes a
/// connection.
async fn raw_origin(response: &'static [u8]) -> (String, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (closed, closes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    // One answer per request head received.
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(response).await.is_err() {
                            break;
                        }
                    }
                }
                let _ = closed.send(());
            });
        }
    });
    (format!("http://{addr}"), closes)
}

#[tokio::test]
async fn connection_nominated_request_fields_never_reach_the_origin() {
    let origin = MockServer::start().await;
    Mock::given(path("/nominated"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&origin)
        .await;
    let edge = cache_edge(&origin.uri()).await;
    for request_line in ["GET /nominated", "DELETE /nominated"] {
        let mut client = connect(&edge).await;
        client
            .write_all(
                format!(
                    "{request_line} HTTP/1.1\r\nHost: t\r\nConnection: x-secret, close\r\n\
                     X-Secret: 1\r\nX-Kept: 1\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let response = read_to_close(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let received = origin.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for request in received {
        assert!(request.headers.get("x-secret").is_none(), "{request:?}");
    }
}

#[tokio::test]
async fn connection_nominated_response_fields_are_neither_relayed_nor_stored() {
    let (origin, _closes) = raw_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\
          Connection: x-foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n\r\nok",
    )
    .await;
    let edge = cache_edge(&origin).await;
    let miss = edge.fetch("/nominated").await.unwrap();
    assert_eq!(miss.status, 200, "{}", miss.text());
    assert_eq!(miss.headers["x-bar"], "2");
    assert!(miss.headers.get("x-foo").is_none(), "{:?}", miss.headers);
    let hit = edge.fetch("/nominated").await.unwrap();
    assert!(hit.hit(), "{}", hit.cache_status);
    assert_eq!(hit.headers["x-bar"], "2");
    assert!(hit.headers.get("x-foo").is_none(), "{:?}", hit.headers);
}

#[tokio::test]
async fn an_origin_body_longer_than_its_content_length_is_relayed_at_the_declared_length() {
    let (origin, mut closes) = raw_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\n0123456789",
    )
    .await;
    let edge = cache_edge(&origin).await;
    let fetched = edge.fetch("/long").await.unwrap();
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.text(), "01234");
    // And the edge closed the connection the surplus came on.
    tokio::time::timeout(BOUND, closes.recv())
        .await
        .expect("the edge closed the origin connection")
        .expect("origin task alive");
}
