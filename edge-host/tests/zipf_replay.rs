//! The memory store's hit ratio on the bench's mixed scenario (bench/run,
//! "zipf"), replayed against the store alone: Zipf(1.0) requests over
//! 100,000 objects of 1 KiB, a 32 MiB store, every miss followed by a set
//! of the entry (as the edge's fill does). It prints the hit ratio of the
//! store and of plain LRU (the policy it had before) on the same trace,
//! and what a static cache of the most popular objects that fit would hit,
//! after each of two starts:
//!
//! - *warmed*: 300,000 requests of another stream of the same distribution,
//!   as `bench-client warm` does before the bench measures;
//! - *ordered*: the 32,000 most popular set once each, least popular first
//!   (the bench's start before): LRU's best case, since it leaves LRU
//!   holding exactly the most popular objects, and a frequency-aware
//!   store's worst, since nothing has been read yet and the first objects
//!   set (the least popular) fill its main ring.
//!
//! Ignored (it takes a few seconds and asserts nothing); run it with
//! `cargo test -p edge-host --test zipf_replay -- --ignored --nocapture`.
//! `ZIPF_REPLAY_REQUESTS` and `ZIPF_REPLAY_ENTRY_BYTES` change the trace's
//! length and the entries' weight.
//!
//! The trace is the same for every run (seeded); the store's shard hashing
//! is seeded per process, so its ratio moves in the second decimal.

use std::sync::Mutex;

use edge_bench::zipf;
use edge_host::key_value::{MemoryStore, StoreBackend, StoreError};
use lru::LruCache;

const OBJECTS: u64 = 100_000;
const CAPACITY_BYTES: u64 = 32 << 20;
const PREFILL: u64 = 32_000;
const WARM_REQUESTS: u64 = 300_000;
/// The warm-up's stream: not one of the measured ones.
const WARM_SEED: u64 = 1_000;

/// What a stored 1 KiB response from the bench origin weighs: its key,
/// `c:` and 32 hex digits (34 bytes), and its value as `entry::encode`
/// writes it (format ECE2: 1,240 bytes: 8 of framing, 192 of binary
/// metadata with the origin's four header fields and the canonical key,
/// the 1,024 of body and 16 of checksum; ECE1's JSON made it 1,406).
const ENTRY_BYTES: u64 = 34 + 1_240;

/// Requests replayed after the prefill. The edge served about 17 s at
/// 16,600 req/s in the bench (a warm-up and three rounds), so the first
/// [`BENCH_REQUESTS`] are reported apart from the longer run.
const REQUESTS: usize = 2_000_000;
const BENCH_REQUESTS: usize = 300_000;

const SEEDS: [u64; 3] = [1, 2, 3];

/// The memory store as it was: LRU, bounded by key and value bytes.
struct LruStore {
    inner: Mutex<(LruCache<String, Vec<u8>>, u64)>,
    capacity_bytes: u64,
}

impl LruStore {
    fn new(capacity_bytes: u64) -> Self {
        LruStore {
            inner: Mutex::new((LruCache::unbounded(), 0)),
            capacity_bytes,
        }
    }
}

