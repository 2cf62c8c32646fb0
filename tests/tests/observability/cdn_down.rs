//! When the CDN itself is down (issue 26): the edge's health check through
//! the real component, and the origin's pages in a real headless Chromium
//! (Debian `chromium`), their assets loaded from the edge while it runs
//! and from the origin when it is stopped or hangs.
//!
//! The real origin binary (`target/debug/origin`, a SQLite database in a
//! temporary directory) logs every request at debug level to a file; a
//! page's `app.js` records on `<html>` where each asset was loaded from
//! (`data-loaded-css|js|img`, empty when one did not load). Chromium runs
//! with `--dump-dom` and a virtual-time budget (or, for an edge that hangs,
//! whose fetches never end, its own `--timeout` past the page's 3 s
//! fallback) and is waited on to exit: nothing sleeps to synchronise.
//!
//! Chromium missing fails the browser tests with the command that installs
//! it; `EDGE_SKIP_BROWSER_TESTS=1` skips them on a machine that cannot have
//! one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edge_tests::{Edge, EdgeSetup, closed_port, workspace_root};
use wiremock::MockServer;

/// How long one Chromium run may take before it is killed.
const CHROMIUM_PATIENCE: Duration = Duration::from_secs(90);
/// The page's assets, as `app.js` names them on `<html>`, and their paths.
const ASSETS: [(&str, &str); 3] = [
    ("css", "/static/css/app."),
    ("js", "/static/js/app."),
    ("img", "/static/img/logo."),
];

/// Chromium, or `None` where the test is to be skipped.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        let found = Command::new("which").arg(name).output().ok()?;
        found
            .status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
    });
    if found.is_none() {
        assert!(
            std::env::var_os("EDGE_SKIP_BROWSER_TESTS").is_some(),
            "chromium not found: install it with `apt-get install chromium` \
             (.ci/needs/chromium.sh does), or set EDGE_SKIP_BROWSER_TESTS=1 to skip"
        );
        eprintln!("skipped: no chromium, and EDGE_SKIP_BROWSER_TESTS is set");
    }
    found
}

/// Chromium's wait for a page: on virtual time, which runs the page's
/// timers at once but stops while a fetch is pending.
const VIRTUAL_TIME: &str = "--virtual-time-budget=10000";
/// Chromium's wait for a page with a fetch that never ends: real time,
/// past the page's 3 s fallback (`origin::asset_fallback`).
const REAL_TIME: &str = "--timeout=8000";

/// The DOM of `url` once headless Chromium has loaded it, waiting as
/// `wait` says; waits for Chromium to exit.
async fn rendered_dom(chromium: PathBuf, url: String, wait: &'static str) -> String {
    let output = tokio::task::spawn_blocking(move || run_chromium(&chromium, &url, wait))
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("data-loaded-js="),
        "app.js never ran:\n{dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

fn run_chromium(chromium: &Path, url: &str, wait: &str) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--dump-dom",
            wait,
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + CHROMIUM_PATIENCE;
    loop {
        if child.try_wait().expect("chromium runs").is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "chromium did not finish within {CHROMIUM_PATIENCE:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of `<html>`'s attribute `name` in `dom`.
fn html_attribute<'a>(dom: &'a str, name: &str) -> &'a str {
    let html = &dom[dom.find("<html").expect("an <html> tag")..];
    let html = &html[..html.find('>').unwrap()];
    let at = html
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} on {html}"));
    let value = &html[at + name.len() + 3..];
    &value[..value.find('"').unwrap()]
}

/// Asserts every asset was loaded, each from `base`.
fn every_asset_loaded_from(dom: &str, base: &str) {
    for (kind, path) in ASSETS {
        let loaded = html_attribute(dom, &format!("data-loaded-{kind}"));
        assert!(
            loaded.starts_with(&format!("{base}{path}")),
            "{kind} loaded from `{loaded}`, not {base}:\n{dom}"
        );
    }
}

