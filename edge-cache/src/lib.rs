//! edge-cache: an HTTP caching layer that runs as a Spin component at the
//! edge. This crate is its core, with no runtime dependency; one adapter
//! crate per Spin SDK flavour (`edge-cache-p2`, WASI 0.2; `edge-cache-p3`,
//! WASI 0.3) implements [`Host`] over the SDK and translates `wasi:http`
//! messages to and from the ones below. Nothing here touches `spin_sdk`.
//!
//! The front door is [`Node`]: built once per instance from its host, then
//! asked to [`admit`](Node::admit), [`handle`](Node::handle) and
//! [`refresh`](Node::refresh) requests. Behind it, in layers from the
//! entrance down, each importing only from those listed after it
//! (`scripts/module-cycles edge-cache/src` checks):
//!
//! - `node` — the node and the [`Host`] trait: configuration, stores,
//!   origins, rules, wired once for both flavours
//! - `flow/` — the pipeline: route (`mod`), one keyed request (`exchange`),
//!   the table-tested `decision`, fill and collapse (`fill`), revalidate,
//!   pass through (`pass`), and what the client gets of the cache
//!   (`answer`)
//! - `collapse/` — concurrent misses wait for one fill: in an instance
//!   (`mod`), across instances (`fill_lease`)
//! - `purge/` — the purge API (`api`), the purge body checked (`request`)
//! - `origin/` — each origin behind its `breaker` and cap (`guard`,
//!   `slots`), `failover` to a backup, and the client's words for a
//!   `failure`
//! - `store/` — the cache in its stores: lookup and `write`, store keys as
//!   types and the stores they address (`keys`), the byte format
//!   (`entry`), the instance's first tier (`l1`), purge state shared by
//!   many nodes and the shield (`shared_state`)
//! - `policy/` — the pure decisions: `key` and `target`, `rules`,
//!   `freshness`, `storability`, `vary`, `revalidation`, `forwarding`,
//!   purge scopes and times (`invalidation`), `cache_status`
//! - `reply` — the edge's own answers that are not about caching (a
//!   misconfiguration, an unreadable request, the purge API's refusals)
//! - `config` — the edge's settings, parsed from Spin variables
//! - `spin_metadata` — the host's `spin-*` request fields, read once into a
//!   connection (the adapters' [`RequestHead::from_fields`])
//! - `seams/` — the messages ([`RequestHead`], [`Response`], …; their
//!   [`Body`] in `body`) and the traits the core does I/O through (`io`:
//!   [`KeyValueStore`], [`Origin`], [`Clock`]; the [`OriginFailure`] an
//!   origin answers instead, in `origin_failure`)
//! - `http/` — RFC 9110 vocabulary, importing nothing of the crate:
//!   `cache_control`, `http_date`, `header_list`, `hop_by_hop`,
//!   `field_names`, `conditional`, `host`

mod collapse;
pub mod config;
mod flow;
mod http;
pub mod native_hits;
mod node;
mod origin;
mod policy;
pub mod purge;
mod reply;
mod seams;
mod spin_metadata;
mod store;

pub use config::{OriginAddress, OriginEndpoint, RequestTimeouts};
pub use flow::Refresh;
pub use http::header_list::{from_pairs, to_pairs};
pub use node::{FreshHit, Host, Node, StoredBody};
pub use policy::forwarding::client_address;
pub use policy::rules::CacheRules;
pub use purge::api::Admission;
pub use seams::{
    Body, BodyError, BodyStream, BrokenBody, ByteSource, ClientConnection, ClientRequest, Clock,
    KeyValueStore, NextPiece, Origin, OriginFailure, OriginRequest, RequestBody, RequestHead,
    Response, StoreFailure, WHOLE_BODY_BYTES,
};
pub use spin_metadata::is_spin_metadata;
pub use store::chunk_read::StoredRange;

// `config::VARIABLES`, `purge::{parse_purge_post, MAX_BODY_BYTES}` and
// `shared_state::OUTAGE_RETRY` are public at the paths the integration
// tests and the origin's purge-wire test name.

/// The shared store's outage interval, at the path the many-nodes
/// integration tests name.
pub mod shared_state {
    pub use crate::store::shared_state::OUTAGE_RETRY;
}

/// The parsers the fuzz targets drive (`fuzz/`), behind the `fuzzing`
/// feature: not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::{cache_control, conditional, header_list, host, http_date};
    pub use crate::policy::{
        cache_status, freshness, invalidation, key, rules, storability, target, vary,
    };
    /// The purge body's checks.
    pub mod request {
        pub use crate::purge::request::*;
    }
    pub use crate::store::entry;
}

#[cfg(test)]
mod hit_cost;
#[cfg(test)]
mod test_support;
