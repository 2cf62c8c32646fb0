//! edge-host's per-request limits, against a component that misbehaves on
//! request (tests/misbehaving-component): a guest that loops or allocates
//! without end is stopped with a 500, and the host keeps serving. The 500
//! says which limit stopped it and gives an error id, never the trap: the
//! detail is for the log (see edge-host's CLI tests). The memory limit is
//! the one `--max-memory-mb` gives, in both flavours.

use std::time::{Duration, Instant};

use edge_host::{App, AppOptions, Flavour, InstanceLimits};
use edge_tests::{Edge, assert_short_with_error_id, default_flavour, reuse, single_component_app};

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

/// The misbehaving component of the flavour under test.
fn misbehaving_of_flavour() -> &'static str {
    match default_flavour() {
        Flavour::P2 => "misbehaving_component",
        Flavour::P3 => "misbehaving_component_p3",
    }
}

/// `--max-memory-mb 512`: an instance really grows to 512 MiB, past the
/// pooling allocator's old fixed 256 MiB, and is stopped there, with the
/// 512 named.
#[tokio::test]
async fn an_instance_grows_to_the_memory_limit_it_is_given_and_no_further() {
    let limits = InstanceLimits {
        request_timeout: Duration::from_secs(20),
        max_memory_bytes: 512 << 20,
    };
    let (options, workdir) = single_component_app(misbehaving_of_flavour(), "grows", limits);
    // A fresh instance for each request: each one starts from its own
    // small heap.
    let options = AppOptions {
        reuse: Some(reuse(1, 1)),
        ..options
    };
    let edge = Edge::serve_app(options, workdir)
        .await
        .expect("host starts");

    let kept = reqwest::get(edge.url("/keep/400")).await.unwrap();
    let status = kept.status();
    let body = kept.text().await.unwrap();
    assert_eq!(status, 200, "400 MiB under a 512 MiB limit: {body}");

    let refused = reqwest::get(edge.url("/keep/600")).await.unwrap();
    assert_eq!(refused.status(), 500);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("stopped at the 512 MiB memory limit"),
        "{body}"
    );
    assert_short_with_error_id(&body);

    let after = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(after.status(), 200);
}

/// A memory limit no instance could have is refused when the application
/// loads, naming the flag and the largest value it takes.
#[test]
fn a_memory_limit_past_what_an_instance_can_address_is_refused_at_start_up() {
    let limits = InstanceLimits {
        max_memory_bytes: 8192 << 20,
        ..InstanceLimits::default()
    };
    let (options, _workdir) = single_component_app(misbehaving_of_flavour(), "too-big", limits);
    let error = App::load(&options).err().expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("--max-memory-mb 8192"), "{message}");
    assert!(
        message.contains("the largest accepted value is 4096"),
        "{message}"
    );
}
