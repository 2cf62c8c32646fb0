//! The cache's layout in the key-value store, behind an API in cache nouns:
//! look up a response for a request, write one, purge a scope.
//!
//! Every store-key namespace is spelled here and nowhere else:
//!
//! | prefix | holds |
//! |---|---|
//! | `c:` | a primary entry (response or Vary index) by key hash |
//! | `v:` | one variant of a URL whose response has `Vary` |
//! | `s:` | a scope's purge times (see `invalidation`) |
//! | `o:` | an origin's breaker state and concurrency leases |
//! | `e:` | a marker that one broken-rules error was logged |
//! | `p:` | the purge epoch: a new token after every purge, for the L1 |
//! | `f:` | a fill lease: a key being fetched by some instance (`fill_lease`) |
//!
//! A Vary index keeps at most [`MAX_VARIANTS`] variants under an epoch; a
//! changed `Vary` starts a new epoch, which makes every older variant
//! unreachable without deleting it (the store's eviction reclaims it).

pub mod entry;
pub mod l1;
pub mod shared_state;

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;

use crate::http::header_list::to_pairs;
use crate::policy::cache_status::Forward;
use crate::policy::freshness::{EffectiveControl, current_age};
use crate::policy::key::{CacheKey, KeyedRequest, hash128};
use crate::policy::storability::NOT_STORED_HEADERS;
use crate::policy::vary::{MAX_VARIANTS, VaryNames, variance};
use crate::purge::invalidation::{
    PurgeKind, PurgeTimes, Validity, all_scope, prefix_scopes, tag_scope, url_scope,
};
use crate::seams::{Clock, Store, StoreFailure};
use crate::store::entry::{EntryMeta, StoredValue, VaryIndex};
use crate::store::l1::{Cached, L1};

/// The store key of a primary entry.
pub fn entry_key(key: &CacheKey) -> String {
    format!("c:{}", key.hash)
}

/// The store key of one variant under a Vary index.
fn variant_key(index: &VaryIndex, variant: &str) -> String {
    format!(
        "v:{}",
        hash128(format!("{}\n{}\n{}", index.key, index.epoch, variant).as_bytes())
    )
}

/// The store key of a scope's purge times.
pub fn scope_key(scope: &str) -> String {
    format!("s:{scope}")
}

/// The store key of an origin's circuit-breaker state.
pub fn breaker_key(origin: &str) -> String {
    format!("o:breaker:{origin}")
}

/// The store key of an origin's concurrency leases.
pub fn slots_key(origin: &str) -> String {
    format!("o:slots:{origin}")
}

/// The store key of a key's fill lease.
pub fn fill_lease_key(key: &CacheKey) -> String {
    format!("f:{}", key.hash)
}

/// The store key of the purge epoch.
const PURGE_EPOCH_KEY: &str = "p:epoch";

/// A store key holding invalidation state, which every node sharing a
/// cache policy must agree on (`shared_state` routes these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationKey {
    /// A scope's purge times (`s:`).
    Scope,
    /// The purge epoch (`p:`).
    Epoch,
}

/// Whether `key` holds a stored response or Vary index (`c:`, `v:`): what
/// a shield tier shares between nodes.
pub fn is_entry_key(key: &str) -> bool {
    key.starts_with("c:") || key.starts_with("v:")
}

/// Whether `key` holds invalidation state, and which.
pub fn invalidation_key(key: &str) -> Option<InvalidationKey> {
    if key.starts_with("s:") {
        Some(InvalidationKey::Scope)
    } else if key.starts_with("p:") {
        Some(InvalidationKey::Epoch)
    } else {
        None
    }
}

/// The store key marking that a broken-rules `message` was logged.
pub fn rules_error_key(message: &str) -> String {
    format!("e:{}", hash128(message.as_bytes()))
}

/// A stored response found for a request: the decoded value itself,
/// shared with the first tier, so a hit copies nothing until it answers.
pub struct Found {
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
    pub fn meta(&self) -> &EntryMeta {
        match &self.entry.value {
            StoredValue::Response(meta) => meta,
            StoredValue::Vary(_) => unreachable!("Found::of admits stored responses only"),
        }
    }

    /// The stored headers, as a map.
    pub fn headers(&self) -> &HeaderMap {
        &self.entry.headers
    }

    /// The stored content, shared with the first tier.
    pub fn body(&self) -> &Bytes {
        &self.entry.body
    }

