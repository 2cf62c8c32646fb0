//! edge-cache: an HTTP caching layer that runs as a Spin component at the edge.
//!
//! The crate is split the way the request flows: pure modules that decide
//! what to do (configuration, header forwarding, origin failure mapping) and
//! compile and test natively, and one adapter (`spin_adapter`, wasm32 only)
//! that wires them to Spin's HTTP and key-value interfaces. Nothing outside
//! the adapter touches `spin_sdk`.

pub mod breaker;
pub mod cache_control;
pub mod cache_status;
pub mod conditional;
pub mod config;
pub mod entry;
pub mod failover;
pub mod forwarding;
pub mod freshness;
pub mod header_list;
pub mod hop_by_hop;
pub mod invalidation;
pub mod key;
pub mod origin_failure;
pub mod origin_guard;
pub mod origin_slots;
pub mod purge;
pub mod request_flow;
pub mod rules;
pub mod seams;
pub mod storability;
pub mod target;
pub mod vary;

#[cfg(target_arch = "wasm32")]
mod spin_adapter;

#[cfg(test)]
mod test_support;
