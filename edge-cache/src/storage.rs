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
//!
//! A Vary index keeps at most [`MAX_VARIANTS`] variants under an epoch; a
//! changed `Vary` starts a new epoch, which makes every older variant
//! unreachable without deleting it (the store's eviction reclaims it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::cache_status::Forward;
use crate::entry::{self, EntryMeta, StoredValue, VaryIndex};
use crate::freshness::current_age;
use crate::header_list::{from_pairs, to_pairs};
use crate::invalidation::{
    PurgeKind, PurgeTimes, Validity, all_scope, prefix_scopes, tag_scope, url_scope,
};
use crate::key::{CacheKey, KeyedRequest, hash128};
use crate::seams::{Clock, Store, StoreFailure};
use crate::storability::NOT_STORED_HEADERS;
use crate::vary::{MAX_VARIANTS, VaryNames, variance};

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

/// The store key marking that a broken-rules `message` was logged.
pub fn rules_error_key(message: &str) -> String {
    format!("e:{}", hash128(message.as_bytes()))
}

/// A stored response found for a request.
pub struct Found {
    /// What was stored beside the body.
    pub meta: EntryMeta,
    /// `meta.headers` as a map, decoded once per lookup.
    pub headers: HeaderMap,
    /// The stored content.
    pub body: Vec<u8>,
    /// A soft purge covers it: revalidate before reuse.
    pub soft_purged: bool,
}

impl Found {
    /// Its current age at `now` (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        current_age(
            Duration::from_millis(self.meta.initial_age_ms),
            from_unix_ms(self.meta.response_time_ms),
            now,
        )
    }

    /// Its freshness lifetime, fixed when it was stored.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.meta.lifetime_ms)
    }
}

/// What a lookup found.
pub enum Lookup {
    /// A live stored response (possibly stale or soft-purged).
    Found(Box<Found>),
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
    pub body: &'a [u8],
    /// When the request that fetched it was sent.
    pub request_time: SystemTime,
    /// When its head arrived.
    pub response_time: SystemTime,
    /// Its corrected initial age.
    pub initial_age: Duration,
    /// Its freshness lifetime (`None`: stale at once, kept for validation).
    pub lifetime: Option<Duration>,
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

/// The cache over a byte store.
pub struct CacheStorage<'a, S, C> {
    /// Where the bytes live.
    pub store: &'a S,
    /// Purge and epoch times.
    pub clock: &'a C,
}

impl<S: Store, C: Clock> CacheStorage<'_, S, C> {
    /// Invalidates every variant of `keyed`'s URL (RFC 9111 §4.4).
    pub async fn invalidate_url(&self, keyed: &KeyedRequest) -> Result<(), StoreFailure> {
        self.purge(&url_scope(keyed.url()), PurgeKind::Hard).await
    }

    /// Records a purge of `scope` now: one read and one write, whatever is
    /// cached.
    pub async fn purge(&self, scope: &str, kind: PurgeKind) -> Result<(), StoreFailure> {
        let key = scope_key(scope);
        let previous = PurgeTimes::decode(self.store.get(&key).await?.as_deref());
        let updated = previous.after_purge(unix_us(self.clock.now()), kind);
        self.store.set(&key, &updated.encode()).await
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
    ) -> Result<(), StoreFailure> {
        let mut stored_headers = fetch.headers.clone();
        for name in NOT_STORED_HEADERS {
            stored_headers.remove(name);
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
        self.write(keyed, request_headers, fetch.headers, meta, fetch.body)
            .await
    }

    /// Writes `meta` and `body` for `keyed`, as a variant when the
    /// response has `Vary`.
    async fn write(
        &self,
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
        response_headers: &HeaderMap,
        meta: EntryMeta,
        body: &[u8],
    ) -> Result<(), StoreFailure> {
        let primary = entry_key(&keyed.key);
        let VaryNames::Names(names) = VaryNames::of(response_headers) else {
            let entry = entry::encode(&StoredValue::Response(meta), body);
            return self.store.set(&primary, &entry).await;
        };
        // Keep the current index if it describes the same Vary; otherwise a
        // new epoch makes every older variant unreachable.
        let existing = match self.store.get(&primary).await?.map(|b| entry::decode(&b)) {
            Some(Ok((StoredValue::Vary(index), _)))
                if index.key == meta.key && index.names == names =>
            {
                Some(index)
            }
            _ => None,
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
            let evicted = index.variants.remove(0);
            let _ = self.store.delete(&variant_key(&index, &evicted)).await;
        }
        let variant_key = variant_key(&index, &variant);
        self.store
            .set(
                &variant_key,
                &entry::encode(&StoredValue::Response(meta), body),
            )
            .await?;
        let index = entry::encode(&StoredValue::Vary(index), &[]);
        self.store.set(&primary, &index).await
    }

    /// The live response stored for `keyed` and these request headers.
    pub async fn lookup(
        &self,
        keyed: &KeyedRequest,
        request_headers: &HeaderMap,
    ) -> Result<Lookup, StoreFailure> {
        let primary = entry_key(&keyed.key);
        let Some(bytes) = self.store.get(&primary).await? else {
            return Ok(Lookup::Miss(Forward::UriMiss, None));
        };
        let (value, body) = match entry::decode(&bytes) {
            Ok(decoded) => decoded,
            Err(_) => return Ok(Lookup::Miss(Forward::Miss, Some("corrupt-entry"))),
        };
        let (meta, body) = match value {
            StoredValue::Response(meta) => (meta, body),
            StoredValue::Vary(index) => {
                if index.key != keyed.key.canonical {
                    return Ok(Lookup::Miss(Forward::Miss, Some("key-collision")));
                }
                let variant = hash128(variance(&index.names, request_headers).as_bytes());
                if !index.variants.contains(&variant) {
                    return Ok(Lookup::Miss(Forward::VaryMiss, None));
                }
                let key = variant_key(&index, &variant);
                match self.store.get(&key).await?.map(|b| entry::decode(&b)) {
                    Some(Ok((StoredValue::Response(meta), body))) => (meta, body),
                    Some(_) => return Ok(Lookup::Miss(Forward::Miss, Some("corrupt-entry"))),
                    None => return Ok(Lookup::Miss(Forward::VaryMiss, None)),
                }
            }
        };
        if meta.key != keyed.key.canonical {
            return Ok(Lookup::Miss(Forward::Miss, Some("key-collision")));
        }
        let mut scopes = vec![all_scope(), url_scope(keyed.url())];
        scopes.extend(prefix_scopes(&keyed.path));
        scopes.extend(meta.tags.iter().map(|tag| tag_scope(tag)));
        let mut validity = Validity::Valid;
        for scope in &scopes {
            validity = validity.max(
                self.purge_times(scope)
                    .await?
                    .validity(meta.request_time_us),
            );
            if validity == Validity::Invalid {
                return Ok(Lookup::Miss(Forward::Miss, Some("invalidated")));
            }
        }
        Ok(Lookup::Found(Box::new(Found {
            headers: from_pairs(&meta.headers),
            meta,
            body,
            soft_purged: validity == Validity::Stale,
        })))
    }
}
