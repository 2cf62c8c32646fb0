//! A running edge: the real compiled edge-cache component (or any other
//! application) in edge-host on a loopback port, and what a `GET` through
//! it returned.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use edge_host::access_log::LogFormat;
use edge_host::key_value::StoreOverrides;
use edge_host::observability::{ObservabilityFlags, Observer};
use edge_host::{
    App, AppOptions, Flavour, InstanceLimits, InstanceStats, ReuseOptions, ServerOptions,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::FaultyStore;
use crate::components::{compilation_cache, component_path_for, default_flavour};

/// An edge in front of `origin` with every default; fails the test if it
/// does not start.
pub async fn edge_for(origin: &wiremock::MockServer) -> Edge {
    Edge::start(EdgeSetup::origin(&origin.uri()))
        .await
        .expect("edge starts")
}

/// [`edge_for`] whose every [`Edge::fetch_with`] is checked against the
/// decision explainer ([`EdgeSetup::explained`]).
pub async fn explained_edge_for(origin: &wiremock::MockServer) -> Edge {
    Edge::start(EdgeSetup::origin(&origin.uri()).explained())
        .await
        .expect("edge starts")
}

/// An edge in front of `origin` whose purge API takes `token`; fails the
/// test if it does not start.
pub async fn purge_edge(origin: &wiremock::MockServer, token: &str) -> Edge {
    Edge::start(EdgeSetup::origin(&origin.uri()).variable("purge_token", token))
        .await
        .expect("edge starts")
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
    /// Whether each `fetch_with` is checked against the explainer
    /// ([`EdgeSetup::explained`]).
    explained: bool,
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
    /// Whether fresh hits are answered natively (default:
    /// [`default_native_hits`](crate::components::default_native_hits)).
    pub native_hits: Option<bool>,
    /// Whether the explainer's prediction is checked on every
    /// [`Edge::fetch_with`] ([`EdgeSetup::explained`]).
    pub explained: bool,
}

impl EdgeSetup {
    /// An edge whose origin is `origin_url`.
    pub fn origin(origin_url: &str) -> Self {
        EdgeSetup {
            variables: vec![format!("origin_url={origin_url}")],
            ..Default::default()
        }
    }

    /// Gives the edge the purge token [`EXPLAIN_TOKEN`](crate::EXPLAIN_TOKEN)
    /// and checks, on every [`Edge::fetch_with`] without its own
    /// `Authorization`, that the answer's `Cache-Status` is what the
    /// decision explainer predicted just before ([`crate::explained`]).
    pub fn explained(mut self) -> Self {
        self.explained = true;
        self.variable("purge_token", crate::EXPLAIN_TOKEN)
    }

    /// Sends every request to the component, fresh hits too: for tests of
    /// how the component's instances serve.
    pub fn component_only(mut self) -> Self {
        self.native_hits = Some(false);
        self
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
    /// per process ([`ran_in_own_process`](crate::ran_in_own_process)).
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

    /// Serves HTTPS with the certificate and key in `cert` and `key` (PEM
    /// files), as `--tls-cert` and `--tls-key` do.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.server.tls = Some(
            edge_host::net::tls::TlsTermination::load(cert, key)
                .expect("the test certificate and key load"),
        );
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
            cache_dir: Some(compilation_cache()),
            max_instances: Some(64),
            limits: setup.limits,
            reuse: setup.reuse,
            store_overrides: setup.store_overrides.clone(),
            origin_pool: None,
            native_hits: setup
                .native_hits
                .unwrap_or_else(crate::components::default_native_hits),
        };
        let observer = setup.observability.start().await?;
        let mut edge = match setup.lanes {
            Some(lanes) => Edge::serve_app_in_lanes(options, workdir, setup.server, lanes).await?,
            None => Edge::serve_app_with(options, workdir, setup.listen, setup.server).await?,
        };
        edge.observe(observer);
        edge.explained = setup.explained;
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
            explained: false,
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
        let checked = self.explained
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        let prediction = match checked {
            true => Some(crate::explained::prediction_of(
                &crate::explained::explain(&self.url(""), path, headers).await?,
            )),
            false => None,
        };
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
        if let Some(prediction) = &prediction {
            crate::explained::assert_agrees(prediction, path, &cache_status);
        }
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

    /// The host file mounted as `/rules/cache-rules.json` ([`EdgeSetup::rules`]),
    /// to edit while the edge runs.
    pub fn rules_file(&self) -> std::path::PathBuf {
        self._workdir.path().join("rules/cache-rules.json")
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
chunk_bytes = {{ default = "524288" }}
hosts = {{ default = "" }}
forward_host = {{ default = "false" }}
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
chunk_bytes = "{{{{ chunk_bytes }}}}"
hosts = "{{{{ hosts }}}}"
forward_host = "{{{{ forward_host }}}}"
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
