//! The cache in its stores, behind an API in cache nouns: look up a
//! response for a request (`lookup`), write one (`write`), purge a scope.
//! Which store holds what is decided by the keys' types (`keys`); the
//! stores themselves are the node's own, the shared one for purge state
//! (`shared_state`), the instance's first tier in front (`l1`) and the
//! shield behind; `entry` is the stored byte format.
//!
//! A Vary index keeps at most
//! [`MAX_VARIANTS`](crate::policy::vary::MAX_VARIANTS) variants under an
//! epoch; a changed `Vary` starts a new epoch, which makes every older
//! variant unreachable without deleting it (the store's eviction reclaims
//! it).

pub(crate) mod capacity;
pub(crate) mod chunk_fill;
pub(crate) mod chunk_read;
pub mod chunks;
pub mod entry;
pub(crate) mod keys;
pub(crate) mod l1;
pub(crate) mod shared_state;
pub(crate) mod slice_fill;
mod write;

pub(crate) use write::StoredFetch;

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;

use crate::policy::cache_status::Forward;
use crate::policy::freshness::current_age;
use crate::policy::invalidation::{
    PurgeKind, PurgeTimes, Validity, all_scope, prefix_scope, prefixes_of, tag_scope, url_scope,
};
use crate::policy::key::{KeyedTarget, hash128};
use crate::policy::vary::variance;
use crate::seams::{Clock, StoreFailure};
use crate::store::chunks::ChunkLayout;
use crate::store::entry::{EntryMeta, StoredValue};
use crate::store::keys::{EntryKey, PurgeStateKey, Store, StoreKey};
use crate::store::l1::{Cached, L1};

/// A stored response found for a request: the decoded value itself,
/// shared with the first tier, so a hit copies nothing until it answers.
pub(crate) struct Found {
    entry: Rc<Cached>,
    /// Where it was found (a chunked object's chunks are read, and a bad
    /// one drops it, through this).
    pub key: EntryKey,
    /// A soft purge covers it: revalidate before reuse.
    pub soft_purged: bool,
}

impl Found {
    /// `entry` if it is a stored response (not a Vary index).
    fn of(entry: Rc<Cached>, key: EntryKey, soft_purged: bool) -> Option<Found> {
        matches!(entry.value, StoredValue::Response(_)).then_some(Found {
            entry,
            key,
            soft_purged,
        })
    }

    /// Where its body is, if it is stored in chunks.
    pub(crate) fn chunks(&self) -> Option<ChunkLayout> {
        self.meta().chunks
    }

    /// What was stored beside the body.
    pub(crate) fn meta(&self) -> &EntryMeta {
        match &self.entry.value {
            StoredValue::Response(meta) => meta,
            StoredValue::Vary(_) => unreachable!("Found::of admits stored responses only"),
        }
    }

    /// The stored headers, as a map.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.entry.headers
    }

    /// The stored content, shared with the first tier.
    pub(crate) fn body(&self) -> &Bytes {
        &self.entry.body
    }

    /// Its current age at `now` (RFC 9111 §4.2.3).
    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        current_age(
            Duration::from_millis(self.meta().initial_age_ms),
            from_unix_ms(self.meta().response_time_ms),
            now,
        )
    }

    /// Its freshness lifetime, fixed when it was stored.
    pub(crate) fn lifetime(&self) -> Duration {
        Duration::from_millis(self.meta().lifetime_ms)
    }
}

/// The head a streaming fill announced in its lease, as a response found
/// for `keyed`: `None` if it does not decode, is not chunked or is another
/// key's.
pub(crate) fn announced(head: &[u8], keyed: &KeyedTarget) -> Option<Found> {
    let (value, body) = entry::decode(head).ok()?;
    match &value {
        StoredValue::Response(meta) if meta.key == keyed.key.canonical && meta.chunks.is_some() => {
        }
        _ => return None,
    }
    let cached = Rc::new(Cached::new(value, body, None));
    Found::of(cached, EntryKey::primary(&keyed.key), false)
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// A live stored response (possibly stale or soft-purged).
    Found(Found),
    /// Nothing usable: why (for `Cache-Status`), and a detail.
    Miss(Forward, Option<&'static str>),
}

/// Microseconds: purge and fetch times are compared at this resolution, so
/// a fetch that starts just after a purge is rarely mistaken for one before.
pub(crate) fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The cache over a byte store, with an optional first tier.
pub(crate) struct CacheStorage<'a, S, C> {
    /// Where the bytes live (the second tier, and the only shared one).
    pub store: &'a S,
    /// What ages, purge times and epochs are read from.
    pub clock: &'a C,
    /// Decoded values kept in this instance (`None`: every lookup reads the
    /// store).
    pub l1: Option<&'a L1>,
}

