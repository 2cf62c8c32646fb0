//! edge-cache as a WASI 0.3 component (`spin-sdk` 7): the host may send
//! many requests, concurrently, to one instance, so the instance's
//! `edge_cache::Node` (configuration, parsed rules, opened stores, first
//! tier) is built once and serves every later request. All policy and all
//! wiring live in the `edge-cache` core; this crate implements its `Host`
//! and translates `wasi:http`.

// Lets edge-host answer this component's fresh hits natively, when its
// core is built from the same sources (`edge_cache::native_hits`).
edge_cache::native_hits_mark!();

#[cfg(target_arch = "wasm32")]
mod adapter;
#[cfg(target_arch = "wasm32")]
mod body;
