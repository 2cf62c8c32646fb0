//! The first tier: decoded store values kept in the instance's own memory,
//! least recently used evicted first, bounded by bytes (`l1_capacity_bytes`).
//!
//! Worth having only where an instance outlives a request (WASI 0.3 with
//! instance reuse). The key-value store stays the second tier and receives
//! every write, so other instances, other nodes and restarts see it. An
//! L1 copy is never trusted past a purge: each value remembers the purge
//! epoch (see `storage`) at which its scopes were last checked, and a
//! lookup re-checks them whenever the store's epoch has moved since.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use http::HeaderMap;
use lru::LruCache;

use crate::http::header_list::from_pairs;
use crate::store::PurgeEpoch;
use crate::store::entry::StoredValue;

/// Bytes counted per value beside its body and metadata (map slot, `Rc`,
/// strings' headers): a rough, deliberately generous overhead.
const PER_VALUE_OVERHEAD: usize = 256;

/// Bytes counted per stored header field for its slot in the parsed map.
const PER_FIELD_OVERHEAD: usize = 64;

/// One decoded store value.
#[derive(Debug)]
pub(crate) struct Cached {
    /// The value as decoded from the store.
    pub value: StoredValue,
    /// A stored response's headers as a map, parsed once when the value
    /// was read or written rather than on every hit (empty for a Vary index).
    pub headers: HeaderMap,
    /// The body that followed it (empty for a Vary index), shared with
    /// every answer made from it.
    pub body: Bytes,
    /// The purge epoch at which this value's scopes were last found valid;
    /// `None` until checked.
    pub validated_at: RefCell<Option<PurgeEpoch>>,
}

impl Cached {
    /// A value just read from the store or written to it.
    pub(crate) fn new(
        value: StoredValue,
        body: impl Into<Bytes>,
        validated_at: Option<PurgeEpoch>,
    ) -> Self {
        let headers = match &value {
            StoredValue::Response(meta) => from_pairs(&meta.headers),
            StoredValue::Vary(_) => HeaderMap::new(),
        };
        Cached::with_headers(value, headers, body.into(), validated_at)
    }

    /// A value just written, with the map its stored headers were made
    /// from (what [`Cached::new`] would parse back from them).
    pub(crate) fn with_headers(
        value: StoredValue,
        headers: HeaderMap,
        body: Bytes,
        validated_at: Option<PurgeEpoch>,
    ) -> Self {
        Cached {
            value,
            headers,
            body,
            validated_at: RefCell::new(validated_at),
        }
    }

    fn size(&self) -> usize {
        let meta = match &self.value {
            // The headers are held twice: as stored, and parsed.
            StoredValue::Response(meta) => {
                meta.key.len()
                    + meta
                        .headers
                        .iter()
                        .map(|(n, v)| 2 * (n.len() + v.len()) + PER_FIELD_OVERHEAD)
                        .sum::<usize>()
                    + meta.tags.iter().map(String::len).sum::<usize>()
            }
            StoredValue::Vary(index) => {
                index.key.len() + index.variants.iter().map(String::len).sum::<usize>()
            }
        };
        self.body.len() + meta + PER_VALUE_OVERHEAD
    }
}

/// The instance-local tier.
pub(crate) struct L1 {
    capacity_bytes: usize,
    inner: RefCell<Inner>,
}

struct Inner {
    values: LruCache<String, (Rc<Cached>, usize)>,
    bytes: usize,
}

impl L1 {
    /// An empty tier holding at most `capacity_bytes`.
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        L1 {
            capacity_bytes,
            inner: RefCell::new(Inner {
                values: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The value under `key`, now the most recently used.
    pub(crate) fn get(&self, key: &str) -> Option<Rc<Cached>> {
        self.inner
            .borrow_mut()
            .values
            .get(key)
            .map(|(value, _)| value.clone())
    }

    /// Keeps `value` under `key`, evicting the least recently used values
    /// until everything fits; a value larger than the whole tier is not
    /// kept (it stays in the store).
    pub(crate) fn put(&self, key: &str, value: Rc<Cached>) {
        let size = value.size();
        let mut inner = self.inner.borrow_mut();
        if let Some((_, old)) = inner.values.pop(key) {
            inner.bytes -= old;
        }
        if size > self.capacity_bytes {
            return;
        }
        while inner.bytes + size > self.capacity_bytes {
            match inner.values.pop_lru() {
                Some((_, (_, evicted))) => inner.bytes -= evicted,
                None => break,
            }
        }
        inner.bytes += size;
        inner.values.put(key.to_owned(), (value, size));
    }

    /// Drops `key`'s value, so that the next read goes to the store.
    pub(crate) fn remove(&self, key: &str) {
        let mut inner = self.inner.borrow_mut();
        if let Some((_, size)) = inner.values.pop(key) {
            inner.bytes -= size;
        }
    }

    #[cfg(test)]
    /// Bytes held (as counted for the bound).
    pub(crate) fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }

    #[cfg(test)]
    /// Values held.
    pub(crate) fn len(&self) -> usize {
        self.inner.borrow().values.len()
    }

    #[cfg(test)]
    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tier for `capacity_bytes`; none when it is zero (turned off).
pub(crate) fn l1_for(capacity_bytes: usize) -> Option<L1> {
    (capacity_bytes > 0).then(|| L1::new(capacity_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entry::VaryIndex;

    fn index(key: &str) -> Rc<Cached> {
        let value = StoredValue::Vary(VaryIndex {
            key: key.to_owned(),
            names: vec![],
            epoch: 0,
            variants: vec![],
        });
        Rc::new(Cached::new(value, vec![0; 1000], None))
    }

    #[test]
    fn least_recently_used_values_go_first_and_the_bound_holds() {
        let tier = L1::new(3 * 1300);
        for key in ["a", "b", "c"] {
            tier.put(key, index(key));
        }
        assert_eq!(tier.len(), 3);
        assert!(tier.get("a").is_some(), "a is now the most recent");
        tier.put("d", index("d"));
        assert!(tier.get("b").is_none(), "b was least recently used");
        assert!(tier.get("a").is_some() && tier.get("d").is_some());
        assert!(tier.bytes() <= 3 * 1300);
    }

    #[test]
    fn a_value_larger_than_the_tier_is_not_kept_and_replacing_counts_once() {
        let tier = L1::new(1000);
        tier.put("big", index("big"));
        assert!(tier.is_empty());
        let roomy = L1::new(10_000);
        roomy.put("k", index("k"));
        let once = roomy.bytes();
        roomy.put("k", index("k"));
        assert_eq!(roomy.bytes(), once);
        roomy.remove("k");
        assert_eq!((roomy.bytes(), roomy.len()), (0, 0));
        assert!(l1_for(0).is_none());
    }
}
