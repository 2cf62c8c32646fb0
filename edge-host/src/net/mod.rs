//! Connections and what bounds them, for every listener (the HTTP trigger's
//! and the metrics listener) and the outbound side: nothing here knows an
//! application, a component or a metric.
//!
//! - [`connection`]: per-connection header and keep-alive timeouts, shorter near the cap.
//! - `connection_table`: the connection cap, per listener and per client address; the longest-idle connection gives way.
//! - `accept_failures`: an accept loop's failures: paused, and logged at most once per interval.
//! - [`open_files`]: the open-file limit raised at start, and the connection caps that fit in it.
//! - [`request_body`]: the request-body size limit.
//! - [`hop_by_hop`]: drops connection-specific fields, inbound and outbound, and what HTTP/2 forbids.
//! - [`tls`]: TLS termination: the certificate and key, ALPN, reloads on SIGHUP.
//! - [`http2`]: HTTP/1.1 and HTTP/2 to clients, and HTTP/2's limits (streams, headers, windows, rapid reset).
//! - [`lanes`]: serving lanes, one thread with its own runtime and instances per core.

pub(crate) mod accept_failures;
pub mod connection;
pub(crate) mod connection_table;
pub mod hop_by_hop;
pub mod http2;
pub mod lanes;
pub mod open_files;
pub mod request_body;
pub mod tls;
