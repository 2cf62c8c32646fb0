//! TLS and HTTP/2 to clients: ALPN choosing `h2` or `http/1.1` over a
//! certificate generated for the test, HTTP/2 with prior knowledge and
//! many streams on one connection, the host's own answers over HTTP/2, a
//! rapid-reset flood (CVE-2023-44487) beside another client, a certificate
//! reloaded by SIGHUP under load, and each request's protocol in
//! `/metrics` and the access log.

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_host::ServerOptions;
use edge_host::access_log::LogFormat;
use edge_tests::{
    Edge, EdgeSetup, TLS_NAME, TestCertificate, connect_tls, http1_client, http2_client, join_all,
    negotiated, parse_exposition, ran_in_own_process, tls_client,
};
use http_body_util::Full;
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

/// An origin answering every `GET` with `page {path}`, cacheable for ten
/// minutes, after `delay`.
async fn page_origin(delay: Duration) -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(move |request: &Request| {
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .insert_header("content-type", "text/plain")
                .set_body_string(format!("page {}", request.url.path()))
                .set_delay(delay)
        })
        .mount(&origin)
        .await;
    origin
}

/// An edge in front of `origin` serving HTTPS with `certificate`; the
/// directory holds its files.
async fn tls_edge(origin: &MockServer, certificate: &TestCertificate) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate.write(dir.path());
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).tls(&cert, &key))
        .await
        .expect("edge starts");
    (edge, dir)
}

#[tokio::test]
async fn alpn_chooses_h2_or_http1_and_every_protocol_serves_the_one_cached_page() {
    let origin = page_origin(Duration::ZERO).await;
    let certificate = TestCertificate::generate();
    let (edge, _files) = tls_edge(&origin, &certificate).await;
    let url = format!("https://{TLS_NAME}/page");

    let stream = connect_tls(edge.addr, tls_client(&[&certificate], &[H2, HTTP1]))
        .await
        .expect("the handshake verifies the certificate for its name");
    let (alpn, presented) = negotiated(&stream);
    assert_eq!(alpn.as_deref(), Some(H2), "h2 is preferred when offered");
    assert_eq!(presented, certificate.der);
    let mut h2 = http2_client(stream).await.unwrap();
    let first = h2.get(&url).await.unwrap();
    assert_eq!((first.status, first.version), (200, http::Version::HTTP_2));
    assert_eq!(&first.body[..], b"page /page");
    assert!(first.cache_status().contains("stored"), "{first:?}");
    // The component (either flavour) was told the client came over TLS.
    let fill = &origin.received_requests().await.unwrap()[0];
    assert_eq!(
        fill.headers
            .get("x-forwarded-proto")
            .map(|v| v.to_str().unwrap()),
        Some("https"),
        "{:?}",
        fill.headers
    );

    // HTTP/1.1 by ALPN, then without ALPN: the same stored page.
    for alpn_offered in [&[HTTP1][..], &[]] {
        let stream = connect_tls(edge.addr, tls_client(&[&certificate], alpn_offered))
            .await
            .unwrap();
        let expected = (!alpn_offered.is_empty()).then_some(HTTP1);
        assert_eq!(negotiated(&stream).0.as_deref(), expected);
        let mut h1 = http1_client(stream).await.unwrap();
        let again = h1.get(TLS_NAME, "/page").await.unwrap();
        assert_eq!((again.status, again.version), (200, http::Version::HTTP_11));
        assert_eq!(&again.body[..], b"page /page");
        assert!(again.cache_status().contains("hit"), "{again:?}");
    }
    let hit = h2.get(&url).await.unwrap();
    assert!(hit.cache_status().contains("hit"), "{hit:?}");
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn http2_with_prior_knowledge_answers_many_concurrent_streams_on_one_connection() {
    const STREAMS: usize = 150;
    const ORIGIN_DELAY: Duration = Duration::from_millis(400);
    let origin = page_origin(ORIGIN_DELAY).await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    let tcp = TcpStream::connect(edge.addr).await.unwrap();
    let h2 = http2_client(tcp)
        .await
        .expect("cleartext HTTP/2 preface accepted");
    let started = Instant::now();
    let answers = join_all((0..STREAMS).map(|i| {
        let mut h2 = h2.clone();
        let url = format!("http://{}/s/{i}", edge.addr);
        async move { h2.get(&url).await }
    }))
    .await;
    let elapsed = started.elapsed();
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("stream {i}: {e:#}"));
        assert_eq!(answer.status, 200, "stream {i}: {answer:?}");
        assert_eq!(answer.version, http::Version::HTTP_2);
        assert_eq!(
            answer.body,
            Bytes::from(format!("page /s/{i}")),
            "stream {i}"
        );
    }
    // Served one at a time they would take STREAMS origin delays; the
    // stream limit (100) lets at most two rounds wait on the origin.
    let serial = ORIGIN_DELAY * STREAMS as u32;
    assert!(
        elapsed < serial / 4,
        "{STREAMS} streams took {elapsed:?}: not served concurrently"
    );
}

