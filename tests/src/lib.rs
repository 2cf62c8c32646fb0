//! Test harness: runs the real compiled edge-cache component inside
//! edge-host on a loopback port.
//!
//! The component is built once by `make wasm` (which `make test` runs
//! first); edge-host's on-disk compilation cache means every test after the
//! first loads machine code instead of compiling.

mod faulty_store;
mod own_process;

pub use faulty_store::FaultyStore;
pub use own_process::ran_in_own_process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use edge_host::Flavour;
use edge_host::access_log::LogFormat;
use edge_host::key_value::StoreOverrides;
use edge_host::observability::{ObservabilityFlags, Observer};
use edge_host::{App, AppOptions, InstanceLimits, InstanceStats, ReuseOptions, ServerOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A manifest in a fresh workdir that serves the built component
/// `wasm_name` (as [`built_component`] names it) on every path as the
/// component `misbehaving`, and the options to run it with `limits`, at
/// most 16 instances and the shared compilation cache; a test changes
/// the rest with struct update. The workdir must outlive the app.
pub fn single_component_app(
    wasm_name: &str,
    app_name: &str,
    limits: InstanceLimits,
) -> (AppOptions, tempfile::TempDir) {
    let wasm = built_component(wasm_name);
    let workdir = tempfile::tempdir().expect("a temporary directory");
    let manifest = workdir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = {app_name:?}\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"misbehaving\"\n\
             [component.misbehaving]\nsource = {:?}\n",
            wasm.display().to_string()
        ),
    )
    .expect("the manifest is written");
    let options = AppOptions {
        manifest,
        cache_dir: Some(workspace_root().join("target/edge-host-cache")),
        max_instances: Some(16),
        limits: Some(limits),
        ..Default::default()
    };
    (options, workdir)
}

/// A host-made 500: one short line, `internal error…(error id <16 hex>)`.
pub fn assert_short_with_error_id(body: &str) {
    let line = body.strip_suffix('\n').unwrap_or(body);
    assert!(!line.contains('\n'), "one line: {body}");
    assert!(line.len() < 120, "short: {body}");
    assert!(line.starts_with("internal error"), "{body}");
    let id = line
        .strip_suffix(')')
        .and_then(|l| l.rsplit_once("(error id "))
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("no error id: {body}"));
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
}

/// The flavour [`EdgeSetup`] runs unless a test names one: WASI 0.3
/// (instance reuse), or the one `EDGE_TEST_FLAVOUR` names (`p2` or `p3`).
/// `make test` runs the suite in both: every behaviour test proves both
/// adapters.
pub fn default_flavour() -> Flavour {
    match std::env::var("EDGE_TEST_FLAVOUR").as_deref() {
        Ok("p2") => Flavour::P2,
        Ok("p3") | Err(_) => Flavour::P3,
        Ok(other) => panic!("EDGE_TEST_FLAVOUR must be p2 or p3, not `{other}`"),
    }
}

/// The built edge-cache component of [`default_flavour`]; panics with the
/// fix if it is missing.
pub fn component_path() -> PathBuf {
    component_path_for(default_flavour())
}

/// The built edge-cache component of `flavour` (`edge_cache_p2` or
/// `edge_cache_p3`); panics with the fix if it is missing.
pub fn component_path_for(flavour: Flavour) -> PathBuf {
    built_component(match flavour {
        Flavour::P2 => "edge_cache_p2",
        Flavour::P3 => "edge_cache_p3",
    })
}

/// `target/wasm32-wasip2/release/{name}.wasm`, built by `make wasm`;
/// panics with the fix if it is missing.
pub fn built_component(name: &str) -> PathBuf {
    let path = workspace_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build it with `make wasm` (make test does this)",
        path.display()
    );
    path
}

/// What a `GET` through the edge returned.
#[derive(Debug)]
pub struct Fetched {
    /// Status code.
    pub status: u16,
    /// The `Cache-Status` field ("" if absent).
    pub cache_status: String,
    /// All response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Fetched {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the edge answered from its store (`Cache-Status: …; hit`).
    pub fn hit(&self) -> bool {
        self.cache_status.contains("; hit")
    }
}

/// A running edge on 127.0.0.1, stopped when dropped.
pub struct Edge {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its metrics and status page are, with [`EdgeSetup::metrics`].
    pub metrics_addr: Option<SocketAddr>,
    app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _workdir: tempfile::TempDir,
}

