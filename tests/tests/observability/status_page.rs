//! The live status page in a real headless Chromium (Debian `chromium`):
//! known traffic through the real component, then the page is loaded from
//! the metrics listener, left to fetch `/status.json` and draw, and the
//! rendered DOM is checked: the hit ratio and request count it prints and
//! the chart lines it drew. A screenshot is kept under
//! `target/status-page/`.
//!
//! Chromium missing fails the test with the command that installs it;
//! `EDGE_SKIP_BROWSER_TESTS=1` skips it on a machine that cannot have one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use edge_tests::{Edge, EdgeSetup, workspace_root};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long one Chromium run may take before it is killed.
const CHROMIUM_PATIENCE: Duration = Duration::from_secs(90);

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        let found = Command::new("which").arg(name).output().ok()?;
        found
            .status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&found.stdout).trim()))
    })
}

/// Runs headless Chromium on `url` with `extra` flags, in a fresh profile.
fn run_chromium(chromium: &Path, url: &str, extra: &[String]) -> Output {
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
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
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

/// Waits until the listener's history holds a sample taken after all
/// `requests`, so the page has an interval to draw.
async fn history_covers(metrics: SocketAddr, requests: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value = serde_json::from_str(
            &reqwest::get(format!("http://{metrics}/status.json"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let samples = status["samples"].as_array().unwrap();
        // The last sample is the one taken for this answer; the one before
        // it is the sampler's.
        let sampled = samples.len() >= 2
            && samples[samples.len() - 2]["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .sum::<u64>()
                == requests;
        if sampled {
            return;
        }
        assert!(Instant::now() < deadline, "never sampled: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text content of the element with `id` in `dom` (no nested tags).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

/// The `points` of the polyline with `id`.
fn points_of<'a>(dom: &'a str, id: &str) -> Vec<&'a str> {
    let tag_start = dom[..dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"))]
        .rfind('<')
        .unwrap();
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    assert!(tag.starts_with("<polyline"), "{tag}");
    let points = tag.split("points=\"").nth(1).unwrap_or("");
    points[..points.find('"').unwrap_or(0)]
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn the_status_page_draws_the_hit_ratio_and_rates_in_a_real_browser() {
    if edge_tests::ran_in_own_process() {
        return;
    }
    let Some(chromium) = chromium() else {
        if std::env::var_os("EDGE_SKIP_BROWSER_TESTS").is_some() {
            eprintln!("skipped: no chromium, and EDGE_SKIP_BROWSER_TESTS is set");
            return;
        }
        panic!(
            "chromium not found: install it with `apt-get install chromium` \
             (.ci/needs/chromium.sh does), or set EDGE_SKIP_BROWSER_TESTS=1 to skip"
        );
    };
    let origin = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/a"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .set_body_string("a"),
        )
        .mount(&origin)
        .await;
    let edge = Edge::start(EdgeSetup::origin(&origin.uri()).metrics())
        .await
        .expect("edge starts");
    let metrics = edge.metrics_addr.expect("a metrics listener");

    // One miss, then three hits: 75 % from the cache.
    for _ in 0..4 {
        assert_eq!(edge.fetch("/a").await.unwrap().status, 200);
    }
    history_covers(metrics, 4).await;

    let url = format!("http://{metrics}/");
    let chromium_run = {
        let (chromium, url) = (chromium.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            run_chromium(
                &chromium,
                &url,
                &["--dump-dom".into(), "--virtual-time-budget=5000".into()],
            )
        })
    };
    let output = chromium_run.await.unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("data-state=\"rendered\""),
        "the page never rendered its data:\n{dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(text_of(&dom, "hit-ratio"), "75.0%", "{dom}");
    assert_eq!(text_of(&dom, "requests-total"), "4", "{dom}");
    assert_eq!(text_of(&dom, "origin-total"), "1 (0)", "{dom}");
    // The hit-ratio chart has a point for every sampled interval, the
    // traffic's among them; each outcome has its line.
    let ratio = points_of(&dom, "line-hit-ratio");
    assert!(!ratio.is_empty(), "no hit-ratio points:\n{dom}");
    for point in &ratio {
        let (x, y) = point.split_once(',').unwrap();
        let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
        assert!(
            (0.0..=600.0).contains(&x) && (0.0..=160.0).contains(&y),
            "{point}"
        );
    }
    for outcome in ["hit", "miss", "stale", "error"] {
        assert!(
            !points_of(&dom, &format!("line-{outcome}")).is_empty(),
            "line-{outcome}"
        );
    }
    assert!(!points_of(&dom, "line-origin").is_empty());

    let shots = workspace_root().join("target/status-page");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot_run = {
        let shot = shot.clone();
        tokio::task::spawn_blocking(move || {
            run_chromium(
                &chromium,
                &url,
                &[
                    format!("--screenshot={}", shot.display()),
                    "--window-size=1100,1300".into(),
                    "--virtual-time-budget=5000".into(),
                ],
            )
        })
    };
    let output = screenshot_run.await.unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}):\n{}",
            shot.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
    edge.stop().await;
}
