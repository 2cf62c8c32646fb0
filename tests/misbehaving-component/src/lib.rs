//! A component that misbehaves on request, for edge-host's limit tests:
//! `/spin` loops for ever without calling the host, `/grow` allocates until
//! memory runs out, anything else answers `200 ok`.

#[cfg(target_arch = "wasm32")]
mod component {
    use spin_sdk::http::{Request, Response};

    #[spin_sdk::http_component]
    fn handle(request: Request) -> Response {
        match request.path() {
            "/spin" => spin_forever(),
            "/grow" => grow_forever(),
            _ => Response::new(200, "ok\n"),
        }
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
