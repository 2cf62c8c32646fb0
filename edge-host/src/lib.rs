//! edge-host: runs Spin HTTP applications (`spin.toml`) on wasmtime.
//!
//! One module per host capability, each whole (host impl, backends, its
//! runtime-config section, its instance state), composed into instances and
//! an application; the HTTP trigger serves the application, each request
//! through its component's executor. The map, in layers: each module
//! imports only from those listed before it (`scripts/module-cycles`
//! checks that no two import each other, directly or around a loop).
//!
//! - [`net`]: connections and what bounds them (header and keep-alive timeouts, the connection cap, accept failures, open files, request bodies), hop-by-hop fields, serving lanes.
//! - [`observe`]: seeing what the edge does: metrics, instance counters, each request's record, the access log, failures in the log, the status page (the metrics listener). Told what happened; imports nothing above.
//! - the configuration: [`manifest`] (`spin.toml`, as written and checked), [`routes`] (route patterns and matching: exact beats prefix, longest prefix wins).
//! - the capabilities, one module each:
//!   - [`variables`]: Spin variables: providers, templates, the host impl.
//!   - [`files`]: the manifest's `files`, mounted read-only.
//!   - [`key_value`]: Spin key-value: stores, backends (memory, SQLite, Redis), their config, the host impl, the fill leases an instance holds (deleted if it fails).
//!   - [`runtime_config`]: `runtime-config.toml`, each table handed to its capability.
//!   - [`outbound_http`]: `wasi:http` outgoing: the allow-list, the sender, the host-wide pool of keep-alive origin connections, the instance hooks.
//! - [`instance`]: what an instance is given (component context, store data, linker); the engine and compiled-component cache, time and memory limits, the guest's stdout and stderr.
//! - [`executor`]: how a request reaches an instance, one executor per `wasi:http` flavour: `wasi` (WASI 0.2, a fresh instance per request), `wasip3` (WASI 0.3, instances reused, with [`reuse`]); `failure` (what the host answers itself: a few words for the client, the detail logged under an error id, the cause for metrics).
//! - [`app`]: loads an application: files → checked, compiled components, each with its executor, behind a router.
//! - [`reload`]: SIGHUP's reload of the variables and the runtime config, each part all or nothing, swapped into each component's [`reload::live::LiveContext`] for new requests while those in flight finish with the old.
//! - [`trigger`]: the HTTP trigger: `server` (listens, accepts, admits under the connection cap, serves connections), `request` (routes one request to its executor or answers it, records it), `headers` (the `spin-*` headers).
//! - [`observability`]: the `--metrics-listen` and `--access-log` flags, and starting what they ask for.

pub mod app;
pub mod executor;
pub mod files;
pub mod instance;
pub mod key_value;
pub mod manifest;
mod native_hits;
pub mod net;
pub mod observability;
pub mod observe;
pub mod outbound_http;
pub mod reload;
pub mod replay;
pub mod routes;
pub mod runtime_config;
pub mod trigger;
pub mod variables;

pub use app::{App, AppOptions};
pub use executor::Flavour;
pub use executor::reuse::ReuseOptions;
pub use instance::limits::InstanceLimits;
pub use observe::instances::InstanceStats;
pub use reload::ReloadReport;
pub use trigger::{ServerOptions, serve, serve_in_lanes, serve_with};

// Paths from before the modules were grouped into folders, which `main.rs`
// and the tests name.
pub use executor::reuse;
pub use instance::{engine, limits};
pub use net::{connection, lanes, open_files, request_body};
pub use observe::access_log;
