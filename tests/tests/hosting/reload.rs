//! SIGHUP to a real `edge-host up` process (issue 27 item 4), under a
//! continuous load of concurrent requests through the real component: a
//! good new configuration (another origin in a `--variable @FILE.toml`, a
//! runtime config with a store changed and one added) is taken for new
//! requests while a request in flight finishes with the old one; a broken
//! one (a missing variables file, runtime config that is not TOML) is
//! refused and the old configuration serves on; no request fails either
//! way, and a cached entry in the unchanged memory store stays a hit.
//!
//! The outcome is observed where an operator sees it: `/status.json`'s
//! `reloads`, polled until the record appears (bounded), and the log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use edge_tests::{
    Edge, EdgeSetup, Flavour, compilation_cache, component_path, reuse, workspace_root,
};
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every answer lives an hour at the edge, whatever the origin says.
const RULES: &str = r#"{ "rules": [ { "name": "all", "ttl_seconds": 3600 } ] }"#;

/// How long the origin takes to answer `/slow`: long enough to send a
/// SIGHUP and see the reload taken while it is in flight.
const SLOW: Duration = Duration::from_millis(2500);

/// Concurrent clients of the load.
const CLIENTS: usize = 8;

/// An origin answering every GET with `from {name}`, `/slow` after [`SLOW`].
async fn origin(name: &str) -> MockServer {
    let origin = MockServer::start().await;
    let answer = ResponseTemplate::new(200)
        .set_body_string(format!("from {name}"))
        .insert_header("cache-control", "public, max-age=3600");
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(answer.clone().set_delay(SLOW))
        .with_priority(1)
        .mount(&origin)
        .await;
    Mock::given(method("GET"))
        .respond_with(answer)
        .mount(&origin)
        .await;
    origin
}

/// The runtime config an edge starts with: the component's `default`
/// store and a second store it lists, both in memory.
const STORES: &str = "[key_value_store.default]\ntype = \"memory\"\n\
                      [key_value_store.spare]\ntype = \"memory\"\n";

/// A manifest serving the built edge-cache component with the two stores,
/// its origin from the `origin_url` variable, its rules mounted.
fn write_app(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/cache-rules.json"), RULES).unwrap();
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2
[application]
name = "reload-test"
[variables]
origin_url = {{ required = true }}
[[trigger.http]]
route = "/..."
component = "edge-cache"
[component.edge-cache]
source = {source:?}
allowed_outbound_hosts = ["{{{{ origin_url }}}}"]
key_value_stores = ["default", "spare"]
files = [{{ source = "rules", destination = "/rules" }}]
[component.edge-cache.variables]
origin_url = "{{{{ origin_url }}}}"
cache_rules = "/rules/cache-rules.json"
"#,
            source = component_path().display().to_string()
        ),
    )
    .unwrap();
    manifest
}

/// `target/debug/edge-host`, built once per test process from the sources
/// under test (only its link is new work after the test build).
fn edge_host_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "edge-host", "--bin", "edge-host"])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "edge-host builds");
        workspace_root().join("target/debug/edge-host")
    })
}