/// What reading one store key found.
enum Read {
    /// Nothing under the key.
    Absent,
    /// Bytes that do not decode: a miss, overwritten by the next fill.
    Corrupt,
    /// A decoded value (from the first tier or the store).
    Value(Rc<Cached>),
}

/// The `Cache-Status` detail of an entry a purge killed.
const INVALIDATED: &str = "invalidated";

/// The purge epoch a lookup saw, to be recorded with what it stores (a
/// first-tier copy counts as checked while the epoch it was checked at is
/// current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PurgeEpoch {
    /// Not read: there is no first tier to check against it.
    Unread,
    /// No purge has been recorded.
    NeverPurged,
    /// The token the last purge wrote (or a stand-in never seen before,
    /// while the shared store is unavailable).
    Token(String),
}

impl<S: Store, C: Clock> CacheStorage<'_, S, C> {
    /// Invalidates every variant of `keyed`'s URL (RFC 9111 §4.4).
    pub(crate) async fn invalidate_url(&self, keyed: &KeyedTarget) -> Result<(), StoreFailure> {
        self.purge(&[url_scope(keyed.url())], PurgeKind::Hard)
            .await
            .map(drop)
    }

    /// Records a purge of `scopes` now: one read and one write per scope,
    /// whatever is cached, then a new purge epoch.
    ///
    /// The epoch is written after the scopes and is a token no other purge
    /// writes, so an L1 value checked before a scope was written carries
    /// an epoch the store will never show again: its next lookup re-checks
    /// its scopes, and sees the purge.
    /// Answers the purge's time (unix µs): its epoch's, which
    /// `purge::completion` reads nodes' progress against.
    pub(crate) async fn purge(
        &self,
        scopes: &[String],
        kind: PurgeKind,
    ) -> Result<u64, StoreFailure> {
        let now_us = unix_us(self.clock.now());
        for scope in scopes {
            let key = PurgeStateKey::scope(scope);
            let previous = PurgeTimes::decode(self.store.get_current(&key).await?.as_deref());
            let updated = previous.after_purge(now_us, kind);
            self.store.set(&key, &updated.encode()).await?;
        }
        // Its time first (hex), so that a node can tell how recent the
        // state it read is (`purge::completion`); only equality matters
        // to the first tier.
        let hash = hash128(format!("{now_us}|{}", scopes.join("|")).as_bytes());
        let token = format!("{now_us:016x}-{hash}");
        self.store
            .set(&PurgeStateKey::Epoch, token.as_bytes())
            .await?;
        Ok(now_us)
    }

    /// The current purge epoch, read only when there is a first tier to
    /// check against it.
    async fn purge_epoch(&self) -> Result<PurgeEpoch, StoreFailure> {
        if self.l1.is_none() {
            return Ok(PurgeEpoch::Unread);
        }
        Ok(match self.store.get(&PurgeStateKey::Epoch).await? {
            None => PurgeEpoch::NeverPurged,
            Some(token) => PurgeEpoch::Token(String::from_utf8_lossy(&token).into_owned()),
        })
    }

    /// Reads `key` from the first tier (where `use_l1`), else from the
    /// store, keeping what decodes in the first tier.
    async fn read(&self, key: &EntryKey, use_l1: bool) -> Result<Read, StoreFailure> {
        if use_l1 && let Some(cached) = self.l1.and_then(|l1| l1.get(key.text())) {
            return Ok(Read::Value(cached));
        }
        let Some(bytes) = self.store.get(key).await? else {
            return Ok(Read::Absent);
        };
        let Ok((value, body)) = entry::decode(&bytes) else {
            return Ok(Read::Corrupt);
        };
        let cached = Rc::new(Cached::new(value, body, None));
        if let Some(l1) = self.l1
            && kept_in_l1(&cached.value)
        {
            l1.put(key.text(), cached.clone());
        }
        Ok(Read::Value(cached))
    }

    async fn purge_times(&self, scope: &str) -> Result<PurgeTimes, StoreFailure> {
        Ok(PurgeTimes::decode(
            self.store
                .get(&PurgeStateKey::scope(scope))
                .await?
                .as_deref(),
        ))
    }

    /// [`lookup`](Self::lookup) past the first tier: what the store holds
    /// now (another instance's fill or revalidation may have replaced the
    /// first tier's copy), kept in the first tier for the next lookup.
    pub(crate) async fn lookup_in_store(
        &self,
        keyed: &KeyedTarget,
        request_headers: &HeaderMap,
    ) -> Result<(Lookup, PurgeEpoch), StoreFailure> {
        let epoch = self.purge_epoch().await?;
        let lookup = self.find(keyed, request_headers, &epoch, false).await?;
        Ok((lookup, epoch))
    }

    /// The live response stored for `keyed` and these request headers,
    /// with the purge epoch the lookup saw (to record with a fill).
    pub(crate) async fn lookup(
        &self,
        keyed: &KeyedTarget,
        request_headers: &HeaderMap,
    ) -> Result<(Lookup, PurgeEpoch), StoreFailure> {
        let epoch = self.purge_epoch().await?;
        let lookup = self.find(keyed, request_headers, &epoch, true).await?;
        // A first-tier copy that a purge killed may have been replaced in
        // the store by a fill after the purge (another instance's): look
        // there before going to the origin.
        let lookup = match lookup {
            Lookup::Miss(_, Some(INVALIDATED)) if self.l1.is_some() => {
                self.find(keyed, request_headers, &epoch, false).await?
            }
            other => other,
        };
        Ok((lookup, epoch))
    }

    async fn find(
        &self,
        keyed: &KeyedTarget,
        request_headers: &HeaderMap,
        epoch: &PurgeEpoch,
        use_l1: bool,
    ) -> Result<Lookup, StoreFailure> {
        let corrupt = Lookup::Miss(Forward::Miss, Some("corrupt-entry"));
        let (cached, key) = match self.stored_entry(keyed, request_headers, use_l1).await? {
            Ok(found) => found,
            Err(miss) => return Ok(miss),
        };
        let StoredValue::Response(meta) = &cached.value else {
            return Ok(corrupt);
        };
        // An L1 value checked at the store's current epoch has seen every
        // purge since; anything else is checked against its scopes.
        let checked =
            *epoch != PurgeEpoch::Unread && cached.validated_at.borrow().as_ref() == Some(epoch);
        let validity = if checked {
            Validity::Valid
        } else {
            let validity = self.validity(keyed, meta).await?.0;
            if validity == Validity::Valid {
                *cached.validated_at.borrow_mut() = Some(epoch.clone());
            }
            validity
        };
        if validity == Validity::Invalid {
            return Ok(Lookup::Miss(Forward::Miss, Some(INVALIDATED)));
        }
        let soft_purged = validity == Validity::Stale;
        Ok(Found::of(cached, key, soft_purged).map_or(corrupt, Lookup::Found))
    }

    /// The response stored for `keyed` and these request headers, whatever
    /// purges say of it (through its Vary index where it has one), or the
    /// miss that finding none is.
    async fn stored_entry(
        &self,
        keyed: &KeyedTarget,
        request_headers: &HeaderMap,
        use_l1: bool,
    ) -> Result<Result<(Rc<Cached>, EntryKey), Lookup>, StoreFailure> {
        let corrupt = Lookup::Miss(Forward::Miss, Some("corrupt-entry"));
        let collision = Lookup::Miss(Forward::Miss, Some("key-collision"));
        let primary = EntryKey::primary(&keyed.key);
        let cached = match self.read(&primary, use_l1).await? {
            Read::Absent => return Ok(Err(Lookup::Miss(Forward::UriMiss, None))),
            Read::Corrupt => return Ok(Err(corrupt)),
            Read::Value(cached) => cached,
        };
        let (cached, key) = match &cached.value {
            StoredValue::Response(_) => (cached, primary),
            StoredValue::Vary(index) => {
                if index.key != keyed.key.canonical {
                    return Ok(Err(collision));
                }
                let variant = hash128(variance(&index.names, request_headers).as_bytes());
                if !index.variants.contains(&variant) {
                    return Ok(Err(Lookup::Miss(Forward::VaryMiss, None)));
                }
                let key = EntryKey::variant(index, &variant);
                match self.read(&key, use_l1).await? {
                    Read::Value(variant) if matches!(variant.value, StoredValue::Response(_)) => {
                        (variant, key)
                    }
                    Read::Absent => return Ok(Err(Lookup::Miss(Forward::VaryMiss, None))),
                    Read::Value(_) | Read::Corrupt => return Ok(Err(corrupt)),
                }
            }
        };
        match &cached.value {
            StoredValue::Response(meta) if meta.key != keyed.key.canonical => Ok(Err(collision)),
            StoredValue::Response(_) => Ok(Ok((cached, key))),
            StoredValue::Vary(_) => Ok(Err(corrupt)),
        }
    }

    /// The purge that makes the response stored for `keyed` stale or dead,
    /// as a lookup would judge it: its scope and what that scope records
    /// (`None`: nothing stored, or no purge touches it). For the
    /// explainer: read from the store, past the first tier.
    pub(crate) async fn purge_of_stored(
        &self,
        keyed: &KeyedTarget,
        request_headers: &HeaderMap,
    ) -> Result<Option<PurgeFound>, StoreFailure> {
        let Ok((cached, _)) = self.stored_entry(keyed, request_headers, false).await? else {
            return Ok(None);
        };
        let StoredValue::Response(meta) = &cached.value else {
            return Ok(None);
        };
        let (validity, Some((scope, key, times))) = self.validity(keyed, meta).await? else {
            return Ok(None);
        };
        let kind = match validity {
            Validity::Valid => return Ok(None),
            Validity::Stale => PurgeKind::Soft,
            Validity::Invalid => PurgeKind::Hard,
        };
        // The id of the scope's latest purge of that kind (a purge written
        // before ids were kept has none).
        let id = self
            .store
            .get_current(&PurgeStateKey::scope_purge(&key, kind))
            .await
            .ok()
            .flatten()
            .map(|id| String::from_utf8_lossy(&id).into_owned());
        Ok(Some(PurgeFound {
            scope,
            id,
            times,
            validity,
            fetched_us: meta.request_time_us,
        }))
    }

    /// Whether the purges of every scope `meta` is stored under leave it
    /// valid, stale or invalid, and the scope (with its times) that
    /// decided, when one did.
    async fn validity(
        &self,
        keyed: &KeyedTarget,
        meta: &EntryMeta,
    ) -> Result<(Validity, Option<(String, String, PurgeTimes)>), StoreFailure> {
        let mut validity = Validity::Valid;
        let mut deciding = None;
        for (scope, named) in scopes_of(keyed, meta) {
            let times = self.purge_times(&scope).await?;
            let this = times.validity(meta.request_time_us);
            if this > validity {
                validity = this;
                deciding = Some((named, scope, times));
            }
            if validity == Validity::Invalid {
                break;
            }
        }
        Ok((validity, deciding))
    }
}

