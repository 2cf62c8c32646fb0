//! Store keys as types, and the [`Store`] they address: where a value
//! lives follows from its key's type, never from reading the key's text.
//! Every namespace is spelled here and nowhere else; the text is the
//! layout every flavour and every existing store shares, byte for byte:
//!
//! | type | text | holds | lives in |
//! |---|---|---|---|
//! | [`EntryKey`] | `c:<hash>` | a primary entry (response or Vary index) | the node's store, and the shield |
//! | [`EntryKey`] | `v:<hash>` | one variant of a URL whose response has `Vary` | the node's store, and the shield |
//! | [`PurgeStateKey`] | `s:<scope>` | a scope's purge times (see `policy::invalidation`) | the shared store |
//! | [`PurgeStateKey`] | `p:epoch` | the purge epoch: a new token after every purge, for the L1 | the shared store |
//! | [`PurgeStateKey`] | `q:<id>` | a purge's record: when, what (`purge::completion`) | the shared store |
//! | [`PurgeStateKey`] | `w:h:<scope>`, `w:s:<scope>` | the id of a scope's latest hard and soft purge (the explainer's `purged_by`) | the shared store |
//! | [`PurgeStateKey`] | `n:<node>`, `n:nodes` | the newest purge a node has applied; the nodes that record one | the shared store |
//! | [`NodeLocalKey`] | `o:breaker:<origin>`, `o:slots:<origin>` | an origin's breaker state and concurrency leases | the node's store |
//! | [`NodeLocalKey`] | `f:<hash>` | a fill lease: a key being fetched by some instance | the node's store |
//! | [`NodeLocalKey`] | `e:<hash>` | a marker that one broken-rules error was reported | the node's store |

use crate::policy::key::{CacheKey, hash128};
use crate::seams::StoreFailure;
use crate::store::entry::VaryIndex;

/// Which store a key's value lives in (and, for purge state, which kind
/// it is: a shared store remembers the two differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A stored response or Vary index.
    Entry,
    /// Invalidation state every node must agree on.
    PurgeState(PurgeState),
    /// State of this node's own (breaker, leases, markers).
    NodeLocal,
}

/// The two kinds of purge state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PurgeState {
    /// A scope's purge times.
    Scope,
    /// The purge epoch.
    Epoch,
}

/// A key of the cache's stores: its text, and the role its type gives it.
pub(crate) trait StoreKey {
    /// The key as the store holds it.
    fn text(&self) -> &str;
    /// Where its value lives.
    fn role(&self) -> Role;
}

/// The cache's stores as the flow uses them: addressed by typed keys,
/// whose type says which store holds the value. One host store (a
/// [`KeyValueStore`](crate::KeyValueStore)) serves every role by itself; `store::shared_state`
/// routes each role to its own.
#[allow(async_fn_in_trait)]
pub(crate) trait Store {
    /// The value under `key`; `Ok(None)` when there is none.
    async fn get<K: StoreKey + ?Sized>(&self, key: &K) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// The value under `key` as the store holds it now, never a copy
    /// remembered from an earlier read: what a read-modify-write starts
    /// from (`shared_state` remembers reads; plain stores need not).
    async fn get_current<K: StoreKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.get(key).await
    }
    /// Writes `value` under `key`, replacing what was there.
    async fn set<K: StoreKey + ?Sized>(&self, key: &K, value: &[u8]) -> Result<(), StoreFailure>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete<K: StoreKey + ?Sized>(&self, key: &K) -> Result<(), StoreFailure>;
}

/// The key of a stored response or Vary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryKey(String);

impl EntryKey {
    /// A URL's primary entry.
    pub(crate) fn primary(key: &CacheKey) -> Self {
        EntryKey(format!("c:{}", key.hash))
    }

    /// Chunk `index` of the chunked object whose fill was `generation`
    /// (see `store::chunks`): reachable only through the head naming it.
    pub(crate) fn chunk(generation: u64, index: u64) -> Self {
        EntryKey(format!("k:{generation:016x}:{index}"))
    }

    /// One variant under a Vary index.
    pub(crate) fn variant(index: &VaryIndex, variant: &str) -> Self {
        let id = format!("{}\n{}\n{}", index.key, index.epoch, variant);
        EntryKey(format!("v:{}", hash128(id.as_bytes())))
    }
}

impl StoreKey for EntryKey {
    fn text(&self) -> &str {
        &self.0
    }
    fn role(&self) -> Role {
        Role::Entry
    }
}

/// The key of purge state every node shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PurgeStateKey {
    /// A scope's purge times (`s:<scope>`).
    Scope(String),
    /// The purge epoch.
    Epoch,
}

impl PurgeStateKey {
    /// The key of `scope`'s purge times.
    pub(crate) fn scope(scope: &str) -> Self {
        PurgeStateKey::Scope(format!("s:{scope}"))
    }

    /// The record of purge `id` (read and written like a scope: kept in
    /// the shared store, never evicted).
    pub(crate) fn purge_record(id: &str) -> Self {
        PurgeStateKey::Scope(format!("q:{id}"))
    }

