//! Metrics and the access log through the real component: known traffic
//! (misses, hits, a bypass, hard and soft purges, a revalidation, an
//! origin 5xx, an origin timeout, a failing store, concurrent misses, a
//! stale-while-revalidate answer) and the exact counters
//! scraped from `/metrics` afterwards; `promtool check metrics` on the
//! exposition; the Grafana dashboard names only metrics that exist; and
//! one JSON access log line per request.
//!
//! One test, run in a process of its own: metrics are the process's, so
//! one edge per process.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_host::access_log::LogFormat;
use edge_tests::{Edge, EdgeSetup, FaultyStore, parse_exposition, workspace_root};
use reqwest::Client;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "metrics-test-token";

async fn scrape(addr: SocketAddr) -> String {
    let response = Client::new()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The sum of every series of `name` whose labels include all of `labels`.
fn sum(series: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    series
        .iter()
        .filter(|(key, _)| {
            let (metric, rest) = key.split_once('{').unwrap_or((key, ""));
            metric == name && labels.iter().all(|label| rest.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Scrapes until `done` holds (a response is counted when its body has
/// been sent, just after the client has it), or fails after 10 s.
async fn settle(addr: SocketAddr, done: impl Fn(&BTreeMap<String, f64>) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(addr).await;
        if done(&parse_exposition(&text)) {
            return text;
        }
        assert!(Instant::now() < deadline, "metrics never settled:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mount(origin: &MockServer) {
    // The conditional answer first: wiremock takes the first match.
    Mock::given(method("GET"))
        .and(path("/b"))
        .and(header("if-none-match", "\"b1\""))
        .respond_with(
            ResponseTemplate::new(304)
                .insert_header("cache-control", "max-age=60")
                .insert_header("etag", "\"b1\""),
        )
        .mount(origin)
        .await;
    for (p, body, etag) in [
        ("/a", "aaaa", "\"a1\""),
        ("/b", "bb", "\"b1\""),
        ("/c", "c", "\"c1\""),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("cache-control", "max-age=60")
                    .insert_header("etag", etag)
                    .insert_header("surrogate-key", "t1")
                    .set_body_string(body),
            )
            .mount(origin)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/fail"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("cache-control", "no-store")
                .set_body_string("down"),
        )
        .mount(origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/burst"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string("burst")
                .set_delay(Duration::from_millis(150)),
        )
        .mount(origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/swr"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=0, stale-while-revalidate=60")
                .set_body_string("s"),
        )
        .mount(origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(origin)
        .await;
}

async fn get(edge: &Edge, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let fetched = edge.fetch_with(path, headers).await.expect("request");
    (fetched.status, fetched.cache_status)
}

#[tokio::test]
async fn known_traffic_gives_exact_counters_promtool_accepts_them_and_each_request_is_logged() {
    if edge_tests::ran_in_own_process() {
        return;
    }
    let origin = MockServer::start().await;
    mount(&origin).await;
    let store = FaultyStore::new();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("access.log");
    let setup = EdgeSetup::origin(&origin.uri())
        .variable("purge_token", TOKEN)
        .variable("origin_timeout_ms", "300")
        .store(&store)
        .metrics()
        .access_log(&log_path, LogFormat::Json);
    let edge = Edge::start(setup).await.expect("edge starts");
    let metrics = edge.metrics_addr.expect("a metrics listener");

    // Before any traffic every request series is there, at zero.
    let before = parse_exposition(&scrape(metrics).await);
    assert_eq!(
        before["edge_requests_total{outcome=\"hit\",status=\"2xx\"}"],
        0.0
    );
    assert_eq!(sum(&before, "edge_requests_total", &[]), 0.0);

    let client = Client::new();
    let mut expected = Vec::new();
    let mut step = |what: &'static str, (status, cache_status): (u16, String)| {
        expected.push((what, status, cache_status));
    };
    step("miss", get(&edge, "/a", &[]).await);
    step("hit", get(&edge, "/a", &[]).await);
    step("hit", get(&edge, "/a", &[]).await);
    step("miss", get(&edge, "/b", &[]).await);
    step("hit", get(&edge, "/b", &[]).await);
    step(
        "bypass",
        get(&edge, "/b?session=secret", &[("cache-control", "no-store")]).await,
    );
    let purge = client
        .post(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .body(r#"{"urls": ["/a"], "tags": ["t-none"]}"#)
        .send()
        .await
        .unwrap();
    step("none", (purge.status().as_u16(), String::new()));
    assert!(purge.text().await.unwrap().contains("\"purged\""));
    step("miss", get(&edge, "/a", &[]).await);
    let soft = client
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            edge.url("/b"),
        )
        .bearer_auth(TOKEN)
        .header("soft-purge", "1")
        .send()
        .await
        .unwrap();
    step("none", (soft.status().as_u16(), String::new()));
    step("revalidated", get(&edge, "/b", &[]).await);
    step("miss", get(&edge, "/fail", &[]).await);
    step("error", get(&edge, "/slow", &[]).await);
    store.set_failing(true);
    step("bypass", get(&edge, "/c", &[]).await);
    store.set_failing(false);

    // What the component said, so a failure below shows the traffic.
    let said: Vec<_> = expected
        .iter()
        .map(|(what, status, cs)| format!("{what}: {status} {cs}"))
        .collect();
    let said = said.join("\n");
    for (what, status, cache_status) in &expected {
        match *what {
            "hit" => assert!(cache_status.contains("; hit"), "{said}"),
            "revalidated" => assert!(cache_status.contains("fwd-status=304"), "{said}"),
            "error" => assert_eq!(*status, 504, "{said}"),
            "none" => assert_eq!(*status, 200, "{said}"),
            _ => {}
        }
    }
    assert!(expected[12].2.contains("detail=store-error"), "{said}");

    let total = expected.len() as f64;
    let text = settle(metrics, |series| {
        sum(series, "edge_requests_total", &[]) == total
    })
    .await;
    let series = parse_exposition(&text);
    let requests = |outcome: &str, status: &str| {
        series[&format!("edge_requests_total{{outcome=\"{outcome}\",status=\"{status}\"}}")]
    };
    assert_eq!(requests("hit", "2xx"), 3.0, "{said}\n{text}");
    assert_eq!(requests("miss", "2xx"), 3.0, "{said}\n{text}");
    assert_eq!(requests("miss", "5xx"), 1.0, "{said}\n{text}");
    assert_eq!(requests("bypass", "2xx"), 2.0, "{said}\n{text}");
    assert_eq!(requests("revalidated", "2xx"), 1.0, "{said}\n{text}");
    assert_eq!(requests("error", "5xx"), 1.0, "{said}\n{text}");
    assert_eq!(requests("none", "2xx"), 2.0, "{said}\n{text}");
    assert_eq!(
        sum(&series, "edge_requests_total", &["outcome=\"stale\""]),
        0.0
    );
    assert_eq!(
        sum(&series, "edge_requests_total", &["outcome=\"collapsed\""]),
        0.0
    );
    assert_eq!(sum(&series, "edge_requests_total", &[]), 13.0);
    // Why: the client's no-store, the invalidated /a (its purge), the
    // failed store; every other request had no detail.
    let reasons: Vec<String> = expected
        .iter()
        .filter_map(|(_, _, cs)| cs.split("detail=").nth(1))
        .map(|d| {
            d.split(';')
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        })
        .collect();
    assert!(!reasons.is_empty(), "{said}");
    for reason in &reasons {
        let key = format!("edge_requests_by_reason_total{{reason=\"{reason}\"}}");
        let counted = reasons.iter().filter(|r| *r == reason).count() as f64;
        assert_eq!(series.get(&key), Some(&counted), "{key}\n{said}\n{text}");
    }
    assert_eq!(
        sum(&series, "edge_requests_by_reason_total", &[]),
        reasons.len() as f64,
        "{said}"
    );
    let build = series
        .iter()
        .find(|(key, _)| key.starts_with("edge_build_info{"))
        .map(|(_, value)| *value);
    assert_eq!(build, Some(1.0), "{text}");
    assert!(series["process_resident_memory_bytes"] > 1e6, "{text}");
    assert!(series["process_open_fds"] >= 3.0, "{text}");
    // The duration histogram has one observation per request.
    for (outcome, count) in [("hit", 3.0), ("miss", 4.0), ("bypass", 2.0), ("error", 1.0)] {
        let key = format!("edge_request_duration_seconds_count{{outcome=\"{outcome}\"}}");
        assert_eq!(series[&key], count, "{key}");
    }
    // Bodies: /a is 4 bytes, /b 2, /fail's "down" 4, /c 1.
    assert_eq!(series["edge_response_bytes_total{outcome=\"hit\"}"], 10.0);
    assert_eq!(series["edge_response_bytes_total{outcome=\"miss\"}"], 14.0);
    assert_eq!(series["edge_response_bytes_total{outcome=\"bypass\"}"], 3.0);
    assert_eq!(
        series["edge_response_bytes_total{outcome=\"revalidated\"}"],
        2.0
    );
    assert!(series["edge_response_bytes_total{outcome=\"error\"}"] > 0.0);
    // Origin: /a twice, /b, the no-store /b and /c answered 200; the
    // revalidation 304; /fail 503; /slow none (timed out).
    let origin_fetches =
        |result: &str| series[&format!("edge_origin_fetches_total{{result=\"{result}\"}}")];
    assert_eq!(origin_fetches("2xx"), 5.0, "{text}");
    assert_eq!(origin_fetches("3xx"), 1.0, "{text}");
    assert_eq!(origin_fetches("5xx"), 1.0, "{text}");
    assert_eq!(origin_fetches("error"), 1.0, "{text}");
    assert_eq!(series["edge_origin_duration_seconds_count"], 8.0);
    assert!(
        series["edge_origin_duration_seconds_sum"] >= 0.3,
        "the timeout took 300 ms"
    );
    // Purges, by the receipts: one hard (a URL and a tag), one soft (a URL).
    assert_eq!(series["edge_purges_total{mode=\"hard\"}"], 1.0);
    assert_eq!(series["edge_purges_total{mode=\"soft\"}"], 1.0);
    assert_eq!(series["edge_purge_targets_total{kind=\"url\"}"], 2.0);
    assert_eq!(series["edge_purge_targets_total{kind=\"tag\"}"], 1.0);
    assert_eq!(series["edge_purge_targets_total{kind=\"prefix\"}"], 0.0);
    assert_eq!(series["edge_purge_targets_total{kind=\"all\"}"], 0.0);
    // The store: every failure the faulty store made is counted as an
    // error, and nothing else failed.
    let store_errors = sum(
        &series,
        "edge_store_operations_total",
        &["result=\"error\""],
    );
    assert_eq!(store_errors, store.failures() as f64, "{text}");
    assert!(store_errors >= 1.0);
    assert!(
        sum(
            &series,
            "edge_store_operations_total",
            &["store=\"default\"", "op=\"get\"", "result=\"ok\""]
        ) >= 1.0
    );
    assert!(
        sum(
            &series,
            "edge_store_operations_total",
            &["store=\"default\"", "op=\"set\"", "result=\"ok\""]
        ) >= 1.0
    );
    // Instances, as the host's own accounting has them.
    let stats = edge.instance_stats();
    assert_eq!(series["edge_instances_created_total"], stats.created as f64);
    // Every request went to an instance but what edge-host answered
    // itself: fresh hits, and the other requests without a body.
    let native = series["edge_native_hits_total"];
    let served = series["edge_native_served_total"];
    assert_eq!(
        series["edge_instance_requests_total"] + native + served,
        13.0
    );
    match edge_tests::default_native_hits() {
        true => {
            assert!(native >= 1.0, "no native hit counted");
            assert!(served >= 1.0, "no native miss counted");
        }
        false => assert_eq!(native + served, 0.0),
    }
    assert_eq!(
        series["edge_instance_requests_total"],
        stats.requests as f64
    );
    assert_eq!(
        series["edge_instances_reused_total"],
        (stats.requests - stats.created) as f64
    );
    if edge_tests::default_flavour() == edge_host::Flavour::P3 {
        assert!(
            series["edge_instances_reused_total"] >= 1.0,
            "WASI 0.3 reuses instances"
        );
    } else {
        assert_eq!(series["edge_instances_reused_total"], 0.0);
    }
    assert_eq!(sum(&series, "edge_instance_failures_total", &[]), 0.0);
    assert_eq!(series["edge_breaker_open_answers_total"], 0.0);
    assert_eq!(series["edge_shed_connections_total"], 0.0);
    assert_eq!(series["edge_access_log_dropped_total"], 0.0);

    access_log_has_a_line_per_request(&log_path, &expected).await;

    // Concurrent misses of one URL and a stale-while-revalidate answer:
    // the counters say what the component said, request by request.
    let burst = edge_tests::join_all((0..10).map(|_| get(&edge, "/burst", &[]))).await;
    let collapsed = burst
        .iter()
        .filter(|(_, cs)| cs.contains("; hit") && cs.contains("collapsed"))
        .count() as f64;
    let burst_misses = burst.iter().filter(|(_, cs)| cs.contains("fwd=")).count() as f64;
    assert_eq!(collapsed + burst_misses, 10.0, "{burst:?}");
    eprintln!("10 concurrent misses: {collapsed} collapsed, {burst_misses} fetched");
    if edge_tests::default_flavour() == edge_host::Flavour::P3 {
        assert!(
            collapsed >= 1.0,
            "one WASI 0.3 instance collapses misses: {burst:?}"
        );
    }
    let (_, first) = get(&edge, "/swr", &[]).await;
    let (_, second) = get(&edge, "/swr", &[]).await;
    assert!(
        first.contains("fwd=uri-miss") && first.contains("stored"),
        "{first}"
    );
    assert!(second.contains("detail=stale-while-revalidate"), "{second}");
    // The refresh after the stale answer is an origin fetch of its own.
    let origin_2xx = 5.0 + burst_misses + 2.0;
    let text = settle(metrics, |series| {
        sum(series, "edge_requests_total", &[]) == 25.0
            && series["edge_origin_fetches_total{result=\"2xx\"}"] == origin_2xx
    })
    .await;
    let series = parse_exposition(&text);
    assert_eq!(
        requests_of(&series, "collapsed", "2xx"),
        collapsed,
        "{burst:?}\n{text}"
    );
    assert_eq!(
        requests_of(&series, "miss", "2xx"),
        3.0 + burst_misses + 1.0,
        "{text}"
    );
    assert_eq!(requests_of(&series, "stale", "2xx"), 1.0, "{text}");
    assert_eq!(requests_of(&series, "hit", "2xx"), 3.0, "{text}");
    let received = origin.received_requests().await.unwrap();
    let burst_fetches = received.iter().filter(|r| r.url.path() == "/burst").count() as f64;
    assert_eq!(
        burst_fetches, burst_misses,
        "one origin fetch per uncollapsed miss"
    );

    promtool_accepts(&text);
    dashboard_names_only_existing_metrics(&text);
    edge.stop().await;
}

fn requests_of(series: &BTreeMap<String, f64>, outcome: &str, status: &str) -> f64 {
    series[&format!("edge_requests_total{{outcome=\"{outcome}\",status=\"{status}\"}}")]
}

/// `promtool check metrics` (Debian `prometheus`) reads the exposition from
/// standard input and exits 0 only when it parses and passes its lint.
fn promtool_accepts(exposition: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => panic!(
            "promtool not found ({error}): install it with `apt-get install prometheus` \
             (.ci/needs/promtool.sh does)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused the exposition:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `edge_*` name in the dashboard's queries is a series name of the
/// exposition (a histogram's `_bucket`, `_sum`, `_count` included).
fn dashboard_names_only_existing_metrics(exposition: &str) {
    let names: BTreeSet<String> = parse_exposition(exposition)
        .keys()
        .map(|key| key.split('{').next().unwrap().to_owned())
        .collect();
    let path = workspace_root().join("deploy/grafana/edge-cache.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 6, "the dashboard has its panels: {exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let bytes = expr.as_bytes();
        let mut at = 0;
        while let Some(found) = expr[at..].find("edge_") {
            let start = at + found;
            let end = start
                + expr[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(expr.len() - start);
            let preceded =
                start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            if !preceded {
                used.insert(expr[start..end].to_owned());
            }
            at = end;
        }
    }
    let missing: Vec<_> = used.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "the dashboard names metrics that do not exist: {missing:?}"
    );
    for needed in [
        "edge_requests_total",
        "edge_origin_fetches_total",
        "edge_origin_duration_seconds_bucket",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }
    let scrape_config = std::fs::read_to_string(workspace_root().join("deploy/prometheus.yml"))
        .expect("the example scrape config");
    assert!(scrape_config.contains("scrape_configs"), "{scrape_config}");
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(values) => values.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The JSON access log has each request, in order, with what the host read
/// from its answer, and never the query string (not asked for).
async fn access_log_has_a_line_per_request(
    path: &std::path::Path,
    expected: &[(&str, u16, String)],
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        if lines.len() >= expected.len() {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the access log has {} lines:\n{text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lines.len(), expected.len());
    for (line, (outcome, status, cache_status)) in lines.iter().zip(expected) {
        assert_eq!(line["outcome"], *outcome, "{line}");
        assert_eq!(line["status"], *status, "{line}");
        // (A line's cache status is never empty: `none` for answers
        // without one, the purge API's.)
        let logged = if cache_status.is_empty() {
            "none"
        } else {
            cache_status.as_str()
        };
        assert_eq!(line["cache_status"], logged, "{line}");
        assert!(line["duration_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(line.get("query").is_none(), "{line}");
        // The origin's time, where the origin answered this request.
        match line.get("origin_ms") {
            Some(origin_ms) => {
                assert!(cache_status.contains("fwd-status="), "{line}");
                let origin_ms = origin_ms.as_f64().unwrap();
                assert!(origin_ms <= line["duration_ms"].as_f64().unwrap(), "{line}");
            }
            None => assert!(!cache_status.contains("fwd-status="), "{line}"),
        }
        assert_eq!(
            line["host"],
            line["host"].as_str().map(|h| h.to_owned()).unwrap()
        );
    }
    assert_eq!(lines[0]["path"], "/a");
    assert_eq!(lines[0]["bytes"], 4);
    assert_eq!(lines[5]["path"], "/b");
    assert!(!lines[5].to_string().contains("secret"));
    assert_eq!(lines[6]["method"], "POST");
    assert_eq!(lines[8]["method"], "PURGE");
    assert!(
        lines[11]["duration_ms"].as_f64().unwrap() >= 300.0,
        "{}",
        lines[11]
    );
}