#[tokio::test]
async fn the_hosts_own_answer_over_http2_keeps_the_connection_serving() {
    let origin = page_origin(Duration::ZERO).await;
    let edge = Edge::start(EdgeSetup {
        server: ServerOptions {
            max_request_body_bytes: 1000,
            ..Default::default()
        },
        ..EdgeSetup::origin(&origin.uri())
    })
    .await
    .unwrap();
    let tcp = TcpStream::connect(edge.addr).await.unwrap();
    let mut h2 = http2_client(tcp).await.unwrap();
    // The host's 413 carries `Connection: close` for HTTP/1.1; HTTP/2
    // forbids the field, and the connection goes on.
    let upload = http::Request::post(format!("http://{}/upload", edge.addr))
        .header("content-length", "5000")
        .body(Full::new(Bytes::from(vec![b'x'; 5000])))
        .unwrap();
    let refused = h2
        .send(upload)
        .await
        .expect("a well-formed HTTP/2 response");
    assert_eq!(refused.status, 413);
    assert!(refused.headers.get("connection").is_none());
    let after = h2
        .get(&format!("http://{}/after", edge.addr))
        .await
        .expect("the same connection serves on");
    assert_eq!(&after.body[..], b"page /after");
}

#[tokio::test]
async fn an_http2_connection_with_no_stream_open_is_closed_after_the_keepalive_timeout() {
    const KEEPALIVE: Duration = Duration::from_millis(300);
    let origin = page_origin(Duration::ZERO).await;
    let edge = Edge::start(EdgeSetup {
        server: ServerOptions {
            keepalive_timeout: KEEPALIVE,
            ..Default::default()
        },
        ..EdgeSetup::origin(&origin.uri())
    })
    .await
    .unwrap();
    let tcp = TcpStream::connect(edge.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/page", edge.addr))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body()).await;
    let idle = Instant::now();
    assert_eq!(&body.unwrap().to_bytes()[..], b"page /page");
    // The server ending the connection ends the client's connection task.
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap()
        .ok();
    assert!(
        idle.elapsed() >= KEEPALIVE,
        "closed after {:?}, before the keep-alive timeout",
        idle.elapsed()
    );
}

/// What the flood did: streams opened and reset, and connections the
/// server ended.
#[derive(Debug, Default)]
struct Flood {
    resets: usize,
    connections_ended: usize,
}

/// One HTTP/2 frame: its 9-byte header, then `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// `HEADERS` (`END_STREAM | END_HEADERS`) for `GET path` on `stream`, then
/// `RST_STREAM (CANCEL)` for it: written together, as the attack does.
fn opened_and_reset(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    // HPACK (RFC 7541): static-table `:method GET` and `:scheme http`;
    // `:authority` and `:path` as literals without indexing.
    let mut block = vec![0x82, 0x86, 0x01, authority.len() as u8];
    block.extend(authority.as_bytes());
    block.extend([0x04, path.len() as u8]);
    block.extend(path.as_bytes());
    let mut frames = frame(0x1, 0x1 | 0x4, stream, &block);
    frames.extend(frame(0x3, 0, stream, &0x8u32.to_be_bytes()));
    frames
}

/// Opens streams and resets each at once, written as raw frames (a
/// client library would not send a request it resets before sending),
/// reconnecting whenever the server ends the connection, until `stop`;
/// `started` is sent after the first batch.
async fn rapid_reset_flood(
    addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
    started: tokio::sync::oneshot::Sender<()>,
) -> Flood {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BATCH: usize = 50;
    let mut flood = Flood::default();
    let mut started = Some(started);
    let authority = addr.to_string();
    while !*stop.borrow() {
        let tcp = TcpStream::connect(addr)
            .await
            .expect("the flooder connects");
        let (mut reading, mut writing) = tcp.into_split();
        // The server's frames are read and dropped; the end of the
        // connection ends the flood's writes too.
        let drain = tokio::spawn(async move {
            let mut sink = vec![0u8; 64 << 10];
            while let Ok(1..) = reading.read(&mut sink).await {}
        });
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend(frame(0x4, 0, 0, &[]));
        let mut open = writing.write_all(&preface).await.is_ok();
        let mut stream = 1u32;
        while open && !*stop.borrow() {
            let mut batch = Vec::new();
            for _ in 0..BATCH {
                let path = format!("/flood/{}", flood.resets + batch.len());
                batch.push(opened_and_reset(stream, &authority, &path));
                stream += 2;
            }
            open = writing.write_all(&batch.concat()).await.is_ok() && !drain.is_finished();
            if open {
                flood.resets += BATCH;
                started.take().map(|s| s.send(()));
            }
        }
        flood.connections_ended += usize::from(!open);
        drain.abort();
    }
    flood
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_is_cut_off_and_does_not_stall_another_client() {
    let origin = page_origin(Duration::ZERO).await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri())).await.unwrap();
    assert_eq!(edge.fetch("/page").await.unwrap().status, 200);
    let (started, flooding) = tokio::sync::oneshot::channel();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let flood = tokio::spawn(rapid_reset_flood(edge.addr, stopping, started));
    flooding.await.expect("the flood starts");
    // While it goes on, another client's requests are answered promptly.
    for i in 0..20 {
        let fetched = tokio::time::timeout(Duration::from_secs(5), edge.fetch("/page"))
            .await
            .unwrap_or_else(|_| panic!("request {i} stalled behind the flood"))
            .unwrap();
        assert_eq!(fetched.status, 200);
        assert_eq!(fetched.text(), "page /page");
    }
    assert!(!flood.is_finished(), "the flood went on throughout");
    let _ = stop.send(true);
    let flood = flood.await.unwrap();
    assert!(flood.resets >= 200, "{flood:?}");
    assert!(
        flood.connections_ended > 0,
        "the server never cut a flooding connection off: {flood:?}"
    );
    // And the edge serves on.
    assert_eq!(edge.fetch("/page").await.unwrap().status, 200);
}

