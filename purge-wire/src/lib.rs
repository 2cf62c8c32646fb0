//! What the edge and the crates that speak to it say on the wire, defined
//! once so the two sides cannot drift apart:
//!
//! - the body of `POST {admin_path}/purge` ([`PurgeBody`]): the origin's
//!   purge worker sends it, the edge's purge API parses it; each adds its
//!   own rules on top (the edge validates targets, the origin coalesces
//!   them);
//! - the purge API's [`Receipt`] (`receipt`): the edge writes it, edge-host
//!   reads it;
//! - the edge's name in `Cache-Status`, [`CACHE_NAME`] (`cache_status`):
//!   the edge writes it, edge-host reads it;
//! - how a fill lease's store key begins, [`FILL_LEASE_KEY_PREFIX`]
//!   (`fill_lease`): the edge takes leases under it, edge-host deletes those
//!   a failed instance held.
//!
//! Plain data and serde only, so the native host depends on it as lightly
//! as the component does.

mod cache_status;
mod fill_lease;
mod receipt;

pub use cache_status::CACHE_NAME;
pub use fill_lease::{FILL_LEASE_KEY_PREFIX, is_fill_lease_key};

/// A key no value is ever written under: edge-host answers a read of it
/// with the store's capacity in bytes, as decimal text (nothing for a
/// store without one, and Spin has none), so that the edge sizes the
/// largest object it stores by default to the store it has.
pub const STORE_CAPACITY_KEY: &str = "edge-host:capacity-bytes";
pub use receipt::{Purged, Receipt};

/// A field of an origin request by which the edge asks edge-host to send
/// its value as the request's `Host` (the edge's `forward_host`: the
/// site's host, as nginx's `proxy_set_header Host $host`), which
/// `wasi:http` does not let a guest set (`Host` is a forbidden field; the
/// authority is where the request goes). edge-host removes it and sets
/// `Host`; a runtime that does not know it (Spin) sends it on unchanged
/// and `Host` stays the origin URL's. The edge removes any copy a client
/// sent, so only the edge's own reaches the host.
pub const ORIGIN_HOST_FIELD: &str = "edge-host-origin-host";

use serde::{Deserialize, Serialize};

/// Largest purge body the edge reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Most targets (urls, tags and prefixes together) one purge may name.
pub const MAX_TARGETS: usize = 1000;

/// A purge request body as sent on the wire. Unknown fields are refused,
/// so a misspelt target never silently purges nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// Paths (with optional query) on the purged host, or absolute URLs on
    /// it; each covers every cached variant of the URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// `Surrogate-Key` tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Path prefixes, aligned to segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Purge everything on the host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Mark stale (revalidate before reuse) instead of invalid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft: bool,
}

impl PurgeBody {
    /// The targets counted against [`MAX_TARGETS`].
    pub fn targets(&self) -> usize {
        self.urls.len() + self.tags.len() + self.prefixes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_left_out_and_read_back() {
        let body = PurgeBody {
            urls: vec!["/a".into()],
            ..Default::default()
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(json, r#"{"urls":["/a"]}"#);
        assert_eq!(serde_json::from_str::<PurgeBody>(&json).unwrap(), body);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<PurgeBody>(r#"{"url":["/a"]}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field `url`"), "{error}");
    }
}
