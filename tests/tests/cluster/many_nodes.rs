//! Many edge nodes, one cache policy: three edge-host apps (each its own
//! stores, instances and port, as separate nodes have) whose `shared`
//! store is one real `redis-server`, started here on a free port and
//! stopped by PID. Entries stay in each node's `default` store; the
//! purge times and epoch live in Redis (`spin-cluster.toml`,
//! `edge_cache::shared_state`).
//!
//! Every request carries one `Host`, as a load balancer in front of the
//! nodes would pass it: URL purges are per host.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_host::AppOptions;
use edge_tests::{
    Edge, closed_port, compilation_cache, component_path, default_flavour, shipped_manifest,
    workspace_root,
};
use reqwest::Client;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "cluster-purge-token";
const HOST: &str = "shop.example";

/// A `redis-server` of this test's own, on a free loopback port; killed
/// (by PID) when dropped. Its append-only file makes purges survive a
/// restart, as a production shared store must (deploy/README.md).
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: closed_port(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}); install it: apt-get install redis-server")
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits for the server's answer to `PING` (its readiness signal).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {} never answered PING", self.port);
    }

    /// SIGKILL, as a crash: no shutdown, no final save.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`freeze: true`) or SIGCONT: a server that accepts but
    /// never answers, then one that answers again.
    fn freeze(&self, freeze: bool) {
        let child = self.child.as_ref().expect("running");
        let signal = if freeze { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts it again on the same port and data directory.
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// The shipped cluster manifest of the flavour under test, pointed at the
/// built component, with the built-in rules (no files to mount).
fn cluster_manifest() -> String {
    let name = shipped_manifest(default_flavour(), true);
    let text = std::fs::read_to_string(workspace_root().join(name)).expect("cluster manifest");
    text.lines()
        .filter(|line| !line.starts_with("files = "))
        .map(|line| {
            if line.starts_with("source = ") {
                format!("source = {:?}", component_path().display().to_string())
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How one node is set up.
#[derive(Clone)]
struct NodeSetup {
    origin: String,
    shared_url: String,
    staleness_ms: u64,
    /// A SQLite file for the node's entries (default: in memory), so they
    /// outlive a restart.
    entries_db: Option<PathBuf>,
    listen: Option<SocketAddr>,
    /// A Redis URL for a shield store (`shield_store`): entries shared too.
    shield_url: Option<String>,
    /// Its `node_name` (it records the purges it has applied).
    node_name: Option<String>,
}

impl NodeSetup {
    fn new(origin: &MockServer, redis: &RedisServer, staleness_ms: u64) -> Self {
        NodeSetup {
            origin: origin.uri(),
            shared_url: redis.url(),
            staleness_ms,
            entries_db: None,
            listen: None,
            shield_url: None,
            node_name: None,
        }
    }

    fn named(&self, name: &str) -> Self {
        NodeSetup {
            node_name: Some(name.to_owned()),
            ..self.clone()
        }
    }

    fn runtime_config(&self) -> String {
        let default = match &self.entries_db {
            Some(path) => format!("type = \"spin\"\npath = {:?}", path.display().to_string()),
            None => "type = \"memory\"".to_owned(),
        };
        let mut text = format!(
            "[key_value_store.default]\n{default}\n\n[key_value_store.shared]\ntype = \"redis\"\nurl = {:?}\n",
            self.shared_url
        );
        if let Some(url) = &self.shield_url {
            text.push_str(&format!(
                "\n[key_value_store.shield]\ntype = \"redis\"\nurl = {url:?}\n"
            ));
        }
        text
    }

    fn options(&self, dir: &Path) -> AppOptions {
        let manifest = dir.join("spin.toml");
        let mut text = cluster_manifest();
        let mut variables = vec![
            format!("origin_url={}", self.origin),
            format!("purge_token={TOKEN}"),
            "cache_rules=".to_owned(),
            format!("purge_staleness_ms={}", self.staleness_ms),
        ];
        if let Some(name) = &self.node_name {
            variables.push(format!("node_name={name}"));
        }
        if self.shield_url.is_some() {
            text = text.replace(
                r#"key_value_stores = ["default", "shared"]"#,
                r#"key_value_stores = ["default", "shared", "shield"]"#,
            );
            variables.push("shield_store=shield".to_owned());
        }
        std::fs::write(&manifest, text).expect("write manifest");
        let runtime_config = dir.join("runtime-config.toml");
        std::fs::write(&runtime_config, self.runtime_config()).expect("write runtime config");
        AppOptions {
            manifest,
            runtime_config: Some(runtime_config),
            variables,
            cache_dir: Some(compilation_cache()),
            max_instances: Some(32),
            ..Default::default()
        }
    }

    async fn start(&self) -> anyhow::Result<Edge> {
        let dir = tempfile::tempdir()?;
        let options = self.options(dir.path());
        Edge::serve_app_on(options, dir, self.listen).await
    }
}

/// An origin whose every answer carries a new version number, cacheable
/// for an hour and tagged `product`: a served body older than a purge is
/// what the purge should have removed.
struct Versioned {
    fetches: Arc<AtomicUsize>,
}

impl Respond for Versioned {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .insert_header("cache-control", "max-age=3600, stale-if-error=3600")
            .insert_header("surrogate-key", "product")
            .set_body_string(format!("{} v{n}", request.url.path()))
    }
}

async fn versioned_origin() -> (MockServer, Arc<AtomicUsize>) {
    let origin = MockServer::start().await;
    let fetches = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .respond_with(Versioned {
            fetches: fetches.clone(),
        })
        .mount(&origin)
        .await;
    (origin, fetches)
}

/// What a node answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    cache_status: String,
    body: String,
}

impl Answer {
    fn hit(&self) -> bool {
        self.cache_status.contains("; hit")
    }
}

async fn get(client: &Client, node: &Edge, path: &str) -> Answer {
    let response = client
        .get(node.url(path))
        .header("host", HOST)
        .send()
        .await
        .expect("the node answers");
    let status = response.status().as_u16();
    let cache_status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Answer {
        status,
        cache_status,
        body: response.text().await.unwrap_or_default(),
    }
}

async fn purge(client: &Client, node: &Edge, body: &str) -> (u16, String) {
    let response = client
        .post(node.url("/_edge/purge"))
        .header("host", HOST)
        .bearer_auth(TOKEN)
        .body(body.to_owned())
        .send()
        .await
        .expect("the node answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Fetches `path` from `node` until a hit (at most a few times: the first
/// request of an instance may miss), returning the cached body.
async fn cached(client: &Client, node: &Edge, path: &str) -> String {
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = get(client, node, path).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        if answer.hit() {
            return answer.body;
        }
        answers.push(answer);
    }
    panic!("{path} never became a hit on {}: {answers:?}", node.addr);
}

async fn start_nodes(setups: &[NodeSetup]) -> Vec<Edge> {
    let mut nodes = Vec::new();
    for setup in setups {
        nodes.push(setup.start().await.expect("node starts"));
    }
    nodes
}

async fn purge_on_node_one_is_honoured_by_the_others(staleness_ms: u64) {
    let redis = RedisServer::start();
    let (origin, _) = versioned_origin().await;
    let setup = NodeSetup::new(&origin, &redis, staleness_ms);
    let nodes = start_nodes(&[setup.clone(), setup.clone(), setup]).await;
    let client = Client::new();
    let mut before = Vec::new();
    for node in &nodes {
        before.push((
            cached(&client, node, "/by-url").await,
            cached(&client, node, "/by-tag").await,
        ));
    }

    let (status, body) = purge(&client, &nodes[0], r#"{"urls": ["/by-url"]}"#).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = purge(&client, &nodes[0], r#"{"tags": ["product"]}"#).await;
    assert_eq!(status, 200, "{body}");
    if staleness_ms > 0 {
        // Nodes may reuse what they read for purge_staleness_ms: that is
        // the documented bound, so the test waits it out (a time bound,
        // not a stand-in for a signal).
        tokio::time::sleep(Duration::from_millis(staleness_ms + 5)).await;
    }
    for (node, (by_url, by_tag)) in nodes.iter().zip(&before) {
        for (path, old) in [("/by-url", by_url), ("/by-tag", by_tag)] {
            let answer = get(&client, node, path).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_ne!(
                &answer.body, old,
                "node {} served {path} purged on node 1: {answer:?}",
                node.addr
            );
            assert!(!answer.hit(), "{answer:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_node_is_honoured_by_every_node_within_the_staleness_bound() {
    purge_on_node_one_is_honoured_by_the_others(150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_staleness_a_purge_is_honoured_by_every_node_at_once() {
    purge_on_node_one_is_honoured_by_the_others(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_during_purges_serves_nothing_they_purged() {
    let redis = RedisServer::start();
    let (origin, _) = versioned_origin().await;
    let db_dir = tempfile::tempdir().unwrap();
    let setup = NodeSetup::new(&origin, &redis, 100);
    let mut third = setup.clone();
    third.entries_db = Some(db_dir.path().join("node3.db"));
    let mut nodes = start_nodes(&[setup.clone(), setup, third.clone()]).await;
    let client = Client::new();
    for path in ["/purged-by-url", "/purged-by-prefix", "/kept"] {
        for node in &nodes {
            cached(&client, node, path).await;
        }
    }
    let old_kept = cached(&client, &nodes[2], "/kept").await;

    nodes.pop().expect("node 3").stop().await;
    // While node 3 is down: the origin changes and purges through node 1.
    let (status, body) = purge(&client, &nodes[0], r#"{"urls": ["/purged-by-url"]}"#).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = purge(&client, &nodes[0], r#"{"prefixes": ["/purged-by-prefix"]}"#).await;
    assert_eq!(status, 200, "{body}");

    let node3 = third.start().await.expect("node 3 restarts");
    for path in ["/purged-by-url", "/purged-by-prefix"] {
        let answer = get(&client, &node3, path).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            !answer.hit(),
            "node 3 served {path}, purged while it was down: {answer:?}"
        );
    }
    // What was not purged is still served from node 3's own store: its
    // entries did survive the restart, so the purges above are what
    // stopped the others.
    let kept = get(&client, &node3, "/kept").await;
    assert!(kept.hit(), "{kept:?}");
    assert_eq!(kept.body, old_kept);
}

/// `GET /_edge/purges/{id}` on `node`: each node's name and whether it
/// has applied the purge.
async fn completion(client: &Client, node: &Edge, id: &str) -> Vec<(String, bool)> {
    let response = client
        .get(node.url(&format!("/_edge/purges/{id}")))
        .header("host", HOST)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the node answers");
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    answer["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_owned(),
                n["applied"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A health check on `node` (what a load balancer sends): a request its
/// component handles, so it reports the purge state it has read.
async fn health(client: &Client, node: &Edge) {
    let response = client.get(node.url("/_edge/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_completion_is_read_from_any_node_and_a_stopped_node_shows_as_not_applied() {
    let redis = RedisServer::start();
    let (origin, _) = versioned_origin().await;
    let setup = NodeSetup::new(&origin, &redis, 0);
    let third = setup.named("edge-3");
    let mut nodes =
        start_nodes(&[setup.named("edge-1"), setup.named("edge-2"), third.clone()]).await;
    let client = Client::new();
    for node in &nodes {
        health(&client, node).await;
    }
    nodes.pop().expect("node 3").stop().await;

    // Purged through node 1 while node 3 is stopped; asked of node 2.
    let (status, receipt) = purge(&client, &nodes[0], r#"{"tags": ["product"]}"#).await;
    assert_eq!(status, 200, "{receipt}");
    let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    let id = receipt["id"].as_str().unwrap().to_owned();
    health(&client, &nodes[1]).await;
    let with_third_down = completion(&client, &nodes[1], &id).await;
    assert_eq!(
        with_third_down,
        [
            ("edge-1".to_owned(), true),
            ("edge-2".to_owned(), true),
            ("edge-3".to_owned(), false),
        ],
        "node 3 was stopped before the purge"
    );

    let node3 = third.start().await.expect("node 3 restarts");
    health(&client, &node3).await;
    let all = completion(&client, &nodes[1], &id).await;
    assert!(all.iter().all(|(_, applied)| *applied), "{all:?}");
    assert_eq!(all.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_every_request_is_answered_and_caching_resumes_when_it_returns() {
    let mut redis = RedisServer::start();
    let (origin, fetches) = versioned_origin().await;
    let staleness_ms = 100;
    let setup = NodeSetup::new(&origin, &redis, staleness_ms);
    let nodes = Arc::new(start_nodes(&[setup.clone(), setup]).await);
    let client = Client::new();
    for node in nodes.iter() {
        cached(&client, node, "/page").await;
    }

    // Traffic on both nodes while Redis dies: not one request may fail.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (nodes, stop, client) = (nodes.clone(), stop.clone(), client.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                for node in nodes.iter() {
                    answers.push(get(&client, node, "/page").await);
                }
            }
            answers
        })
    };
    let fetched_before = fetches.load(Ordering::SeqCst);
    redis.kill();
    // Requests that cannot be validated now reach the origin: wait for
    // some of them (the signal that the outage is being served).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetches.load(Ordering::SeqCst) < fetched_before + 10 {
        assert!(
            Instant::now() < deadline,
            "the origin never saw the outage's requests"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let answers = traffic.await.unwrap();
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(
        failed.is_empty(),
        "failed requests during the outage: {failed:?}"
    );

    // With Redis down, nothing is served as a plain hit: it cannot be
    // validated, so it goes to the origin.
    for node in nodes.iter() {
        let answer = get(&client, node, "/page").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(
            !answer.hit(),
            "served unvalidated during the outage: {answer:?}"
        );
    }
    // Purges cannot be recorded, and say so (the origin's worker retries).
    let (status, body) = purge(&client, &nodes[0], r#"{"tags": ["product"]}"#).await;
    assert_eq!(status, 503, "{body}");

    // The origin fails too: stale-if-error still answers.
    origin.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&origin)
        .await;
    for node in nodes.iter() {
        let answer = get(&client, node, "/page").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.cache_status.contains("stale-if-error"), "{answer:?}");
    }
    origin.reset().await;
    Mock::given(method("GET"))
        .respond_with(Versioned {
            fetches: fetches.clone(),
        })
        .mount(&origin)
        .await;

    redis.restart();
    // A node leaves a failed shared store alone for OUTAGE_RETRY, then
    // asks again by itself; wait that out (a time bound).
    tokio::time::sleep(
        edge_cache::shared_state::OUTAGE_RETRY + Duration::from_millis(staleness_ms + 20),
    )
    .await;
    for node in nodes.iter() {
        // An instance that failed last may still need one request to
        // notice; within a few the node serves hits again, unrestarted.
        let body = cached(&client, node, "/page").await;
        assert!(body.starts_with("/page v"), "{body}");
    }
    // And purges work again, on every node.
    let (status, body) = purge(&client, &nodes[1], r#"{"tags": ["product"]}"#).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_request_at_most_the_command_deadline_never_a_hang() {
    let redis = RedisServer::start();
    let (origin, _) = versioned_origin().await;
    // Staleness 0: every lookup asks Redis (with a bound, a node could
    // rightly answer from what it read just before the freeze).
    let node = NodeSetup::new(&origin, &redis, 0)
        .start()
        .await
        .expect("node starts");
    let client = Client::new();
    cached(&client, &node, "/page").await;

    redis.freeze(true);
    // edge-host bounds a Redis command at 1.5 s; a node then leaves the
    // store alone for 250 ms, so most requests do not wait at all.
    let bound = Duration::from_millis(1500 + 700);
    let started = Instant::now();
    for _ in 0..10 {
        let sent = Instant::now();
        let answer = get(&client, &node, "/page").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(!answer.hit(), "served unvalidated: {answer:?}");
        assert!(
            sent.elapsed() < bound,
            "a request waited {:?}",
            sent.elapsed()
        );
    }
    let frozen_for = started.elapsed();
    redis.freeze(false);
    assert!(frozen_for < bound * 10, "{frozen_for:?}");

    // Answering again: caching resumes by itself. Waiting out the node's
    // retry interval is a time bound, not a stand-in for a signal.
    tokio::time::sleep(edge_cache::shared_state::OUTAGE_RETRY + Duration::from_millis(120)).await;
    cached(&client, &node, "/page").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_shield_one_nodes_fill_answers_the_others_and_purges_still_reach_it() {
    let redis = RedisServer::start();
    let (origin, fetches) = versioned_origin().await;
    let mut setup = NodeSetup::new(&origin, &redis, 0);
    // A database of its own keeps the keys apart here; in production the
    // shield is a server of its own, since eviction is per server.
    setup.shield_url = Some(format!("{}/1", redis.url()));
    let nodes = start_nodes(&[setup.clone(), setup.clone(), setup]).await;
    let client = Client::new();
    let filled = get(&client, &nodes[0], "/shielded").await;
    assert!(!filled.hit(), "{filled:?}");
    for node in &nodes[1..] {
        let answer = get(&client, node, "/shielded").await;
        assert!(answer.hit(), "{answer:?}");
        assert_eq!(answer.body, filled.body, "node 1's fill");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one origin fetch for three nodes"
    );

    let (status, body) = purge(&client, &nodes[1], r#"{"tags": ["product"]}"#).await;
    assert_eq!(status, 200, "{body}");
    for node in &nodes {
        let answer = get(&client, node, "/shielded").await;
        assert_ne!(
            answer.body, filled.body,
            "the shield's copy was purged: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_unreachable_redis_url_is_a_clear_error_at_start() {
    let origin = MockServer::start().await;
    let closed = closed_port();
    for (url, expected) in [
        (
            "redis://admin:hunter2@127.0.0.1:notaport".to_owned(),
            "redis://admin:***@127.0.0.1:notaport".to_owned(),
        ),
        (
            format!("redis://:hunter2@127.0.0.1:{closed}"),
            format!("redis://:***@127.0.0.1:{closed}"),
        ),
    ] {
        let setup = NodeSetup {
            origin: origin.uri(),
            shared_url: url.clone(),
            staleness_ms: 100,
            entries_db: None,
            listen: None,
            shield_url: None,
            node_name: None,
        };
        let started = Instant::now();
        let error = match setup.start().await {
            Ok(_) => panic!("{url}: the node started"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains("key_value_store.shared"), "{error}");
        assert!(error.contains(&expected), "{error}");
        assert!(!error.contains("hunter2"), "the password leaked: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?} to fail",
            started.elapsed()
        );
    }
}
