//! What edge-host does whatever the component, and the files it is
//! deployed with: over real sockets, through the real compiled components
//! (edge-cache and tests/misbehaving-component). One binary (it links
//! wasmtime once), one file per topic.
//!
//! | module | what it proves |
//! |---|---|
//! | `host_hardening` | body limits, header and keep-alive timeouts, the connection cap, `Connection`-nominated fields |
//! | `limits` | per-request time and memory limits |
//! | `broken_bodies` | a response body that breaks off ends the connection early |
//! | `p3_host` | WASI 0.3 instance reuse, its limits and retirement |
//! | `instance_reuse` | the edge-cache component in a reused instance: L1 and purges, collapsed fills, no shared data, lanes |
//! | `origin_pool` | connections to the origin kept across misses |
//! | `failed_fills` | a failed instance's fill leases end with it |
//! | `manifests` | the shipped manifests agree with each other and the component |
//! | `deploy_files` | `deploy/` agrees with the cluster manifests |
//! | `shipped_rules` | the shipped manifests default to the built-in rules; `make up`'s variable gives the demo shop's |
//! | `live_rules` | a broken live edit of the rules file keeps the last good rules; a fix takes over |
//! | `reload` | SIGHUP to a real edge-host process under load: a good configuration is taken for new requests, a broken one refused; no request fails |
//! | `client_protocols` | TLS with ALPN (h2, http/1.1), HTTP/2 streams and limits, a rapid-reset flood, certificates reloaded by SIGHUP, the protocol in metrics and the access log |

mod broken_bodies;
mod client_protocols;
mod deploy_files;
mod failed_fills;
mod host_hardening;
mod instance_reuse;
mod limits;
mod live_rules;
mod manifests;
mod origin_pool;
mod p3_host;
mod reload;
mod shipped_rules;
