//! edge-host's per-request limits, against a component that misbehaves on
//! request (tests/misbehaving-component): a guest that loops or allocates
//! without end is stopped with a 500, and the host keeps serving. The 500
//! says which limit stopped it and gives an error id, never the trap: the
//! detail is for the log (see edge-host's CLI tests).

use std::time::{Duration, Instant};

use edge_host::InstanceLimits;
use edge_tests::{Edge, assert_short_with_error_id, single_component_app};

const TIME_LIMIT: Duration = Duration::from_millis(1_000);

async fn misbehaving_edge() -> Edge {
    let limits = InstanceLimits {
        request_timeout: TIME_LIMIT,
        max_memory_bytes: 32 << 20,
    };
    let (options, workdir) = single_component_app("misbehaving_component", "misbehaving", limits);
    Edge::serve_app(options, workdir)
        .await
        .expect("host starts")
}

#[tokio::test]
async fn a_component_that_loops_for_ever_is_stopped_and_the_host_keeps_serving() {
    let edge = misbehaving_edge().await;
    let started = Instant::now();
    let spinning = tokio::spawn(reqwest::get(edge.url("/spin")));

    // While one instance spins, others are still served: the spinning guest
    // yields at every epoch tick instead of holding a runtime thread.
    let ok = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(!spinning.is_finished(), "the spinning request ended early");

    let stopped = spinning.await.unwrap().unwrap();
    let waited = started.elapsed();
    assert_eq!(stopped.status(), 500);
    let body = stopped.text().await.unwrap();
    assert!(body.contains("1000 ms request time limit"), "{body}");
    assert_short_with_error_id(&body);
    assert!(waited >= TIME_LIMIT, "stopped after {waited:?}");
    assert!(waited < TIME_LIMIT * 10, "stopped only after {waited:?}");

    let after = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(after.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn a_component_that_allocates_without_end_is_stopped_at_its_memory_limit() {
    let edge = misbehaving_edge().await;
    let grown = reqwest::get(edge.url("/grow")).await.unwrap();
    assert_eq!(grown.status(), 500);
    let body = grown.text().await.unwrap();
    assert!(body.contains("memory"), "{body}");
    assert!(
        !body.contains("time limit"),
        "stopped by the clock, not the memory limit: {body}"
    );
    assert_short_with_error_id(&body);
    let after = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn a_failed_instance_shows_the_client_no_trap_backtrace_or_symbols() {
    let edge = misbehaving_edge().await;
    let mut ids = Vec::new();
    for path in ["/grow", "/spin"] {
        let response = reqwest::get(edge.url(path)).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        let body = response.text().await.unwrap();
        let lower = body.to_ascii_lowercase();
        for internal in [
            "wasm",
            "backtrace",
            "trap",
            "dlmalloc",
            "0x",
            "::",
            "__",
            "<unknown>",
            "misbehaving",
            "component",
            "rust",
        ] {
            assert!(!lower.contains(internal), "`{internal}` in: {body}");
        }
        assert_short_with_error_id(&body);
        ids.push(body);
    }
    assert_ne!(ids[0], ids[1], "every failure has its own id");
}
