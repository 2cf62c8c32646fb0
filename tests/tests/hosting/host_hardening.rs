//! What edge-host does for every request, whatever the component: bound
//! request bodies, header and keep-alive timeouts, a connection cap, the
//! removal of `Connection`-nominated fields both ways, and relaying an
//! origin body at its declared length. Over real sockets, through the real
//! compiled components.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_host::{InstanceLimits, ServerOptions};
use edge_tests::{
    BOUND, Edge, EdgeSetup, canned_origin, read_response, read_to_close, single_component_app,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An edge serving the misbehaving component (`/ok` answers `200 ok`):
/// enough to exercise the server without an origin.
async fn plain_edge(server: ServerOptions) -> Edge {
    let (options, workdir) =
        single_component_app("misbehaving_component", "plain", InstanceLimits::default());
    Edge::serve_app_with(options, workdir, None, server)
        .await
        .expect("host starts")
}

async fn cache_edge(origin: &str, server: ServerOptions) -> Edge {
    Edge::start(EdgeSetup {
        server,
        ..EdgeSetup::origin(origin)
    })
    .await
    .expect("edge starts")
}

async fn connect(edge: &Edge) -> TcpStream {
    TcpStream::connect(edge.addr).await.unwrap()
}

const GET_OK: &[u8] = b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";

// --- request body limit -------------------------------------------------

fn small_body_limit() -> ServerOptions {
    ServerOptions {
        max_request_body_bytes: 1000,
        ..Default::default()
    }
}

async fn post_origin() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/upload"))
        .respond_with(ResponseTemplate::new(200).set_body_string("stored"))
        .mount(&origin)
        .await;
    origin
}

