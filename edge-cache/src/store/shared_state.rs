//! Many nodes, one cache policy: the invalidation state every node must
//! agree on lives in a shared store, the entries stay in the node's own.
//!
//! [`SharedState`] is a [`Store`] over the host's stores, each key going
//! where its type says (`store::keys`): purge state (scopes' purge times
//! and the purge epoch) to the shared one (Redis or Valkey, named by the
//! `shared_store` variable); entries and node-local state (the breaker,
//! leases, the broken-rules marker) to the local one, so a hit never
//! crosses the network for its body. Without a shared store it is the local
//! store itself, untouched.
//!
//! **Propagation bound.** A value read from the shared store is reused for
//! at most `purge_staleness_ms`; a purge answered by any node is therefore
//! honoured by every other within that time (0: read every time). The
//! subtle part is the first tier: an L1 value counts as checked while the
//! purge epoch it was checked at is current, so its scopes must never have
//! been read before that epoch was. Hence every change of the epoch seen
//! here (read, or written by a purge here) drops the remembered scopes: a
//! check at an epoch always reads the scopes anew, or reuses reads made
//! after that epoch was first seen.
//!
//! **Shared store down.** What cannot be validated must not be served as
//! valid, yet must not fail the request either, and `stale-if-error` must
//! still work. So a scope that cannot be read reads as soft-purged
//! (`Validity::Stale`: the entry is revalidated with the origin, and served
//! stale only where `stale-if-error` or grace allows when the origin fails
//! too), and the epoch reads as a token never seen before (no L1 value
//! counts as checked). After a failure the shared store is not asked again
//! for [`OUTAGE_RETRY`], so a dead server costs one failed call per
//! instance per interval, not one per scope; then reads resume by
//! themselves. A scope that read as a stand-in is never written back from
//! it (a purge's read-modify-write uses [`Store::get_current`], which
//! reports the failure instead).
//!
//! **Shield (optional).** With a third store (`shield_store`), entries are
//! also written there on every fill, and a local miss reads it before the
//! origin is asked: one node's fill answers another node's miss. What it
//! returns is validated against the shared purge state like any local
//! entry (so a shield copy fetched before a purge is dead) and copied into
//! the local store. Its failures are misses, never errors, and it too is
//! left alone for [`OUTAGE_RETRY`] after one. It must be a store of its
//! own, not `shared_store`: it may evict (its entries are a cache), while
//! purge times must never be evicted.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use crate::policy::invalidation::PurgeTimes;
use crate::seams::{Clock, KeyValueStore, StoreFailure};
use crate::store::keys::{PurgeState, Role, Store, StoreKey};

/// How long after a failed call the shared store is left alone.
pub const OUTAGE_RETRY: Duration = Duration::from_millis(250);

/// Scope reads remembered at most; beyond, expired ones are dropped (and
/// all of them if none has expired).
const MAX_REMEMBERED_SCOPES: usize = 4096;

/// A store whose invalidation state is shared with other nodes (see the
/// module doc).
pub(crate) struct SharedState<S, C> {
    local: S,
    shared: Option<S>,
    /// Entries shared between nodes (see the module doc).
    shield: Option<S>,
    /// No call to the shield before this.
    shield_quiet_until: Cell<Option<SystemTime>>,
    clock: C,
    staleness: Duration,
    memo: RefCell<Memo>,
    /// Stand-in epochs handed out, each one unique.
    stand_ins: Cell<u64>,
}

/// What was read from the shared store, and when.
#[derive(Default)]
struct Memo {
    epoch: Option<Remembered>,
    scopes: HashMap<String, Remembered>,
    /// Scopes last answered with a stand-in: never written back.
    stood_in: HashSet<String>,
    /// No call to the shared store before this.
    quiet_until: Option<SystemTime>,
}

#[derive(Clone)]
struct Remembered {
    read_at: SystemTime,
    value: Option<Vec<u8>>,
}

impl<S: KeyValueStore, C: Clock> SharedState<S, C> {
    /// Routes invalidation state to `shared` (if any), remembering what it
    /// read for `staleness`; the rest goes to `local`.
    pub(crate) fn new(local: S, shared: Option<S>, clock: C, staleness: Duration) -> Self {
        SharedState {
            local,
            shared,
            shield: None,
            shield_quiet_until: Cell::new(None),
            clock,
            staleness,
            memo: RefCell::new(Memo::default()),
            stand_ins: Cell::new(0),
        }
    }