/// The latest outcome of the TLS reload, once it is `applied` or not.
async fn tls_reload_is(applied: bool, after: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = edge_host::observe::reloads::latest()
            .into_iter()
            .find(|status| status.part == "tls");
        if let Some(status) = &outcome
            && status.applied == applied
            && status.message != after
        {
            return status.message.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no TLS reload recorded: {outcome:?}"
        );
        // The reload runs on the signal's task: polled, as nothing else
        // tells the test it has run.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn hang_up() {
    // SAFETY: kill(2) on our own pid with a signal tokio handles.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(sent, 0, "SIGHUP sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_reloaded_by_sighup_serves_new_connections_and_a_broken_one_keeps_the_old() {
    // SIGHUP goes to the whole process: this test has one of its own.
    if ran_in_own_process() {
        return;
    }
    let origin = page_origin(Duration::ZERO).await;
    let (first, second) = (TestCertificate::generate(), TestCertificate::generate());
    let (edge, files) = tls_edge(&origin, &first).await;
    let trusting = tls_client(&[&first, &second], &[H2, HTTP1]);
    let url = format!("https://{TLS_NAME}/page");

    let open = connect_tls(edge.addr, trusting.clone()).await.unwrap();
    assert_eq!(negotiated(&open).1, first.der);
    let mut kept = http2_client(open).await.unwrap();
    assert_eq!(kept.get(&url).await.unwrap().status, 200);

    // Clients keep connecting and asking throughout both reloads.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let load = tokio::spawn({
        let (trusting, addr, url) = (trusting.clone(), edge.addr, url.clone());
        async move {
            let (mut served, mut failed) = (0usize, Vec::new());
            while !*stopping.borrow() {
                let asked = async {
                    let stream = connect_tls(addr, trusting.clone()).await?;
                    http2_client(stream).await?.get(&url).await
                };
                match asked.await {
                    Ok(answer) if answer.status == 200 => served += 1,
                    Ok(answer) => failed.push(format!("status {}", answer.status)),
                    Err(error) => failed.push(format!("{error:#}")),
                }
            }
            (served, failed)
        }
    });

    second.write(files.path());
    hang_up();
    let summary = tls_reload_is(true, "").await;
    assert!(summary.contains("cert.pem: 1 certificate"), "{summary}");
    let fresh = connect_tls(edge.addr, trusting.clone()).await.unwrap();
    assert_eq!(
        negotiated(&fresh).1,
        second.der,
        "new connections get the new certificate"
    );
    assert_eq!(
        kept.get(&url)
            .await
            .expect("an open connection outlives the reload")
            .status,
        200
    );

    std::fs::write(files.path().join("key.pem"), "not a key").unwrap();
    hang_up();
    let refusal = tls_reload_is(false, &summary).await;
    assert!(
        refusal.contains("key.pem: no usable private key"),
        "{refusal}"
    );
    let after = connect_tls(edge.addr, trusting.clone()).await.unwrap();
    assert_eq!(
        negotiated(&after).1,
        second.der,
        "a broken pair keeps the last good one"
    );
    let mut after = http2_client(after).await.unwrap();
    assert_eq!(after.get(&url).await.unwrap().status, 200);

    let _ = stop.send(true);
    let (served, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "requests failed during the reloads: {failed:?}"
    );
    assert!(served > 0, "the load ran");
}