/// The real origin binary on a free port, its purges and asset links
/// aimed at `edge`, logging requests to `log`.
struct OriginProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl OriginProcess {
    async fn start(dir: &Path, edge: &str) -> OriginProcess {
        let root = workspace_root();
        let binary = root.join("target/debug/origin");
        assert!(
            binary.exists(),
            "{} is missing: build it with `cargo build -p origin` (make test does this)",
            binary.display()
        );
        let port = closed_port();
        let log = dir.join("origin.log");
        let child = Command::new(binary)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(dir.join("origin.db"))
            .arg("--static-dir")
            .arg(root.join("fixtures/static"))
            .arg("--seed")
            .arg(root.join("fixtures/seed/products.json"))
            .arg("--edge-url")
            .arg(edge)
            .env("RUST_LOG", "origin=debug")
            .env_remove("ORIGIN_ASSET_URL")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("origin starts");
        let origin = OriginProcess { child, port, log };
        origin.wait_until_healthy().await;
        origin
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its readiness signal: `/health` answers.
    async fn wait_until_healthy(&self) {
        for _ in 0..500 {
            if let Ok(response) = reqwest::get(self.url("/health")).await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the origin never became healthy");
    }

    /// The `GET /static/…` requests it answered `200`, by path.
    fn asset_requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|line| line.contains("status=200"))
            .filter_map(|line| line.split("GET ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter(|path| path.starts_with("/static/"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_edge_answers_its_health_check_without_a_token_or_the_origin() {
    // An origin that must not be asked.
    let origin = MockServer::start().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).variable("purge_token", "t"))
        .await
        .expect("edge starts");
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let answer = client.get(edge.url("/_edge/health")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["cache-control"], "no-store");
        assert_eq!(answer.headers()["content-type"], "application/json");
        assert!(answer.headers().get("cache-status").is_none());
        assert_eq!(
            answer.text().await.unwrap(),
            "{\"status\":\"ok\",\"store\":\"ok\"}\n"
        );
    }
    let head = client.head(edge.url("/_edge/health")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "29");
    let post = client
        .post(edge.url("/_edge/health"))
        .bearer_auth("t")
        .body("{\"all\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert!(
        origin.received_requests().await.unwrap().is_empty(),
        "the health check asked the origin"
    );
    edge.stop().await;
    // Without a purge token: the health check still answers, and the purge
    // API stays off (its path goes to the origin like any other).
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()))
        .await
        .expect("edge starts");
    let answer = client.get(edge.url("/_edge/health")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let purge = client
        .post(edge.url("/_edge/purge"))
        .body("{\"all\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 404, "the mock origin's answer");
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn with_the_edge_stopped_an_origin_page_loads_every_asset_from_the_origin() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens at the edge's address: a stopped edge.
    let edge = format!("http://127.0.0.1:{}", closed_port());
    let origin = OriginProcess::start(dir.path(), &edge).await;
    let page = reqwest::get(origin.url("/products/1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("href=\"{edge}/static/css/app.")),
        "{page}"
    );

    let dom = rendered_dom(chromium, origin.url("/products/1"), VIRTUAL_TIME).await;
    every_asset_loaded_from(&dom, &origin.url(""));
    let served = origin.asset_requests();
    for (kind, path) in ASSETS {
        assert_eq!(
            served.iter().filter(|p| p.starts_with(path)).count(),
            1,
            "{kind}: the origin served {served:?}"
        );
    }
}

#[tokio::test]
async fn with_the_edge_hanging_an_origin_page_loads_every_asset_from_the_origin_after_the_timeout()
{
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    // An edge that accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = format!("http://{}", hanging.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = hanging.accept().await {
            connections.push(connection);
        }
    });
    let origin = OriginProcess::start(dir.path(), &edge).await;
    let dom = rendered_dom(chromium, origin.url("/"), REAL_TIME).await;
    every_asset_loaded_from(&dom, &origin.url(""));
    held.abort();
}

#[tokio::test]
async fn with_the_edge_running_an_origin_page_loads_its_assets_through_the_edge() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let edge_url = format!("http://127.0.0.1:{port}");
    let origin = OriginProcess::start(dir.path(), &edge_url).await;
    let setup = EdgeSetup::origin(&origin.url(""))
        .listen(([127, 0, 0, 1], port).into())
        .variable("purge_token", "t");
    let edge = Edge::start(setup).await.expect("edge starts");

    let dom = rendered_dom(chromium.clone(), origin.url("/products/1"), VIRTUAL_TIME).await;
    every_asset_loaded_from(&dom, &edge_url);
    // The same page through the edge: same host, the same edge URLs.
    let dom = rendered_dom(chromium, edge.url("/products/2"), VIRTUAL_TIME).await;
    every_asset_loaded_from(&dom, &edge_url);
    edge.stop().await;
}
