//! The in-memory backend: a byte-bounded cache that keeps what is read
//! often, not merely what was written last.
//!
//! Plain LRU lets every one-hit wonder push out a popular entry.
//! [`quick_cache`] instead admits a new entry on probation (a small FIFO,
//! 3 % of the budget), promotes it to the main ring only when it is read
//! there, and remembers the keys it dropped from probation ("ghosts", no
//! value) so that a key that comes back is admitted straight to the main
//! ring; the main ring evicts by CLOCK (an entry read since the hand last
//! passed gets another round). On the bench's Zipf(1.0) mix
//! (`tests/zipf_replay.rs`: 32 MiB, entries of 1,274 bytes) LRU hits 84.3 %
//! once warm, this store 87.5 %. Entries written but never read (a
//! prefill) all look alike to it, so it starts slower: over the first
//! 300,000 requests after the bench's prefill it hits 86.7 %, LRU 85.5 %.
//!
//! The budget is split into shards, each with its own lock and its own share
//! of the bytes. A `get` takes its shard's lock shared and writes nothing
//! but the entry's access count (a relaxed atomic, only until it saturates
//! at 2), so reads do not serialise on one mutex or reorder a list.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use foldhash::quality::SeedableRandomState;
use quick_cache::sync::Cache;
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};

use super::{StoreBackend, StoreError};
use crate::observe::store_sizes::StoreSize;

/// Share of each shard's bytes for entries that have been read since they
/// were admitted (quick_cache's default); the rest is probation. An entry
/// must fit in this share to be admitted at all.
const HOT_SHARE: f64 = 0.97;

/// The smallest shard: the largest entry a shard admits is
/// [`HOT_SHARE`] of it, so a store gets only as many shards as keep that
/// above 15 MiB, and a small store has one shard (its whole budget).
const MIN_SHARD_BYTES: u64 = 16 << 20;

/// Shards per core at most: quick_cache's default.
const SHARDS_PER_CORE: usize = 4;

/// The entry size assumed when sizing the ghost list: quick_cache keeps
/// half as many ghosts as entries of this size would fill the budget. About
/// a cached 1 KiB response (1,274 bytes since format ECE2; tuned when it
/// was 1,440, the figures below). In the Zipf replay a smaller guess
/// (more ghosts) readmits more one-hit wonders (1 KiB: 86.1 % against 86.4 %
/// once warm) and a larger one (fewer) recovers more slowly from a cold or
/// badly ordered start (4 KiB: 83.2 % against 84.8 % over the first 300,000
/// requests).
const TYPICAL_ENTRY_BYTES: u64 = 1536;

/// An in-memory store holding at most its capacity in keys and values,
/// evicting by frequency and recency (see the module documentation).
pub struct MemoryStore {
    /// Keys hashed as quick_cache's default does (foldhash, seeded at
    /// random per store), or with a fixed seed ([`MemoryStore::with_fixed_seed`]).
    entries: Cache<String, Bytes, EntryWeight, SeedableRandomState, CountEvictions>,
    /// The largest entry (key plus value) a shard admits.
    largest_entry: u64,
    /// Entries evicted to make room, for `edge_store_evictions_total`.
    evictions: Arc<AtomicU64>,
}

/// Counts what quick_cache evicts to make room. Its lifecycle hook is also
/// called with the old value when an insert replaces a key's value
/// (quick_cache 0.7, despite its documentation), which is not an eviction:
/// [`MemoryStore::set`] names the key it is inserting and the value it
/// brings in [`INSERTING`], and a call for that key with another value is
/// the replaced one, not counted. (The same key with the new value is a
/// real eviction: the entry just written making way, see `set`.) One
/// relaxed add per eviction, under the shard lock the eviction holds.
#[derive(Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

thread_local! {
    /// The key (its hash) and value (its address) this thread's `set` is
    /// inserting, while it is.
    static INSERTING: std::cell::Cell<Option<(u64, usize)>> = const { std::cell::Cell::new(None) };
}

fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl Lifecycle<String, Bytes> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), key: String, value: Bytes) {
        let replaced = INSERTING
            .get()
            .is_some_and(|(hash, new)| value.as_ptr() as usize != new && key_hash(&key) == hash);
        if !replaced {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What an entry costs against the budget: its key and value bytes (the
/// map's own overhead per entry and per ghost is not counted, as it was
/// not under LRU).
#[derive(Clone)]
struct EntryWeight;

impl Weighter<String, Bytes> for EntryWeight {
    fn weight(&self, key: &String, value: &Bytes) -> u64 {
        // Zero only for an empty key with an empty value, which then holds
        // nothing and is never evicted (quick_cache skips weightless entries).
        entry_size(key, value)
    }
}

fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// How many shards a store of `capacity_bytes` gets: a power of two (as
/// quick_cache requires), at most [`SHARDS_PER_CORE`] per core, each at
/// least [`MIN_SHARD_BYTES`].
fn shard_count(capacity_bytes: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let by_size = usize::try_from(capacity_bytes / MIN_SHARD_BYTES).unwrap_or(usize::MAX);
    let shards = by_size.min(cores * SHARDS_PER_CORE).max(1);
    // The largest power of two not above `shards`.
    1 << shards.ilog2()
}

impl MemoryStore {
    /// A store holding at most `capacity_bytes` of keys and values.
    pub fn new(capacity_bytes: u64) -> Self {
        // A random seed: clients choose the keys (URLs), and must not be
        // able to pick ones that all land in one shard or one bucket.
        MemoryStore::with_hasher(capacity_bytes, SeedableRandomState::random())
    }

    /// The same store with its keys hashed by a fixed seed, so that the
    /// same operations leave it in the same state in every process (which
    /// shard holds a key decides what is evicted once a store of several
    /// shards is full): `edge-host replay`'s, whose keys come from a log.
    pub fn with_fixed_seed(capacity_bytes: u64) -> Self {
        MemoryStore::with_hasher(capacity_bytes, SeedableRandomState::fixed())
    }

    fn with_hasher(capacity_bytes: u64, hasher: SeedableRandomState) -> Self {
        let shards = shard_count(capacity_bytes);
        let shard_bytes = capacity_bytes / shards as u64;
        // quick_cache halves the shard count until each shard expects at
        // least 32 entries; asking for that many keeps the count chosen here.
        let estimated_entries = usize::try_from(capacity_bytes / TYPICAL_ENTRY_BYTES)
            .unwrap_or(usize::MAX)
            .max(32 * shards);
        let options = OptionsBuilder::new()
            .shards(shards)
            .hot_allocation(HOT_SHARE)
            .estimated_items_capacity(estimated_entries)
            // Each shard gets exactly `shard_bytes` (quick_cache divides
            // rounding up), so the shards together never exceed the budget.
            .weight_capacity(shard_bytes * shards as u64)
            .build()
            .expect("every option is set");
        let evictions = CountEvictions::default();
        let entries = Cache::with_options(options, EntryWeight, hasher, evictions.clone());
        debug_assert_eq!(entries.num_shards(), shards);
        debug_assert_eq!(entries.shard_capacity(), shard_bytes);
        // quick_cache drops, without a word, an entry heavier than its
        // shard's main ring (computed as it does).
        let shard = entries.shard_capacity();
        let largest_entry = ((shard as f64 * HOT_SHARE) as u64).clamp(shard.min(1), shard);
        MemoryStore {
            entries,
            largest_entry,
            evictions: evictions.0,
        }
    }

    /// Bytes currently held (keys plus values).
    pub fn used_bytes(&self) -> u64 {
        self.entries.weight()
    }

    /// Entries evicted to make room since the store was made.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl StoreBackend for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // Only the reference count is taken under the shard's lock; the
        // copy is made outside it.
        Ok(self.entries.get(key).map(|value| value.to_vec()))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let size = entry_size(key, &value);
        if size > self.largest_entry {
            // Refused before quick_cache sees it: it would drop the entry
            // and the key's previous value with it.
            return Err(StoreError::TableFull(format!(
                "entry of {size} bytes exceeds the largest this store admits, {} bytes",
                self.largest_entry
            )));
        }
        let value = Bytes::from(value);
        INSERTING.set(Some((key_hash(key), value.as_ptr() as usize)));
        self.entries.insert(key.to_owned(), value.clone());
        // A set must be readable at once: cache entries, Vary indexes and
        // fill leases are written and then read back. A new key always is
        // (quick_cache makes room before it links the entry), but a key it
        // already knows (held, or remembered as a ghost) is replaced in
        // place and room made after, which can evict the entry just written
        // from the main ring when every other entry there has been read
        // since the hand last passed. Evicted from the main ring it leaves no
        // ghost, so inserting it again is as a new key, which stays.
        if !self.entries.contains_key(key) {
            self.entries.insert(key.to_owned(), value);
        }
        INSERTING.set(None);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        // Also forgets a ghost of the key.
        self.entries.remove(key);
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        // Does not count as a read.
        Ok(self.entries.contains_key(key))
    }

    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.entries.iter().map(|(key, _)| key).collect())
    }

    fn capacity_bytes(&self) -> Option<u64> {
        Some(self.entries.capacity())
    }

    fn size(&self) -> StoreSize {
        StoreSize {
            entries: Some(self.entries.len() as u64),
            bytes: Some(self.used_bytes()),
            capacity_bytes: Some(self.entries.capacity()),
            evictions: Some(self.evictions()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_value::test_support::block;

    /// A deterministic stream of numbers (splitmix64) for the random tests.
    struct Numbers(u64);

    impl Numbers {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    #[test]
    fn set_get_delete_exists() {
        block(async {
            let store = MemoryStore::new(1024);
            assert_eq!(store.get("a").await.unwrap(), None);
            store.set("a", b"one".to_vec()).await.unwrap();
            assert_eq!(store.get("a").await.unwrap(), Some(b"one".to_vec()));
            assert!(store.exists("a").await.unwrap());
            store.set("a", b"two!".to_vec()).await.unwrap();
            assert_eq!(store.get("a").await.unwrap(), Some(b"two!".to_vec()));
            assert_eq!(store.used_bytes(), 5);
            assert_eq!(store.evictions(), 0, "a replaced value is not evicted");
            assert_eq!(store.get_keys().await.unwrap(), ["a"]);
            store.delete("a").await.unwrap();
            store.delete("a").await.unwrap();
            assert!(!store.exists("a").await.unwrap());
            assert_eq!(store.get("a").await.unwrap(), None);
            assert_eq!(store.used_bytes(), 0);
            assert!(store.get_keys().await.unwrap().is_empty());
        });
    }

    /// What LRU gets wrong: a scan of keys requested once, bigger than the
    /// whole budget, evicts everything LRU holds (it would keep the last 100
    /// of the scan); here the entries that are read keep their place.
    #[test]
    fn a_working_set_that_is_read_survives_a_scan_larger_than_the_budget() {
        block(async {
            // 100 entries of 10 bytes fill the budget; 50 of them are read.
            let store = MemoryStore::new(1000);
            let working: Vec<String> = (0..50).map(|i| format!("w{i:02}")).collect();
            for key in &working {
                store.set(key, vec![0; 7]).await.unwrap();
            }
            for _ in 0..3 {
                for key in &working {
                    assert!(store.get(key).await.unwrap().is_some());
                }
            }
            // 300 one-hit wonders, three times the budget: each is a miss,
            // so it is set and never read.
            for i in 0..300 {
                store.set(&format!("s{i:02x}"), vec![0; 7]).await.unwrap();
            }
            let mut kept = 0;
            for key in &working {
                kept += usize::from(store.exists(key).await.unwrap());
            }
            assert_eq!(kept, working.len(), "the working set survives the scan");
            assert!(store.used_bytes() <= 1000);
            // Every entry set and not held any more was evicted (none was
            // deleted), and the size says what the store holds.
            let size = store.size();
            let held = store.get_keys().await.unwrap().len() as u64;
            assert_eq!(size.entries, Some(held));
            assert_eq!(size.evictions, Some(350 - held));
            assert_eq!(size.bytes, Some(store.used_bytes()));
            assert_eq!(size.capacity_bytes, Some(1000));
        });
    }

    #[test]
    fn random_sets_never_exceed_the_budget_and_are_read_back_at_once() {
        block(async {
            let mut numbers = Numbers(7);
            // Values up to half the largest entry, or 200 KiB in the store
            // of two 16 MiB shards (400 keys of 100 KiB on average overflow it).
            for capacity in [50, 300, 4096, 32 << 20] {
                let store = MemoryStore::new(capacity);
                let largest = store.largest_entry;
                let value_bound = (largest / 2).clamp(2, 200 << 10);
                for _ in 0..20_000 {
                    let key = format!("k{}", numbers.below(400));
                    let size = numbers.below(value_bound) as usize;
                    let value = vec![numbers.below(256) as u8; size];
                    match numbers.below(10) {
                        0 => {
                            store.delete(&key).await.unwrap();
                            assert_eq!(store.get(&key).await.unwrap(), None);
                        }
                        1..=3 => {
                            let _ = store.get(&key).await.unwrap();
                        }
                        _ if size as u64 + key.len() as u64 > largest => {
                            assert!(store.set(&key, value).await.is_err());
                        }
                        _ => {
                            store.set(&key, value.clone()).await.unwrap();
                            assert_eq!(
                                store.get(&key).await.unwrap(),
                                Some(value),
                                "{key} is read back right after its set (capacity {capacity})"
                            );
                        }
                    }
                    assert!(store.used_bytes() <= capacity, "capacity {capacity}");
                }
                let mut held = 0;
                for key in store.get_keys().await.unwrap() {
                    held += key.len() as u64 + store.get(&key).await.unwrap().unwrap().len() as u64;
                }
                assert_eq!(held, store.used_bytes());
            }
        });
    }

    #[test]
    fn a_key_readmitted_from_the_ghosts_is_read_back_when_the_main_ring_is_all_read() {
        block(async {
            // One shard of 100 bytes: main ring 97, probation the rest.
            // Entries of 10 bytes ("h0" and 8 bytes of value).
            let store = MemoryStore::new(100);
            for i in 0..9 {
                store.set(&format!("h{i}"), vec![0; 8]).await.unwrap();
                store.get(&format!("h{i}")).await.unwrap();
                store.get(&format!("h{i}")).await.unwrap();
            }
            // The main ring is full (90 of 97): these go on probation, and
            // "g0" leaves it unread for "x0", leaving a ghost.
            store.set("g0", vec![0; 8]).await.unwrap();
            store.set("x0", vec![0; 8]).await.unwrap();
            assert!(!store.exists("g0").await.unwrap());
            store.get("x0").await.unwrap();
            // "g0" comes back: readmitted to the main ring in place; the
            // room made for it promotes "x0" (read) and the hand, finding
            // every other entry read, evicts "g0".
            store.set("g0", vec![1; 8]).await.unwrap();
            assert_eq!(store.get("g0").await.unwrap(), Some(vec![1; 8]));
            assert!(store.used_bytes() <= 100);
        });
    }

    #[test]
    fn stores_of_a_fixed_seed_evict_alike() {
        block(async {
            // Two shards of 16 MiB, overfilled by entries of about 1 KiB:
            // which shard a key falls in decides which entries leave.
            let held = || async {
                let store = MemoryStore::with_fixed_seed(32 << 20);
                assert_eq!(store.entries.num_shards(), 2);
                let mut numbers = Numbers(3);
                for _ in 0..80_000 {
                    let key = format!("k{}", numbers.below(60_000));
                    if store.get(&key).await.unwrap().is_none() {
                        store.set(&key, vec![0; 1000]).await.unwrap();
                    }
                }
                let mut keys = store.get_keys().await.unwrap();
                keys.sort_unstable();
                (keys, store.evictions())
            };
            let first = held().await;
            assert!(first.1 > 0, "the store overflowed");
            assert_eq!(first, held().await);
        });
    }

    #[test]
    fn a_delete_really_deletes() {
        block(async {
            let store = MemoryStore::new(1000);
            for i in 0..20 {
                store.set(&format!("k{i}"), vec![0; 10]).await.unwrap();
                store.get(&format!("k{i}")).await.unwrap();
            }
            store.delete("k3").await.unwrap();
            assert_eq!(store.get("k3").await.unwrap(), None);
            assert!(!store.exists("k3").await.unwrap());
            assert!(!store.get_keys().await.unwrap().contains(&"k3".to_owned()));
            // k0..k9 weigh 12 bytes, k10..k19 13.
            assert_eq!(store.used_bytes(), 9 * 12 + 10 * 13);
        });
    }

    #[test]
    fn an_entry_larger_than_the_store_is_refused_and_loses_nothing() {
        block(async {
            let store = MemoryStore::new(16);
            store.set("k", b"kept".to_vec()).await.unwrap();
            let err = store.set("big", vec![0; 32]).await.unwrap_err();
            assert!(matches!(err, StoreError::TableFull(_)));
            // Refused too when it is the key's new value: the old one stays.
            assert!(store.set("k", vec![0; 16]).await.is_err());
            assert_eq!(store.get("k").await.unwrap(), Some(b"kept".to_vec()));
        });
    }

    #[test]
    fn the_largest_entry_admitted_is_most_of_a_shard() {
        block(async {
            // Small stores are one shard: 97 % of it (rounded down).
            let store = MemoryStore::new(1000);
            assert_eq!(store.largest_entry, 970);
            store.set("k", vec![0; 969]).await.unwrap();
            assert_eq!(store.used_bytes(), 970);
            assert!(store.set("k", vec![0; 970]).await.is_err());
            assert_eq!(store.get("k").await.unwrap().map(|v| v.len()), Some(969));
            // A large store's shards hold at least 16 MiB each.
            let store = MemoryStore::new(1 << 30);
            assert!(store.entries.shard_capacity() >= MIN_SHARD_BYTES);
            assert!(store.entries.capacity() <= 1 << 30);
            assert!(store.largest_entry >= 15 << 20);
        });
    }
}