    /// Its current age at `now` (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        current_age(
            Duration::from_millis(self.meta().initial_age_ms),
            from_unix_ms(self.meta().response_time_ms),
            now,
        )
    }

    /// Its freshness lifetime, fixed when it was stored.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.meta().lifetime_ms)
    }
}

/// What a lookup found.
pub enum Lookup {
    /// A live stored response (possibly stale or soft-purged).
    Found(Found),
    /// Nothing usable: why (for `Cache-Status`), and a detail.
    Miss(Forward, Option<&'static str>),
}

/// Microseconds: purge and fetch times are compared at this resolution, so
/// a fetch that starts just after a purge is rarely mistaken for one before.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A fetched response to be stored, with the times RFC 9111 §4.2.3 needs.
pub struct StoredFetch<'a> {
    /// The response status.
    pub status: u16,
    /// Its header fields as relayed (hop-by-hop fields already removed).
    pub headers: &'a HeaderMap,
    /// Its content.
    pub body: &'a Bytes,
    /// When the request that fetched it was sent.
    pub request_time: SystemTime,
    /// When its head arrived.
    pub response_time: SystemTime,
    /// Its corrected initial age.
    pub initial_age: Duration,
    /// Its freshness lifetime (`None`: stale at once, kept for validation).
    pub lifetime: Option<Duration>,
    /// Its cache directives, as the flow already parsed them.
    pub control: &'a EffectiveControl,
}

/// A response as it is written: its metadata, the header map its stored
/// fields were made from (for the first tier's copy), and its body.
struct StoredResponse<'a> {
    meta: EntryMeta,
    headers: HeaderMap,
    body: &'a Bytes,
}

