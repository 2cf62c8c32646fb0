//! The trivial component's WASI 0.3 twin: the same 1 KiB answer as
//! `hello-component`, served by instances the host reuses. Against the
//! native ceiling it gives the host's own cost per request (hyper, the
//! component-model call, `wasi:http` fields and body stream) with no
//! instantiation per request and no caching logic, which is the floor under
//! the edge's hit path. (The body is its own copy: depending on
//! `hello-component` would link spin-sdk 5.2 into this component too.)

/// The body size, equal to the hot-hit 1 KiB object so the numbers compare.
pub const BODY_BYTES: usize = 1024;

/// The body every request gets.
pub static BODY: [u8; BODY_BYTES] = [b'x'; BODY_BYTES];

#[cfg(target_arch = "wasm32")]
mod component {
    use bytes::Bytes;
    use http_body_util::Full;
    use spin_sdk::http::Request;
    use spin_sdk::http_service;

    #[http_service]
    async fn handle(_request: Request) -> http::Response<Full<Bytes>> {
        http::Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .header("cache-control", "public, max-age=3600")
            .body(Full::new(Bytes::from_static(&super::BODY)))
            .expect("a fixed, valid response")
    }
}
