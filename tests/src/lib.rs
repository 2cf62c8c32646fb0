//! Test harness: runs the real compiled edge-cache component inside
//! edge-host on a loopback port.
//!
//! The component is built once by `make wasm` (which `make test` runs
//! first); edge-host's on-disk compilation cache means every test after the
//! first loads machine code instead of compiling.
//!
//! The integration tests are four binaries under `tests/tests/`, one file
//! per topic in each (`behaviour`, `hosting`, `observability`, `cluster`):
//! every binary links wasmtime, so topics share one. What more than one
//! file needs lives here, once:
//!
//! - `components`: the workspace, the built components and shipped
//!   manifests, the flavour under test, application options.
//! - `edge`: [`Edge`], a running edge, started from an [`EdgeSetup`];
//!   [`Fetched`], what a `GET` through it returned.
//! - `raw_http`: origins that answer with exact bytes, and reads of exactly
//!   what the edge wrote.
//! - [`explained`]: the decision explainer's prediction, checked on every
//!   request of an explained edge.
//! - `faulty_store`: [`FaultyStore`], a store that fails on demand.
//! - `streaming_origin`: an origin whose bodies are generated as they are
//!   sent (any size) and whose uploads are counted as they arrive.
//! - `own_process`: [`ran_in_own_process`], for a test that needs the
//!   process's metrics to itself.
//! - `client_protocols`: test certificates, TLS clients with a chosen ALPN
//!   list, HTTP/1.1 and HTTP/2 clients over any connection.
//! - here: waiting on a wiremock origin, a closed port, requests in flight
//!   together, reading a request field and a metrics exposition.

mod client_protocols;
mod components;
mod edge;
pub mod explained;
mod faulty_store;
mod own_process;
mod raw_http;
mod streaming_origin;

use std::collections::BTreeMap;

pub use client_protocols::{
    Answer, Http1Client, Http2Client, TLS_NAME, TestCertificate, connect_tls, http1_client,
    http2_client, negotiated, tls_client,
};
pub use components::{
    built_component, compilation_cache, component_path, component_path_for, default_flavour,
    default_native_hits, reuse, shipped_manifest, single_component_app, workspace_root,
};
pub use edge::{Edge, EdgeSetup, Fetched, edge_for, explained_edge_for, purge_edge};
pub use edge_host::Flavour;
pub use explained::{EXPLAIN_TOKEN, explain};
pub use faulty_store::FaultyStore;
pub use own_process::ran_in_own_process;
pub use raw_http::{
    BOUND, canned_origin, raw_exchange, raw_origin, read_response, read_to_close, read_until,
};
pub use streaming_origin::{StreamingOrigin, expected, streaming_origin, upload_sum};

/// A host-made 500: one short line, `internal error…(error id <16 hex>)`.
pub fn assert_short_with_error_id(body: &str) {
    let line = body.strip_suffix('\n').unwrap_or(body);
    assert!(!line.contains('\n'), "one line: {body}");
    assert!(line.len() < 120, "short: {body}");
    assert!(line.starts_with("internal error"), "{body}");
    let id = line
        .strip_suffix(')')
        .and_then(|l| l.rsplit_once("(error id "))
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("no error id: {body}"));
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
}

/// A loopback port with nothing listening on it, which a test may also
/// bind later (a server whose address another must know first). It is
/// drawn below the kernel's ephemeral range: a port from `bind(0)` could
/// be handed, before the test binds it, to another test's outgoing
/// connection or `bind(0)`, which take theirs from that range (seen in CI
/// as "Address already in use").
pub fn closed_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_from.max(10_001));
    let draw = RandomState::new();
    for attempt in 0u64.. {
        let port = low + (draw.hash_one(attempt) % u64::from(high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        assert!(attempt < 10_000, "no free port below {high}");
    }
    unreachable!("the loop returns or panics")
}

/// Waits until `origin` has received at least `n` requests: the signal for
/// work the edge does out of the client's sight (a refresh after the
/// response, a fetch in flight). wiremock offers no notification, so this
/// polls, and fails the test after a generous deadline.
pub async fn origin_requests_reach(origin: &wiremock::MockServer, n: usize) {
    for _ in 0..500 {
        if origin.received_requests().await.map_or(0, |r| r.len()) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("origin never saw {n} requests");
}

/// Runs `futures` concurrently (requests in flight together) and collects
/// their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs = Vec::with_capacity(set.len());
    // One task polls them all on every wake-up, so their I/O overlaps as
    // if each had its own task.
    let results = std::future::poll_fn(|context| {
        let mut pending = false;
        for (slot, future) in set.iter_mut().enumerate() {
            if outputs.len() <= slot {
                outputs.resize_with(slot + 1, || None);
            }
            if outputs[slot].is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => outputs[slot] = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    });
    results.await;
    outputs.into_iter().map(|o| o.expect("done")).collect()
}

/// The request field `name` as text: empty when absent, `?` when it is not
/// visible ASCII.
pub fn header_of(request: &wiremock::Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .unwrap_or_default()
}

/// A Prometheus text exposition as `series → value`, e.g.
/// `edge_requests_total{outcome="hit",status="2xx"} → 3`.
pub fn parse_exposition(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}