    /// The same, with entries also kept in `shield` (if any) for other
    /// nodes' misses.
    pub(crate) fn with_shield(mut self, shield: Option<S>) -> Self {
        self.shield = shield;
        self
    }

    /// The shield, unless it failed within [`OUTAGE_RETRY`].
    fn shield(&self, now: SystemTime) -> Option<&S> {
        let quiet = self
            .shield_quiet_until
            .get()
            .is_some_and(|until| now < until);
        self.shield.as_ref().filter(|_| !quiet)
    }

    fn shield_failed(&self, now: SystemTime) {
        self.shield_quiet_until.set(Some(now + OUTAGE_RETRY));
    }

    /// A local miss of an entry: the shield's copy, kept locally too.
    async fn read_shield(&self, key: &str) -> Option<Vec<u8>> {
        let shield = self.shield(self.clock.now())?;
        match shield.get(key).await {
            Ok(Some(value)) => {
                // A failed local write only costs the next lookup a read
                // of the shield again.
                let _ = self.local.set(key, &value).await;
                Some(value)
            }
            Ok(None) => None,
            Err(_) => {
                self.shield_failed(self.clock.now());
                None
            }
        }
    }

    /// The node-local store.
    #[cfg(test)]
    pub(crate) fn local(&self) -> &S {
        &self.local
    }

    fn fresh(&self, remembered: &Remembered, now: SystemTime) -> bool {
        !self.staleness.is_zero()
            && now
                .duration_since(remembered.read_at)
                .is_ok_and(|age| age < self.staleness)
    }

    fn quiet(&self, now: SystemTime) -> bool {
        self.memo
            .borrow()
            .quiet_until
            .is_some_and(|until| now < until)
    }

    /// Remembers a failure: no call for [`OUTAGE_RETRY`].
    fn failed(&self, now: SystemTime) {
        self.memo.borrow_mut().quiet_until = Some(now + OUTAGE_RETRY);
    }

    /// What a read that could not reach the shared store returns.
    fn stand_in(&self, key: &str, kind: PurgeState) -> Option<Vec<u8>> {
        match kind {
            PurgeState::Scope => {
                self.memo.borrow_mut().stood_in.insert(key.to_owned());
                let soft_purged_now = PurgeTimes {
                    hard_us: 0,
                    soft_us: u64::MAX,
                };
                Some(soft_purged_now.encode().to_vec())
            }
            PurgeState::Epoch => {
                let n = self.stand_ins.get() + 1;
                self.stand_ins.set(n);
                Some(format!("shared-store-unavailable:{n}").into_bytes())
            }
        }
    }

    /// Records a value read from (or written to) the shared store at `now`.
    fn remember(&self, key: &str, kind: PurgeState, value: Option<Vec<u8>>, now: SystemTime) {
        let mut memo = self.memo.borrow_mut();
        memo.stood_in.remove(key);
        memo.quiet_until = None;
        if self.staleness.is_zero() {
            return;
        }
        let remembered = Remembered {
            read_at: now,
            value,
        };
        match kind {
            PurgeState::Epoch => {
                let moved = memo
                    .epoch
                    .as_ref()
                    .is_none_or(|previous| previous.value != remembered.value);
                if moved {
                    memo.scopes.clear();
                }
                memo.epoch = Some(remembered);
            }
            PurgeState::Scope => {
                if memo.scopes.len() >= MAX_REMEMBERED_SCOPES {
                    let staleness = self.staleness;
                    memo.scopes.retain(|_, r| {
                        now.duration_since(r.read_at)
                            .is_ok_and(|age| age < staleness)
                    });
                    if memo.scopes.len() >= MAX_REMEMBERED_SCOPES {
                        memo.scopes.clear();
                    }
                }
                memo.scopes.insert(key.to_owned(), remembered);
            }
        }
    }

    fn remembered(&self, key: &str, kind: PurgeState) -> Option<Remembered> {
        let memo = self.memo.borrow();
        match kind {
            PurgeState::Epoch => memo.epoch.clone(),
            PurgeState::Scope => memo.scopes.get(key).cloned(),
        }
    }

    /// Reads `key` from the shared store now, remembering the answer.
    async fn read_shared(
        &self,
        shared: &S,
        key: &str,
        kind: PurgeState,
    ) -> Result<Option<Vec<u8>>, StoreFailure> {
        let read = shared.get(key).await;
        let now = self.clock.now();
        match &read {
            Ok(value) => self.remember(key, kind, value.clone(), now),
            Err(_) => self.failed(now),
        }
        read
    }
}

