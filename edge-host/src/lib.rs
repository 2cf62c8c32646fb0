//! edge-host: runs Spin HTTP applications (`spin.toml`) on wasmtime.
//!
//! One module per host capability, each whole (host impl, backends, its
//! runtime-config section, its instance state), composed by [`instance`]:
//!
//! - [`app`]: loads an application: files → checked, compiled components behind a router.
//! - [`manifest`]: `spin.toml`, as written and checked.
//! - [`runtime_config`]: `runtime-config.toml`, each table handed to its capability.
//! - [`key_value`]: Spin key-value: stores, backends (memory, SQLite, Redis), their config, the host impl.
//! - [`variables`]: Spin variables: providers, templates, the host impl.
//! - [`outbound_http`]: `wasi:http` outgoing: the allow-list, the sender, the host-wide pool of keep-alive origin connections, the instance hooks.
//! - [`files`]: the manifest's `files`, mounted read-only.
//! - [`instance`]: what an instance is given: component context, request store data, linker.
//! - [`engine`]: the wasmtime engine and the cache of compiled components.
//! - [`limits`]: each instance's time and memory limits.
//! - [`reuse`]: WASI 0.3 instance reuse: the handler state, its flags, instance counts.
//! - [`lanes`]: serving lanes, one thread with its own runtime and instances per core.
//! - [`server`]: the HTTP trigger: accepts, routes, runs an instance per request, answers failures.
//! - [`routes`]: route patterns and matching (exact beats prefix, longest prefix wins).
//! - [`connection`]: per-connection header and keep-alive timeouts, shorter near the cap.
//! - [`connection_table`]: the connection cap, per listener and per client address; the longest-idle connection gives way.
//! - [`accept_failures`]: an accept loop's failures: paused, and logged at most once per interval.
//! - [`open_files`]: the open-file limit raised at start, and the connection caps that fit in it.
//! - [`request_body`]: the request-body size limit.
//! - [`hop_by_hop`]: drops connection-specific fields, inbound and outbound.
//! - [`failure_log`]: a failure's detail in the log: a headline, then a line per backtrace frame, all under the error id.
//! - [`guest_log`]: the guest's stdout and stderr, line by line into the host log.
//! - [`cache_outcome`]: what the cache did with a request, read from its `Cache-Status`.
//! - [`metrics`]: the Prometheus metrics and the hooks that count them.
//! - [`request_record`]: each request's metrics and access log line, written when its response ends.
//! - [`access_log`]: the access log (`--access-log`, text or JSON), written off the request path.
//! - [`observability`]: the `--metrics-listen` and `--access-log` flags, and starting what they ask for.
//! - [`status_page`]: the metrics listener: `/metrics`, `/status.json` and the live status page.

pub(crate) mod accept_failures;
pub mod access_log;
pub mod app;
pub mod cache_outcome;
pub mod connection;
pub(crate) mod connection_table;
pub mod engine;
pub(crate) mod failure_log;
pub mod files;
pub mod guest_log;
pub mod hop_by_hop;
pub mod instance;
pub mod key_value;
pub mod lanes;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod observability;
pub mod open_files;
pub mod outbound_http;
pub mod request_body;
pub(crate) mod request_record;
pub mod reuse;
pub mod routes;
pub mod runtime_config;
pub mod server;
pub mod status_page;
pub mod variables;

pub use app::{App, AppOptions, Flavour};
pub use limits::InstanceLimits;
pub use reuse::{InstanceStats, ReuseOptions};
pub use server::{ServerOptions, serve, serve_in_lanes, serve_with};
