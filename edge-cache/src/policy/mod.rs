//! What the cache decides about a request and a response, as pure
//! functions: its key and the rule it falls under, how long a response
//! stays fresh (for the edge, and for browsers), whether it may be stored,
//! what varies it, what crosses the edge, what a purge invalidates and
//! which tags a response carries, and the `Cache-Status` that reports it.

pub mod browser;
pub mod cache_status;
pub mod compression;
pub mod cookies;
pub(crate) mod forwarding;
pub mod freshness;
pub mod invalidation;
pub mod key;
pub(crate) mod revalidation;
pub mod rules;
pub mod storability;
pub mod tags;
pub mod target;
pub mod vary;
