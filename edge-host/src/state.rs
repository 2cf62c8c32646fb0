//! Per-component settings fixed at start-up, and the per-request store data
//! that gives the guest WASI, `wasi:http` and the Spin interfaces.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::AtomicBool;
use wasmtime::component::ResourceTable;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::guest_log::{GuestLog, GuestStream};
use crate::key_value::{ComponentStores, KeyValueState};
use crate::limits::InstanceLimiter;
use crate::outbound_http::{AllowedHosts, OutboundHooks};
use crate::variables::ComponentVariables;

/// What a component may use, resolved from the manifest and runtime config.
pub struct ComponentContext {
    /// The component id from the manifest.
    pub id: Arc<str>,
    /// Component variables, templates already resolved.
    pub variables: ComponentVariables,
    /// The key-value stores the component may open.
    pub stores: ComponentStores,
    /// Where outbound HTTP may go.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// Host directories mounted read-only: (host path, guest path).
    pub mounts: Vec<(PathBuf, String)>,
    /// Environment variables for the guest.
    pub environment: BTreeMap<String, String>,
}

/// The `T` of each request's `Store<T>`.
pub struct RequestState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) hooks: OutboundHooks,
    pub(crate) key_value: KeyValueState,
    pub(crate) variables: ComponentVariables,
    pub(crate) limits: InstanceLimiter,
}

impl RequestState {
    /// Fresh state for one request to `component`, whose instance may grow
    /// its memory to `max_memory_bytes`.
    pub fn new(component: Arc<ComponentContext>, max_memory_bytes: usize) -> anyhow::Result<Self> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog::new(component.id.clone(), GuestStream::Stdout))
            .stderr(GuestLog::new(component.id.clone(), GuestStream::Stderr));
        for (name, value) in &component.environment {
            wasi.env(name, value);
        }
        for (host, guest) in &component.mounts {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)?;
        }
        Ok(RequestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks::new(component.id.clone(), component.allowed_hosts.clone()),
            key_value: KeyValueState::new(component.stores.clone()),
            variables: component.variables.clone(),
            limits: InstanceLimiter::new(max_memory_bytes),
        })
    }

    /// Set once this instance was refused memory: a failure after that is
    /// the memory limit's doing.
    pub fn memory_limit_hit(&self) -> Arc<AtomicBool> {
        self.limits.memory_limit_hit()
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
            hooks: &mut self.hooks,
        }
    }
}
