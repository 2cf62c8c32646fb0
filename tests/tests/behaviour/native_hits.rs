//! Fresh hits answered by edge-host itself, with the component's own core
//! (issue 25): the same answers as the component gives, no purged body
//! after a purge is answered, and the component never entered for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use edge_tests::{Edge, EdgeSetup, join_all};
use reqwest::Client;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "native-hits-token";

/// An edge in front of `origin`, fresh hits native or not.
async fn edge(origin: &MockServer, native: bool, lanes: Option<usize>) -> Edge {
    let mut setup = EdgeSetup::origin(&origin.uri()).variable("purge_token", TOKEN);
    setup.native_hits = Some(native);
    setup.lanes = lanes;
    Edge::start(setup).await.expect("edge starts")
}

async fn purge(client: &Client, edge: &Edge, body: &str) {
    let response = client
        .post(edge.url("/_edge/purge"))
        .bearer_auth(TOKEN)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The origin behind both edges of the differential test: the same
/// answers for the same requests, whichever edge asks.
async fn site() -> MockServer {
    let origin = MockServer::start().await;
    let page = |cache_control: &str, body: &str| {
        ResponseTemplate::new(200)
            .insert_header("cache-control", cache_control)
            .insert_header("etag", "\"v1\"")
            .insert_header("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT")
            .set_body_string(body)
    };
    let mounts = [
        ("/fresh", page("max-age=600", "fresh body")),
        (
            "/tagged",
            page("max-age=600", "tagged").insert_header("surrogate-key", "t1 t2"),
        ),
        (
            "/vary",
            page("max-age=600", "varies").insert_header("vary", "accept-language"),
        ),
        (
            "/stale",
            page("max-age=60", "old").insert_header("age", "100"),
        ),
        ("/no-cache", page("no-cache, max-age=600", "always checked")),
        ("/private", page("private, max-age=600", "mine")),
        (
            "/cdn",
            page("max-age=60", "cdn").insert_header("cdn-cache-control", "max-age=3600"),
        ),
        (
            "/swr",
            page("max-age=1, stale-while-revalidate=600", "swr").insert_header("age", "5"),
        ),
        (
            "/vary-hop",
            page("max-age=600", "varies by x-hop").insert_header("vary", "x-hop"),
        ),
    ];
    for (at, template) in mounts {
        Mock::given(path(at))
            .respond_with(template)
            .mount(&origin)
            .await;
    }
    origin
}

/// The paths `origin` was asked for, sorted.
async fn asked(origin: &MockServer) -> Vec<String> {
    let requests = origin.received_requests().await.unwrap();
    let mut asked: Vec<String> = requests.iter().map(|r| r.url.path().to_owned()).collect();
    asked.sort();
    asked
}

/// A request of the differential sequence: path and extra fields.
type Step = (&'static str, &'static [(&'static str, &'static str)]);

const STEPS: &[Step] = &[
    ("/fresh", &[]),
    ("/fresh", &[]),
    ("/fresh", &[("if-none-match", "\"v1\"")]),
    (
        "/fresh",
        &[("if-modified-since", "Tue, 01 Dec 2026 10:00:00 GMT")],
    ),
    ("/fresh", &[("range", "bytes=2-5")]),
    ("/fresh", &[("range", "bytes=50-60")]),
    ("/fresh", &[("cache-control", "no-cache")]),
    ("/fresh", &[("cache-control", "max-age=0")]),
    ("/fresh", &[("cookie", "session=abc")]),
    ("/fresh", &[("accept-encoding", "gzip")]),
    ("/fresh?b=2&a=1", &[]),
    ("/fresh?a=1&b=2", &[]),
    ("/FRESH", &[]),
    ("/tagged", &[]),
    ("/tagged", &[]),
    ("/vary", &[("accept-language", "en")]),
    ("/vary", &[("accept-language", "en")]),
    ("/vary", &[("accept-language", "ko")]),
    ("/vary", &[("accept-language", "ko")]),
    ("/vary", &[]),
    ("/stale", &[]),
    ("/stale", &[]),
    ("/no-cache", &[]),
    ("/no-cache", &[]),
    ("/private", &[]),
    ("/private", &[]),
    ("/cdn", &[]),
    ("/cdn", &[]),
    ("/swr", &[]),
    ("/nowhere", &[]),
    // What the host takes out before a component sees the request, the
    // native path must not see either: forged `spin-*` fields (the key
    // stays `http`), and a field `Connection` nominates (a hit of the
    // `x-hop: a` variant would be the wrong one).
    (
        "/fresh",
        &[
            ("spin-full-url", "https://elsewhere.example/fresh"),
            ("spin-client-addr", "192.0.2.1:1"),
        ],
    ),
    ("/vary-hop", &[("x-hop", "a")]),
    ("/vary-hop", &[("x-hop", "a")]),
    ("/vary-hop", &[("connection", "x-hop"), ("x-hop", "a")]),
    ("/vary-hop", &[("connection", "x-hop"), ("x-hop", "a")]),
];

/// What a client sees of an answer, but for the fields that tell the
/// moment (`Date`, `Age`, `Server-Timing`) and `Cache-Status`'s `ttl`,
/// which moves with the second the entry was stored in.
async fn seen(response: reqwest::Response) -> String {
    let mut fields: Vec<String> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "age" | "server-timing"))
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("?");
            let value = match name.as_str() {
                "cache-status" => value
                    .split("; ")
                    .map(|part| {
                        if part.starts_with("ttl=") {
                            "ttl"
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => value.to_owned(),
            };
            format!("{name}: {value}")
        })
        .collect();
    fields.sort();
    let status = response.status();
    let body = response.text().await.unwrap();
    format!("{status}\n{}\n\n{body}", fields.join("\n"))
}

