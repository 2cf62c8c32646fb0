//! The HTTP trigger, as Spin's `trigger-http`: serves each request with the
//! component its route names, through that component's executor
//! ([`crate::executor`]).
//!
//! - `server`: listens, accepts, admits under the connection cap, serves connections, shuts down.
//! - `request`: one request: routed, run by its component's executor or answered by the host, recorded when its response ends.
//! - `headers`: the `spin-*` request headers.

mod headers;
mod request;
mod server;

pub use server::{ServerOptions, serve, serve_in_lanes, serve_with};
