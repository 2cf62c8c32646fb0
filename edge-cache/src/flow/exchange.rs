//! One cacheable request as the flow reads it: the client's request, the
//! rule it falls under and its key, computed once at the entrance so that
//! nothing downstream derives them again.

use std::cell::Cell;
use std::time::SystemTime;

use crate::config::ForwardingTrust;
use crate::policy::forwarding::fill_request;
use crate::policy::freshness::{ClientDemand, FreshnessRule};
use crate::policy::key::{KeyedTarget, build_key};
use crate::policy::rules::Rule;
use crate::seams::{ClientRequest, OriginRequest};
use crate::store::PurgeEpoch;

/// A cacheable request keyed under its rule.
pub(crate) struct Exchange<'r> {
    /// The request as the client sent it.
    pub request: ClientRequest,
    /// The rule its path falls under.
    pub rule: &'r Rule,
    /// Its key, and what of the query and cookies a fill forwards.
    pub keyed: KeyedTarget,
    /// The purge epoch its lookup saw, recorded with what it stores.
    pub epoch: PurgeEpoch,
    /// Whether this request holds its key's fill lease, and who ends it.
    pub fill_lease: Cell<LeaseHolder>,
    /// What the client asks of a stored response (as the rule lets it).
    pub demand: ClientDemand,
    /// When the cache began to handle it: a response fetched or validated
    /// since is as good as one this request fetched itself.
    pub arrival: SystemTime,
}

/// Who ends a request's fill lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LeaseHolder {
    /// It holds none.
    #[default]
    Nobody,
    /// The fill, when the origin's answer has been handled.
    Fill,
    /// The body streaming into chunks, when its last chunk is stored (or
    /// the fill is given up).
    ChunkFill,
}

impl<'r> Exchange<'r> {
    /// Keys `request` under `rule`.
    pub(crate) fn new(request: ClientRequest, rule: &'r Rule) -> Self {
        let connection = &request.connection;
        let keyed = build_key(
            &connection.scheme,
            connection.host.as_deref().unwrap_or(""),
            &request.path_and_query,
            &request.headers,
            rule,
        );
        Exchange {
            request,
            rule,
            keyed,
            epoch: PurgeEpoch::Unread,
            fill_lease: Cell::default(),
            demand: ClientDemand::default(),
            arrival: SystemTime::UNIX_EPOCH,
        }
    }

    /// What the rule adds to the origin's freshness for this target
    /// (versioned objects are recognised by path and kept query).
    pub(crate) fn freshness_rule(&self) -> FreshnessRule {
        let query_names: Vec<&str> = self.keyed.query_names.iter().map(String::as_str).collect();
        let versioned = self.rule.is_versioned(&self.keyed.path, &query_names);
        self.rule.freshness(versioned)
    }

    /// The request a fill or revalidation sends; `vary` names the fields
    /// a stored response varies on.
    pub(crate) fn fill_request(&self, trust: ForwardingTrust, vary: &[String]) -> OriginRequest {
        fill_request(&self.request, self.rule, &self.keyed, trust, vary)
    }
}