/// The surrogate keys (tags) a response carries, sorted and unique.
fn surrogate_keys(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = headers
        .get_all("surrogate-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split_ascii_whitespace())
        .map(str::to_owned)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The cache over a byte store, with an optional first tier.
pub struct CacheStorage<'a, S, C> {
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
pub type PurgeEpoch = Option<String>;

impl<S: Store, C: Clock> CacheStorage<'_, S, C> {
    /// Invalidates every variant of `keyed`'s URL (RFC 9111 §4.4).
    pub async fn invalidate_url(&self, keyed: &KeyedRequest) -> Result<(), StoreFailure> {
        self.purge(&[url_scope(keyed.url())], PurgeKind::Hard).await
    }

    /// Records a purge of `scopes` now: one read and one write per scope,
    /// whatever is cached, then a new purge epoch.
    ///
    /// The epoch is written after the scopes and is a token no other purge
    /// writes, so an L1 value checked before a scope was written carries
    /// an epoch the store will never show again: its next lookup re-checks
    /// its scopes, and sees the purge.
    pub async fn purge(&self, scopes: &[String], kind: PurgeKind) -> Result<(), StoreFailure> {
        let now_us = unix_us(self.clock.now());
        for scope in scopes {
            let key = scope_key(scope);
            let previous = PurgeTimes::decode(self.store.get_current(&key).await?.as_deref());
            let updated = previous.after_purge(now_us, kind);
            self.store.set(&key, &updated.encode()).await?;
        }
        let token = hash128(format!("{now_us}|{}", scopes.join("|")).as_bytes());
        self.store.set(PURGE_EPOCH_KEY, token.as_bytes()).await
    }

    /// The current purge epoch, read only when there is a first tier to
    /// check against it.
    async fn purge_epoch(&self) -> Result<PurgeEpoch, StoreFailure> {
        if self.l1.is_none() {
            return Ok(None);
        }
        let token = self.store.get(PURGE_EPOCH_KEY).await?;
        Ok(Some(token.map_or_else(String::new, |t| {
            String::from_utf8_lossy(&t).into_owned()
        })))
    }

    /// Reads `key` from the first tier (where `use_l1`), else from the
    /// store, keeping what decodes in the first tier.
    async fn read(&self, key: &str, use_l1: bool) -> Result<Read, StoreFailure> {
        if use_l1 && let Some(cached) = self.l1.and_then(|l1| l1.get(key)) {
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
            l1.put(key, cached.clone());
        }
        Ok(Read::Value(cached))
    }

    /// Writes `value` under `key` to the store and the first tier; a
    /// response's headers come with it as the map they were stored from,
    /// so the first tier's copy need not parse them back.
    async fn put(
        &self,
        key: &str,
        value: StoredValue,
        headers: Option<HeaderMap>,
        body: &Bytes,
        epoch: &PurgeEpoch,
    ) -> Result<(), StoreFailure> {
        let encoded = entry::encode(&value, body);
        let written = self.store.set(key, &encoded).await;
        if let Some(l1) = self.l1 {
            match &written {
                // Fetched after the epoch was read: valid against it.
                Ok(()) => {
                    let (body, validated_at) = (body.clone(), epoch.clone());
                    let cached = match headers {
                        Some(headers) => Cached::with_headers(value, headers, body, validated_at),
                        None => Cached::new(value, body, validated_at),
                    };
                    l1.put(key, Rc::new(cached));
                }
                Err(_) => l1.remove(key),
            }
        }
        written
    }

    async fn purge_times(&self, scope: &str) -> Result<PurgeTimes, StoreFailure> {
        Ok(PurgeTimes::decode(
            self.store.get(&scope_key(scope)).await?.as_deref(),
        ))
    }

    /// Stores a fetched response for `keyed` (and the request headers its
    /// `Vary` names), without the fields a shared cache must not keep.
    pub async fn store(
        &self,
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
        fetch: StoredFetch<'_>,
        epoch: &PurgeEpoch,
    ) -> Result<(), StoreFailure> {
        let mut stored_headers = fetch.headers.clone();
        for name in NOT_STORED_HEADERS {
            stored_headers.remove(name);
        }
        // `private="a"` / `no-cache="a"`: the response is shared, these
        // fields are not.
        for name in fetch.control.directives.unshared_fields() {
            stored_headers.remove(name.as_str());
        }
        let meta = EntryMeta {
            key: keyed.key.canonical.clone(),
            status: fetch.status,
            headers: to_pairs(&stored_headers),
            request_time_us: unix_us(fetch.request_time),
            response_time_ms: unix_ms(fetch.response_time),
            initial_age_ms: fetch.initial_age.as_millis() as u64,
            lifetime_ms: fetch.lifetime.map_or(0, |l| l.as_millis() as u64),
            tags: surrogate_keys(fetch.headers),
        };
        let stored = StoredResponse {
            meta,
            headers: stored_headers,
            body: fetch.body,
        };
        self.write(keyed, request_headers, fetch.headers, stored, epoch)
            .await
    }

    /// Writes `stored` for `keyed`, as a variant when the response has
    /// `Vary`.
    async fn write(
        &self,
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
        response_headers: &HeaderMap,
        stored: StoredResponse<'_>,
        epoch: &PurgeEpoch,
    ) -> Result<(), StoreFailure> {
        let StoredResponse {
            meta,
            headers,
            body,
        } = stored;
        let primary = entry_key(&keyed.key);
        let VaryNames::Names(names) = VaryNames::of(response_headers) else {
            let response = StoredValue::Response(meta);
            return self
                .put(&primary, response, Some(headers), body, epoch)
                .await;
        };
        // Keep the current index if it describes the same Vary; otherwise a
        // new epoch makes every older variant unreachable.
        let existing = match self.read(&primary, true).await? {
            Read::Value(cached) => match &cached.value {
                StoredValue::Vary(index) if index.key == meta.key && index.names == names => {
                    Some(index.clone())
                }
                _ => None,
            },
            Read::Absent | Read::Corrupt => None,
        };
        let mut index = existing.unwrap_or(VaryIndex {
            key: meta.key.clone(),
            names: names.clone(),
            epoch: unix_ms(self.clock.now()) ^ (meta.request_time_us << 20),
            variants: Vec::new(),
        });
        let variant = hash128(variance(&names, request_headers).as_bytes());
        index.variants.retain(|v| *v != variant);
        index.variants.push(variant.clone());
        while index.variants.len() > MAX_VARIANTS {
            let oldest = index.variants.remove(0);
            let evicted = variant_key(&index, &oldest);
            let _ = self.store.delete(&evicted).await;
            if let Some(l1) = self.l1 {
                l1.remove(&evicted);
            }
        }
        let variant_key = variant_key(&index, &variant);
        let response = StoredValue::Response(meta);
        self.put(&variant_key, response, Some(headers), body, epoch)
            .await?;
        self.put(
            &primary,
            StoredValue::Vary(index),
            None,
            &Bytes::new(),
            epoch,
        )
        .await
    }

    /// The live response stored for `keyed` and these request headers,
    /// with the purge epoch the lookup saw (to record with a fill).
    pub async fn lookup(
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
        let cached = match self.read(&entry_key(&keyed.key), use_l1).await? {
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
                match self.read(&variant_key(index, &variant), use_l1).await? {
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