/// A purge that covers a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurgeFound {
    /// The scope purged, as a purge names it (`url:http://…`,
    /// `tag:product:1`, `prefix:/static`, `all`).
    pub scope: String,
    /// The id of the purge (its receipt's), where it was recorded.
    pub id: Option<String>,
    /// Its purge times.
    pub times: PurgeTimes,
    /// What it does to the response.
    pub validity: Validity,
    /// When the response's fetch began (unix µs): purges at or after it
    /// cover it.
    pub fetched_us: u64,
}

/// Every scope a stored response is purged by (everything, its URL, each
/// prefix of its path, its tags), each with what a purge names it by (the
/// scope keys are hashes).
fn scopes_of(keyed: &KeyedTarget, meta: &EntryMeta) -> Vec<(String, String)> {
    let mut scopes = vec![
        (all_scope(), "all".to_owned()),
        (url_scope(keyed.url()), format!("url:{}", keyed.url())),
    ];
    scopes.extend(
        prefixes_of(&keyed.path)
            .into_iter()
            .map(|prefix| (prefix_scope(&prefix), format!("prefix:{prefix}"))),
    );
    scopes.extend(
        meta.tags
            .iter()
            .map(|tag| (tag_scope(tag), format!("tag:{tag}"))),
    );
    scopes
}

