//! edge-cache as a WASI 0.3 component (`spin-sdk` 7): the host may send
//! many requests, concurrently, to one instance, so what an instance
//! computes once (configuration, parsed rules, the opened store) serves
//! every later request. All policy lives in the `edge-cache` core; this
//! crate only wires it to the host.

#[cfg(target_arch = "wasm32")]
mod adapter;
