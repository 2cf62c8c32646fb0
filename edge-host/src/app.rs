//! Loading an application: manifest + runtime config + variables → compiled,
//! pre-instantiated components behind a router. Every check a request would
//! otherwise fail on late happens here, once, with a message naming the file
//! and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::handler::{self, ProxyHandler};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub use crate::executor::Flavour;
use crate::executor::reuse::{ComponentHandler, ReuseOptions};
use crate::executor::{Serving, ServingComponent};
use crate::files::FileMounts;
use crate::instance::engine::{
    DEFAULT_MAX_INSTANCES, default_cache_dir, load_component, new_engine,
};
use crate::instance::limits::{EpochTicker, InstanceLimits};
use crate::instance::{self, ComponentContext};
use crate::key_value::{AppStores, StoreOverrides, StoreSetupError};
use crate::manifest::{ComponentDoc, Manifest, RouteDoc, SourceDoc};
use crate::observe::instances::{InstanceCounters, InstanceStats};
use crate::outbound_http::{AllowedHosts, OriginPool, PoolOptions};
use crate::reload::Loaded;
use crate::reload::live::LiveContext;
use crate::routes::{RoutePattern, Router};
use crate::runtime_config::RuntimeConfig;
use crate::variables::{
    ComponentVariables, VariableProviders, render_template, resolve_application_variables,
};

/// How to load an application (the `edge-host up` flags, as data).
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// `spin.toml`, or a directory containing one.
    pub manifest: PathBuf,
    /// A Spin-format `runtime-config.toml`.
    pub runtime_config: Option<PathBuf>,
    /// `--variable NAME=VALUE` flags.
    pub variables: Vec<String>,
    /// The environment to read `SPIN_VARIABLE_*` from.
    pub environment: Vec<(String, String)>,
    /// Where compiled components are cached (default: [`default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// Maximum concurrent instances (default: [`DEFAULT_MAX_INSTANCES`]).
    pub max_instances: Option<u32>,
    /// Per-request wall-clock and per-instance memory limits (default:
    /// [`InstanceLimits::default`]).
    pub limits: Option<InstanceLimits>,
    /// How WASI 0.3 instances are reused (default: Spin's,
    /// [`ReuseOptions::default`]).
    pub reuse: Option<ReuseOptions>,
    /// Store backends supplied by the embedder instead of the runtime
    /// config's (tests inject faults this way).
    pub store_overrides: StoreOverrides,
    /// How connections to origins are pooled (default:
    /// [`PoolOptions::default`]).
    pub origin_pool: Option<PoolOptions>,
    /// Whether an edge-cache component's requests without a body are
    /// answered natively, without entering Wasm (`native_hits`;
    /// `edge-host up` turns it on unless `--no-native-hits`).
    pub native_hits: bool,
}

/// A loaded application.
pub struct App {
    pub(crate) name: String,
    pub(crate) limits: InstanceLimits,
    /// Advances the engine's epoch so running guests yield; stops with the
    /// app.
    _ticker: EpochTicker,
    pub(crate) router: Router<usize>,
    pub(crate) components: Vec<ServingComponent>,
    /// What it was loaded from, as the latest reload left it: what a
    /// reload reads again and compares with ([`crate::reload`]).
    pub(crate) loaded: Mutex<Loaded>,
}

impl App {
    /// Loads, checks and compiles the application.
    pub fn load(options: &AppOptions) -> anyhow::Result<App> {
        App::load_for_lanes(options, 1)
    }

