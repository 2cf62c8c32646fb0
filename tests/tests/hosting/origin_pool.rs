//! The miss path keeps its connections to the origin: misses through the
//! real component reach wiremock through a counting TCP proxy, which sees
//! how many connections edge-host opened (wiremock cannot count them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use edge_tests::{Edge, EdgeSetup, Flavour, join_all};
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A TCP proxy on loopback that relays each connection to `upstream` and
/// counts the connections it accepted.
struct CountingProxy {
    url: String,
    accepted: Arc<AtomicUsize>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut origin) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
                    }
                });
            }
        });
        CountingProxy { url, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// An origin answering every `/item/…` with a cacheable page, behind a
/// counting proxy, and an edge of `flavour` in front of both.
async fn edge_and_origin(flavour: Flavour) -> (Edge, MockServer, CountingProxy) {
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/item/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string("an item"),
        )
        .mount(&origin)
        .await;
    let proxy = CountingProxy::start(*origin.address()).await;
    let edge = Edge::start(EdgeSetup::origin(&proxy.url).flavour(flavour))
        .await
        .expect("edge starts");
    (edge, origin, proxy)
}

async fn sequential_misses_share_one_connection(flavour: Flavour) {
    let (edge, origin, proxy) = edge_and_origin(flavour).await;
    for i in 0..20 {
        let fetched = edge.fetch(&format!("/item/{i}")).await.expect("fetch");
        assert_eq!(fetched.status, 200);
        assert!(!fetched.hit(), "{}", fetched.cache_status);
        assert_eq!(fetched.body, b"an item");
    }
    assert_eq!(origin.received_requests().await.map_or(0, |r| r.len()), 20);
    assert_eq!(proxy.accepted(), 1, "20 misses, one origin connection");
}

#[tokio::test]
async fn twenty_sequential_misses_use_one_origin_connection() {
    sequential_misses_share_one_connection(Flavour::P3).await;
}

/// A WASI 0.2 instance serves one request: the connection outlives each
/// instance, so the pool is the host's.
#[tokio::test]
async fn the_connection_is_reused_across_fresh_wasi_0_2_instances() {
    sequential_misses_share_one_connection(Flavour::P2).await;
}

#[tokio::test]
async fn concurrent_misses_open_at_most_one_connection_each_and_reuse_them() {
    const K: usize = 8;
    let (edge, _origin, proxy) = edge_and_origin(edge_tests::default_flavour()).await;
    let mut opened = 0;
    for round in 0..4 {
        let paths: Vec<String> = (0..K).map(|i| format!("/item/{round}-{i}")).collect();
        for fetched in join_all(paths.iter().map(|path| edge.fetch(path))).await {
            assert_eq!(fetched.expect("fetch").status, 200);
        }
        if round == 0 {
            opened = proxy.accepted();
            assert!(
                (1..=K).contains(&opened),
                "{opened} connections for {K} misses"
            );
        }
    }
    assert_eq!(
        proxy.accepted(),
        opened,
        "later rounds reuse the connections"
    );
}
