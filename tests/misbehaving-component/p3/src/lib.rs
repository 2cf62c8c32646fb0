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
//! - `/break-off`: declares `Content-Length: 1000000`, sends 100000 bytes
//!   of the body, waits [`BREAK_OFF_PAUSE`], then fails it (the response's
//!   trailers future resolves to an error);
//! - `/break-off/trap`: the same head, bytes and wait, then traps;
//! - `/break-off/chunked-trap`: no `Content-Length`, 100000 bytes, the
//!   wait, then traps;
//! - `/lease/trap`: takes a fill lease in the `default` store (a key under
//!   `purge_wire::FILL_LEASE_KEY_PREFIX`, as the edge does before it
//!   fetches), then traps without releasing it;
//! - `/echo`: what the host told it about the request: its URI and the
//!   `spin-full-url`, `spin-client-addr` and `host` fields, one per line;
//! - anything else: `200 ok`.

/// The body length `/break-off` declares, and the bytes it sends of it.
pub const BREAK_OFF_DECLARED: usize = 1_000_000;
/// See [`BREAK_OFF_DECLARED`].
pub const BREAK_OFF_WRITTEN: usize = 100_000;
/// How long `/break-off` waits between its bytes and its failure.
pub const BREAK_OFF_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::Cell;
    use std::time::Duration;

    use spin_sdk::http::{IntoResponse, Request};

    use super::{BREAK_OFF_DECLARED, BREAK_OFF_PAUSE, BREAK_OFF_WRITTEN};

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
        let broken = match request.uri().path() {
            "/break-off" => Some((true, Ending::Fail)),
            "/break-off/trap" => Some((true, Ending::Trap)),
            "/break-off/chunked-trap" => Some((false, Ending::Trap)),
            _ => None,
        };
        match broken {
            Some((declared, ending)) => break_off(declared, ending).into_response(),
            None => answer(request).await.into_response(),
        }
    }

    /// How a broken-off body ends.
    #[derive(Clone, Copy)]
    enum Ending {
        /// The body fails: its trailers future resolves to an error.
        Fail,
        /// The instance traps.
        Trap,
    }

    /// A response with `Content-Length` if `declared`, whose body is the
    /// first [`BREAK_OFF_WRITTEN`] bytes, then `ending`.
    fn break_off(
        declared: bool,
        ending: Ending,
    ) -> http::Response<impl http_body::Body<Data = bytes::Bytes, Error = String> + 'static> {
        use futures::StreamExt;
        let first = bytes::Bytes::from(vec![b'x'; BREAK_OFF_WRITTEN]);
        let frames = futures::stream::iter([Ok(http_body::Frame::data(first))]).chain(
            futures::stream::once(async move {
                // The head and the first bytes reach the client first.
                spin_sdk::time::sleep(BREAK_OFF_PAUSE).await;
                match ending {
                    Ending::Fail => Err("broken off".to_owned()),
                    Ending::Trap => core::arch::wasm32::unreachable(),
                }
            }),
        );
        let mut response = http::Response::new(http_body_util::StreamBody::new(frames));
        if declared {
            response
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, BREAK_OFF_DECLARED.into());
        }
        response
    }

    async fn answer(request: Request) -> String {
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
            "/lease/trap" => {
                let store = spin_sdk::key_value::Store::open_default()
                    .await
                    .expect("the default store");
                let lease = format!("{}misbehaving", purge_wire::FILL_LEASE_KEY_PREFIX);
                store
                    .set(&lease, b"held")
                    .await
                    .expect("the lease is taken");
                core::arch::wasm32::unreachable()
            }
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
