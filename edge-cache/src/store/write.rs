//! Writing a fetched response: the fields a shared cache must not keep
//! removed, its metadata built, and the entry written (as a variant under
//! a Vary index where the response varies) to the store and the first tier.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;

use crate::http::header_list::to_pairs;
use crate::policy::freshness::EffectiveControl;
use crate::policy::key::{KeyedTarget, hash128};
use crate::policy::storability::NOT_STORED_HEADERS;
use crate::policy::vary::{MAX_VARIANTS, VaryNames, variance};
use crate::seams::{Clock, StoreFailure};
use crate::store::chunks::{ChunkLayout, ChunkSet};
use crate::store::entry::{self, Encodings, EntryMeta, StoredValue, VaryIndex};
use crate::store::keys::{EntryKey, Store, StoreKey};
use crate::store::l1::Cached;
use crate::store::{CacheStorage, PurgeEpoch, Read, unix_ms, unix_us};

/// A fetched response to be stored, with the times RFC 9111 §4.2.3 needs.
pub(crate) struct StoredFetch<'a> {
    pub status: u16,
    /// Its header fields as relayed (hop-by-hop fields already removed).
    pub headers: &'a HeaderMap,
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
    /// Where the body is, if it was stored in chunks (`body` is then
    /// empty).
    pub chunks: Option<ChunkLayout>,
    /// Which chunks are stored, where it is stored by slices.
    pub sliced: Option<ChunkSet>,
    /// The codings `body` holds, where the edge compressed it.
    pub encodings: Option<Encodings>,
}

/// A response as it is written: its metadata, the header map its stored
/// fields were made from (for the first tier's copy), and its body.
struct StoredResponse<'a> {
    meta: EntryMeta,
    headers: HeaderMap,
    body: &'a Bytes,
}

/// The metadata `fetch` is stored with for `keyed`, and the header fields
/// it keeps: without those a shared cache must not keep.
pub(crate) fn entry_meta(keyed: &KeyedTarget, fetch: &StoredFetch<'_>) -> (EntryMeta, HeaderMap) {
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
        // Its purge tags, from the fields its rule reads them from.
        tags: keyed.tag_headers.tags_of(fetch.headers),
        chunks: fetch.chunks,
        sliced: fetch.sliced.clone(),
        encodings: fetch.encodings.clone(),
    };
    (meta, stored_headers)
}

impl<S: Store, C: Clock> CacheStorage<'_, S, C> {
    /// Stores a fetched response for `keyed` (and the request headers its
    /// `Vary` names), without the fields a shared cache must not keep.
    pub(crate) async fn store(
        &self,
        keyed: &KeyedTarget,
        request_headers: &HeaderMap,
        fetch: StoredFetch<'_>,
        epoch: &PurgeEpoch,
    ) -> Result<(), StoreFailure> {
        let (meta, stored_headers) = entry_meta(keyed, &fetch);
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
        keyed: &KeyedTarget,
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
        let primary = EntryKey::primary(&keyed.key);
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
            let evicted = EntryKey::variant(&index, &oldest);
            let _ = self.store.delete(&evicted).await;
            if let Some(l1) = self.l1 {
                l1.remove(evicted.text());
            }
        }
        let variant_key = EntryKey::variant(&index, &variant);
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

    /// Writes `value` under `key` to the store and the first tier; a
    /// response's headers come with it as the map they were stored from,
    /// so the first tier's copy need not parse them back.
    async fn put(
        &self,
        key: &EntryKey,
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
                Ok(()) if !super::kept_in_l1(&value) => l1.remove(key.text()),
                Ok(()) => {
                    let (body, validated_at) = (body.clone(), Some(epoch.clone()));
                    let cached = match headers {
                        Some(headers) => Cached::with_headers(value, headers, body, validated_at),
                        None => Cached::new(value, body, validated_at),
                    };
                    l1.put(key.text(), Rc::new(cached));
                }
                Err(_) => l1.remove(key.text()),
            }
        }
        written
    }
}