impl<S: KeyValueStore, C: Clock> SharedState<S, C> {
    /// The shared store and the kind of purge state a key of `role` is,
    /// where its value lives there.
    fn shared_for(&self, role: Role) -> Option<(&S, PurgeState)> {
        match role {
            Role::PurgeState(kind) => Some((self.shared.as_ref()?, kind)),
            Role::Entry | Role::NodeLocal => None,
        }
    }
}

impl<S: KeyValueStore, C: Clock> Store for SharedState<S, C> {
    async fn get<K: StoreKey + ?Sized>(&self, key: &K) -> Result<Option<Vec<u8>>, StoreFailure> {
        let (role, key) = (key.role(), key.text());
        if self.shield.is_some() && role == Role::Entry {
            return match self.local.get(key).await? {
                Some(value) => Ok(Some(value)),
                None => Ok(self.read_shield(key).await),
            };
        }
        let Some((shared, kind)) = self.shared_for(role) else {
            return self.local.get(key).await;
        };
        let now = self.clock.now();
        if let Some(remembered) = self.remembered(key, kind)
            && self.fresh(&remembered, now)
        {
            return Ok(remembered.value);
        }
        if self.quiet(now) {
            return Ok(self.stand_in(key, kind));
        }
        match self.read_shared(shared, key, kind).await {
            Ok(value) => Ok(value),
            Err(_) => Ok(self.stand_in(key, kind)),
        }
    }

    /// Never remembered, never a stand-in: a purge's read-modify-write
    /// must start from the shared store's value or fail.
    async fn get_current<K: StoreKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<Option<Vec<u8>>, StoreFailure> {
        let (role, key) = (key.role(), key.text());
        let Some((shared, kind)) = self.shared_for(role) else {
            return self.local.get(key).await;
        };
        self.read_shared(shared, key, kind).await
    }

    async fn set<K: StoreKey + ?Sized>(&self, key: &K, value: &[u8]) -> Result<(), StoreFailure> {
        let (role, key) = (key.role(), key.text());
        if role == Role::Entry
            && let Some(shield) = self.shield(self.clock.now())
        {
            let written = self.local.set(key, value).await;
            if shield.set(key, value).await.is_err() {
                self.shield_failed(self.clock.now());
            }
            return written;
        }
        let Some((shared, kind)) = self.shared_for(role) else {
            return self.local.set(key, value).await;
        };
        if self.memo.borrow().stood_in.contains(key) {
            return Err(StoreFailure(format!(
                "{key} was last read while the shared store was unavailable; not overwriting it"
            )));
        }
        let written = shared.set(key, value).await;
        let now = self.clock.now();
        match &written {
            // A purge here: this node sees it at once, and (the epoch
            // moving) re-reads every scope for its first tier.
            Ok(()) => self.remember(key, kind, Some(value.to_vec()), now),
            Err(_) => self.failed(now),
        }
        written
    }

    async fn delete<K: StoreKey + ?Sized>(&self, key: &K) -> Result<(), StoreFailure> {
        let (role, key) = (key.role(), key.text());
        if role == Role::Entry
            && let Some(shield) = self.shield(self.clock.now())
        {
            // An evicted variant: gone from both, or the shield's eviction
            // reclaims it.
            let _ = shield.delete(key).await;
        }
        let Some((shared, kind)) = self.shared_for(role) else {
            return self.local.delete(key).await;
        };
        let deleted = shared.delete(key).await;
        let now = self.clock.now();
        match &deleted {
            Ok(()) => self.remember(key, kind, None, now),
            Err(_) => self.failed(now),
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::policy::invalidation::Validity;
    use crate::test_support::{MemStore, block_on};

    /// A clock the test moves; shared between the test and the store.
    #[derive(Clone)]
    struct TestClock(Rc<Cell<SystemTime>>);

    impl TestClock {
        fn new() -> Self {
            TestClock(Rc::new(Cell::new(UNIX_EPOCH + Duration::from_secs(1_000))))
        }
        fn advance(&self, ms: u64) {
            self.0.set(self.0.get() + Duration::from_millis(ms));
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> SystemTime {
            self.0.get()
        }
        async fn pause(&self, _duration: Duration) {}
    }

    /// A store that is one shared [`MemStore`], for two nodes to share.
    #[derive(Clone, Default)]
    struct Handle(Rc<MemStore>);

    impl KeyValueStore for Handle {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
            self.0.get(key).await
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
            self.0.set(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
            self.0.delete(key).await
        }
    }

    fn node(
        shared: &Handle,
        clock: &TestClock,
        staleness_ms: u64,
    ) -> SharedState<Handle, TestClock> {
        SharedState::new(
            Handle::default(),
            Some(shared.clone()),
            clock.clone(),
            Duration::from_millis(staleness_ms),
        )
    }

    fn times(value: Option<Vec<u8>>) -> PurgeTimes {
        PurgeTimes::decode(value.as_deref())
    }

    #[test]
    fn entries_stay_local_and_invalidation_state_is_shared() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let (a, b) = (node(&shared, &clock, 100), node(&shared, &clock, 100));
            a.set("c:entry", b"body").await.unwrap();
            a.set("s:tag:x", &[0; 16]).await.unwrap();
            a.set("p:epoch", b"e1").await.unwrap();
            assert_eq!(
                b.get("c:entry").await.unwrap(),
                None,
                "entries are node-local"
            );
            assert_eq!(a.local().0.values.borrow().len(), 1);
            assert_eq!(b.get("s:tag:x").await.unwrap(), Some(vec![0; 16]));
            assert_eq!(b.get("p:epoch").await.unwrap(), Some(b"e1".to_vec()));
            assert!(!shared.0.values.borrow().contains_key("c:entry"));
        });
    }

