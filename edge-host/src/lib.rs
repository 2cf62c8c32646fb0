//! edge-host: runs Spin HTTP applications (`spin.toml`) on wasmtime.
//!
//! One module per host capability, each owning its configuration:
//! [`manifest`] and [`runtime_config`] parse the files, [`variables`],
//! [`key_value`] and [`outbound_http`] implement what components may use,
//! [`routes`] and [`server`] are the HTTP trigger ([`connection`] and
//! [`request_body`] bound what a client can make it do; [`hop_by_hop`]
//! drops connection-specific fields), [`engine`] compiles and
//! caches components, [`limits`] bounds each request's instance.

pub mod app;
pub mod connection;
pub mod engine;
pub mod guest_log;
pub mod hop_by_hop;
pub mod key_value;
pub mod limits;
pub mod manifest;
pub mod outbound_http;
pub mod request_body;
pub mod routes;
pub mod runtime_config;
pub mod server;
pub mod state;
pub mod variables;

pub use app::{App, AppOptions};
pub use limits::InstanceLimits;
pub use server::{ServerOptions, serve, serve_with};
