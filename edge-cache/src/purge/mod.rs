//! Purges: the API's endpoint and `PURGE` method (`api`), the purge
//! body checked and authenticated (`request`), and whether a purge has
//! reached every node (`completion`). The scopes whose times make
//! a purge one write whatever is cached are `policy::invalidation`.

pub(crate) mod api;
pub(crate) mod completion;
pub(crate) mod request;

// The edge's purge-body parser, at the path the origin's test names
// (its purge worker's bodies must pass it).
pub use request::{MAX_BODY_BYTES, PurgeRefusal, PurgeRequest, parse_purge_post};
