//! `edge-host replay` (issue 28): an access log recorded by a real edge
//! under a Zipf-like load, replayed through the core with the same rules,
//! predicts the hit ratio it recorded; with candidate rules it says which
//! URLs change, the same way every time.
//!
//! Run in a process of its own: the access log is the process's.

use edge_host::access_log::LogFormat;
use edge_host::replay::{ReplayOptions, replay};
use edge_tests::{Edge, EdgeSetup};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Objects of the recorded load, and how many requests it makes.
const OBJECTS: u64 = 300;
const REQUESTS: u64 = 1500;

/// The rank of the `i`th request: Zipf(1.0) over [`OBJECTS`], drawn with a
/// fixed linear congruential sequence (the same load every run).
fn ranks() -> Vec<u64> {
    let harmonic: f64 = (1..=OBJECTS).map(|k| 1.0 / k as f64).sum();
    let mut cdf = Vec::new();
    let mut sum = 0.0;
    for k in 1..=OBJECTS {
        sum += 1.0 / k as f64 / harmonic;
        cdf.push(sum);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..REQUESTS)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            cdf.iter().position(|c| *c >= u).unwrap_or(cdf.len() - 1) as u64 + 1
        })
        .collect()
}

#[tokio::test]
async fn a_replayed_log_predicts_the_recorded_hit_ratio_and_names_what_candidate_rules_change() {
    if edge_tests::ran_in_own_process() {
        return;
    }
    let origin = MockServer::start().await;
    Mock::given(path_regex("^/z/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=3600")
                .set_body_bytes(vec![b'z'; 512]),
        )
        .mount(&origin)
        .await;
    Mock::given(path_regex("^/me/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "private, max-age=60")
                .set_body_bytes(vec![b'm'; 64]),
        )
        .mount(&origin)
        .await;
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("access.log");
    let mut setup = EdgeSetup::origin(&origin.uri()).access_log(&log_path, LogFormat::Json);
    setup.observability.access_log_query = true;
    let edge = Edge::start(setup).await.expect("edge starts");
    let client = reqwest::Client::new();
    for (i, rank) in ranks().into_iter().enumerate() {
        // One request in ten is a personal page; queries in varying order.
        let target = match i % 10 {
            0 => format!("/me/{}", rank % 7),
            _ if i % 2 == 0 => format!("/z/{rank}?size=512&v=1"),
            _ => format!("/z/{rank}?v=1&size=512"),
        };
        let response = client.get(edge.url(&target)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    edge_host::access_log::flush();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(log.lines().count() as u64, REQUESTS, "every request logged");

    let same = ReplayOptions {
        log: log.clone(),
        rules: String::new(),
        capacity_bytes: 64 << 20,
        variables: Vec::new(),
        origin_headers: Vec::new(),
    };
    let report = replay(&same).expect("the log replays");
    assert_eq!(report.requests, REQUESTS);
    assert!(
        (report.predicted_hit_ratio - report.recorded_hit_ratio).abs() <= 0.01,
        "{report}"
    );
    assert!(report.recorded_hit_ratio > 0.5, "{report}");
    let fetches = (
        report.predicted_origin_fetches as f64,
        report.recorded_origin_fetches as f64,
    );
    assert!(
        (fetches.0 - fetches.1).abs() <= 0.01 * REQUESTS as f64,
        "{report}"
    );

    // Candidate rules that stop caching /z/: the replay shows what that
    // would cost before anyone makes it live.
    let candidate = ReplayOptions {
        rules: r#"{"rules": [{"path_prefix": "/z/", "query": "ignore", "bypass": true}]}"#
            .to_owned(),
        ..same
    };
    let first = replay(&candidate).expect("the log replays");
    assert!(first.predicted_hit_ratio < 0.05, "{first}");
    assert!(
        first
            .changed
            .iter()
            .any(|(url, from, to, _)| url.starts_with("/z/") && from == "hit" && to == "bypass"),
        "{first}"
    );
    let second = replay(&candidate).expect("the log replays");
    assert_eq!(first.to_string(), second.to_string(), "deterministic");
    println!("same rules:\n{report}\ncandidate:\n{first}");
    drop(edge);
}
