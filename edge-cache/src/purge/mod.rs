//! Purges: the API's endpoint and `PURGE` method (`api`), and the purge
//! body checked and authenticated (`request`). The scopes whose times make
//! a purge one write whatever is cached are `policy::invalidation`.

pub(crate) mod api;
pub(crate) mod request;

// The edge's purge-body parser, at the path the origin's test names
// (its purge worker's bodies must pass it).
pub use request::{MAX_BODY_BYTES, PurgeRefusal, PurgeRequest, parse_purge_post};