#[tokio::test]
async fn each_request_s_protocol_is_counted_and_logged_and_a_fresh_hit_over_h2_is_native() {
    if ran_in_own_process() {
        return;
    }
    let origin = page_origin(Duration::ZERO).await;
    let certificate = TestCertificate::generate();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate.write(dir.path());
    let log = dir.path().join("access.log");
    let edge = Edge::start(
        EdgeSetup::origin(&origin.uri())
            .tls(&cert, &key)
            .metrics()
            .access_log(&log, LogFormat::Json),
    )
    .await
    .unwrap();
    let url = format!("https://{TLS_NAME}/page");
    let stream = connect_tls(edge.addr, tls_client(&[&certificate], &[H2]))
        .await
        .unwrap();
    let mut h2 = http2_client(stream).await.unwrap();
    for _ in 0..3 {
        assert_eq!(h2.get(&url).await.unwrap().status, 200);
    }
    let stream = connect_tls(edge.addr, tls_client(&[&certificate], &[HTTP1]))
        .await
        .unwrap();
    let mut h1 = http1_client(stream).await.unwrap();
    assert_eq!(h1.get(TLS_NAME, "/page").await.unwrap().status, 200);

    let metrics = reqwest::get(format!("http://{}/metrics", edge.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = parse_exposition(&metrics);
    let by = |protocol: &str| {
        series[&format!("edge_requests_by_protocol_total{{protocol=\"{protocol}\"}}")]
    };
    assert_eq!(
        (by("HTTP/2"), by("HTTP/1.1"), by("HTTP/1.0")),
        (3.0, 1.0, 0.0)
    );
    if edge_tests::default_native_hits() {
        // The second h2 request builds the lane's node; the third is
        // answered by it, over HTTP/2 as over HTTP/1.1.
        assert!(series["edge_native_hits_total"] >= 1.0, "{metrics}");
    }

    edge_host::access_log::flush();
    let lines = std::fs::read_to_string(&log).unwrap();
    let protocols: Vec<String> = lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|entry| entry["protocol"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        protocols,
        ["HTTP/2", "HTTP/2", "HTTP/2", "HTTP/1.1"],
        "{lines}"
    );
}