/// What to start an edge with.
#[derive(Debug, Clone, Default)]
pub struct EdgeSetup {
    /// `--variable NAME=VALUE` flags.
    pub variables: Vec<String>,
    /// Environment for `SPIN_VARIABLE_*`.
    pub environment: Vec<(String, String)>,
    /// Overrides the manifest's `allowed_outbound_hosts` (default: the
    /// `origin_url` template, as in `spin.toml`).
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// A cache rules file (JSON) mounted at `/rules/cache-rules.json`.
    pub rules: Option<String>,
    /// Per-request limits (default: edge-host's).
    pub limits: Option<InstanceLimits>,
    /// Store backends to use instead of the default in-memory one.
    pub store_overrides: StoreOverrides,
    /// A Spin runtime config (TOML), e.g. a `type = "spin"` store whose
    /// file outlives the edge.
    pub runtime_config: Option<String>,
    /// Where to listen (default: an ephemeral loopback port); lets a
    /// restarted edge come back where its clients expect it.
    pub listen: Option<SocketAddr>,
    /// How the server treats clients (body limit, timeouts, connection cap).
    pub server: ServerOptions,
    /// Which edge-cache component runs (default: [`default_flavour`]).
    pub flavour: Option<Flavour>,
    /// How WASI 0.3 instances are reused (default: edge-host's, Spin's).
    pub reuse: Option<ReuseOptions>,
    /// Metrics listener and access log (`--metrics-listen`, `--access-log`).
    pub observability: ObservabilityFlags,
    /// Serving lanes, as `edge-host up` runs them (`--serving-threads`);
    /// default: one runtime, the test's own.
    pub lanes: Option<usize>,
}

impl EdgeSetup {
    /// An edge whose origin is `origin_url`.
    pub fn origin(origin_url: &str) -> Self {
        EdgeSetup {
            variables: vec![format!("origin_url={origin_url}")],
            ..Default::default()
        }
    }

    /// Uses `json` as the cache rules file.
    pub fn rules(mut self, json: &str) -> Self {
        self.rules = Some(json.to_owned());
        self
    }

    /// Puts `store` under the component as its `default` store.
    pub fn store(mut self, store: &FaultyStore) -> Self {
        self.store_overrides
            .0
            .insert("default".to_owned(), Arc::new(store.clone()));
        self
    }

    /// Uses `toml` as the runtime config.
    pub fn runtime_config(mut self, toml: &str) -> Self {
        self.runtime_config = Some(toml.to_owned());
        self
    }

    /// Listens on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Adds a `--variable`.
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.push(format!("{name}={value}"));
        self
    }

    /// Runs the edge-cache component of `flavour`.
    pub fn flavour(mut self, flavour: Flavour) -> Self {
        self.flavour = Some(flavour);
        self
    }

    /// Serves metrics and the status page on an ephemeral loopback port
    /// ([`Edge::metrics_addr`]). Metrics are the process's: one such edge
    /// per process ([`ran_in_own_process`]).
    pub fn metrics(mut self) -> Self {
        self.observability.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        self
    }

    /// Writes the access log to `path` in `format`.
    pub fn access_log(mut self, path: &Path, format: LogFormat) -> Self {
        self.observability.access_log = Some(path.to_owned());
        self.observability.log_format = format;
        self
    }

    /// Serves from `lanes` threads of their own (see `edge_host::lanes`).
    pub fn lanes(mut self, lanes: usize) -> Self {
        self.lanes = Some(lanes);
        self
    }

    /// Reuses WASI 0.3 instances as `reuse` says.
    pub fn reuse(mut self, reuse: ReuseOptions) -> Self {
        self.reuse = Some(reuse);
        self
    }
}

