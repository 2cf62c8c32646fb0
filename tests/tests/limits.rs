//! edge-host's per-request limits, against a component that misbehaves on
//! request (tests/misbehaving-component): a guest that loops or allocates
//! without end is stopped with a 500, and the host keeps serving.

use std::time::{Duration, Instant};

use edge_host::{AppOptions, InstanceLimits};
use edge_tests::{Edge, built_component, workspace_root};

const TIME_LIMIT: Duration = Duration::from_millis(1_000);

async fn misbehaving_edge() -> Edge {
    let wasm = built_component("misbehaving_component");
    let workdir = tempfile::tempdir().unwrap();
    let manifest = workdir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2
[application]
name = "misbehaving"
[[trigger.http]]
route = "/..."
component = "misbehaving"
[component.misbehaving]
source = {:?}
"#,
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let options = AppOptions {
        manifest,
        cache_dir: Some(workspace_root().join("target/edge-host-cache")),
        max_instances: Some(16),
        limits: Some(InstanceLimits {
            request_timeout: TIME_LIMIT,
            max_memory_bytes: 32 << 20,
        }),
        ..Default::default()
    };
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
    let after = reqwest::get(edge.url("/ok")).await.unwrap();
    assert_eq!(after.status(), 200);
}
