//! Interleaved requests in one WASI 0.3 instance never see each other's
//! data, through the real component in edge-host.

use std::time::Duration;

use edge_host::ReuseOptions;
use edge_host::reuse::PerInstance;
use edge_tests::{Edge, EdgeSetup, Flavour, join_all};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn reuse(concurrent: usize) -> ReuseOptions {
    ReuseOptions {
        max_instance_reuse_count: PerInstance::Value(128),
        max_instance_concurrent_reuse_count: PerInstance::Value(concurrent),
        idle_instance_timeout: PerInstance::Value(Duration::from_secs(30)),
    }
}

async fn p3_edge(setup: EdgeSetup) -> Edge {
    Edge::start(setup.flavour(Flavour::P3))
        .await
        .expect("edge starts")
}

#[tokio::test]
async fn interleaved_requests_in_one_instance_never_see_each_others_data() {
    let origin = MockServer::start().await;
    // The origin tells back what it saw of the request, slowly, so the
    // requests overlap inside the instance.
    Mock::given(path("/who"))
        .respond_with(|request: &Request| {
            let seen = |name: &str| {
                request
                    .headers
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("?").to_owned())
                    .unwrap_or_default()
            };
            let cacheable = seen("authorization").is_empty();
            ResponseTemplate::new(200)
                .insert_header(
                    "cache-control",
                    if cacheable { "max-age=60" } else { "private" },
                )
                .set_body_string(format!(
                    "host={} auth={} cookie={}",
                    seen("x-forwarded-host"),
                    seen("authorization"),
                    seen("cookie")
                ))
                .set_delay(Duration::from_millis(50))
        })
        .mount(&origin)
        .await;
    let rules = r#"{ "rules": [ { "path_prefix": "/", "cookies": ["session"] } ] }"#;
    let setup = EdgeSetup::origin(&origin.uri())
        .rules(rules)
        .reuse(reuse(16));
    let edge = p3_edge(setup).await;
    // One request first, so an instance is up (rules parsed, store open)
    // and takes the burst: a cold burst instead spreads over fresh
    // instances, each still starting when the next request arrives.
    edge.fetch_with("/who", &[("host", "warm.example")])
        .await
        .unwrap();
    let requests = (0..48).map(|i| {
        let edge = &edge;
        async move {
            let host = format!("h{i}.example");
            let auth = format!("Bearer t{i}");
            let cookie = format!("session=s{i}");
            let mut headers = vec![("host", host.as_str())];
            match i % 3 {
                0 => {}
                1 => headers.push(("authorization", auth.as_str())),
                _ => headers.push(("cookie", cookie.as_str())),
            }
            let fetched = edge.fetch_with("/who", &headers).await.unwrap();
            (i, fetched.text())
        }
    });
    for (i, body) in join_all(requests).await {
        let expected = match i % 3 {
            0 => format!("host=h{i}.example auth= cookie="),
            1 => format!("host=h{i}.example auth=Bearer t{i} cookie="),
            _ => format!("host=h{i}.example auth= cookie=session=s{i}"),
        };
        assert_eq!(body, expected, "request {i}");
    }
    let stats = edge.instance_stats();
    println!(
        "48 interleaved requests: {} instances, peak {} in flight in one",
        stats.created, stats.peak_concurrent_requests
    );
    assert!(
        stats.peak_concurrent_requests > 1,
        "the requests did interleave in an instance"
    );
}