    /// Loads the application for `lanes` serving threads (see `lanes`):
    /// each WASI 0.3 component gets a set of instances per lane.
    pub fn load_for_lanes(options: &AppOptions, lanes: usize) -> anyhow::Result<App> {
        let manifest_path = if options.manifest.is_dir() {
            options.manifest.join("spin.toml")
        } else {
            options.manifest.clone()
        };
        let manifest = Manifest::load(&manifest_path)?;
        let runtime_config = match &options.runtime_config {
            Some(path) => RuntimeConfig::load(path).map_err(|e| anyhow!(e))?,
            None => RuntimeConfig::default(),
        };
        let providers = VariableProviders::new(&options.variables, options.environment.clone())?;
        let app_variables = resolve_application_variables(&manifest.doc.variables, &providers)
            .map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
        // What Spin checks allowed_outbound_hosts templates with at load time.
        let variable_defaults: BTreeMap<String, String> = manifest
            .doc
            .variables
            .iter()
            .filter_map(|(name, doc)| Some((name.clone(), doc.default.clone()?)))
            .collect();

        let max_instances = options.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        let limits = options.limits.unwrap_or_default();
        let engine = new_engine(max_instances, limits.max_memory_bytes)?;
        let linker = instance::linker(&engine)?;
        let reuse = options.reuse.unwrap_or_default();
        let origin_pool = OriginPool::new(options.origin_pool.unwrap_or_default());

        let cache_dir = options.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let mut app_stores = AppStores::new(
            runtime_config.key_value.clone(),
            options.store_overrides.clone(),
        );
        let mut component_index = BTreeMap::new();
        let mut components = Vec::new();
        for (id, doc) in &manifest.doc.component {
            let at = |field: &str| format!("{}: component.{id}.{field}", manifest_path.display());
            for template in &doc.allowed_outbound_hosts {
                let rendered = render_template(template, &variable_defaults, "").ok();
                AllowedHosts::check_template(template, rendered.as_deref())
                    .map_err(|e| anyhow!("{}: component.{id}.{e}", manifest_path.display()))?;
            }
            let (variables, allowed_hosts) =
                render_component(&manifest_path, id, doc, &app_variables)?;

            let key_value =
                app_stores
                    .for_component(&doc.key_value_stores)
                    .map_err(|e| match e {
                        StoreSetupError::Undefined(_) => anyhow!("{}: {e}", at("key_value_stores")),
                        StoreSetupError::Open(_) => anyhow!(e),
                    })?;

            let files =
                FileMounts::resolve(&manifest.dir, &doc.files, &cache_dir.join("files").join(id))
                    .with_context(|| at("files"))?;

            let SourceDoc::Local(source) = &doc.source else {
                bail!("{}: remote sources are not supported", at("source"));
            };
            let wasm_path = manifest.dir.join(source);
            if !wasm_path.exists() {
                bail!(
                    "{}: {} does not exist (build it first: make wasm)",
                    at("source"),
                    wasm_path.display()
                );
            }
            let component = load_component(&engine, &wasm_path, &cache_dir)?;
            let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
                anyhow!(e).context(format!(
                    "component `{id}` imports something this host does not provide"
                ))
            })?;
            let context = Arc::new(LiveContext::new(ComponentContext {
                id: Arc::from(id.as_str()),
                variables,
                key_value,
                allowed_hosts: Arc::new(allowed_hosts),
                origin_pool: origin_pool.clone(),
                files,
                environment: doc.environment.clone(),
            }));
            let native = match options.native_hits {
                true => crate::native_hits::NativeHits::for_component(
                    &std::fs::read(&wasm_path)
                        .with_context(|| format!("reading component {}", wasm_path.display()))?,
                    context.clone(),
                ),
                false => None,
            };
            let stats = Arc::new(InstanceCounters::default());
            // The flavour is what the component exports: WASI 0.3's handler
            // if it has one, else WASI 0.2's.
            let serving = match ServicePre::new(instance_pre.clone()) {
                Ok(service) => {
                    let handler = ComponentHandler::new(
                        context.clone(),
                        handler::ProxyPre::P3(service),
                        engine.clone(),
                        limits,
                        reuse,
                        stats.clone(),
                    );
                    Serving::P3 {
                        handlers: (0..lanes.max(1))
                            .map(|_| ProxyHandler::new(handler.clone()))
                            .collect(),
                        // Never more requests in flight than instances the
                        // pool holds: even if each took its own instance
                        // (all of them busy computing), none would fail to
                        // get one for want of a slot.
                        permits: Semaphore::new(max_instances as usize),
                    }
                }
                Err(_) => Serving::P2 {
                    pre: ProxyPre::new(instance_pre).map_err(|e| {
                        anyhow!(e).context(format!(
                            "component `{id}` exports neither wasi:http/handler@0.3.0 \
                             nor wasi:http/incoming-handler@0.2"
                        ))
                    })?,
                    permits: Arc::new(Semaphore::new(max_instances as usize)),
                },
            };
            tracing::debug!(
                component = id.as_str(),
                "serving as {}",
                match serving {
                    Serving::P2 { .. } => "WASI 0.2: an instance per request",
                    Serving::P3 { .. } => "WASI 0.3: instances reused",
                }
            );

