//! A component that misbehaves on request, for edge-host's limit tests:
//!
//! - `/spin`: loops for ever without calling the host;
//! - `/grow`: allocates until memory runs out;
//! - `/keep/{mib}`: allocates `mib` MiB (touched, so really committed),
//!   then answers `200 ok`;
//! - `/break-off`: declares `Content-Length: 1000000`, writes 100000 bytes
//!   of the body, waits [`BREAK_OFF_PAUSE`], then ends it unfinished
//!   (`finish` with too few bytes);
//! - `/break-off/trap`: the same head, bytes and wait, then traps;
//! - `/break-off/chunked-trap`: no `Content-Length`, 100000 bytes, the
//!   wait, then traps;
//! - `/lease/trap`: takes a fill lease in the `default` store (a key under
//!   `purge_wire::FILL_LEASE_KEY_PREFIX`, as the edge does before it
//!   fetches), then traps without releasing it;
//! - anything else answers `200 ok`.

/// The body length `/break-off` declares, and the bytes it writes of it.
pub const BREAK_OFF_DECLARED: usize = 1_000_000;
/// See [`BREAK_OFF_DECLARED`].
pub const BREAK_OFF_WRITTEN: usize = 100_000;
/// How long `/break-off` waits between its bytes and its failure.
pub const BREAK_OFF_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

#[cfg(target_arch = "wasm32")]
mod component {
    use futures::SinkExt;
    use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

    use super::{BREAK_OFF_DECLARED, BREAK_OFF_PAUSE, BREAK_OFF_WRITTEN};

    #[spin_sdk::http_component]
    async fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        match path.as_str() {
            "/spin" => spin_forever(),
            "/grow" => grow_forever(),
            "/break-off" => {
                let body = break_off(out, true).await;
                // Dropping the body's writer finishes it short of its
                // declared length: the host must not pass it off as whole.
                drop(body);
            }
            "/break-off/trap" => {
                let _body = break_off(out, true).await;
                core::arch::wasm32::unreachable()
            }
            "/lease/trap" => {
                let store = spin_sdk::key_value::Store::open_default().expect("the default store");
                let lease = format!("{}misbehaving", purge_wire::FILL_LEASE_KEY_PREFIX);
                store.set(&lease, b"held").expect("the lease is taken");
                core::arch::wasm32::unreachable()
            }
            "/break-off/chunked-trap" => {
                let _body = break_off(out, false).await;
                core::arch::wasm32::unreachable()
            }
            _ => {
                if let Some(mib) = path
                    .strip_prefix("/keep/")
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    let kept = vec![1u8; mib << 20];
                    std::hint::black_box(&kept);
                    std::mem::forget(kept);
                }
                answer(out, b"ok\n").await;
            }
        }
    }

    async fn answer(out: ResponseOutparam, text: &[u8]) {
        let response = OutgoingResponse::new(Fields::new());
        let mut body = response.take_body();
        out.set(response);
        let _ = body.send(text.to_vec()).await;
    }

    /// Sends the head (with `Content-Length` if `declared`) and the first
    /// [`BREAK_OFF_WRITTEN`] bytes; returns the body's writer, which
    /// finishes the body when dropped.
    async fn break_off(out: ResponseOutparam, declared: bool) -> Box<dyn std::any::Any> {
        let mut fields = vec![("content-type".to_owned(), b"text/plain".to_vec())];
        if declared {
            fields.push((
                "content-length".to_owned(),
                BREAK_OFF_DECLARED.to_string().into_bytes(),
            ));
        }
        let headers = Fields::from_list(&fields).expect("valid fields");
        let response = OutgoingResponse::new(headers);
        let mut body = Box::pin(response.take_body());
        out.set(response);
        let _ = body.send(vec![b'x'; BREAK_OFF_WRITTEN]).await;
        // The head and the first bytes reach the client first.
        std::thread::sleep(BREAK_OFF_PAUSE);
        Box::new(body)
    }

    fn spin_forever() -> ! {
        let mut counter = 0u64;
        loop {
            // black_box keeps the optimiser from proving the loop useless.
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }

    fn grow_forever() -> ! {
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch the memory so it is really committed, not just reserved.
            held.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&held);
        }
    }
}
