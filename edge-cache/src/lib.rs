//! edge-cache: an HTTP caching layer that runs as a Spin component at the edge.
//!
//! The core of the component, with no runtime dependency: pure modules
//! that decide what to do, compile and test natively, and reach the host
//! only through the seams. One thin adapter crate per Spin SDK flavour
//! (`edge-cache-p2`, WASI 0.2; `edge-cache-p3`, WASI 0.3) wires it to the
//! host; nothing here touches `spin_sdk`. The modules, from the entrance
//! down:
//!
//! - `spin_metadata` — the host's `spin-*` request fields, read once into a connection
//! - `edge` — the edge assembled from its configuration, for both adapters
//! - `config` — the edge's settings, parsed from Spin variables
//! - `request_flow` — the pipeline: route, key, look up, decide, fetch, store, answer
//! - `exchange` — one cacheable request keyed once under its rule
//! - `pass` — requests passed through unstored; unsafe methods' invalidations
//! - `purge_api` — the purge endpoint and `PURGE` method, checked from the head first
//! - `purge` — purge body parsing, validation and bearer-token check
//! - `rules` — the JSON cache rules and which rule a path falls under
//! - `target` — host and path normalisation, same-host checks
//! - `key` — the cache key and what a fill forwards of the query and cookies
//! - `forwarding` — which request and response fields cross the edge
//! - `hop_by_hop` — connection-specific fields removed from relayed messages
//! - `storage` — the cache's layout in the store and every store-key namespace
//! - `shared_state` — invalidation state in a store shared by many nodes, read at most every `purge_staleness_ms`
//! - `l1` — decoded values kept in the instance's memory, bounded by bytes
//! - `collapse` — concurrent misses of one key wait for one fill
//! - `fill_lease` — and across instances, through a short lease in the store
//! - `entry` — the byte format of a stored entry and a Vary index
//! - `invalidation` — purge scopes and their times: O(1) purges
//! - `vary` — secondary keys from `Vary`
//! - `freshness` — lifetimes and ages (RFC 9111 §4.2)
//! - `cache_control` — `Cache-Control`-style directive parsing
//! - `http_date` — HTTP-date parsing as RFC 9110 §5.6.7's recipient rules allow
//! - `storability` — whether a response may be stored (RFC 9111 §3)
//! - `revalidation` — conditional requests and `304` header updates
//! - `conditional` — the client's conditionals and ranges against a representation
//! - `answer` — shaping what the client receives, and the edge's own answers
//! - `cache_status` — the RFC 9211 `Cache-Status` field
//! - `header_list` — header maps to and from (name, bytes) pairs
//! - `origin_guard` — the breaker and concurrency cap around an origin
//! - `breaker` — the circuit breaker as a state machine
//! - `origin_slots` — concurrency leases shared through the store
//! - `failover` — a backup origin tried once when the primary fails
//! - `origin_failure` — why the origin gave no answer, and what the client is told
//! - `seams` — the messages and the `Store`/`Origin`/`Clock` traits

pub mod collapse;
pub mod config;
pub mod edge;
pub mod flow;
pub mod http;
pub mod origin;
pub mod policy;
pub mod purge;
pub mod seams;
pub mod spin_metadata;
pub mod store;

#[cfg(test)]
mod hit_cost;
#[cfg(test)]
mod test_support;

/// The shared store's outage interval, at the path the many-nodes
/// integration tests name.
pub mod shared_state {
    pub use crate::store::shared_state::OUTAGE_RETRY;
}