#[async_trait::async_trait]
impl StoreBackend for LruStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.lock().unwrap().0.get(key).cloned())
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let (entries, used) = &mut *inner;
        let size = (key.len() + value.len()) as u64;
        if let Some(old) = entries.put(key.to_owned(), value) {
            *used -= (key.len() + old.len()) as u64;
        }
        *used += size;
        while *used > self.capacity_bytes {
            match entries.pop_lru() {
                Some((k, v)) => *used -= (k.len() + v.len()) as u64,
                None => break,
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(old) = inner.0.pop(key) {
            inner.1 -= (key.len() + old.len()) as u64;
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.inner.lock().unwrap().0.contains(key))
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .0
            .iter()
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// Hits in the first [`BENCH_REQUESTS`] and in the rest.
#[derive(Default)]
struct Hits {
    early: usize,
    late: usize,
}

struct Trace {
    /// Store key of each rank (index rank - 1), as the edge names entries.
    keys: Vec<String>,
    ranks: Vec<u64>,
    warm_ranks: Vec<u64>,
    value: Vec<u8>,
}

impl Trace {
    fn new(seed: u64, requests: usize, entry_bytes: u64) -> Self {
        let cdf = zipf::cdf(OBJECTS, 1.0);
        let keys = (1..=OBJECTS)
            .map(|rank| {
                let url = format!("http://127.0.0.1:8080/z/{rank}?size=1024");
                format!("c:{}", &blake3::hash(url.as_bytes()).to_hex()[..32])
            })
            .collect::<Vec<_>>();
        let value_bytes = entry_bytes as usize - keys[0].len();
        Trace {
            keys,
            ranks: (0..requests as u64)
                .map(|i| zipf::rank_for(&cdf, zipf::uniform(seed, i)))
                .collect(),
            warm_ranks: (0..WARM_REQUESTS)
                .map(|i| zipf::rank_for(&cdf, zipf::uniform(WARM_SEED, i)))
                .collect(),
            value: vec![0x5a; value_bytes],
        }
    }

    fn replay(&self, store: &dyn StoreBackend, start: Start) -> Hits {
        block(async {
            match start {
                Start::Ordered => {
                    for rank in (1..=PREFILL).rev() {
                        store
                            .set(&self.keys[rank as usize - 1], self.value.clone())
                            .await
                            .unwrap();
                    }
                }
                Start::Warmed => {
                    for &rank in &self.warm_ranks {
                        let key = &self.keys[rank as usize - 1];
                        if store.get(key).await.unwrap().is_none() {
                            store.set(key, self.value.clone()).await.unwrap();
                        }
                    }
                }
            }
            let mut hits = Hits::default();
            for (i, &rank) in self.ranks.iter().enumerate() {
                let key = &self.keys[rank as usize - 1];
                if store.get(key).await.unwrap().is_some() {
                    if i < BENCH_REQUESTS {
                        hits.early += 1;
                    } else {
                        hits.late += 1;
                    }
                } else {
                    store.set(key, self.value.clone()).await.unwrap();
                }
            }
            hits
        })
    }

    /// Hits of a cache holding exactly the `k` most popular objects.
    fn static_hits(&self, k: u64) -> Hits {
        let mut hits = Hits::default();
        for (i, &rank) in self.ranks.iter().enumerate() {
            if rank <= k {
                if i < BENCH_REQUESTS {
                    hits.early += 1;
                } else {
                    hits.late += 1;
                }
            }
        }
        hits
    }
}

/// How the store is filled before the measured requests.
#[derive(Clone, Copy, Debug)]
enum Start {
    Warmed,
    Ordered,
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "a measurement: prints hit ratios, asserts nothing"]
fn zipf_hit_ratio_of_the_memory_store_against_lru() {
    let requests = env_or("ZIPF_REPLAY_REQUESTS", REQUESTS).max(BENCH_REQUESTS + 1);
    let entry_bytes = env_or("ZIPF_REPLAY_ENTRY_BYTES", ENTRY_BYTES).max(35);
    let fit = CAPACITY_BYTES / entry_bytes;
    println!(
        "Zipf(1.0) over {OBJECTS} objects, entries of {entry_bytes} bytes, {} MiB store \
         ({fit} entries fit); {requests} requests, hit ratio over the first {BENCH_REQUESTS} \
         (what the bench measures of the edge) / the rest, after {WARM_REQUESTS} warm-up \
         requests or the {PREFILL} most popular set least popular first:",
        CAPACITY_BYTES >> 20
    );
    println!(
        "  static top {fit} (Zipf's share): {:.2}%",
        zipf::top_k_share(fit, OBJECTS, 1.0) * 100.0
    );
    let late = requests - BENCH_REQUESTS;
    let percent = |hits: Hits| {
        format!(
            "{:.2}% / {:.2}%",
            hits.early as f64 * 100.0 / BENCH_REQUESTS as f64,
            hits.late as f64 * 100.0 / late as f64
        )
    };
    for seed in SEEDS {
        let trace = Trace::new(seed, requests, entry_bytes);
        println!(
            "  seed {seed}: static top {fit} {}",
            percent(trace.static_hits(fit))
        );
        for start in [Start::Warmed, Start::Ordered] {
            let memory = MemoryStore::new(CAPACITY_BYTES);
            let new = trace.replay(&memory, start);
            assert!(memory.used_bytes() <= CAPACITY_BYTES);
            let lru = trace.replay(&LruStore::new(CAPACITY_BYTES), start);
            println!(
                "    {start:?}: memory store {}, LRU {}",
                percent(new),
                percent(lru)
            );
        }
    }
}
