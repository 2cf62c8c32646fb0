//! edge-cache as a WASI 0.2 component (`spin-sdk` 5): a fresh instance per
//! request, for runtimes that speak only WASI 0.2 (Spin 4.0.x, SpinKube,
//! hosted Spin platforms). All policy and all wiring live in the
//! `edge-cache` core; this crate implements its `Host` and translates
//! `wasi:http`.

#[cfg(target_arch = "wasm32")]
mod adapter;
#[cfg(target_arch = "wasm32")]
mod body;
