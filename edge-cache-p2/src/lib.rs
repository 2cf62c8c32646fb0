//! edge-cache as a WASI 0.2 component (`spin-sdk` 5): a fresh instance per
//! request, for runtimes that speak only WASI 0.2 (Spin 4.0.x, SpinKube,
//! hosted Spin platforms). All policy lives in the `edge-cache` core; this
//! crate only wires it to the host.

#[cfg(target_arch = "wasm32")]
mod adapter;