/// Whether a value read or written is kept in the first tier: not the
/// head of an object in chunks, which is read from the store on every hit.
/// That is one small read beside the body's chunk reads, and a head that a
/// damaged chunk made its reader drop (in another instance, or edge-host's
/// native hits) is then seen gone at once, instead of sending the next
/// request to the same damaged chunk.
pub(crate) fn kept_in_l1(value: &StoredValue) -> bool {
    !matches!(value, StoredValue::Response(meta) if meta.chunks.is_some())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::HeaderMap;

    use super::*;
    use crate::policy::freshness::EffectiveControl;
    use crate::policy::invalidation::{PurgeKind, url_scope};
    use crate::policy::key::build_key;
    use crate::policy::rules::Rule;
    use crate::policy::vary::MAX_VARIANTS;
    use crate::store::write::StoredFetch;
    use crate::test_support::{FakeClock, MemStore, block_on, headers};

    const NOW_MS: u64 = 1_700_000_000_000;

    fn keyed(path: &str) -> KeyedTarget {
        build_key(
            "https",
            "shop.example",
            path,
            &HeaderMap::new(),
            &Rule::default(),
        )
    }

    fn storage<'a>(
        store: &'a MemStore,
        clock: &'a FakeClock,
        l1: Option<&'a L1>,
    ) -> CacheStorage<'a, MemStore, FakeClock> {
        CacheStorage { store, clock, l1 }
    }

    /// Stores `body` with `response` headers for `keyed`, asked with
    /// `request` headers, fresh for 60 s.
    fn put(
        storage: &CacheStorage<'_, MemStore, FakeClock>,
        keyed: &KeyedTarget,
        request: &HeaderMap,
        response: &HeaderMap,
        body: &'static [u8],
    ) {
        let control = EffectiveControl::of(response);
        let body = Bytes::from_static(body);
        let now = storage.clock.now();
        let fetch = StoredFetch {
            status: 200,
            headers: response,
            body: &body,
            request_time: now,
            response_time: now,
            initial_age: Duration::from_secs(5),
            lifetime: Some(Duration::from_secs(60)),
            control: &control,
            chunks: None,
            sliced: None,
            encodings: None,
        };
        block_on(storage.store(keyed, request, fetch, &PurgeEpoch::Unread)).unwrap();
    }

    fn lookup(
        storage: &CacheStorage<'_, MemStore, FakeClock>,
        keyed: &KeyedTarget,
        request: &HeaderMap,
    ) -> Lookup {
        block_on(storage.lookup(keyed, request)).unwrap().0
    }

    fn miss_of(lookup: Lookup) -> (Forward, Option<&'static str>) {
        match lookup {
            Lookup::Miss(forward, detail) => (forward, detail),
            Lookup::Found(_) => panic!("expected a miss"),
        }
    }

    fn found_of(lookup: Lookup) -> Found {
        match lookup {
            Lookup::Found(found) => found,
            Lookup::Miss(forward, detail) => panic!("expected a hit, got {forward:?} {detail:?}"),
        }
    }

    #[test]
    fn a_stored_response_is_found_under_its_key_without_what_a_shared_cache_must_not_keep() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let keyed = keyed("/a");
        assert_eq!(
            miss_of(lookup(&storage, &keyed, &HeaderMap::new())),
            (Forward::UriMiss, None)
        );
        let response = headers(&[
            ("content-type", "text/plain"),
            ("set-cookie", "id=1"),
            ("cache-control", "max-age=60, private=\"x-user\""),
            ("x-user", "alice"),
            ("surrogate-key", "b a b"),
        ]);
        put(&storage, &keyed, &HeaderMap::new(), &response, b"hello");
        let keys: Vec<String> = store.values.borrow().keys().cloned().collect();
        assert_eq!(keys, [format!("c:{}", keyed.key.hash)]);

        clock.set_unix_ms(NOW_MS + 10_000);
        let found = found_of(lookup(&storage, &keyed, &HeaderMap::new()));
        assert_eq!(found.body().as_ref(), b"hello");
        assert_eq!(found.headers()["content-type"], "text/plain");
        assert!(!found.headers().contains_key("set-cookie"));
        assert!(!found.headers().contains_key("x-user"));
        assert_eq!(found.meta().tags, ["a", "b"]);
        assert_eq!(found.lifetime(), Duration::from_secs(60));
        assert_eq!(found.age(clock.now()), Duration::from_secs(15));
        assert!(!found.soft_purged);
    }

    #[test]
    fn without_a_first_tier_a_lookup_never_reads_the_purge_epoch() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let keyed = keyed("/a");
        put(&storage, &keyed, &HeaderMap::new(), &HeaderMap::new(), b"x");
        store.reads.borrow_mut().clear();
        let (_, epoch) = block_on(storage.lookup(&keyed, &HeaderMap::new())).unwrap();
        assert_eq!(epoch, PurgeEpoch::Unread);
        assert!(!store.reads.borrow().iter().any(|key| key == "p:epoch"));
    }

    #[test]
    fn a_hard_purge_kills_an_entry_and_a_soft_one_marks_it_for_revalidation() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let (a, b) = (keyed("/a"), keyed("/b"));
        put(&storage, &a, &HeaderMap::new(), &HeaderMap::new(), b"a");
        put(&storage, &b, &HeaderMap::new(), &HeaderMap::new(), b"b");
        clock.set_unix_ms(NOW_MS + 1_000);
        block_on(storage.purge(&[url_scope(a.url())], PurgeKind::Hard)).unwrap();
        block_on(storage.purge(&[url_scope(b.url())], PurgeKind::Soft)).unwrap();
        assert_eq!(
            miss_of(lookup(&storage, &a, &HeaderMap::new())),
            (Forward::Miss, Some("invalidated"))
        );
        assert!(found_of(lookup(&storage, &b, &HeaderMap::new())).soft_purged);
        // Each purge wrote its scope and a new epoch; nothing was deleted.
        assert_eq!(store.count_under("s:"), 2);
        let values = store.values.borrow();
        assert!(values.contains_key(&format!("c:{}", a.key.hash)));
        assert!(values.contains_key("p:epoch"));
    }

    #[test]
    fn a_response_that_varies_is_stored_as_a_variant_under_an_index() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let keyed = keyed("/v");
        let response = headers(&[("vary", "accept-encoding")]);
        let gzip = headers(&[("accept-encoding", "gzip")]);
        let br = headers(&[("accept-encoding", "br")]);
        put(&storage, &keyed, &gzip, &response, b"zipped");
        assert_eq!(
            miss_of(lookup(&storage, &keyed, &br)),
            (Forward::VaryMiss, None)
        );
        assert_eq!(
            found_of(lookup(&storage, &keyed, &gzip)).body().as_ref(),
            b"zipped"
        );
        put(&storage, &keyed, &br, &response, b"brotli");
        assert_eq!(
            found_of(lookup(&storage, &keyed, &br)).body().as_ref(),
            b"brotli"
        );
        assert_eq!(
            found_of(lookup(&storage, &keyed, &gzip)).body().as_ref(),
            b"zipped"
        );
        assert_eq!(store.count_under("v:"), 2);
        let values = store.values.borrow();
        let index = &values[&format!("c:{}", keyed.key.hash)];
        let Ok((StoredValue::Vary(index), _)) = entry::decode(index) else {
            panic!("the primary key holds the Vary index");
        };
        assert_eq!(index.variants.len(), 2);
    }

    #[test]
    fn an_index_keeps_at_most_max_variants_and_deletes_the_oldest() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let keyed = keyed("/v");
        let response = headers(&[("vary", "x-variant")]);
        let request = |n: usize| headers(&[("x-variant", &n.to_string())]);
        for n in 0..=MAX_VARIANTS {
            put(&storage, &keyed, &request(n), &response, b"x");
        }
        let variants = store.count_under("v:");
        assert_eq!(variants, MAX_VARIANTS);
        assert_eq!(
            miss_of(lookup(&storage, &keyed, &request(0))),
            (Forward::VaryMiss, None)
        );
        assert!(matches!(
            lookup(&storage, &keyed, &request(MAX_VARIANTS)),
            Lookup::Found(_)
        ));
    }

    #[test]
    fn bytes_that_do_not_decode_are_a_corrupt_entry() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let keyed = keyed("/a");
        store
            .values
            .borrow_mut()
            .insert(format!("c:{}", keyed.key.hash), b"not an entry".to_vec());
        assert_eq!(
            miss_of(lookup(&storage, &keyed, &HeaderMap::new())),
            (Forward::Miss, Some("corrupt-entry"))
        );
    }

    #[test]
    fn an_entry_stored_under_another_key_is_a_collision() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let storage = storage(&store, &clock, None);
        let (a, b) = (keyed("/a"), keyed("/b"));
        put(&storage, &a, &HeaderMap::new(), &HeaderMap::new(), b"a");
        // /a's entry found under /b's hash, as a truncated hash could.
        let entry = store.values.borrow()[&format!("c:{}", a.key.hash)].clone();
        store
            .values
            .borrow_mut()
            .insert(format!("c:{}", b.key.hash), entry);
        assert_eq!(
            miss_of(lookup(&storage, &b, &HeaderMap::new())),
            (Forward::Miss, Some("key-collision"))
        );
    }

    #[test]
    fn a_first_tier_value_is_trusted_while_the_epoch_it_was_checked_at_is_current() {
        let (store, clock) = (MemStore::default(), FakeClock::at_unix_ms(NOW_MS));
        let l1 = L1::new(1 << 20);
        let storage = storage(&store, &clock, Some(&l1));
        let keyed = keyed("/a");
        let (_, epoch) = block_on(storage.lookup(&keyed, &HeaderMap::new())).unwrap();
        assert_eq!(epoch, PurgeEpoch::NeverPurged);
        put(&storage, &keyed, &HeaderMap::new(), &HeaderMap::new(), b"x");
        // The first lookup checks the scopes and remembers the epoch …
        assert!(matches!(
            lookup(&storage, &keyed, &HeaderMap::new()),
            Lookup::Found(_)
        ));
        assert!(store.reads.borrow().iter().any(|key| key == "s:all"));
        // … the next reads only the epoch.
        store.reads.borrow_mut().clear();
        assert!(matches!(
            lookup(&storage, &keyed, &HeaderMap::new()),
            Lookup::Found(_)
        ));
        assert_eq!(*store.reads.borrow(), ["p:epoch"]);
        // A purge of another URL moves the epoch: the scopes are read again.
        clock.set_unix_ms(NOW_MS + 1_000);
        block_on(storage.purge(&[url_scope("elsewhere")], PurgeKind::Hard)).unwrap();
        store.reads.borrow_mut().clear();
        assert!(matches!(
            lookup(&storage, &keyed, &HeaderMap::new()),
            Lookup::Found(_)
        ));
        assert!(store.reads.borrow().len() > 1, "{:?}", store.reads.borrow());
        assert!(!store.reads.borrow().iter().any(|key| key.starts_with("c:")));
    }

    #[test]
    fn times_are_whole_micro_and_milliseconds_since_the_epoch() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_250);
        assert_eq!(unix_us(t), 1_500_250);
        assert_eq!(unix_ms(t), 1_500);
        assert_eq!(unix_ms(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(
            from_unix_ms(1_500),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)
        );
    }
}