#[tokio::test]
async fn a_content_length_over_the_body_limit_is_413_without_reading_the_body() {
    let origin = post_origin().await;
    let edge = cache_edge(&origin.uri(), small_body_limit()).await;
    let mut client = connect(&edge).await;
    // The head only: an answer proves the edge did not wait for the body.
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
        .await
        .unwrap();
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("1000 bytes"), "{response}");
    assert!(origin.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_cut_off_with_413() {
    let origin = post_origin().await;
    let edge = cache_edge(&origin.uri(), small_body_limit()).await;
    let mut client = connect(&edge).await;
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("258\r\n{}\r\n", "x".repeat(600));
    for _ in 0..2 {
        // The edge may close as soon as the limit is passed.
        let _ = client.write_all(chunk.as_bytes()).await;
    }
    let _ = client.write_all(b"0\r\n\r\n").await;
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(origin.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_body_within_the_limit_is_forwarded_whole() {
    let origin = post_origin().await;
    let edge = cache_edge(&origin.uri(), small_body_limit()).await;
    let response = reqwest::Client::new()
        .post(edge.url("/upload"))
        .body("y".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "stored");
    let received = origin.received_requests().await.unwrap();
    assert_eq!(received[0].body.len(), 1000);
}

// --- header and keep-alive timeouts, connection cap ---------------------

#[tokio::test]
async fn a_connection_that_never_finishes_its_header_section_is_closed_after_the_header_timeout() {
    let header_timeout = Duration::from_millis(300);
    let edge = plain_edge(ServerOptions {
        client_header_timeout: header_timeout,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let mut client = connect(&edge).await;
    client
        .write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let response = read_to_close(&mut client).await;
    assert!(
        started.elapsed() >= header_timeout,
        "{:?}",
        started.elapsed()
    );
    assert!(response.is_empty(), "{response}");

    // A connection that sends nothing at all is closed the same way.
    let started = Instant::now();
    let mut silent = connect(&edge).await;
    assert_eq!(read_to_close(&mut silent).await, "");
    assert!(started.elapsed() >= header_timeout);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let keepalive = Duration::from_millis(300);
    let edge = plain_edge(ServerOptions {
        keepalive_timeout: keepalive,
        ..Default::default()
    })
    .await;
    let mut client = connect(&edge).await;
    // Before the request: the edge's idle time starts after this.
    let asked = Instant::now();
    client.write_all(GET_OK).await.unwrap();
    let response = read_response(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Closed by the keep-alive timeout (the header timeout is 60 s).
    assert_eq!(read_to_close(&mut client).await, "");
    let waited = asked.elapsed();
    assert!(waited >= keepalive, "{waited:?}");
}

#[tokio::test]
async fn an_idle_connection_outlives_the_header_timeout_until_its_keepalive_timeout() {
    let header_timeout = Duration::from_millis(200);
    let edge = plain_edge(ServerOptions {
        client_header_timeout: header_timeout,
        keepalive_timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let mut client = connect(&edge).await;
    client.write_all(GET_OK).await.unwrap();
    assert!(read_response(&mut client).await.starts_with("HTTP/1.1 200"));
    // Idle for three header timeouts: the connection must still be open
    // (a read that times out, rather than one that sees the close).
    let mut buf = [0u8; 16];
    let idle = tokio::time::timeout(header_timeout * 3, client.read(&mut buf)).await;
    assert!(idle.is_err(), "the idle connection was closed: {idle:?}");
    client.write_all(GET_OK).await.unwrap();
    assert!(read_response(&mut client).await.starts_with("HTTP/1.1 200"));
}

/// Over the cap with every connection serving a request (none idle to
/// give way), a client gets `503` and is served once another closes.
#[tokio::test]
async fn over_the_connection_cap_with_every_slot_busy_a_client_gets_503_and_is_served_once_another_closes()
 {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("slow")
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/fast"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fast"))
        .mount(&origin)
        .await;
    let edge = cache_edge(
        &origin.uri(),
        ServerOptions {
            max_connections: 2,
            ..Default::default()
        },
    )
    .await;
    // Two connections, each proven busy by its request reaching the origin.
    let mut first = connect(&edge).await;
    first
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut second = connect(&edge).await;
    second
        .write_all(b"GET /slow?2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    edge_tests::origin_requests_reach(&origin, 2).await;

    for _ in 0..2 {
        let mut over = connect(&edge).await;
        over.write_all(GET_OK).await.unwrap();
        let shed = read_to_close(&mut over).await;
        assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
        assert!(
            shed.to_ascii_lowercase().contains("retry-after: 1"),
            "{shed}"
        );
        assert!(shed.ends_with("too many connections\n"), "{shed}");
    }

    // The first is answered and closes (its close seen by the client is the
    // signal); a new connection is served, and the second is answered.
    assert!(read_to_close(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut third = connect(&edge).await;
    third
        .write_all(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut third).await.starts_with("HTTP/1.1 200"));
    assert!(read_response(&mut second).await.starts_with("HTTP/1.1 200"));
}

/// A connection to `edge` from the loopback address `127.0.0.{source}`, so
/// that a test can play several clients.
async fn connect_from(edge: &Edge, source: u8) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, source], 0)))
        .unwrap();
    socket.connect(edge.addr).await.unwrap()
}

/// Whether the edge has closed `stream`: reads to the close within
/// [`BOUND`] and says what came before it.
async fn closed(stream: &mut TcpStream) -> bool {
    read_to_close(stream).await.is_empty()
}

/// The attack of issue 22: more connections than `--max-connections`, half
/// silent, half idle in keep-alive after one request, from eight client
/// addresses. Each new connection over the cap takes the place of the one
/// idle longest, so a newcomer is served at once, and the ones closed are
/// the oldest.
#[tokio::test]
async fn held_idle_connections_give_way_to_a_new_client_oldest_first() {
    // The test holds both ends of about 1,040 connections.
    edge_host::open_files::raise_open_file_limit();
    let options = ServerOptions {
        // Eviction alone, not the shorter timeout near the cap.
        pressured_timeout: Duration::from_secs(60),
        ..ServerOptions::default()
    };
    let cap = options.max_connections as usize;
    let edge = plain_edge(options).await;
    let held_count = cap + 8;
    let mut held = Vec::with_capacity(held_count);
    for i in 0..held_count {
        let mut stream = connect_from(&edge, 2 + (i % 8) as u8).await;
        if i >= held_count / 2 {
            stream.write_all(GET_OK).await.unwrap();
            let answer = read_response(&mut stream).await;
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "connection {i}: {answer}"
            );
        }
        held.push(stream);
    }

    let started = Instant::now();
    let mut newcomer = connect_from(&edge, 1).await;
    newcomer.write_all(GET_OK).await.unwrap();
    let answer = read_response(&mut newcomer).await;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(waited < Duration::from_secs(1), "served after {waited:?}");

    // Nine gave way (eight to the held connections over the cap, one to
    // the newcomer): the nine oldest, all silent.
    for (i, stream) in held.iter_mut().enumerate().take(9) {
        assert!(closed(stream).await, "connection {i} was not closed");
    }
    // The next oldest, and the newest idle one, are still open and served.
    for i in [9, held_count - 1] {
        held[i].write_all(GET_OK).await.unwrap();
        let answer = read_response(&mut held[i]).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "connection {i}: {answer}"
        );
    }
}

/// An origin whose `/slow` answers after 30 s (a connection waiting for it
/// is busy for the whole test) and `/fast` at once.
async fn slow_and_fast_origin() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/fast"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fast"))
        .mount(&origin)
        .await;
    origin
}

