//! edge-host serving WASI 0.3 components with instance reuse, over real
//! sockets: the p3 edge-cache component against a wiremock origin, and the
//! p3 misbehaving component (tests/misbehaving-component/p3), which says
//! which instance served each request. Instance counts come from the host
//! ([`edge_tests::Edge::instance_stats`]) and, where it matters, from the
//! component's own answer; nothing here waits on a sleep.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use edge_host::reuse::PerInstance;
use edge_host::{AppOptions, InstanceLimits, ReuseOptions};
use edge_tests::{
    Edge, EdgeSetup, Flavour, assert_short_with_error_id, reuse, single_component_app,
};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TIME_LIMIT: Duration = Duration::from_millis(1_000);

/// The p3 misbehaving component in edge-host, with [`TIME_LIMIT`].
async fn misbehaving_edge(reuse: ReuseOptions) -> Edge {
    misbehaving_edge_with(reuse, TIME_LIMIT).await
}

/// The p3 misbehaving component in edge-host.
async fn misbehaving_edge_with(reuse: ReuseOptions, request_timeout: Duration) -> Edge {
    let limits = InstanceLimits {
        request_timeout,
        max_memory_bytes: 32 << 20,
    };
    let (options, workdir) =
        single_component_app("misbehaving_component_p3", "misbehaving-p3", limits);
    let options = AppOptions {
        max_instances: Some(64),
        reuse: Some(reuse),
        ..options
    };
    let edge = Edge::serve_app(options, workdir)
        .await
        .expect("host starts");
    assert_eq!(edge.app().flavour("misbehaving"), Some(Flavour::P3));
    edge
}

