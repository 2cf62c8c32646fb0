//! The core's hit and miss paths alone, natively: what one hot hit, or one
//! miss, costs the guest's own code, with no host (an in-memory store, the L1, the rules file as
//! deployed, and the request as edge-host hands it to the adapter, `spin-*`
//! fields included). Ignored: measurements that print us per request;
//! `cargo test --release -p edge-cache --lib hit_cost -- --ignored --nocapture`,
//! and under `perf record` for where the time goes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method};

use crate::config::OriginEndpoint;
use crate::node::{Host, Node};
use crate::seams::{
    Body, KeyValueStore, Origin, OriginFailure, OriginRequest, RequestHead, Response, StoreFailure,
};
use crate::test_support::{FakeClock, FakeOrigin, block_on};

#[derive(Default)]
struct Plain(RefCell<HashMap<String, Vec<u8>>>);

impl KeyValueStore for Plain {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        Ok(self.0.borrow().get(key).cloned())
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.0.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
}

/// The request head as edge-host passes it on, as the field list the
/// adapter reads (wrk sends only `Host`).
fn incoming() -> Vec<(String, Vec<u8>)> {
    [
        ("host", "127.0.0.1:18082"),
        ("spin-full-url", "http://127.0.0.1:18082/hot/1k?size=1024"),
        ("spin-path-info", "/hot/1k"),
        ("spin-matched-route", "/..."),
        ("spin-component-route", ""),
        ("spin-raw-component-route", "/..."),
        ("spin-base-path", "/"),
        ("spin-client-addr", "127.0.0.1:50000"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
    .collect()
}

/// A WASI 0.3 instance's host, as the adapter is: variables, an in-memory
/// store, the bench origin's answer, a clock standing still.
struct BenchHost {
    origin: Rc<FakeOrigin>,
}

impl Host for BenchHost {
    type Store = Plain;
    type Origin = BenchOrigin;
    type Clock = FakeClock;
    const INSTANCES_OUTLIVE_REQUESTS: bool = true;

    async fn variable(&self, name: &'static str) -> Option<String> {
        let value = match name {
            "origin_url" => "http://127.0.0.1:18081",
            "cache_rules" => "../fixtures/rules/cache-rules.json",
            "purge_token" => "secret",
            _ => return None,
        };
        Some(value.to_owned())
    }
    async fn open_store(&self, _label: &str) -> Result<Plain, String> {
        Ok(Plain::default())
    }
    fn origin(&self, _endpoint: OriginEndpoint) -> BenchOrigin {
        BenchOrigin(self.origin.clone())
    }
    fn clock(&self) -> FakeClock {
        FakeClock::at_unix_ms(1796154479000)
    }
    fn random_u64(&self) -> u64 {
        0
    }
}

/// The one origin, counting its requests for the test.
struct BenchOrigin(Rc<FakeOrigin>);

impl Origin for BenchOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        self.0.send(request).await
    }
}

/// Everything an instance holds, as the adapter builds it.
struct Instance {
    node: Node<BenchHost>,
    origin: Rc<FakeOrigin>,
}

impl Instance {
    fn new() -> Instance {
        // The bench origin's answer.
        let origin = Rc::new(FakeOrigin::new(|_| {
            let mut headers = HeaderMap::new();
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(
                "cache-control",
                HeaderValue::from_static("public, max-age=3600"),
            );
            headers.insert("content-length", HeaderValue::from_static("1024"));
            headers.insert(
                "date",
                HeaderValue::from_static("Tue, 01 Dec 2026 19:47:54 GMT"),
            );
            Ok(Response {
                status: 200,
                headers,
                body: vec![b'x'; 1024].into(),
            })
        }));
        let host = BenchHost {
            origin: origin.clone(),
        };
        let Ok(node) = block_on(Node::new(host)) else {
            panic!("the bench configuration is valid");
        };
        Instance { node, origin }
    }

    /// One GET of `path_and_query`, from the field list to the response.
    fn serve(&self, path_and_query: &str) -> Response {
        block_on(async {
            let head =
                RequestHead::from_fields(Method::GET, Some(path_and_query.to_owned()), incoming());
            let (response, _) = self.node.serve(head, Unread).await;
            assert_eq!(response.status, 200);
            response
        })
    }
}

/// A body that a GET without one is never asked for.
struct Unread;

impl crate::seams::RequestBody for Unread {
    async fn read(self, _limit: usize) -> Result<Body, crate::seams::BodyError> {
        panic!("a GET without a body is admitted as bodiless");
    }

    fn stream(self, _length: Option<u64>) -> Result<Body, crate::seams::BodyError> {
        panic!("a GET without a body is admitted as bodiless");
    }
}

fn report(what: &str, n: usize, took: Duration) {
    println!(
        "{n} {what} through the core: {:.2} us each",
        took.as_secs_f64() * 1e6 / n as f64
    );
}

#[test]
#[ignore = "a measurement: prints us per hit"]
fn a_hot_hit_through_the_core() {
    let instance = Instance::new();
    let path = "/hot/1k?size=1024";
    instance.serve(path);
    let hits = 200_000;
    let started = Instant::now();
    for _ in 0..hits {
        std::hint::black_box(instance.serve(path));
    }
    let took = started.elapsed();
    assert_eq!(
        instance.origin.calls.get(),
        1,
        "every later request is a hit"
    );
    report("hot hits", hits, took);
}

/// A miss as the bench's miss scenario makes them: a URL never asked
/// before, fetched, stored (store and L1) and answered. The origin's
/// answer is prepared; its cost and the host's are not in the number.
#[test]
#[ignore = "a measurement: prints us per miss"]
fn a_miss_through_the_core() {
    let instance = Instance::new();
    let misses = 100_000;
    let paths: Vec<String> = (0..misses)
        .map(|n| format!("/miss/1/{n}?size=1024"))
        .collect();
    let started = Instant::now();
    for path in &paths {
        std::hint::black_box(instance.serve(path));
    }
    let took = started.elapsed();
    assert_eq!(
        instance.origin.calls.get(),
        misses,
        "every request is a miss"
    );
    report("misses", misses, took);
}
