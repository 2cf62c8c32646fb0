//! A fill lease ends with the instance that took it: an edge instance
//! stopped mid-fill (here at its memory limit, by a body held whole) never
//! deletes its lease, and without the host every request for that URL
//! would wait for the lease to lapse (two seconds) and then be answered as
//! a collapsed miss. The host deletes the lease before the failure is
//! answered, so the next request fetches for itself at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_host::InstanceLimits;
use edge_host::key_value::{StoreBackend, is_fill_lease_key};
use edge_tests::{Edge, EdgeSetup, FaultyStore};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The first fill's body: well past the memory limit, and held whole
/// (under the rule's `max_object_bytes`), so the instance is stopped while
/// it reads it.
const BIG_BODY: usize = 48 << 20;

/// How long a lease held another request back at most (edge-cache's
/// `FILL_LEASE`).
const FILL_LEASE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn an_instance_stopped_mid_fill_leaves_no_lease_for_the_next_request_to_wait_on() {
    let origin = MockServer::start().await;
    let fills = Arc::new(AtomicUsize::new(0));
    let counter = fills.clone();
    Mock::given(path("/big"))
        .respond_with(move |_: &Request| {
            let body = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => vec![b'x'; BIG_BODY],
                _ => b"small".to_vec(),
            };
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .set_body_bytes(body)
        })
        .mount(&origin)
        .await;
    let store = FaultyStore::new();
    let mut setup = EdgeSetup::origin(&origin.uri())
        .rules(r#"{ "rules": [ { "path_prefix": "/", "max_object_bytes": 104857600 } ] }"#)
        .store(&store);
    setup.limits = Some(InstanceLimits {
        request_timeout: Duration::from_secs(30),
        max_memory_bytes: 32 << 20,
    });
    let edge = Edge::start(setup).await.expect("edge starts");

    let failed = reqwest::get(edge.url("/big")).await.unwrap();
    assert_eq!(failed.status(), 500);
    let said = failed.text().await.unwrap();
    assert!(said.contains("32 MiB memory limit"), "{said}");
    assert_eq!(fills.load(Ordering::SeqCst), 1);
    // The instance took the lease before fetching; by the time its client
    // has the 500, the host has deleted it.
    let keys = store.get_keys().await.unwrap();
    assert!(
        !keys.iter().any(|key| is_fill_lease_key(key)),
        "a lease outlived its instance: {keys:?}"
    );

    let started = Instant::now();
    let next = reqwest::get(edge.url("/big")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(next.status(), 200);
    let cache_status = next.headers()["cache-status"].to_str().unwrap().to_owned();
    assert_eq!(next.text().await.unwrap(), "small");
    // Not a waiter on a dead instance's lease: a miss of its own.
    assert!(!cache_status.contains("collapsed"), "{cache_status}");
    assert!(cache_status.contains("fwd=uri-miss"), "{cache_status}");
    assert_eq!(fills.load(Ordering::SeqCst), 2);
    assert!(waited < FILL_LEASE, "answered after {waited:?}");
}
