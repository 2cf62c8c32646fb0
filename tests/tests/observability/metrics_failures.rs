//! Metrics of what goes wrong in the host, through the real WASI 0.3
//! misbehaving component (tests/misbehaving-component/p3): requests whose
//! instance trapped, ran out of time or out of memory, counted by cause;
//! and connections shed over `--max-connections`, with the open
//! connections gauge as the signal that the held ones are in.
//!
//! One test, run in a process of its own: metrics are the process's, so
//! one edge per process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_host::observability::ObservabilityFlags;
use edge_host::{InstanceLimits, ServerOptions};
use edge_tests::{Edge, parse_exposition, single_component_app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn series(metrics: SocketAddr) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_exposition(&text)
}

/// Scrapes until `key` has `value`, or fails after 10 s.
async fn until(metrics: SocketAddr, key: &str, value: f64) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = series(metrics).await;
        if now.get(key) == Some(&value) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never reached {value}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn failed_instances_are_counted_by_cause_and_shed_connections_are_counted() {
    if edge_tests::ran_in_own_process() {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("access.log");
    let observer = ObservabilityFlags {
        metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        access_log: Some(log_path.clone()),
        log_format: edge_host::access_log::LogFormat::Json,
        access_log_client: true,
        access_log_user_agent: true,
        access_log_referrer: true,
        ..Default::default()
    }
    .start()
    .await
    .unwrap();
    let metrics = observer.metrics_addr().unwrap();
    let limits = InstanceLimits {
        request_timeout: Duration::from_millis(400),
        max_memory_bytes: 32 << 20,
    };
    let (options, workdir) =
        single_component_app("misbehaving_component_p3", "misbehaving-p3", limits);
    let server = ServerOptions {
        max_connections: 2,
        ..Default::default()
    };
    let mut edge = Edge::serve_app_with(options, workdir, None, server)
        .await
        .expect("host starts");
    edge.observe(observer);

    let mut answers = Vec::new();
    let client = reqwest::Client::new();
    for path in ["/trap", "/spin", "/grow", "/instance"] {
        let response = client
            .get(edge.url(path))
            .header("user-agent", "failure-test/1.0")
            .header("referer", "https://shop.example/from")
            .send()
            .await
            .unwrap();
        answers.push((
            path,
            response.status().as_u16(),
            response.text().await.unwrap(),
        ));
    }
    // (Its keep-alive connection would count as open below.)
    drop(client);
    let said = format!("{answers:?}");
    assert_eq!(
        answers
            .iter()
            .map(|(_, status, _)| *status)
            .collect::<Vec<_>>(),
        [500, 500, 500, 200],
        "{said}"
    );
    let now = until(
        metrics,
        "edge_requests_total{outcome=\"none\",status=\"2xx\"}",
        1.0,
    )
    .await;
    let failures = |cause: &str| now[&format!("edge_instance_failures_total{{cause=\"{cause}\"}}")];
    assert_eq!(failures("trap"), 1.0, "{said}");
    assert_eq!(failures("time_limit"), 1.0, "{said}");
    assert_eq!(failures("memory_limit"), 1.0, "{said}");
    // A host answer without Cache-Status that is a 5xx is an error.
    assert_eq!(
        now["edge_requests_total{outcome=\"error\",status=\"5xx\"}"],
        3.0
    );
    // Each failure's line has the error id its answer gave, and the opt-in
    // fields; no line's cache status is empty.
    edge_host::access_log::flush();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, (path, status, body)) in lines.iter().zip(&answers) {
        assert_eq!(line["path"], *path, "{text}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_eq!(line["user_agent"], "failure-test/1.0", "{line}");
        assert_eq!(line["referrer"], "https://shop.example/from", "{line}");
        assert!(!line["cache_status"].as_str().unwrap().is_empty(), "{line}");
        if *status == 500 {
            let id = line["error_id"]
                .as_str()
                .expect("a failure's line has its error id");
            assert!(
                body.contains(&format!("(error id {id})")),
                "{body} / {line}"
            );
            assert_eq!(line["cache_status"], format!("edge-host; error; id={id}"));
        } else {
            assert!(line.get("error_id").is_none(), "{line}");
        }
    }
    let stats = edge.instance_stats();
    assert_eq!(now["edge_instances_failed_total"], stats.failed as f64);
    assert!(stats.failed >= 3, "{stats:?}");
    assert_eq!(now["edge_shed_connections_total"], 0.0);

    // Two connections hold both slots, each having just begun its request
    // (an idle one would give way; one within its first second of sending
    // never does); the gauge says when they are in. The third is answered
    // 503 and closed.
    until(metrics, "edge_connections_open", 0.0).await;
    let mut held = [
        TcpStream::connect(edge.addr).await.unwrap(),
        TcpStream::connect(edge.addr).await.unwrap(),
    ];
    for stream in &mut held {
        stream
            .write_all(b"GET /instance HTTP/1.1\r\n")
            .await
            .unwrap();
    }
    until(metrics, "edge_connections_open", 2.0).await;
    let mut third = TcpStream::connect(edge.addr).await.unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let now = until(metrics, "edge_shed_connections_total", 1.0).await;
    assert_eq!(now["edge_connections_open"], 2.0);
    drop(held);
    until(metrics, "edge_connections_open", 0.0).await;
    edge.stop().await;
}
