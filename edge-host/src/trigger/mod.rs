//! The HTTP trigger: accepts connections and serves each request with the
//! component its route names.
//!
//! - [`server`]: accepts, admits under the connection cap, serves connections, answers failures.

pub(crate) mod server;

pub use server::{ServerOptions, serve, serve_in_lanes, serve_with};