async fn get(edge: &Edge, path: &str) -> (u16, String) {
    let response = reqwest::get(edge.url(path)).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `/instance`'s answer: the instance's id and its count of requests.
async fn which_instance(edge: &Edge) -> (String, u64) {
    let (status, body) = get(edge, "/instance").await;
    assert_eq!(status, 200, "{body}");
    let (id, served) = body.trim().split_once(' ').expect("`{id} {n}`");
    (id.to_owned(), served.parse().unwrap())
}

#[tokio::test]
async fn the_p3_edge_cache_serves_a_miss_then_a_hit() {
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
    let edge = Edge::start(
        EdgeSetup::origin(&origin.uri())
            .flavour(Flavour::P3)
            .component_only(),
    )
    .await
    .expect("edge starts");
    assert_eq!(edge.app().flavour("edge-cache"), Some(Flavour::P3));

    let first = edge.fetch("/a").await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(
        first.cache_status,
        "edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    assert_eq!(first.text(), "A");
    let second = edge.fetch("/a").await.unwrap();
    assert_eq!(second.status, 200);
    assert!(second.hit(), "{}", second.cache_status);
    assert_eq!(second.text(), "A");
    // One instance served both: reuse is on by default.
    let stats = edge.instance_stats();
    assert_eq!((stats.created, stats.requests), (1, 2), "{stats:?}");
}

#[tokio::test]
async fn outbound_http_from_p3_keeps_the_allow_list_and_drops_hop_by_hop_fields() {
    let origin = MockServer::start().await;
    Mock::given(path("/hop"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-end-to-end", "1")
                .insert_header("proxy-authenticate", "Basic")
                .insert_header("connection", "x-origin-private")
                .insert_header("x-origin-private", "secret")
                .set_body_string("ok"),
        )
        .mount(&origin)
        .await;
    let edge = Edge::start(
        EdgeSetup::origin(&origin.uri())
            .flavour(Flavour::P3)
            .component_only(),
    )
    .await
    .unwrap();
    let relayed = edge.fetch("/hop").await.unwrap();
    assert_eq!(relayed.status, 200);
    assert_eq!(relayed.headers["x-end-to-end"], "1");
    for gone in ["proxy-authenticate", "x-origin-private"] {
        assert!(relayed.headers.get(gone).is_none(), "{gone} relayed");
    }

    let denied = Edge::start(EdgeSetup {
        allowed_outbound_hosts: Some(vec![format!(
            "http://127.0.0.1:{}",
            edge_tests::closed_port()
        )]),
        ..EdgeSetup::origin(&origin.uri())
            .flavour(Flavour::P3)
            .component_only()
    })
    .await
    .unwrap();
    let refused = denied.fetch("/hop").await.unwrap();
    assert_eq!(refused.status, 502);
    assert!(
        refused.text().contains("allowed_outbound_hosts"),
        "{}",
        refused.text()
    );
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);
}

/// Polls the host's counters until `done` holds (the host offers no
/// notification); fails the test after a generous deadline.
async fn until(edge: &Edge, what: &str, done: impl Fn(&edge_host::InstanceStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = edge.instance_stats();
        if done(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn an_instance_serves_at_most_the_reuse_count_then_a_fresh_one_takes_over() {
    let edge = misbehaving_edge(reuse(3, 16)).await;
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(which_instance(&edge).await);
    }
    let served: Vec<u64> = seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(served, [1, 2, 3, 1, 2, 3, 1], "{seen:?}");
    let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert!(ids[0] == ids[1] && ids[1] == ids[2], "{seen:?}");
    assert!(ids[3] == ids[4] && ids[4] == ids[5], "{seen:?}");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3, "{seen:?}");
    let stats = edge.instance_stats();
    assert_eq!(
        (stats.created, stats.requests, stats.failed),
        (3, 7, 0),
        "{stats:?}"
    );
    // The two used-up instances retire (the third is still open for more).
    until(&edge, "retired the used-up instances", |s| s.ended == 2).await;
}

#[tokio::test]
async fn concurrent_requests_share_instances_up_to_the_concurrent_reuse_count() {
    const N: u64 = 48;
    const AT_ONCE: u64 = 16;
    let edge = misbehaving_edge_with(reuse(128, AT_ONCE as usize), Duration::from_secs(30)).await;
    // Each request waits on the host's clock, so its instance takes others
    // meanwhile. Each is sent once the previous one has been accepted by
    // an instance: all are in flight together, and the host, not the
    // timing of 48 simultaneous connections, decides where they go.
    let mut requests = Vec::new();
    for sent in 1..=N {
        let url = edge.url("/wait/2000");
        requests.push(tokio::spawn(async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }));
        until(&edge, "accepted the request", |s| s.requests == sent).await;
    }
    let stats = edge.instance_stats();
    let mut instances = BTreeSet::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
        instances.insert(body.trim().to_owned());
    }
    let ideal = N.div_ceil(AT_ONCE);
    eprintln!(
        "{N} concurrent requests: {stats:?}, {} instances",
        instances.len()
    );
    assert_eq!(instances.len() as u64, stats.created, "{stats:?}");
    assert!(stats.created >= ideal, "{stats:?}");
    // At most one more than the ideal: a request can arrive in the moment
    // between an instance's acceptance of one and its guest's first wait.
    assert!(stats.created <= ideal + 1, "{stats:?}");
    assert_eq!(stats.peak_concurrent_requests, AT_ONCE, "{stats:?}");
}

#[tokio::test]
async fn a_trap_gets_a_clean_500_and_the_next_request_a_fresh_instance() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    let (before, _) = which_instance(&edge).await;
    let (status, body) = get(&edge, "/trap").await;
    assert_eq!(status, 500);
    assert_short_with_error_id(&body);
    assert_eq!(
        body.trim_end().split(" (error id").next(),
        Some("internal error")
    );
    let (after, served) = which_instance(&edge).await;
    assert_ne!(after, before, "the trapped instance served again");
    assert_eq!(served, 1);
    let stats = edge.instance_stats();
    assert_eq!((stats.created, stats.failed), (2, 1), "{stats:?}");
}

#[tokio::test]
async fn a_trap_fails_the_requests_in_flight_in_its_instance_only() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    let waiting = tokio::spawn(reqwest::get(edge.url("/wait/5000")));
    until(&edge, "accepted the waiting request", |s| s.requests == 1).await;
    let (status, body) = get(&edge, "/trap").await;
    assert_eq!(status, 500);
    assert_short_with_error_id(&body);
    let stats = edge.instance_stats();
    let waited = waiting.await.unwrap().unwrap();
    let (waited_status, waited_body) = (waited.status().as_u16(), waited.text().await.unwrap());
    if stats.created == 1 {
        // The trap was in the waiting request's instance: it fails too.
        assert_eq!(waited_status, 500, "{waited_body}");
        assert_short_with_error_id(&waited_body);
    } else {
        // It came in before that instance could take a second request, so
        // had its own: the waiting request is not affected.
        assert_eq!(waited_status, 200, "{waited_body}");
    }
    let (_, served) = which_instance(&edge).await;
    assert!(
        served <= 2,
        "served {served}: a trapped instance was reused"
    );
    assert_eq!(edge.instance_stats().failed, 1);
}

