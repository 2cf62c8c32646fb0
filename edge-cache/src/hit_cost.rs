//! The core's hit and miss paths alone, natively: what one hot hit, or one
//! miss, costs the guest's own code, with no host (an in-memory store, the L1, the rules file as
//! deployed, and the request as edge-host hands it to the adapter, `spin-*`
//! fields included). Ignored: measurements that print us per request;
//! `cargo test --release -p edge-cache --lib hit_cost -- --ignored --nocapture`,
//! and under `perf record` for where the time goes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method};

use crate::collapse::Collapser;
use crate::config::EdgeConfig;
use crate::edge::{Edge, NamedOrigin};
use crate::policy::rules::CacheRules;
use crate::purge::api::Admission;
use crate::seams::{ClientRequest, Response, Store, StoreFailure};
use crate::spin_metadata::split_fields;
use crate::store::l1::L1;
use crate::store::shared_state::SharedState;
use crate::test_support::{FakeClock, FakeOrigin, block_on};

#[derive(Default)]
struct Plain(RefCell<HashMap<String, Vec<u8>>>);

impl Store for Plain {
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

/// Everything an instance holds, as the adapter builds it.
struct Instance {
    config: EdgeConfig,
    rules: CacheRules,
    store: SharedState<Plain, FakeClock>,
    l1: L1,
    collapser: Collapser,
    clock: FakeClock,
    origin: FakeOrigin,
}

impl Instance {
    fn new() -> Instance {
        let variables: HashMap<&str, String> = [
            ("origin_url", "http://127.0.0.1:18081"),
            ("cache_rules", "../fixtures/rules/cache-rules.json"),
            ("purge_token", "secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        let config = EdgeConfig::from_variables(|name| variables.get(name).cloned()).unwrap();
        let rules =
            CacheRules::load(&config.cache_rules, |path| std::fs::read_to_string(path)).unwrap();
        let store = SharedState::new(
            Plain::default(),
            None,
            FakeClock::at_unix_ms(1796154479000),
            config.purge_staleness,
        );
        // The bench origin's answer.
        let origin = FakeOrigin::new(|_| {
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
        });
        Instance {
            config,
            rules,
            store,
            l1: L1::new(16 << 20),
            collapser: Collapser::default(),
            clock: FakeClock::at_unix_ms(1796154479000),
            origin,
        }
    }

    /// One GET of `path_and_query`, from the field list to the response.
    fn serve(&self, path_and_query: &str) -> Response {
        block_on(async {
            let edge = Edge::new(
                &self.config,
                Some(&self.rules),
                &self.store,
                NamedOrigin {
                    name: "127.0.0.1:18081",
                    origin: &self.origin,
                },
                None,
                &self.clock,
                0,
            )
            .with_instance_state(Some(&self.l1), &self.collapser);
            let (headers, connection) = split_fields(incoming());
            let path_and_query = path_and_query.to_owned();
            let Admission::NoBody = edge.admit(&Method::GET, &path_and_query, &headers) else {
                panic!("a GET without a body is admitted as bodiless");
            };
            let request = ClientRequest {
                method: Method::GET,
                path_and_query,
                headers,
                connection,
                body: Default::default(),
            };
            let (response, _) = edge.handle(request).await;
            assert_eq!(response.status, 200);
            response
        })
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
