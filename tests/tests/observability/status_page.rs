//! The live status page in a real headless Chromium (Debian `chromium`):
//! known traffic through the real component (hits, misses, private
//! answers, a purge, an idle pause between two bursts), then the page is
//! loaded from the metrics listener, left to fetch `/status.json` and
//! draw, and the rendered DOM is checked: the rules, the totals it prints,
//! the charts' time and value labels, the idle pause drawn as a gap, the
//! reasons, latency, cache size and the purge by its id. A screenshot
//! (1600×1000) is kept as `target/status-page/status-page.png`, the DOM
//! beside it. A second test serves the page with a made-up `/status.json`
//! for what a live test edge cannot produce: samples missing (a stopped
//! process), a series a hundred times smaller than another, broken rules.
//!
//! Chromium missing fails the test with the command that installs it;
//! `EDGE_SKIP_BROWSER_TESTS=1` skips it on a machine that cannot have one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use edge_host::observe::rules::{RulesStatus, ServingRules};
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

/// `/status.json` now.
async fn status(metrics: SocketAddr) -> serde_json::Value {
    let text = reqwest::get(format!("http://{metrics}/status.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The request totals of the sampler's samples (not the one taken for the
/// answer, which is last).
fn sampled_totals(status: &serde_json::Value) -> Vec<u64> {
    let samples = status["samples"].as_array().unwrap();
    samples[..samples.len().saturating_sub(1)]
        .iter()
        .map(|sample| {
            sample["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .sum()
        })
        .collect()
}

/// Polls `/status.json` until `until` holds of the sampled totals, for at
/// most ten seconds.
async fn wait_for_samples(metrics: SocketAddr, what: &str, until: impl Fn(&[u64]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status(metrics).await;
        if until(&sampled_totals(&status)) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {status}");
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

/// The opening tag of the element carrying `attribute` (`id="x"`).
fn tag_with<'a>(dom: &'a str, attribute: &str) -> &'a str {
    let at = dom
        .find(attribute)
        .unwrap_or_else(|| panic!("no element with {attribute} in:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    &dom[start..at + dom[at..].find('>').unwrap()]
}

/// The value of `name` in an opening `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> &'a str {
    let value = tag
        .split(&format!(" {name}=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {tag}"));
    &value[..value.find('"').unwrap()]
}

/// The markup of the table row carrying `attribute`, up to its end.
fn row_with<'a>(dom: &'a str, attribute: &str) -> &'a str {
    let tag = tag_with(dom, attribute);
    let start = dom.find(tag).unwrap();
    &dom[start..start + dom[start..].find("</tr>").unwrap()]
}

/// The texts of the `<text>` elements of class `class` in the SVG with `id`.
fn labels_in(dom: &str, id: &str, class: &str) -> Vec<String> {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap();
    let svg = &dom[start..start + dom[start..].find("</svg>").unwrap()];
    svg.split(&format!("class=\"{class}\""))
        .skip(1)
        .map(|rest| {
            let text = &rest[rest.find('>').unwrap() + 1..];
            text[..text.find('<').unwrap()].to_owned()
        })
        .collect()
}

const TOKEN: &str = "status-page-token";

#[tokio::test]
async fn the_status_page_shows_what_an_operator_needs_in_a_real_browser() {
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
    for (route, cache_control) in [("/a", "max-age=600"), ("/p", "private, max-age=600")] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cache-control", cache_control)
                    .set_body_string("a"),
            )
            .mount(&origin)
            .await;
    }
    let setup = EdgeSetup::origin(&origin.uri())
        .variable("purge_token", TOKEN)
        .runtime_config("[key_value_store.default]\ntype = \"memory\"\ncapacity_bytes = 1048576\n")
        .metrics();
    let edge = Edge::start(setup).await.expect("edge starts");
    let metrics = edge.metrics_addr.expect("a metrics listener");
    // The harness serves in-process, without `edge-host up`'s check of the
    // rules file: report what that check reports for good rules.
    let loaded_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    edge_host::observe::metrics::get()
        .expect("metrics are on")
        .report_rules(RulesStatus {
            component: "edge-cache".into(),
            source: "/rules/cache-rules.json".into(),
            good: true,
            hash: "0123456789abcdef".into(),
            loaded_at,
            message: None,
            serving: Some(ServingRules {
                hash: "0123456789abcdef".into(),
                loaded_at,
            }),
        });

    // First burst: one miss and three hits of /a, two private answers
    // (never stored: reason `private`), and a purge of /a.
    for _ in 0..4 {
        assert_eq!(edge.fetch("/a").await.unwrap().status, 200);
    }
    for _ in 0..2 {
        assert_eq!(edge.fetch("/p").await.unwrap().status, 200);
    }
    let purge = reqwest::Client::new()
        .post(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .body(r#"{"urls": ["/a"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 200);
    let receipt: serde_json::Value = serde_json::from_str(&purge.text().await.unwrap()).unwrap();
    let purge_id = receipt["id"]
        .as_str()
        .expect("the receipt has an id")
        .to_owned();
    // Idle: three samples in a row after the burst with nothing new, so
    // two sampled intervals served no request and the hit ratio has a gap.
    wait_for_samples(metrics, "idle for two intervals", |totals| {
        totals.len() >= 3 && totals[totals.len() - 3..].iter().all(|&n| n == 7)
    })
    .await;
    // Second burst: a miss (purged) and two hits.
    for _ in 0..3 {
        assert_eq!(edge.fetch("/a").await.unwrap().status, 200);
    }
    wait_for_samples(metrics, "sampled after the second burst", |totals| {
        totals.last() == Some(&10)
    })
    .await;

    // What the page will draw, as /status.json says it.
    let now = status(metrics).await;
    let store = &now["stores"][0];
    assert_eq!(store["store"], "default", "{now}");
    assert_eq!(store["capacity_bytes"], 1_048_576, "{now}");
    assert!(store["entries"].as_u64().unwrap() >= 1, "{now}");
    assert!(store["bytes"].as_u64().unwrap() > 0, "{now}");
    // The same sizes in /metrics, as Prometheus scrapes them.
    let exposition = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // (Entries and bytes by name only: the component may still be
    // tidying a fill lease between the two reads.)
    for series in [
        "edge_store_entries{store=\"default\"} ",
        "edge_store_bytes{store=\"default\"} ",
        "edge_store_capacity_bytes{store=\"default\"} 1048576\n",
        "edge_store_evictions_total{store=\"default\"} 0\n",
    ] {
        assert!(exposition.contains(series), "{series} in:\n{exposition}");
    }
    assert_eq!(now["purges"][0]["id"], purge_id.as_str(), "{now}");
    assert_eq!(now["purges"][0]["urls"], 1, "{now}");
    let private = now["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "private")
        .expect("private is a known reason");
    assert_eq!(private["total"], 2, "{now}");
    assert_eq!(now["latency"]["outcomes"][0]["outcome"], "hit");
    assert_eq!(now["latency"]["outcomes"][0]["count"], 5, "{now}");
    assert!(now["latency"]["outcomes"][0]["p99"].as_f64().unwrap() > 0.0);

    let url = format!("http://{metrics}/");
    let window = "--window-size=1600,1000".to_owned();
    let chromium_run = {
        let (chromium, url, window) = (chromium.clone(), url.clone(), window.clone());
        tokio::task::spawn_blocking(move || {
            run_chromium(
                &chromium,
                &url,
                &[
                    "--dump-dom".into(),
                    window,
                    "--virtual-time-budget=5000".into(),
                ],
            )
        })
    };
    let output = chromium_run.await.unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    // Kept beside the screenshot, to read when an assertion below fails.
    let shots = workspace_root().join("target/status-page");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("status-page.dom.html"), &dom).unwrap();
    assert!(
        dom.contains("data-state=\"rendered\""),
        "the page never rendered its data:\n{dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Rules first, good; the version and uptime.
    assert_eq!(text_of(&dom, "rules-state"), "good", "{dom}");
    assert!(
        dom.find("id=\"rules\"").unwrap() < dom.find("id=\"hit-ratio\"").unwrap(),
        "the rules come before the traffic"
    );
    assert!(
        text_of(&dom, "version").starts_with(env!("CARGO_PKG_VERSION").split('.').next().unwrap())
    );
    assert!(
        text_of(&dom, "uptime").ends_with('s'),
        "{}",
        text_of(&dom, "uptime")
    );
    // Totals: 10 requests, 5 of the 9 served from the cache (the purge is
    // not served), 2 origin fetches of /a and 2 of /p.
    assert_eq!(text_of(&dom, "requests-total"), "10", "{dom}");
    assert_eq!(text_of(&dom, "hit-ratio"), "55.6%", "{dom}");
    assert_eq!(text_of(&dom, "origin-total"), "4 (0)", "{dom}");
    // The hit-ratio chart: time labels on the x axis, a value scale on the
    // y axis, and the idle pause drawn as a gap between two runs.
    let times = labels_in(&dom, "chart-hit-ratio", "x-label");
    assert!(times.len() >= 2, "time labels: {times:?}");
    for time in &times {
        let parts: Vec<&str> = time.split(':').collect();
        assert!(
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
            "{time}"
        );
    }
    let values = labels_in(&dom, "chart-hit-ratio", "y-label");
    assert!(
        values.contains(&"0%".to_owned()) && values.contains(&"100%".to_owned()),
        "{values:?}"
    );
    let ratio = tag_with(&dom, "id=\"line-hit-ratio\"");
    assert_eq!(
        attribute(ratio, "data-segments"),
        "2",
        "the pause is a gap: {ratio}"
    );
    assert_eq!(attribute(ratio, "d").matches('M').count(), 2, "{ratio}");
    // Every outcome has its own chart and scale, the small ones too.
    for outcome in ["hit", "miss", "stale", "error"] {
        assert!(
            dom.contains(&format!("id=\"line-{outcome}\"")),
            "line-{outcome}"
        );
        assert!(!labels_in(&dom, &format!("chart-{outcome}"), "y-label").is_empty());
    }
    assert!(dom.contains("id=\"line-origin\""));
    assert!(dom.contains("id=\"line-breaker\""));
    // Reasons, latency, cache size, purges.
    let reason = row_with(&dom, "data-reason=\"private\"");
    assert!(reason.contains(">2<"), "{reason}");
    let latency = row_with(&dom, "data-outcome=\"hit\"");
    assert!(
        latency.contains("µs") || latency.contains("ms"),
        "{latency}"
    );
    assert!(text_of(&dom, "latency-hit").contains(" / "), "{dom}");
    let store = row_with(&dom, "data-store=\"default\"");
    assert!(store.contains("of 1.0 MiB"), "{store}");
    let purge = row_with(&dom, &format!("data-purge=\"{purge_id}\""));
    assert!(purge.contains("1 URL") && purge.contains("hard"), "{purge}");

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
                    window,
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

/// A `/status.json` of `n` samples a second apart at 100 hits and one
/// error a second, with the samples from `missing` on taken ten seconds
/// late (the process was stopped), and broken rules.
fn synthetic_status(n: u64, missing: u64) -> serde_json::Value {
    let start = 1_765_000_000_000u64;
    let samples: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let t = start + i * 1000 + if i >= missing { 10_000 } else { 0 };
            serde_json::json!({
                "t": t,
                "requests": [100 * i, 0, 0, 0, 0, 0, i, 0],
                "origin_fetches": i,
                "origin_errors": i,
                "bytes": 0,
                "breaker_open": 0,
            })
        })
        .collect();
    serde_json::json!({
        "interval_ms": 1000,
        "outcomes": ["hit", "stale", "collapsed", "revalidated", "miss", "bypass", "error", "none"],
        "from_cache": ["hit", "stale", "collapsed", "revalidated"],
        "samples": samples,
        "breaks": [missing],
        "rules": [{
            "component": "edge-cache", "source": "/rules/cache-rules.json", "good": false,
            "hash": "fedcba9876543210", "loaded_at": start / 1000, "message": "rule 2: ttl_seconds is not a number",
            "serving": { "hash": "0123456789abcdef", "loaded_at": start / 1000 - 60 },
        }],
        "reloads": [{ "part": "rules", "applied": false, "message": "not JSON", "at": start / 1000 }],
        "reasons": [{ "name": "no-freshness", "total": 3 }],
        "origin": [{ "name": "2xx", "total": 0 }, { "name": "error", "total": n - 1 }],
        "stores": [{ "store": "default", "entries": null, "bytes": null, "capacity_bytes": null, "evictions": null }],
        "latency": { "window_ms": 60000, "outcomes": [
            { "outcome": "hit", "count": 0, "p50": null, "p99": null },
            { "outcome": "miss", "count": 0, "p50": null, "p99": null },
        ] },
        "purges": [],
        "version": "9.9.9",
        "core": "test",
        "started_at": null,
    })
}

/// The page on data it cannot get from a live edge in a test: samples
/// missing (a stopped process) are drawn as a gap in every chart, a series
/// a hundred times smaller than the hits is drawn on its own scale, broken
/// rules and a refused reload are in red, and a store that tells nothing
/// of its size says so.
#[tokio::test]
async fn missing_samples_are_a_gap_and_small_series_keep_their_own_scale() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("EDGE_SKIP_BROWSER_TESTS").is_some() {
            eprintln!("skipped: no chromium, and EDGE_SKIP_BROWSER_TESTS is set");
            return;
        }
        panic!("chromium not found: install it with `apt-get install chromium`");
    };
    let page =
        std::fs::read_to_string(workspace_root().join("edge-host/src/observe/status_page.html"))
            .unwrap();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(page, "text/html; charset=utf-8"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/status.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(synthetic_status(30, 15)))
        .mount(&server)
        .await;
    let url = format!("{}/", server.uri());
    let output = tokio::task::spawn_blocking(move || {
        run_chromium(
            &chromium,
            &url,
            &[
                "--dump-dom".into(),
                "--window-size=1600,1000".into(),
                "--virtual-time-budget=5000".into(),
            ],
        )
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dom.contains("data-state=\"rendered\""), "{dom}");
    for line in [
        "line-hit-ratio",
        "line-hit",
        "line-error",
        "line-origin-errors",
    ] {
        let tag = tag_with(&dom, &format!("id=\"{line}\""));
        assert_eq!(attribute(tag, "data-segments"), "2", "{line}: {tag}");
    }
    // The errors' scale is their own: one a second reads halfway up a 0
    // to 2 scale, not at the bottom of the hits' 0 to 200.
    let errors = labels_in(&dom, "chart-error", "y-label");
    assert_eq!(errors.last().map(String::as_str), Some("2"), "{errors:?}");
    let hits = labels_in(&dom, "chart-hit", "y-label");
    assert!(
        hits.last().unwrap().parse::<f64>().unwrap() >= 100.0,
        "{hits:?}"
    );
    assert_eq!(text_of(&dom, "rules-state"), "broken");
    assert!(tag_with(&dom, "id=\"rules\"").contains("broken"));
    assert!(tag_with(&dom, "id=\"reloads\"").contains("failed"));
    assert!(text_of(&dom, "rules-detail").contains("serving the last good rules 0123456789abcdef"));
    assert!(row_with(&dom, "data-store=\"default\"").contains("not told"));
    assert!(text_of(&dom, "window").contains("1 gap(s)"), "{dom}");
}