            component_index.insert(id.clone(), components.len());
            components.push(ServingComponent {
                context,
                serving,
                stats,
                native,
            });
        }

        let routes = manifest
            .doc
            .trigger
            .http
            .iter()
            .filter_map(|trigger| match &trigger.route {
                RouteDoc::Path(route) => Some((
                    RoutePattern::parse(route),
                    component_index[&trigger.component],
                )),
                RouteDoc::Private { .. } => None,
            })
            .collect();
        let app = App {
            name: manifest.doc.application.name.clone(),
            limits,
            _ticker: EpochTicker::start(&engine),
            router: Router::new(routes),
            components,
            loaded: Mutex::new(Loaded {
                manifest_path,
                manifest,
                runtime_config: options.runtime_config.clone(),
                variable_flags: options.variables.clone(),
                app_variables,
                stores: app_stores,
            }),
        };
        // With metrics on, its instances are reported as its stores are.
        if let Some(metrics) = crate::observe::metrics::get() {
            metrics.report_instances(app.instance_counters());
        }
        Ok(app)
    }

    /// The application variables its components were last configured
    /// with (at load, or by the latest reload that took new ones).
    pub fn application_variables(&self) -> BTreeMap<String, String> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .app_variables
            .clone()
    }

    /// The application's `trusted_proxy_hops` variable (edge-cache's: how
    /// many proxies in front of the edge are believed), 0 when unset or not
    /// a number: what the access log takes the client's address by.
    pub fn trusted_proxy_hops(&self) -> usize {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .app_variables
            .get("trusted_proxy_hops")
            .and_then(|hops| hops.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The application's name from the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the component `id` is served, if the manifest has it.
    pub fn flavour(&self, id: &str) -> Option<Flavour> {
        self.components
            .iter()
            .find(|component| &*component.context.id == id)
            .map(ServingComponent::flavour)
    }

    /// The counters of every component's instances.
    pub(crate) fn instance_counters(&self) -> impl Iterator<Item = Arc<InstanceCounters>> + '_ {
        self.components
            .iter()
            .map(|component| component.stats.clone())
    }

    /// What the instances of every component have done so far.
    pub fn instance_stats(&self) -> InstanceStats {
        self.components
            .iter()
            .map(|component| component.stats.snapshot())
            .fold(InstanceStats::default(), |sum, stats| sum + stats)
    }
}

/// A component's variables and `allowed_outbound_hosts`, rendered over the
/// application's variables; errors name the manifest field. At load and
/// again on each reload.
pub(crate) fn render_component(
    manifest_path: &Path,
    id: &str,
    doc: &ComponentDoc,
    app_variables: &BTreeMap<String, String>,
) -> anyhow::Result<(ComponentVariables, AllowedHosts)> {
    let at = |field: &str| format!("{}: component.{id}.{field}", manifest_path.display());
    let variables = ComponentVariables::render(&doc.variables, app_variables, &at("variables"))?;
    let hosts = doc
        .allowed_outbound_hosts
        .iter()
        .map(|template| render_template(template, app_variables, &at("allowed_outbound_hosts")))
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_hosts = AllowedHosts::parse(&hosts)
        .map_err(|e| anyhow!("{}: component.{id}.{e}", manifest_path.display()))?;
    Ok((variables, allowed_hosts))
}
