//! How a request reaches a component instance: one executor per `wasi:http`
//! flavour, as Spin's `trigger-http` has them.
//!
//! - [`reuse`]: WASI 0.3 instance reuse: the handler state, its flags, instance counts.

pub mod reuse;
