//! The smallest useful Spin HTTP component: every request gets the same
//! 1 KiB body. Benchmarked against the native ceiling (which answers the same
//! bytes from memory) it isolates what the host and a fresh Wasm instance per
//! request cost, with no caching logic on top.

/// The body size, equal to the hot-hit 1 KiB object so the numbers compare.
pub const BODY_BYTES: usize = 1024;

/// The body every request gets.
pub static BODY: [u8; BODY_BYTES] = [b'x'; BODY_BYTES];

#[cfg(target_arch = "wasm32")]
mod component {
    use spin_sdk::http::{Request, Response};

    #[spin_sdk::http_component]
    fn handle(_request: Request) -> Response {
        Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .header("cache-control", "public, max-age=3600")
            .body(super::BODY.to_vec())
            .build()
    }
}
