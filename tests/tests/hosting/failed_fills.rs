//! A fill lease ends with the instance that took it. The edge component
//! takes a lease (a store key under `purge_wire::FILL_LEASE_KEY_PREFIX`)
//! before it fetches a key, and deletes it when the fetch ends; an instance
//! that traps or is stopped at a limit mid-fill never deletes it, and
//! without the host every request for that URL would wait for the lease to
//! lapse (two seconds) and then be answered as a collapsed miss. The host
//! deletes the lease before the failure is answered:
//!
//! - in both flavours, through the misbehaving component, which takes a
//!   lease as the edge does and traps (`/lease/trap`);
//! - through the real edge-cache component stopped at the time limit while
//!   it waits for a slow origin (WASI 0.2: an instance per request, stopped
//!   with its request; a reused WASI 0.3 instance goes on with the fill
//!   after the request's `500`, and its lease is then honestly held).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_host::key_value::{StoreBackend, is_fill_lease_key};
use edge_host::{Flavour, InstanceLimits};
use edge_tests::{Edge, EdgeSetup, FaultyStore, default_flavour, single_component_app};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// How long a lease held another request back at most (edge-cache's
/// `FILL_LEASE`).
const FILL_LEASE: Duration = Duration::from_secs(2);

/// The fill leases in `store`.
async fn leases_in(store: &FaultyStore) -> Vec<String> {
    let keys = store.get_keys().await.unwrap();
    keys.into_iter()
        .filter(|key| is_fill_lease_key(key))
        .collect()
}

#[tokio::test]
async fn a_trapped_instance_leaves_no_fill_lease_behind() {
    let name = match default_flavour() {
        Flavour::P2 => "misbehaving_component",
        Flavour::P3 => "misbehaving_component_p3",
    };
    let (mut options, workdir) = single_component_app(name, "leases", InstanceLimits::default());
    // The component's table is the manifest's last: it gets the store.
    let manifest = std::fs::read_to_string(&options.manifest).unwrap();
    std::fs::write(
        &options.manifest,
        format!("{manifest}key_value_stores = [\"default\"]\n"),
    )
    .unwrap();
    let store = FaultyStore::new();
    options
        .store_overrides
        .0
        .insert("default".to_owned(), Arc::new(store.clone()));
    let edge = Edge::serve_app(options, workdir)
        .await
        .expect("host starts");

    let trapped = reqwest::get(edge.url("/lease/trap")).await.unwrap();
    assert_eq!(trapped.status(), 500);
    // It took the lease, and it is gone by the time its client has the 500.
    assert_eq!(leases_in(&store).await, Vec::<String>::new());

    let after = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn an_edge_instance_stopped_mid_fill_leaves_no_lease_for_the_next_request_to_wait_on() {
    let origin = MockServer::start().await;
    let fills = Arc::new(AtomicUsize::new(0));
    let counter = fills.clone();
    Mock::given(path("/slow-then-fast"))
        .respond_with(move |_: &Request| {
            // The first fill outlasts the request time limit.
            let delay = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Duration::from_secs(5),
                _ => Duration::ZERO,
            };
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .set_body_string("page")
                .set_delay(delay)
        })
        .mount(&origin)
        .await;
    let store = FaultyStore::new();
    let mut setup = EdgeSetup::origin(&origin.uri())
        .flavour(Flavour::P2)
        .store(&store);
    setup.limits = Some(InstanceLimits {
        request_timeout: Duration::from_millis(500),
        ..InstanceLimits::default()
    });
    let edge = Edge::start(setup).await.expect("edge starts");

    let stopped = reqwest::get(edge.url("/slow-then-fast")).await.unwrap();
    assert_eq!(stopped.status(), 500);
    let said = stopped.text().await.unwrap();
    assert!(said.contains("500 ms request time limit"), "{said}");
    assert_eq!(fills.load(Ordering::SeqCst), 1);
    // The instance took the lease before fetching; by the time its client
    // has the 500, the host has deleted it.
    assert_eq!(leases_in(&store).await, Vec::<String>::new());

    let started = Instant::now();
    let next = reqwest::get(edge.url("/slow-then-fast")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(next.status(), 200);
    let cache_status = next.headers()["cache-status"].to_str().unwrap().to_owned();
    assert_eq!(next.text().await.unwrap(), "page");
    // Not a waiter on a dead instance's lease: a miss of its own.
    assert!(!cache_status.contains("collapsed"), "{cache_status}");
    assert!(cache_status.contains("fwd=uri-miss"), "{cache_status}");
    assert_eq!(fills.load(Ordering::SeqCst), 2);
    assert!(waited < FILL_LEASE, "answered after {waited:?}");
}