/// A connection kept busy: its request (`/slow?{n}`, a key of its own so
/// that it is not collapsed with another) waits for the origin.
async fn busy_connection(edge: &Edge, n: usize) -> TcpStream {
    let mut stream = connect(edge).await;
    stream
        .write_all(format!("GET /slow?{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// Near the cap (three quarters open, until below half), a connection that
/// has not started a request is closed after the short pressured timeout
/// instead of the header timeout.
#[tokio::test]
async fn near_the_cap_silent_connections_get_the_short_timeout() {
    let origin = slow_and_fast_origin().await;
    let edge = cache_edge(
        &origin.uri(),
        ServerOptions {
            max_connections: 8,
            pressured_timeout: Duration::from_millis(200),
            client_header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await;
    // Three of eight (one busy): no pressure, so the silent ones outlive
    // the short timeout.
    let mut busy = vec![busy_connection(&edge, 0).await];
    edge_tests::origin_requests_reach(&origin, 1).await;
    let mut silent = [connect(&edge).await, connect(&edge).await];
    let mut buf = [0u8; 16];
    let idle = tokio::time::timeout(Duration::from_millis(600), silent[0].read(&mut buf)).await;
    assert!(idle.is_err(), "closed without pressure: {idle:?}");
    // Six of eight (four busy, which keep it above half): both silent ones
    // are closed, the busy ones kept.
    for n in 1..4 {
        busy.push(busy_connection(&edge, n).await);
    }
    for (i, stream) in silent.iter_mut().enumerate() {
        assert!(closed(stream).await, "silent connection {i} was kept");
    }
    edge_tests::origin_requests_reach(&origin, 4).await;
    // And the room they made serves another client.
    let mut other = connect(&edge).await;
    other
        .write_all(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut other).await.starts_with("HTTP/1.1 200"));
    drop(busy);
}

/// One address may hold `--max-connections-per-client` connections: beyond
/// it, its own longest-idle connection gives way, and when all of its
/// connections are serving requests it is refused while others are served.
#[tokio::test]
async fn one_address_gives_way_among_its_own_connections_and_is_refused_when_all_are_busy() {
    let origin = slow_and_fast_origin().await;
    let edge = cache_edge(
        &origin.uri(),
        ServerOptions {
            max_connections_per_client: 2,
            ..Default::default()
        },
    )
    .await;
    const FAST: &[u8] = b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut idle = connect_from(&edge, 3).await;
    idle.write_all(FAST).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let mut busy = connect_from(&edge, 3).await;
    busy.write_all(b"GET /slow?1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    edge_tests::origin_requests_reach(&origin, 2).await;

    // A third from the address: the idle one gives way, not the busy one.
    let mut third = connect_from(&edge, 3).await;
    third
        .write_all(b"GET /slow?2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(&mut idle).await, "the idle connection was kept");
    edge_tests::origin_requests_reach(&origin, 3).await;

    // Both of its connections busy: refused, in words.
    let mut fourth = connect_from(&edge, 3).await;
    let refused = read_to_close(&mut fourth).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.ends_with("too many connections from your address\n"),
        "{refused}"
    );
    // Another address is served.
    let mut other = connect_from(&edge, 4).await;
    other.write_all(FAST).await.unwrap();
    assert!(read_response(&mut other).await.starts_with("HTTP/1.1 200"));
    drop((busy, third));
}

// --- Connection-nominated fields and the declared body length -----------

#[tokio::test]
async fn connection_nominated_request_fields_never_reach_the_origin() {
    let origin = MockServer::start().await;
    Mock::given(path("/nominated"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&origin)
        .await;
    let edge = cache_edge(&origin.uri(), ServerOptions::default()).await;
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
    let (origin, _closes) = canned_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\
          Connection: x-foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n\r\nok",
    )
    .await;
    let edge = cache_edge(&origin, ServerOptions::default()).await;
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
    let (origin, mut closes) = canned_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\n0123456789",
    )
    .await;
    let edge = cache_edge(&origin, ServerOptions::default()).await;
    let fetched = edge.fetch("/long").await.unwrap();
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.text(), "01234");
    // And the edge closed the connection the surplus came on.
    tokio::time::timeout(BOUND, closes.recv())
        .await
        .expect("the edge closed the origin connection")
        .expect("origin task alive");
}