    #[test]
    fn another_nodes_purge_is_seen_once_the_staleness_bound_has_passed() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let (a, b) = (node(&shared, &clock, 100), node(&shared, &clock, 100));
            assert_eq!(b.get("s:url:x").await.unwrap(), None);
            a.set("s:url:x", b"purged").await.unwrap();
            clock.advance(99);
            assert_eq!(b.get("s:url:x").await.unwrap(), None, "within the bound");
            clock.advance(1);
            assert_eq!(b.get("s:url:x").await.unwrap(), Some(b"purged".to_vec()));
        });
    }

    #[test]
    fn with_no_staleness_every_read_reaches_the_shared_store() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let (a, b) = (node(&shared, &clock, 0), node(&shared, &clock, 0));
            assert_eq!(b.get("s:url:x").await.unwrap(), None);
            a.set("s:url:x", b"purged").await.unwrap();
            assert_eq!(b.get("s:url:x").await.unwrap(), Some(b"purged".to_vec()));
        });
    }

    #[test]
    fn a_new_epoch_drops_scopes_read_before_it() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let (a, b) = (node(&shared, &clock, 100), node(&shared, &clock, 100));
            // b checks an entry at epoch e0 with the scope as it was.
            a.set("p:epoch", b"e0").await.unwrap();
            assert_eq!(b.get("p:epoch").await.unwrap(), Some(b"e0".to_vec()));
            clock.advance(60);
            assert_eq!(b.get("s:tag:x").await.unwrap(), None);
            // a purges the tag: scope first, then a new epoch.
            a.set("s:tag:x", b"purged").await.unwrap();
            a.set("p:epoch", b"e1").await.unwrap();
            clock.advance(40);
            // b's epoch has expired, its scope read has not; seeing e1, b
            // must not check against the scope it read before e1.
            assert_eq!(b.get("p:epoch").await.unwrap(), Some(b"e1".to_vec()));
            assert_eq!(b.get("s:tag:x").await.unwrap(), Some(b"purged".to_vec()));
        });
    }

    #[test]
    fn a_purge_here_drops_scopes_read_before_it() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let (a, b) = (node(&shared, &clock, 100), node(&shared, &clock, 100));
            assert_eq!(a.get("s:tag:x").await.unwrap(), None);
            // b purges tag x; a, before seeing it, purges tag y, writing
            // the epoch its first tier will check against next.
            b.set("s:tag:x", b"purged").await.unwrap();
            b.set("p:epoch", b"e1").await.unwrap();
            a.set("s:tag:y", b"purged").await.unwrap();
            a.set("p:epoch", b"e2").await.unwrap();
            assert_eq!(a.get("s:tag:x").await.unwrap(), Some(b"purged".to_vec()));
        });
    }

    #[test]
    fn while_the_shared_store_is_down_scopes_read_soft_purged_and_epochs_never_repeat() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let a = node(&shared, &clock, 0);
            a.set("c:entry", b"body").await.unwrap();
            shared.0.broken.set(true);
            let scope = times(a.get("s:url:x").await.unwrap());
            assert_eq!(scope.validity(u64::MAX - 1), Validity::Stale);
            let e1 = a.get("p:epoch").await.unwrap();
            let e2 = a.get("p:epoch").await.unwrap();
            assert_ne!(e1, e2, "no L1 value may count as checked");
            assert_eq!(a.get("c:entry").await.unwrap(), Some(b"body".to_vec()));
            // A purge cannot be recorded, and says so.
            assert!(a.get_current("s:url:x").await.is_err());
            assert!(a.set("s:url:x", b"purged").await.is_err());
        });
    }

    #[test]
    fn after_an_outage_the_shared_store_is_asked_again_by_itself() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let a = node(&shared, &clock, 0);
            shared.0.set("s:url:x", b"real").await.unwrap();
            shared.0.broken.set(true);
            assert_ne!(a.get("s:url:x").await.unwrap(), Some(b"real".to_vec()));
            shared.0.broken.set(false);
            let reads = shared.0.reads.borrow().len();
            // Within the retry interval the store is left alone.
            assert_ne!(a.get("s:url:x").await.unwrap(), Some(b"real".to_vec()));
            assert_eq!(shared.0.reads.borrow().len(), reads);
            clock.advance(OUTAGE_RETRY.as_millis() as u64);
            assert_eq!(a.get("s:url:x").await.unwrap(), Some(b"real".to_vec()));
        });
    }

    #[test]
    fn a_scope_that_read_as_a_stand_in_is_not_written_from_it() {
        block_on(async {
            let shared = Handle::default();
            let clock = TestClock::new();
            let a = node(&shared, &clock, 0);
            shared.0.set("s:url:x", b"hard-purge").await.unwrap();
            shared.0.broken.set(true);
            a.get("s:url:x").await.unwrap();
            shared.0.broken.set(false);
            clock.advance(OUTAGE_RETRY.as_millis() as u64);
            assert!(a.set("s:url:x", b"from-the-stand-in").await.is_err());
            assert_eq!(
                shared.0.values.borrow().get("s:url:x"),
                Some(&b"hard-purge".to_vec())
            );
            // A real read clears it.
            a.get_current("s:url:x").await.unwrap();
            a.set("s:url:x", b"next").await.unwrap();
        });
    }

    #[test]
    fn a_miss_here_is_answered_from_another_nodes_fill_through_the_shield() {
        block_on(async {
            let (shared, shield) = (Handle::default(), Handle::default());
            let clock = TestClock::new();
            let a = node(&shared, &clock, 100).with_shield(Some(shield.clone()));
            let b = node(&shared, &clock, 100).with_shield(Some(shield.clone()));
            a.set("c:entry", b"filled by a").await.unwrap();
            assert_eq!(
                b.get("c:entry").await.unwrap(),
                Some(b"filled by a".to_vec())
            );
            assert_eq!(
                b.local().0.values.borrow().get("c:entry"),
                Some(&b"filled by a".to_vec()),
                "kept locally too"
            );
            // Only entries go there.
            a.set("o:breaker:x", b"state").await.unwrap();
            a.set("s:url:x", b"purged").await.unwrap();
            assert_eq!(shield.0.values.borrow().len(), 1);
            assert_eq!(b.get("o:breaker:x").await.unwrap(), None);
        });
    }

    #[test]
    fn a_failing_shield_is_a_miss_and_is_asked_again_later() {
        block_on(async {
            let (shared, shield) = (Handle::default(), Handle::default());
            let clock = TestClock::new();
            let a = node(&shared, &clock, 100).with_shield(Some(shield.clone()));
            shield.0.set("c:entry", b"elsewhere").await.unwrap();
            shield.0.broken.set(true);
            assert_eq!(a.get("c:entry").await.unwrap(), None);
            a.set("c:other", b"local").await.unwrap();
            assert_eq!(a.get("c:other").await.unwrap(), Some(b"local".to_vec()));
            shield.0.broken.set(false);
            assert_eq!(
                a.get("c:entry").await.unwrap(),
                None,
                "left alone for a while"
            );
            clock.advance(OUTAGE_RETRY.as_millis() as u64);
            assert_eq!(a.get("c:entry").await.unwrap(), Some(b"elsewhere".to_vec()));
        });
    }

    #[test]
    fn without_a_shared_store_everything_is_local_and_unremembered() {
        block_on(async {
            let clock = TestClock::new();
            let local = Handle::default();
            let a = SharedState::new(local.clone(), None, clock, Duration::from_millis(100));
            a.set("s:url:x", b"one").await.unwrap();
            local.0.set("s:url:x", b"two").await.unwrap();
            assert_eq!(a.get("s:url:x").await.unwrap(), Some(b"two".to_vec()));
        });
    }
}