/// Runs the sequence (a purge by tag and a soft purge in the middle) and
/// says what each answer was.
async fn answers(edge: &Edge) -> Vec<String> {
    let client = Client::new();
    let mut seen_all = Vec::new();
    for (round, (at, fields)) in STEPS.iter().enumerate() {
        if round == STEPS.len() / 2 {
            purge(&client, edge, r#"{"tags": ["t1"]}"#).await;
            purge(&client, edge, r#"{"urls": ["/fresh"], "soft": true}"#).await;
        }
        let mut request = client.get(edge.url(at));
        for (name, value) in fields.iter() {
            request = request.header(*name, *value);
        }
        let answer = seen(request.send().await.unwrap()).await;
        seen_all.push(format!("GET {at} {fields:?}\n{answer}"));
    }
    for (at, _) in STEPS {
        let head = client.head(edge.url(at)).send().await.unwrap();
        seen_all.push(format!("HEAD {at}\n{}", seen(head).await));
    }
    seen_all
}

#[tokio::test]
async fn native_hits_answer_exactly_as_the_component_does() {
    let (native_site, component_site) = (site().await, site().await);
    let native = edge(&native_site, true, None).await;
    let component = edge(&component_site, false, None).await;
    let (with, without) = (answers(&native).await, answers(&component).await);
    for (native, component) in with.iter().zip(&without) {
        assert_eq!(native, component, "native hits answered differently");
    }
    assert_eq!(with.len(), without.len());
    // Both origins were asked the same: the native edge fetched nothing
    // more (nor less) than the component alone.
    assert_eq!(asked(&native_site).await, asked(&component_site).await);
    // And the native edge's answers did not enter the component: hits,
    // misses, revalidations and passes alike. It had only the two purges
    // (they have a body) and the first request of each thread that runs
    // native nodes, this test's and the shared native one (the
    // component's instance loads the rules before a native node is built).
    let (native_calls, component_calls) = (
        native.instance_stats().requests,
        component.instance_stats().requests,
    );
    assert_eq!(component_calls, 2 * STEPS.len() as u64 + 2);
    assert!(
        native_calls <= 4,
        "native {native_calls}, component {component_calls} requests handed to instances"
    );
}

#[tokio::test]
async fn a_fresh_hit_does_not_enter_the_component() {
    let origin = MockServer::start().await;
    Mock::given(path("/hot"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .set_body_string("hot"),
        )
        .expect(1)
        .mount(&origin)
        .await;
    let edge = edge(&origin, true, None).await;
    let client = Client::new();
    for _ in 0..20 {
        let answer = client.get(edge.url("/hot")).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "hot");
    }
    // The fill, and the first request after it (the lane's node is built
    // once the component has served there).
    let handed = edge.instance_stats().requests;
    assert!(handed <= 2, "{handed} of 20 requests entered the component");
}

/// Answers `v{n}` where n counts the purges the test has made so far.
struct Versioned(Arc<AtomicUsize>);

impl Respond for Versioned {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .insert_header("cache-control", "max-age=600")
            .insert_header("surrogate-key", "coherent")
            .set_body_string(format!("v{}", self.0.load(Ordering::SeqCst)))
    }
}

#[tokio::test]
async fn once_a_purge_is_answered_no_lane_serves_what_it_purged() {
    let version = Arc::new(AtomicUsize::new(0));
    let origin = MockServer::start().await;
    Mock::given(path("/coherent"))
        .respond_with(Versioned(version.clone()))
        .mount(&origin)
        .await;
    let edge = edge(&origin, true, Some(2)).await;
    let client = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for round in 1..=5 {
        // Every lane has its node, and a native hit of the current body.
        let bodies = join_all((0..16).map(|_| async {
            let answer = client.get(edge.url("/coherent")).send().await.unwrap();
            answer.text().await.unwrap()
        }))
        .await;
        let current = format!("v{}", round - 1);
        assert!(bodies.iter().all(|b| *b == current), "{bodies:?}");
        version.store(round, Ordering::SeqCst);
        let body = match round % 2 {
            0 => r#"{"tags": ["coherent"]}"#,
            _ => r#"{"urls": ["/coherent"]}"#,
        };
        purge(&client, &edge, body).await;
        let after = join_all((0..16).map(|_| async {
            let answer = client.get(edge.url("/coherent")).send().await.unwrap();
            answer.text().await.unwrap()
        }))
        .await;
        let purged = format!("v{}", round - 1);
        assert!(
            after.iter().all(|b| *b != purged),
            "round {round}: a purged body after the purge was answered: {after:?}"
        );
    }
}

/// Only the rule makes `/kept/…` cacheable (the origin says nothing of
/// freshness); a typo of it; a valid rule that bypasses the same paths.
const KEEP: &str = r#"{ "rules": [ { "path_prefix": "/kept/", "default_ttl_seconds": 300 } ] }"#;
const TYPO: &str = r#"{ "rules": [ { "path_prefix": "/kept/", "default_ttl_seconds": 300 }, ] }"#;
const BYPASS: &str = r#"{ "rules": [ { "path_prefix": "/kept/", "bypass": true } ] }"#;

#[tokio::test]
async fn native_hits_keep_the_last_good_rules_and_follow_a_fix() {
    let origin = MockServer::start().await;
    Mock::given(path("/kept/a"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&origin)
        .await;
    let mut setup = EdgeSetup::origin(&origin.uri())
        .rules(KEEP)
        .reuse(edge_tests::reuse(2, 1));
    setup.native_hits = Some(true);
    let edge = Edge::start(setup).await.expect("edge starts");
    for _ in 0..3 {
        edge.fetch("/kept/a").await.unwrap();
    }
    std::fs::write(edge.rules_file(), TYPO).unwrap();
    // Past the moment each lane reads the file again (every second): every
    // answer still a hit under the last good rules, none of them passed.
    let watched = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < watched {
        let hit = edge.fetch("/kept/a").await.unwrap();
        assert!(hit.hit(), "after a broken edit: {}", hit.cache_status);
    }
    assert_eq!(origin.received_requests().await.unwrap().len(), 1);
    std::fs::write(edge.rules_file(), BYPASS).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let fetched = edge.fetch("/kept/a").await.unwrap();
        if fetched.cache_status.contains("fwd=bypass") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fixed rules never applied: {}",
            fetched.cache_status
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A request served natively is held to the request time limit as an
/// instance's is: the same `500`, in the same words, and no instance
/// entered for it.
#[tokio::test]
async fn a_native_miss_past_the_request_time_limit_is_the_limit_s_500() {
    let origin = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=600")
                .set_body_string("late")
                .set_delay(std::time::Duration::from_secs(3)),
        )
        .mount(&origin)
        .await;
    Mock::given(path("/quick"))
        .respond_with(ResponseTemplate::new(200).set_body_string("quick"))
        .mount(&origin)
        .await;
    let mut setup = EdgeSetup::origin(&origin.uri());
    setup.native_hits = Some(true);
    setup.limits = Some(edge_host::InstanceLimits {
        request_timeout: std::time::Duration::from_millis(500),
        ..edge_host::InstanceLimits::default()
    });
    let edge = Edge::start(setup).await.expect("edge starts");
    // Each thread's first request goes to the component (its instance
    // loads the rules); the threads are this test's and the native one.
    for _ in 0..3 {
        let quick = reqwest::get(edge.url("/quick")).await.unwrap();
        assert_eq!(quick.status(), 200);
    }
    let before = edge.instance_stats().requests;
    let stopped = reqwest::get(edge.url("/slow")).await.unwrap();
    assert_eq!(stopped.status(), 500);
    let said = stopped.text().await.unwrap();
    assert!(said.contains("500 ms request time limit"), "{said}");
    assert_eq!(edge.instance_stats().requests, before, "served natively");
}
