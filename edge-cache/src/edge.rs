//! The edge assembled from its configuration: each origin behind its own
//! breaker and concurrency cap, the primary failing over to the backup,
//! and the pipeline over them. Both adapters build one of these over their
//! host's store, origins and clock, so the wiring exists once.

use http::{HeaderMap, Method};

use crate::collapse::Collapser;
use crate::config::EdgeConfig;
use crate::flow::{EdgeCache, Refresh};
use crate::origin::failover::FailoverOrigin;
use crate::origin::guard::GuardedOrigin;
use crate::policy::rules::CacheRules;
use crate::purge::api::{Admission, PurgeSettings};
use crate::seams::{ClientRequest, Clock, Origin, Response, Store};
use crate::store::l1::L1;

/// An origin with the authority its breaker and cap are keyed by.
pub struct NamedOrigin<'a, O> {
    /// Host and port, naming the origin's state in the store.
    pub name: &'a str,
    /// The origin itself.
    pub origin: &'a O,
}

/// Everything one request (or refresh) is served with.
pub struct Edge<'a, S, O, C> {
    /// The parsed settings.
    pub config: &'a EdgeConfig,
    /// The cache rules (`None`: the rules file is broken).
    pub rules: Option<&'a CacheRules>,
    /// The key-value store.
    pub store: &'a S,
    /// Where requests go first.
    pub primary: NamedOrigin<'a, O>,
    /// Where they go when the primary fails.
    pub backup: Option<NamedOrigin<'a, O>>,
    /// The clock.
    pub clock: &'a C,
    /// Unique among concurrent requests: the concurrency cap's lease id.
    pub lease_id: u64,
    /// The instance's first tier, where instances outlive requests.
    pub l1: Option<&'a L1>,
    /// The instance's flights of concurrent misses, where requests share
    /// an instance.
    pub collapser: Option<&'a Collapser>,
    purge: Option<PurgeSettings>,
}

impl<'a, S: Store, O: Origin, C: Clock> Edge<'a, S, O, C> {
    /// Assembles the edge (the purge settings are derived from `config`).
    pub fn new(
        config: &'a EdgeConfig,
        rules: Option<&'a CacheRules>,
        store: &'a S,
        primary: NamedOrigin<'a, O>,
        backup: Option<NamedOrigin<'a, O>>,
        clock: &'a C,
        lease_id: u64,
    ) -> Self {
        let purge = config.purge_token.as_ref().map(|token| PurgeSettings {
            admin_path: config.admin_path.clone(),
            token: token.clone(),
        });
        Edge {
            config,
            rules,
            store,
            primary,
            backup,
            clock,
            lease_id,
            l1: None,
            collapser: None,
            purge,
        }
    }

    /// The same edge with an instance's first tier in front of the store
    /// and its collapsing of concurrent misses.
    pub fn with_instance_state(mut self, l1: Option<&'a L1>, collapser: &'a Collapser) -> Self {
        self.l1 = l1;
        self.collapser = Some(collapser);
        self
    }

    fn guard<'s>(&'s self, named: &'s NamedOrigin<'a, O>) -> GuardedOrigin<'s, O, S, C> {
        GuardedOrigin {
            inner: named.origin,
            name: named.name,
            store: self.store,
            clock: self.clock,
            protection: self.config.protection,
            lease_id: self.lease_id,
        }
    }

    fn cache<'s, F: Origin>(&'s self, origin: &'s F) -> EdgeCache<'s, S, F, C> {
        EdgeCache {
            rules: self.rules,
            purge: self.purge.as_ref(),
            store: self.store,
            origin,
            clock: self.clock,
            grace: self.config.grace,
            trust: self.config.trust,
            l1: self.l1,
            collapser: self.collapser,
            fill_leases: true,
        }
    }

    /// What can be decided from the request head alone (see
    /// [`EdgeCache::admit`]).
    pub fn admit(&self, method: &Method, path_and_query: &str, headers: &HeaderMap) -> Admission {
        // Admission needs no origin; the primary stands in.
        let primary = self.guard(&self.primary);
        self.cache(&primary).admit(method, path_and_query, headers)
    }

    /// Handles one request (see [`EdgeCache::handle`]).
    pub async fn handle(&self, request: ClientRequest) -> (Response, Option<Refresh>) {
        // Each origin has its own breaker and cap; a held-back primary
        // request goes to the backup like a failed one.
        let primary = self.guard(&self.primary);
        let backup = self.backup.as_ref().map(|named| self.guard(named));
        let origin = FailoverOrigin {
            primary: &primary,
            backup: backup.as_ref(),
        };
        self.cache(&origin).handle(request).await
    }

    /// Runs a deferred refresh (see [`EdgeCache::refresh`]).
    pub async fn refresh(&self, refresh: Refresh) {
        let primary = self.guard(&self.primary);
        let backup = self.backup.as_ref().map(|named| self.guard(named));
        let origin = FailoverOrigin {
            primary: &primary,
            backup: backup.as_ref(),
        };
        self.cache(&origin).refresh(refresh).await
    }
}