/// A running `edge-host up` process, killed when dropped.
struct EdgeProcess {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    /// Every line it has written to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl EdgeProcess {
    /// Starts `edge-host up` on ephemeral ports with `args`, and waits
    /// for its own word that it serves.
    async fn start(dir: &Path, args: &[&str]) -> EdgeProcess {
        let binary = edge_host_binary();
        let mut child = Command::new(binary)
            .arg("up")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .env("EDGE_HOST_CACHE_DIR", compilation_cache())
            .env("RUST_LOG", "info,wasmtime_wasi_http=warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("edge-host starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines, said) = mpsc::channel::<String>();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = lines.send(line);
                }
            });
        }
        // Its start-up lines name the ports it took.
        let (addr, metrics) = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let (mut addr, mut metrics) = (None, None);
            while addr.is_none() || metrics.is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = said
                    .recv_timeout(left)
                    .expect("edge-host says where it serves within two minutes");
                if let Some(rest) = line.strip_prefix("edge-host: metrics on http://") {
                    metrics = rest.split('/').next().and_then(|a| a.parse().ok());
                }
                if line.starts_with("edge-host: serving") {
                    addr = line.rsplit("://").next().and_then(|a| a.parse().ok());
                }
                assert!(!line.starts_with("edge-host: error"), "{line}");
            }
            (addr.unwrap(), metrics.unwrap())
        })
        .await
        .unwrap();
        EdgeProcess {
            child,
            addr,
            metrics,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends it a real SIGHUP.
    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "the signal is sent");
    }

    /// The latest reload record of each part, from `/status.json`.
    async fn reloads(&self) -> Vec<serde_json::Value> {
        let url = format!("http://{}/status.json", self.metrics);
        let text = reqwest::get(&url)
            .await
            .expect("the status page answers")
            .text()
            .await
            .expect("status.json is read");
        let status: serde_json::Value = serde_json::from_str(&text).expect("status.json is JSON");
        status["reloads"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `/status.json` until `done` holds of its reload records, for
    /// at most half a minute; the records it holds of.
    async fn reloads_until(
        &self,
        what: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reloads = self.reloads().await;
            if done(&reloads) {
                return reloads;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not in /status.json after 30 s: {reloads:#?}\nlog:\n{}",
                self.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `edge_native_hits_total` from `/metrics`: hits answered without
    /// the component.
    async fn native_hits(&self) -> u64 {
        let url = format!("http://{}/metrics", self.metrics);
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("edge_native_hits_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The record of `part` in `reloads`.
fn part<'a>(reloads: &'a [serde_json::Value], part: &str) -> Option<&'a serde_json::Value> {
    reloads.iter().find(|r| r["part"] == part)
}

/// A `GET` through the edge: status, whether it was a hit, body.
async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, bool, String), String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let hit = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("; hit"));
    let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    Ok((status, hit, body))
}

/// Concurrent clients asking for a hit and fresh misses, without pause,
/// until stopped; every failure (an error or a status other than 200) is
/// kept.
struct Load {
    stop: Arc<AtomicBool>,
    answered: tokio::sync::watch::Receiver<u64>,
    failures: Arc<Mutex<Vec<String>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(edge: &EdgeProcess) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (count, answered) = tokio::sync::watch::channel(0u64);
        let count = Arc::new(count);
        let failures = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..CLIENTS)
            .map(|client| {
                let (stop, count, failures) = (stop.clone(), count.clone(), failures.clone());
                let (hot, base) = (edge.url("/hot"), edge.url(&format!("/load/{client}/")));
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let url = if n.is_multiple_of(4) {
                            format!("{base}{n}")
                        } else {
                            hot.clone()
                        };
                        match get(&http, &url).await {
                            Ok((200, _, _)) => {}
                            Ok((status, _, body)) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{url}: {status} {body}")),
                            Err(error) => failures.lock().unwrap().push(error),
                        }
                        count.send_modify(|answered| *answered += 1);
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            failures,
            clients,
        }
    }

    /// Waits until `more` requests beyond those answered now have their
    /// answer: the load went on across what just happened.
    async fn answers(&mut self, more: u64) {
        let target = *self.answered.borrow() + more;
        tokio::time::timeout(
            Duration::from_secs(60),
            self.answered.wait_for(|n| *n >= target),
        )
        .await
        .expect("the load goes on")
        .expect("the load's clients run");
    }

    /// Stops the clients; every failure they saw.
    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
        let answered = *self.answered.borrow();
        let failures = self.failures.lock().unwrap().clone();
        (answered, failures)
    }
}