    /// The id of the latest purge of `kind` of the scope whose key is
    /// `scope` (`w:h:`/`w:s:`): what the explainer names as the purge that
    /// killed an entry.
    pub(crate) fn scope_purge(scope: &str, kind: crate::policy::invalidation::PurgeKind) -> Self {
        let kind = match kind {
            crate::policy::invalidation::PurgeKind::Hard => 'h',
            crate::policy::invalidation::PurgeKind::Soft => 's',
        };
        PurgeStateKey::Scope(format!("w:{kind}:{scope}"))
    }

    /// The newest purge node `name` has applied.
    pub(crate) fn node_progress(name: &str) -> Self {
        PurgeStateKey::Scope(format!("n:{name}"))
    }

    /// The names of the nodes that record their progress.
    pub(crate) fn nodes() -> Self {
        PurgeStateKey::Scope("n:nodes".to_owned())
    }
}

impl StoreKey for PurgeStateKey {
    fn text(&self) -> &str {
        match self {
            PurgeStateKey::Scope(text) => text,
            PurgeStateKey::Epoch => "p:epoch",
        }
    }
    fn role(&self) -> Role {
        Role::PurgeState(match self {
            PurgeStateKey::Scope(_) => PurgeState::Scope,
            PurgeStateKey::Epoch => PurgeState::Epoch,
        })
    }
}

/// The key of state that stays on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLocalKey(String);

impl NodeLocalKey {
    /// An origin's circuit-breaker state (`origin`: its authority).
    pub(crate) fn breaker(origin: &str) -> Self {
        NodeLocalKey(format!("o:breaker:{origin}"))
    }

    /// An origin's concurrency leases.
    pub(crate) fn slots(origin: &str) -> Self {
        NodeLocalKey(format!("o:slots:{origin}"))
    }

    /// A key's fill lease.
    pub(crate) fn fill_lease(key: &CacheKey) -> Self {
        NodeLocalKey(format!("{}{}", purge_wire::FILL_LEASE_KEY_PREFIX, key.hash))
    }

    /// The key edge-host answers with the store's capacity (nothing is
    /// ever written under it).
    pub(crate) fn capacity() -> Self {
        NodeLocalKey(purge_wire::STORE_CAPACITY_KEY.to_owned())
    }

    /// The last good cache rules of a rules `source` (a file path, or
    /// `inline`) and the hash of the text last read from it
    /// (`config::last_good_rules`).
    pub(crate) fn last_good_rules(source: &str) -> Self {
        NodeLocalKey(format!("r:{}", hash128(source.as_bytes())))
    }
}

impl StoreKey for NodeLocalKey {
    fn text(&self) -> &str {
        &self.0
    }
    fn role(&self) -> Role {
        Role::NodeLocal
    }
}

/// Tests name keys by the text they pin (`a.get("s:url:x")`); the role
/// is read back from the layout above. Only tests do this: the edge's own
/// code never builds a key from text.
#[cfg(test)]
impl StoreKey for str {
    fn text(&self) -> &str {
        self
    }
    fn role(&self) -> Role {
        match self.split_once(':').map(|(namespace, _)| namespace) {
            Some("c" | "v") => Role::Entry,
            Some("s") => Role::PurgeState(PurgeState::Scope),
            Some("p") => Role::PurgeState(PurgeState::Epoch),
            _ => Role::NodeLocal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::key::build_key;
    use crate::policy::rules::Rule;

    fn key() -> CacheKey {
        build_key(
            "https",
            "shop.example",
            "/a",
            &http::HeaderMap::new(),
            &Rule::default(),
        )
        .key
    }

    #[test]
    fn each_type_keeps_the_layout_and_names_its_role() {
        let key = key();
        let primary = EntryKey::primary(&key);
        assert_eq!(primary.text(), format!("c:{}", key.hash));
        assert_eq!(primary.role(), Role::Entry);
        let scope = PurgeStateKey::scope("url:https://shop.example/a");
        assert_eq!(scope.text(), "s:url:https://shop.example/a");
        assert_eq!(scope.role(), Role::PurgeState(PurgeState::Scope));
        assert_eq!(PurgeStateKey::Epoch.text(), "p:epoch");
        assert_eq!(
            PurgeStateKey::Epoch.role(),
            Role::PurgeState(PurgeState::Epoch)
        );
        for (local, text) in [
            (NodeLocalKey::breaker("o:80"), "o:breaker:o:80".to_owned()),
            (NodeLocalKey::slots("o:80"), "o:slots:o:80".to_owned()),
            (NodeLocalKey::fill_lease(&key), format!("f:{}", key.hash)),
            (
                NodeLocalKey::last_good_rules("/rules/cache-rules.json"),
                format!("r:{}", hash128(b"/rules/cache-rules.json")),
            ),
        ] {
            assert_eq!(local.text(), text);
            assert_eq!(local.role(), Role::NodeLocal);
        }
    }

    #[test]
    fn a_variant_key_is_the_hash_of_its_index_and_variance() {
        let index = VaryIndex {
            key: "https://shop.example/a".into(),
            names: vec!["accept-encoding".into()],
            epoch: 7,
            variants: Vec::new(),
        };
        let variant = EntryKey::variant(&index, "gzip");
        assert_eq!(
            variant.text(),
            format!("v:{}", hash128(b"https://shop.example/a\n7\ngzip"))
        );
        assert_ne!(variant, EntryKey::variant(&index, "br"));
    }
}
