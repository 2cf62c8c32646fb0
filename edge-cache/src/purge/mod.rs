//! Purges: the API's endpoint and `PURGE` method (`api`), the purge body
//! checked and authenticated (`request`), and the scopes whose times make
//! a purge one write whatever is cached (`invalidation`).

pub mod api;
pub mod invalidation;
pub mod request;
