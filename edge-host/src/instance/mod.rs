//! Component instances: how they are compiled, what each is given, and
//! what bounds it.
//!
//! - [`engine`]: the wasmtime engine and the on-disk cache of compiled components.
//! - [`limits`]: each instance's time and memory limits.
//! - [`guest_log`]: the guest's stdout and stderr, line by line into the host log.
//!
//! Here: what a component instance is given: each component's capabilities,
//! resolved at start-up ([`ComponentContext`]), and the data of one
//! instance's `Store` ([`RequestState`]), which composes WASI, `wasi:http`
//! and each capability's instance state, as the linker reaches them. A WASI
//! 0.2 instance serves one request, a WASI 0.3 instance many
//! ([`crate::executor::reuse`]); both get the same state and the same linker.

pub mod engine;
pub mod guest_log;
pub mod limits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::files::FileMounts;
use crate::instance::guest_log::{GuestLog, GuestStream};
use crate::instance::limits::InstanceLimiter;
use crate::key_value::{self, ComponentStores, KeyValueState, LeftLeases};
use crate::outbound_http::{AllowedHosts, OriginPool, OutboundHooks};
use crate::variables::{self, ComponentVariables};

/// What a component may use, resolved from the manifest and runtime config.
pub struct ComponentContext {
    /// The component id from the manifest, for the log.
    pub id: Arc<str>,
    /// Its `variables`, templates rendered.
    pub variables: ComponentVariables,
    /// Its `key_value_stores`, open.
    pub key_value: ComponentStores,
    /// Its `allowed_outbound_hosts`, templates rendered.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// The host's keep-alive connections to origins (one pool per app).
    pub origin_pool: OriginPool,
    /// Its `files`, mounted read-only.
    pub files: FileMounts,
    /// Its `environment`, the guest's environment variables.
    pub environment: BTreeMap<String, String>,
}

/// The `T` of each instance's `Store<T>`: one request's, for a WASI 0.2
/// component; the requests a reused instance serves, for a WASI 0.3 one.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// WASI's and `wasi:http`'s resources.
    table: ResourceTable,
    outbound_http: OutboundHooks,
    key_value: KeyValueState,
    variables: ComponentVariables,
    pub(crate) limits: InstanceLimiter,
}

/// A linker with every interface this host gives a component: WASI 0.2
/// and 0.3, `wasi:http` 0.2 and 0.3 (outgoing through [`OutboundHooks`] in
/// both), Spin key-value and variables (2.0.0 and 3.0.0). A WASI 0.3
/// component built with Rust's `std` imports WASI 0.2 interfaces too.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<RequestState>> {
    let mut linker = Linker::<RequestState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    key_value::host::add_to_linker(&mut linker, |state| &mut state.key_value)?;
    variables::add_to_linker(&mut linker, |state| &mut state.variables)?;
    Ok(linker)
}

impl RequestState {
    /// Fresh state for an instance of `component`, which may grow its
    /// memory to `max_memory_bytes`.
    pub fn new(component: &ComponentContext, max_memory_bytes: usize) -> anyhow::Result<Self> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog::new(component.id.clone(), GuestStream::Stdout))
            .stderr(GuestLog::new(component.id.clone(), GuestStream::Stderr));
        for (name, value) in &component.environment {
            wasi.env(name, value);
        }
        // A component's files are small and read-only (rules, static
        // assets, from the page cache): reading them on the calling thread
        // beats a hand-off to tokio's blocking pool and back for each of
        // the dozen calls a read takes, which was over half of a WASI 0.2
        // edge instance's CPU per request. Set before the preopens: each
        // directory takes the setting when it is opened.
        wasi.allow_blocking_current_thread(true);
        component.files.preopen(&mut wasi)?;
        Ok(RequestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound_http: OutboundHooks::new(
                component.id.clone(),
                component.allowed_hosts.clone(),
                component.origin_pool.clone(),
            ),
            key_value: KeyValueState::new(component.key_value.clone()),
            variables: component.variables.clone(),
            limits: InstanceLimiter::new(max_memory_bytes),
        })
    }

    /// Set once this instance was refused memory: a failure after that is
    /// the memory limit's doing.
    pub fn memory_limit_hit(&self) -> Arc<AtomicBool> {
        self.limits.memory_limit_hit()
    }

    /// The fill leases this instance took and never released: a failed
    /// instance's, for its executor to release before the failure is
    /// answered. (Those not taken are released when the state drops.)
    pub fn left_leases(&mut self) -> LeftLeases {
        self.key_value.left_leases()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound_http,
        }
    }
}
