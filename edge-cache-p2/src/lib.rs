//! edge-cache as a WASI 0.2 component (`spin-sdk` 5): a fresh instance per
//! request, for runtimes that speak only WASI 0.2 (Spin 4.0.x, SpinKube,
//! hosted Spin platforms). All policy and all wiring live in the
//! `edge-cache` core; this crate implements its `Host` and translates
//! `wasi:http`.

// Lets edge-host answer this component's fresh hits natively, when its
// core is built from the same sources (`edge_cache::native_hits`).
edge_cache::native_hits_mark!();

#[cfg(target_arch = "wasm32")]
mod adapter;
#[cfg(target_arch = "wasm32")]
mod body;