impl Edge {
    /// Starts an edge with the repository's `spin.toml` semantics.
    pub async fn start(setup: EdgeSetup) -> anyhow::Result<Edge> {
        let workdir = tempfile::tempdir()?;
        let manifest = workdir.path().join("spin.toml");
        std::fs::create_dir_all(workdir.path().join("rules"))?;
        if let Some(rules) = &setup.rules {
            std::fs::write(workdir.path().join("rules/cache-rules.json"), rules)?;
        }
        std::fs::write(&manifest, test_manifest(&setup))?;
        let runtime_config = match &setup.runtime_config {
            Some(toml) => {
                let path = workdir.path().join("runtime-config.toml");
                std::fs::write(&path, toml)?;
                Some(path)
            }
            None => None,
        };
        let options = AppOptions {
            manifest,
            runtime_config,
            variables: setup.variables.clone(),
            environment: setup.environment.clone(),
            cache_dir: Some(workspace_root().join("target/edge-host-cache")),
            max_instances: Some(64),
            limits: setup.limits,
            reuse: setup.reuse,
            store_overrides: setup.store_overrides.clone(),
            origin_pool: None,
        };
        let observer = setup.observability.start().await?;
        let mut edge = match setup.lanes {
            Some(lanes) => Edge::serve_app_in_lanes(options, workdir, setup.server, lanes).await?,
            None => Edge::serve_app_with(options, workdir, setup.listen, setup.server).await?,
        };
        edge.observe(observer);
        Ok(edge)
    }

    /// Loads and serves any application; `workdir` (holding its files) lives
    /// as long as the edge.
    pub async fn serve_app(
        options: AppOptions,
        workdir: tempfile::TempDir,
    ) -> anyhow::Result<Edge> {
        Edge::serve_app_on(options, workdir, None).await
    }

    /// [`Edge::serve_app`] on `listen` (default: an ephemeral loopback
    /// port).
    pub async fn serve_app_on(
        options: AppOptions,
        workdir: tempfile::TempDir,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<Edge> {
        Edge::serve_app_with(options, workdir, listen, ServerOptions::default()).await
    }

    /// [`Edge::serve_app_on`] with `server` options.
    pub async fn serve_app_with(
        options: AppOptions,
        workdir: tempfile::TempDir,
        listen: Option<SocketAddr>,
        server: ServerOptions,
    ) -> anyhow::Result<Edge> {
        let app = Arc::new(tokio::task::spawn_blocking(move || App::load(&options)).await??);
        let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(edge_host::serve_with(
            app.clone(),
            listener,
            server,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Edge::running(addr, app, shutdown, task, workdir))
    }

    /// [`Edge::serve_app_with`] from `lanes` serving threads of their own
    /// (`edge_host::serve_in_lanes`), on an ephemeral loopback port.
    pub async fn serve_app_in_lanes(
        options: AppOptions,
        workdir: tempfile::TempDir,
        server: ServerOptions,
        lanes: usize,
    ) -> anyhow::Result<Edge> {
        let app = Arc::new(
            tokio::task::spawn_blocking(move || App::load_for_lanes(&options, lanes)).await??,
        );
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = stopped.await;
            let _ = stop.send(true);
        });
        let serving = app.clone();
        let task = tokio::task::spawn_blocking(move || {
            edge_host::serve_in_lanes(serving, listener, server, lanes, stopping)
        });
        Ok(Edge::running(addr, app, shutdown, task, workdir))
    }

    /// An edge serving `app` on `addr` in `task` until `shutdown` is sent.
    fn running(
        addr: SocketAddr,
        app: Arc<App>,
        shutdown: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
        workdir: tempfile::TempDir,
    ) -> Edge {
        Edge {
            addr,
            metrics_addr: None,
            app,
            shutdown: Some(shutdown),
            task: Some(task),
            _workdir: workdir,
        }
    }

    /// Reports on this edge's application through `observer` (started
    /// before the application loaded), and serves its metrics listener.
    pub fn observe(&mut self, observer: Observer) {
        self.metrics_addr = observer.metrics_addr();
        observer.serve(self.app.clone());
    }

    /// `GET path` through the edge.
    pub async fn fetch(&self, path: &str) -> anyhow::Result<Fetched> {
        self.fetch_with(path, &[]).await
    }

    /// `GET path` through the edge with extra request headers.
    pub async fn fetch_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Fetched> {
        let mut request = reqwest::Client::new().get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let cache_status = headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Fetched {
            status,
            cache_status,
            headers,
            body: response.bytes().await?.to_vec(),
        })
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The application being served.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// What its components' instances have done so far.
    pub fn instance_stats(&self) -> InstanceStats {
        self.app.instance_stats()
    }

