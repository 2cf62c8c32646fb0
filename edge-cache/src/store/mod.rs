//! The cache in its stores, behind an API in cache nouns: look up a
//! response for a request (`lookup`), write one (`write`), purge a scope.
//! Which store holds what is decided by the keys' types (`keys`); the
//! stores themselves are the node's own, the shared one for purge state
//! (`shared_state`), the instance's first tier in front (`l1`) and the
//! shield behind; `entry` is the stored byte format.
//!
//! A Vary index keeps at most [`MAX_VARIANTS`] variants under an epoch; a
//! changed `Vary` starts a new epoch, which makes every older variant
//! unreachable without deleting it (the store's eviction reclaims it).

pub mod entry;
pub(crate) mod keys;
pub(crate) mod l1;
pub(crate) mod shared_state;
mod write;

pub(crate) use write::StoredFetch;

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;

use crate::policy::cache_status::Forward;
use crate::policy::freshness::current_age;
use crate::policy::key::{KeyedRequest, hash128};
use crate::policy::vary::variance;
use crate::purge::invalidation::{
    PurgeKind, PurgeTimes, Validity, all_scope, prefix_scopes, tag_scope, url_scope,
};
use crate::seams::{Clock, Store, StoreFailure};
use crate::store::entry::{EntryMeta, StoredValue};
use crate::store::keys::{EntryKey, PurgeStateKey, StoreKey};
use crate::store::l1::{Cached, L1};

/// A stored response found for a request: the decoded value itself,
/// shared with the first tier, so a hit copies nothing until it answers.
pub(crate) struct Found {
    entry: Rc<Cached>,
    /// A soft purge covers it: revalidate before reuse.
    pub soft_purged: bool,
}

impl Found {
    /// `entry` if it is a stored response (not a Vary index).
    fn of(entry: Rc<Cached>, soft_purged: bool) -> Option<Found> {
        matches!(entry.value, StoredValue::Response(_)).then_some(Found { entry, soft_purged })
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

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The cache over a byte store, with an optional first tier.
pub(crate) struct CacheStorage<'a, S, C> {
    /// Where the bytes live (the second tier, and the only shared one).
    pub store: &'a S,
    /// Purge and epoch times.
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

/// The purge epoch a lookup saw, to be recorded with what it stores.
pub(crate) type PurgeEpoch = Option<String>;

impl<S: Store, C: Clock> CacheStorage<'_, S, C> {
    /// Invalidates every variant of `keyed`'s URL (RFC 9111 §4.4).
    pub(crate) async fn invalidate_url(&self, keyed: &KeyedRequest) -> Result<(), StoreFailure> {
        self.purge(&[url_scope(keyed.url())], PurgeKind::Hard).await
    }

    /// Records a purge of `scopes` now: one read and one write per scope,
    /// whatever is cached, then a new purge epoch.
    ///
    /// The epoch is written after the scopes and is a token no other purge
    /// writes, so an L1 value checked before a scope was written carries
    /// an epoch the store will never show again: its next lookup re-checks
    /// its scopes, and sees the purge.
    pub(crate) async fn purge(
        &self,
        scopes: &[String],
        kind: PurgeKind,
    ) -> Result<(), StoreFailure> {
        let now_us = unix_us(self.clock.now());
        for scope in scopes {
            let key = PurgeStateKey::scope(scope);
            let previous = PurgeTimes::decode(self.store.get_current(&key).await?.as_deref());
            let updated = previous.after_purge(now_us, kind);
            self.store.set(&key, &updated.encode()).await?;
        }
        let token = hash128(format!("{now_us}|{}", scopes.join("|")).as_bytes());
        self.store
            .set(&PurgeStateKey::Epoch, token.as_bytes())
            .await
    }

    /// The current purge epoch, read only when there is a first tier to
    /// check against it.
    async fn purge_epoch(&self) -> Result<PurgeEpoch, StoreFailure> {
        if self.l1.is_none() {
            return Ok(None);
        }
        let token = self.store.get(&PurgeStateKey::Epoch).await?;
        Ok(Some(token.map_or_else(String::new, |t| {
            String::from_utf8_lossy(&t).into_owned()
        })))
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
        if let Some(l1) = self.l1 {
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

    /// The live response stored for `keyed` and these request headers,
    /// with the purge epoch the lookup saw (to record with a fill).
    pub(crate) async fn lookup(
        &self,
        keyed: &KeyedRequest,
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
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
        epoch: &PurgeEpoch,
        use_l1: bool,
    ) -> Result<Lookup, StoreFailure> {
        let corrupt = Lookup::Miss(Forward::Miss, Some("corrupt-entry"));
        let collision = Lookup::Miss(Forward::Miss, Some("key-collision"));
        let cached = match self.read(&EntryKey::primary(&keyed.key), use_l1).await? {
            Read::Absent => return Ok(Lookup::Miss(Forward::UriMiss, None)),
            Read::Corrupt => return Ok(corrupt),
            Read::Value(cached) => cached,
        };
        let cached = match &cached.value {
            StoredValue::Response(_) => cached,
            StoredValue::Vary(index) => {
                if index.key != keyed.key.canonical {
                    return Ok(collision);
                }
                let variant = hash128(variance(&index.names, request_headers).as_bytes());
                if !index.variants.contains(&variant) {
                    return Ok(Lookup::Miss(Forward::VaryMiss, None));
                }
                match self
                    .read(&EntryKey::variant(index, &variant), use_l1)
                    .await?
                {
                    Read::Value(variant) if matches!(variant.value, StoredValue::Response(_)) => {
                        variant
                    }
                    Read::Absent => return Ok(Lookup::Miss(Forward::VaryMiss, None)),
                    Read::Value(_) | Read::Corrupt => return Ok(corrupt),
                }
            }
        };
        let StoredValue::Response(meta) = &cached.value else {
            return Ok(corrupt);
        };
        if meta.key != keyed.key.canonical {
            return Ok(collision);
        }
        // An L1 value checked at the store's current epoch has seen every
        // purge since; anything else is checked against its scopes.
        let checked = epoch.is_some() && *cached.validated_at.borrow() == *epoch;
        let validity = if checked {
            Validity::Valid
        } else {
            let validity = self.validity(keyed, meta).await?;
            if validity == Validity::Valid {
                *cached.validated_at.borrow_mut() = epoch.clone();
            }
            validity
        };
        if validity == Validity::Invalid {
            return Ok(Lookup::Miss(Forward::Miss, Some(INVALIDATED)));
        }
        let soft_purged = validity == Validity::Stale;
        Ok(Found::of(cached, soft_purged).map_or(corrupt, Lookup::Found))
    }

    /// Whether the purges of every scope `meta` is stored under leave it
    /// valid, stale or invalid.
    async fn validity(
        &self,
        keyed: &KeyedRequest,
        meta: &EntryMeta,
    ) -> Result<Validity, StoreFailure> {
        let mut scopes = vec![all_scope(), url_scope(keyed.url())];
        scopes.extend(prefix_scopes(&keyed.path));
        scopes.extend(meta.tags.iter().map(|tag| tag_scope(tag)));
        let mut validity = Validity::Valid;
        for scope in &scopes {
            let times = self.purge_times(scope).await?;
            validity = validity.max(times.validity(meta.request_time_us));
            if validity == Validity::Invalid {
                break;
            }
        }
        Ok(validity)
    }
}
