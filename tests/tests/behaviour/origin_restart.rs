//! The real origin process killed and restarted mid-test: while it is
//! down, stored pages are served stale and others get a clear error; once
//! it is back, the edge goes to it again.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edge_tests::{Edge, EdgeSetup, closed_port, workspace_root};

/// Runs `target/debug/origin` (built by `make test`) on `port` with its
/// database in `dir`.
fn spawn_origin(port: u16, dir: &Path) -> Child {
    let root = workspace_root();
    let binary = root.join("target/debug/origin");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p origin` (make test does this)",
        binary.display()
    );
    Command::new(binary)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(dir.join("origin.db"))
        .arg("--static-dir")
        .arg(root.join("fixtures/static"))
        .arg("--seed")
        .arg(root.join("fixtures/seed/products.json"))
        .arg("--edge-url")
        .arg(format!("http://127.0.0.1:{}", closed_port()))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("origin starts")
}

/// Waits until the origin answers `/health`: its readiness signal.
async fn wait_until_healthy(port: u16) {
    let url = format!("http://127.0.0.1:{port}/health");
    for _ in 0..500 {
        if let Ok(response) = reqwest::get(&url).await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("origin on port {port} never became healthy");
}

#[tokio::test]
async fn stale_while_the_origin_process_is_dead_and_fresh_once_it_is_back() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let mut origin = spawn_origin(port, dir.path());
    wait_until_healthy(port).await;

    // Every response lives 1 s at the edge; grace keeps it servable after.
    let setup = EdgeSetup::origin(&format!("http://127.0.0.1:{port}"))
        .rules(r#"{ "rules": [ { "name": "all", "ttl_seconds": 1 } ] }"#)
        .variable("grace_seconds", "3600");
    let edge = Edge::start(setup).await.unwrap();
    let pages = ["/products/1", "/api/products/2", "/static/1k.txt"];
    let mut stored = Vec::new();
    for page in pages {
        let fetched = edge.fetch(page).await.unwrap();
        assert_eq!(fetched.status, 200, "{page}");
        stored.push(fetched.body);
    }

    origin.kill().unwrap();
    origin.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for (page, body) in pages.iter().zip(&stored) {
        let fetched = edge.fetch(page).await.unwrap();
        let (status, cache_status, served) = (fetched.status, fetched.cache_status, fetched.body);
        assert_eq!(status, 200, "{page}: {cache_status}");
        assert_eq!(&served, body, "{page}");
        // fwd=stale (origin failed; grace or stale-if-error) or a
        // stale-while-revalidate hit, per the origin's own headers.
        assert!(cache_status.contains("stale"), "{page}: {cache_status}");
    }
    let unstored = edge.fetch("/products/3").await.unwrap();
    assert_eq!(unstored.status, 502, "{}", unstored.text());
    assert!(unstored.text().starts_with("origin unreachable"));

    // Back on the same port with the same database.
    let mut origin = spawn_origin(port, dir.path());
    wait_until_healthy(port).await;
    for page in pages.iter().chain(&["/products/3"]) {
        let fetched = edge.fetch(page).await.unwrap();
        let (status, cache_status) = (fetched.status, fetched.cache_status);
        assert_eq!(status, 200, "{page}: {cache_status}");
        assert!(
            !cache_status.contains("detail=grace") && !cache_status.contains("circuit-open"),
            "{page} still served stale: {cache_status}"
        );
    }
    origin.kill().unwrap();
    origin.wait().unwrap();
}
