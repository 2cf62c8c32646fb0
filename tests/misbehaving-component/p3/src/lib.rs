//! The misbehaving component as WASI 0.3 (`spin-sdk` 7), for edge-host's
//! reuse tests. One instance serves many requests, so every answer says
//! which instance gave it:
//!
//! - `/instance`: `{instance} {n}`: this instance's random id, and how many
//!   requests it has served, this one included;
//! - `/wait/{ms}`: waits `ms` milliseconds on the host's clock (the instance
//!   takes other requests meanwhile), then answers `{instance}`;
//! - `/spin`: loops for ever without calling the host;
//! - `/grow`: allocates until memory runs out;
//! - `/keep/{mib}`: allocates `mib` MiB and keeps it for the instance's
//!   life, then answers `{instance}`;
//! - `/trap`: traps at once;
//! - `/echo`: what the host told it about the request: its URI and the
//!   `spin-full-url`, `spin-client-addr` and `host` fields, one per line;
//! - anything else: `200 ok`.

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::Cell;
    use std::time::Duration;

    use spin_sdk::http::{IntoResponse, Request};

    thread_local! {
        /// This instance's id: random, chosen by its first request.
        static INSTANCE: Cell<u64> = const { Cell::new(0) };
        /// Requests this instance has served.
        static SERVED: Cell<u64> = const { Cell::new(0) };
        /// What `/keep` allocated.
        static KEPT: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn instance() -> u64 {
        INSTANCE.with(|id| {
            if id.get() == 0 {
                use std::hash::BuildHasher;
                let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
                id.set(random.max(1));
            }
            id.get()
        })
    }

    #[spin_sdk::http_service]
    async fn handle(request: Request) -> impl IntoResponse {
        let served = SERVED.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        let path = request.uri().path().to_owned();
        match path.as_str() {
            "/instance" => format!("{} {served}\n", instance()),
            "/echo" => {
                let field = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("(none)")
                        .to_owned()
                };
                format!(
                    "uri={}\nspin-full-url={}\nspin-client-addr={}\nhost={}\n",
                    request.uri(),
                    field("spin-full-url"),
                    field("spin-client-addr"),
                    field("host"),
                )
            }
            "/spin" => spin_forever(),
            "/grow" => grow_forever(),
            "/trap" => core::arch::wasm32::unreachable(),
            _ => {
                let number = |prefix: &str| path.strip_prefix(prefix).and_then(|n| n.parse().ok());
                if let Some(ms) = number("/wait/") {
                    spin_sdk::time::sleep(Duration::from_millis(ms)).await;
                    format!("{}\n", instance())
                } else if let Some(mib) = number("/keep/") {
                    // Touched, so it is really committed.
                    KEPT.with(|kept| kept.borrow_mut().push(vec![1u8; (mib as usize) << 20]));
                    format!("{}\n", instance())
                } else {
                    "ok\n".to_owned()
                }
            }
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