/// Waits until `origin` has received a request for `/slow`: it is in
/// flight. wiremock offers no notification, so this polls, bounded.
async fn in_flight_at(origin: &MockServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let requests = origin.received_requests().await.unwrap_or_default();
        if requests.iter().any(|r| r.url.path() == "/slow") {
            return;
        }
        assert!(Instant::now() < deadline, "/slow never reached the origin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An edge started from a variables file naming `origin` and [`STORES`]:
/// the files to edit, and the edge.
async fn edge_for(dir: &Path, origin: &MockServer) -> (PathBuf, PathBuf, EdgeProcess) {
    let manifest = write_app(dir);
    let variables = dir.join("variables.toml");
    std::fs::write(&variables, format!("origin_url = {:?}\n", origin.uri())).unwrap();
    let runtime_config = dir.join("runtime-config.toml");
    std::fs::write(&runtime_config, STORES).unwrap();
    let edge = EdgeProcess::start(
        dir,
        &[
            "--from",
            manifest.to_str().unwrap(),
            "--runtime-config-file",
            runtime_config.to_str().unwrap(),
            "--variable",
            &format!("@{}", variables.display()),
        ],
    )
    .await;
    (variables, runtime_config, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_good_reload_under_load_takes_the_new_origin_and_stores_and_fails_no_request() {
    let (a, b) = (origin("A").await, origin("B").await);
    let dir = tempfile::tempdir().unwrap();
    let (variables, runtime_config, edge) = edge_for(dir.path(), &a).await;
    let http = reqwest::Client::new();
    assert_eq!(
        get(&http, &edge.url("/hot")).await.unwrap(),
        (200, false, "from A".into())
    );
    assert_eq!(
        get(&http, &edge.url("/hot")).await.unwrap(),
        (200, true, "from A".into())
    );

    let mut load = Load::start(&edge);
    load.answers(100).await;
    // A request the old configuration has in flight across the reload.
    let slow = {
        let url = edge.url("/slow");
        tokio::spawn(async move { get(&reqwest::Client::new(), &url).await })
    };
    in_flight_at(&a).await;

    std::fs::write(&variables, format!("origin_url = {:?}\n", b.uri())).unwrap();
    let spare = dir.path().join("spare.db");
    std::fs::write(
        &runtime_config,
        format!(
            "{}[key_value_store.spare]\ntype = \"spin\"\npath = {:?}\n\
             [key_value_store.added]\ntype = \"memory\"\n",
            "[key_value_store.default]\ntype = \"memory\"\n",
            spare.display().to_string()
        ),
    )
    .unwrap();
    edge.hang_up();
    let reloads = edge
        .reloads_until("the three parts' records", |r| {
            ["variables", "runtime-config", "rules"]
                .iter()
                .all(|p| part(r, p).is_some())
        })
        .await;
    let variables = part(&reloads, "variables").unwrap();
    assert_eq!(variables["applied"], true, "{reloads:#?}");
    let said = variables["message"].as_str().unwrap();
    assert!(said.contains("origin_url changed"), "{said}");
    assert!(!said.contains(&b.uri()), "a value is never shown: {said}");
    let stores = part(&reloads, "runtime-config").unwrap();
    assert_eq!(stores["applied"], true, "{reloads:#?}");
    let said = stores["message"].as_str().unwrap();
    assert!(said.contains("store `default` kept"), "{said}");
    assert!(said.contains("store `spare` opened anew (spin"), "{said}");
    assert!(said.contains("store `added`"), "{said}");
    assert!(spare.exists(), "the changed store was opened");
    assert_eq!(
        part(&reloads, "rules").unwrap()["applied"],
        true,
        "{reloads:#?}"
    );

    // New requests see the new origin; the entry stored before, in the
    // memory store the reload kept, is still a hit.
    assert_eq!(
        get(&http, &edge.url("/after")).await.unwrap(),
        (200, false, "from B".into())
    );
    assert_eq!(
        get(&http, &edge.url("/hot")).await.unwrap(),
        (200, true, "from A".into())
    );
    // The request in flight finished with the configuration it began with.
    let slow = slow
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(slow, (200, false, "from A".into()));
    assert!(
        b.received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.url.path() != "/slow"),
        "the request in flight never went to the new origin"
    );

    load.answers(200).await;
    let (answered, failures) = load.stop().await;
    eprintln!("{answered} requests under load across the reload");
    assert!(
        failures.is_empty(),
        "{} of {answered} failed: {failures:#?}",
        failures.len()
    );
    let log = edge.log().join("\n");
    assert!(
        log.contains("reload: variables: origin_url changed"),
        "{log}"
    );
    assert!(log.contains("reload: runtime-config: "), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_reload_under_load_keeps_the_old_configuration_and_fails_no_request() {
    let (a, b) = (origin("A").await, origin("B").await);
    let dir = tempfile::tempdir().unwrap();
    let (variables, runtime_config, edge) = edge_for(dir.path(), &a).await;
    let http = reqwest::Client::new();
    get(&http, &edge.url("/hot")).await.unwrap();
    assert_eq!(
        get(&http, &edge.url("/hot")).await.unwrap(),
        (200, true, "from A".into())
    );
    // What the last step proves needs the native path in use: the
    // component's core must be the one edge-host links.
    let mut load = Load::start(&edge);
    load.answers(100).await;
    assert!(
        edge.native_hits().await > 0,
        "no native hits: rebuild the components with `make wasm`\n{}",
        edge.log().join("\n")
    );

    std::fs::remove_file(&variables).unwrap();
    std::fs::write(
        &runtime_config,
        "[key_value_store.default\ntype = \"memory\"\n",
    )
    .unwrap();
    edge.hang_up();
    let reloads = edge
        .reloads_until("both refusals", |r| {
            part(r, "variables").is_some() && part(r, "runtime-config").is_some()
        })
        .await;
    let refused = |name: &str| {
        let record = part(&reloads, name).unwrap();
        assert_eq!(record["applied"], false, "{reloads:#?}");
        record["message"].as_str().unwrap().to_owned()
    };
    let said = refused("variables");
    assert!(said.contains(&variables.display().to_string()), "{said}");
    assert!(said.contains("no such file"), "{said}");
    let said = refused("runtime-config");
    assert!(
        said.contains(&runtime_config.display().to_string()),
        "{said}"
    );
    assert!(!said.contains("Error"), "in words, not a type name: {said}");

    // The old configuration serves on: the old origin, the old store.
    assert_eq!(
        get(&http, &edge.url("/during")).await.unwrap(),
        (200, false, "from A".into())
    );
    assert_eq!(
        get(&http, &edge.url("/hot")).await.unwrap(),
        (200, true, "from A".into())
    );
    load.answers(200).await;
    let log = edge.log().join("\n");
    assert!(
        log.contains("reload: variables: not taken, serving on with the previous variables"),
        "{log}"
    );

    // A fix and another SIGHUP: taken. The fix also resizes the memory
    // store, so it is opened anew, empty: `/hot` is then the new origin's,
    // filled again through the component, never the old store's entry
    // answered natively by a lane that kept its node.
    std::fs::write(&variables, format!("origin_url = {:?}\n", b.uri())).unwrap();
    std::fs::write(
        &runtime_config,
        STORES.replace(
            "type = \"memory\"\n[key_value_store.spare]",
            "type = \"memory\"\ncapacity_bytes = 33554432\n[key_value_store.spare]",
        ),
    )
    .unwrap();
    edge.hang_up();
    let reloads = edge
        .reloads_until("the fix taken", |r| {
            ["variables", "runtime-config"]
                .iter()
                .all(|p| part(r, p).is_some_and(|record| record["applied"] == true))
        })
        .await;
    let said = part(&reloads, "runtime-config").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        said.contains("store `default` opened anew (memory, 33554432 bytes)"),
        "{said}"
    );
    assert_eq!(
        get(&http, &edge.url("/fixed")).await.unwrap(),
        (200, false, "from B".into())
    );
    // The load asks for `/hot` all the time: a hit or a miss, but from B.
    for _ in 0..CLIENTS * 4 {
        let (status, _, body) = get(&http, &edge.url("/hot")).await.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "from B"),
            "no answer from the old store"
        );
    }
    load.answers(100).await;
    let (answered, failures) = load.stop().await;
    eprintln!("{answered} requests under load across the reload");
    assert!(
        failures.is_empty(),
        "{} of {answered} failed: {failures:#?}",
        failures.len()
    );
}

/// In process, through `App::reload` (what SIGHUP calls): a WASI 0.3
/// instance made before a reload that changed its component's variables,
/// idle, retires at once rather than at its idle timeout (30 s here),
/// giving back its pool slot and memory; the next request gets a new one.
#[tokio::test]
async fn an_idle_instance_made_before_a_reload_retires_at_once() {
    let a = origin("A").await;
    let setup = EdgeSetup::origin(&a.uri())
        .component_only()
        .flavour(Flavour::P3)
        .reuse(reuse(100, 4));
    let edge = Edge::start(setup).await.expect("edge starts");
    assert_eq!(edge.fetch("/one").await.unwrap().status, 200);
    let before = edge.instance_stats();
    assert_eq!((before.created, before.ended), (1, 0));

    let environment = vec![("SPIN_VARIABLE_PURGE_TOKEN".to_owned(), "s3cr3t".to_owned())];
    let report = edge.app().reload(environment, &|_| Ok(()));
    let said = report.variables.expect("the new token is taken");
    assert!(said.contains("purge_token changed"), "{said}");
    assert!(!said.contains("s3cr3t"), "a value is never shown: {said}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.instance_stats().ended == 0 {
        assert!(
            Instant::now() < deadline,
            "the old idle instance did not retire"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = edge.instance_stats();
    assert_eq!((after.ended, after.failed), (1, 0), "retired, not failed");
    assert_eq!(edge.fetch("/two").await.unwrap().status, 200);
    assert_eq!(
        edge.instance_stats().created,
        2,
        "a new instance for the new values"
    );
}