#[tokio::test]
async fn a_spinning_p3_request_is_stopped_at_the_time_limit_and_its_instance_replaced() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    let started = Instant::now();
    let spinning = tokio::spawn(reqwest::get(edge.url("/spin")));
    until(&edge, "accepted the spinning request", |s| s.requests == 1).await;

    // While that instance spins, others serve: it yields at every epoch
    // tick, and it takes no new requests.
    let (status, body) = get(&edge, "/ok").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(!spinning.is_finished(), "the spinning request ended early");

    let stopped = spinning.await.unwrap().unwrap();
    let waited = started.elapsed();
    assert_eq!(stopped.status(), 500);
    let body = stopped.text().await.unwrap();
    assert!(body.contains("1000 ms request time limit"), "{body}");
    assert_short_with_error_id(&body);
    assert!(waited >= TIME_LIMIT, "stopped after {waited:?}");
    assert!(waited < TIME_LIMIT * 10, "stopped only after {waited:?}");

    until(&edge, "dropped the spinning instance", |s| s.failed == 1).await;
    let stats = edge.instance_stats();
    assert_eq!(stats.created, 2, "{stats:?}");
    let (_, served) = which_instance(&edge).await;
    assert_eq!(served, 2, "not the instance that served /ok");
}

#[tokio::test]
async fn a_p3_request_waiting_past_the_time_limit_gets_a_500_and_its_instance_retires() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    let started = Instant::now();
    let (status, body) = get(&edge, "/wait/60000").await;
    let waited = started.elapsed();
    assert_eq!(status, 500);
    assert!(body.contains("1000 ms request time limit"), "{body}");
    assert_short_with_error_id(&body);
    assert!(
        waited >= TIME_LIMIT && waited < TIME_LIMIT * 10,
        "{waited:?}"
    );
    // The overrun instance takes nothing more; the next request gets a
    // fresh one.
    let (_, served) = which_instance(&edge).await;
    assert_eq!(served, 1);
    let stats = edge.instance_stats();
    assert_eq!(stats.created, 2, "{stats:?}");
}

#[tokio::test]
async fn a_p3_instance_is_stopped_at_its_memory_limit_and_replaced() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    let (status, body) = get(&edge, "/grow").await;
    assert_eq!(status, 500);
    assert!(body.contains("32 MiB memory limit"), "{body}");
    assert_short_with_error_id(&body);
    let (_, served) = which_instance(&edge).await;
    assert_eq!(served, 1);
    assert_eq!(edge.instance_stats().failed, 1);
}

#[tokio::test]
async fn an_instance_grown_past_three_quarters_of_its_memory_limit_retires_unfailed() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    // 26 of the 32 MiB: past the 75 % recycling mark, within the limit.
    let (status, body) = get(&edge, "/keep/26").await;
    assert_eq!(status, 200, "{body}");
    let (after, served) = which_instance(&edge).await;
    assert_ne!(
        after,
        body.trim(),
        "the grown instance took another request"
    );
    assert_eq!(served, 1);
    until(&edge, "retired the grown instance", |s| s.ended == 1).await;
    let stats = edge.instance_stats();
    assert_eq!((stats.created, stats.failed), (2, 0), "{stats:?}");
}

#[tokio::test]
async fn an_idle_instance_retires_after_the_idle_timeout() {
    let edge = misbehaving_edge(ReuseOptions {
        idle_instance_timeout: PerInstance::parse_duration("50ms").unwrap(),
        ..reuse(128, 16)
    })
    .await;
    let (first, _) = which_instance(&edge).await;
    until(&edge, "retired the idle instance", |s| s.ended == 1).await;
    let (second, served) = which_instance(&edge).await;
    assert_ne!(first, second);
    assert_eq!(served, 1);
    assert_eq!(edge.instance_stats().failed, 0);
}

#[tokio::test]
async fn each_request_to_a_reused_instance_gets_its_own_url_and_client_address() {
    let edge = misbehaving_edge(reuse(128, 16)).await;
    for host in ["a.example", "b.example:8080", "a.example"] {
        let client = reqwest::Client::new();
        let response = client
            .get(edge.url("/echo?q=1"))
            .header("host", host)
            .header("spin-full-url", "http://forged.example/")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let line = |name: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {body}"))
                .to_owned()
        };
        // An absolute URI: WASI 0.3 has the authority there only.
        assert_eq!(line("uri"), format!("http://{host}/echo?q=1"));
        assert_eq!(line("spin-full-url"), format!("http://{host}/echo?q=1"));
        let client_addr: std::net::SocketAddr = line("spin-client-addr").parse().unwrap();
        assert!(client_addr.ip().is_loopback(), "{body}");
        assert_eq!(line("host"), "(none)", "WASI 0.3 forbids the field");
    }
    let stats = edge.instance_stats();
    assert_eq!((stats.created, stats.requests), (1, 3), "{stats:?}");
}