    /// Stops accepting and waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The manifest the tests run: `spin.toml`'s shape with an absolute source.
fn test_manifest(setup: &EdgeSetup) -> String {
    let hosts = match &setup.allowed_outbound_hosts {
        Some(hosts) => hosts
            .iter()
            .map(|h| format!("{h:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        None => "\"{{ origin_url }}\"".to_owned(),
    };
    format!(
        r#"spin_manifest_version = 2
[application]
name = "edge-cache-test"
[variables]
origin_url = {{ required = true }}
origin_timeout_ms = {{ default = "10000" }}
origin_connect_timeout_ms = {{ default = "3000" }}
backup_origin_url = {{ default = "" }}
cache_rules = {{ default = "{rules}" }}
admin_path = {{ default = "/_edge" }}
purge_token = {{ default = "" }}
grace_seconds = {{ default = "0" }}
breaker_failures = {{ default = "5" }}
breaker_window_ms = {{ default = "10000" }}
breaker_cooldown_ms = {{ default = "5000" }}
origin_max_concurrent = {{ default = "0" }}
breaker_status_codes = {{ default = "" }}
trusted_proxy_hops = {{ default = "0" }}
l1_capacity_bytes = {{ default = "16777216" }}
[[trigger.http]]
route = "/..."
component = "edge-cache"
[component.edge-cache]
source = {source:?}
allowed_outbound_hosts = [{hosts}]
key_value_stores = ["default"]
files = [{{ source = "rules", destination = "/rules" }}]
[component.edge-cache.variables]
origin_url = "{{{{ origin_url }}}}"
origin_timeout_ms = "{{{{ origin_timeout_ms }}}}"
origin_connect_timeout_ms = "{{{{ origin_connect_timeout_ms }}}}"
backup_origin_url = "{{{{ backup_origin_url }}}}"
cache_rules = "{{{{ cache_rules }}}}"
admin_path = "{{{{ admin_path }}}}"
purge_token = "{{{{ purge_token }}}}"
grace_seconds = "{{{{ grace_seconds }}}}"
breaker_failures = "{{{{ breaker_failures }}}}"
breaker_window_ms = "{{{{ breaker_window_ms }}}}"
breaker_cooldown_ms = "{{{{ breaker_cooldown_ms }}}}"
origin_max_concurrent = "{{{{ origin_max_concurrent }}}}"
breaker_status_codes = "{{{{ breaker_status_codes }}}}"
trusted_proxy_hops = "{{{{ trusted_proxy_hops }}}}"
l1_capacity_bytes = "{{{{ l1_capacity_bytes }}}}"
"#,
        source = component_path_for(setup.flavour.unwrap_or_else(default_flavour))
            .display()
            .to_string(),
        rules = if setup.rules.is_some() {
            "/rules/cache-rules.json"
        } else {
            ""
        },
    )
}

/// An origin on a raw loopback socket, for answers no HTTP library would
/// give: each request head read (pipelined ones in order) is counted and
/// handed to `answer` with the connection, which writes what it likes and
/// gives the connection back to read the next request on, or `None` to
/// close it. Returns the origin's URL and the count.
pub async fn raw_origin<F, Fut>(answer: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<tokio::net::TcpStream>> + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (counter, answer) = (counter.clone(), answer.clone());
            tokio::spawn(async move {
                let mut stream = stream;
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        match answer(stream).await {
                            Some(kept) => stream = kept,
                            None => return,
                        }
                        continue;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, requests)
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until `origin` has received at least `n` requests: the signal for
/// work the edge does out of the client's sight (a refresh after the
/// response, a fetch in flight). wiremock offers no notification, so this
/// polls, and fails the test after a generous deadline.
pub async fn origin_requests_reach(origin: &wiremock::MockServer, n: usize) {
    for _ in 0..500 {
        if origin.received_requests().await.map_or(0, |r| r.len()) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("origin never saw {n} requests");
}

/// Runs `futures` concurrently (requests in flight together) and collects
/// their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs = Vec::with_capacity(set.len());
    // One task polls them all on every wake-up, so their I/O overlaps as
    // if each had its own task.
    let results = std::future::poll_fn(|context| {
        let mut pending = false;
        for (slot, future) in set.iter_mut().enumerate() {
            if outputs.len() <= slot {
                outputs.resize_with(slot + 1, || None);
            }
            if outputs[slot].is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => outputs[slot] = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    });
    results.await;
    outputs.into_iter().map(|o| o.expect("done")).collect()
}
