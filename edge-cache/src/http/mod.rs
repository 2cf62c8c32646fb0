//! RFC 9110 vocabulary the cache speaks: directive lists, HTTP-dates,
//! header lists, hop-by-hop and edge-owned field names, conditionals and
//! ranges, the host spelled one way. Nothing here knows about caching decisions.

pub mod cache_control;
pub mod conditional;
pub mod content_coding;
pub(crate) mod field_names;
pub mod header_list;
pub(crate) mod hop_by_hop;
pub mod host;
pub mod http_date;
