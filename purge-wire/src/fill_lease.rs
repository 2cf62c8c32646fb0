//! How a fill lease's store key is spelt: the edge component takes a lease
//! while it fetches a key from the origin and deletes it when the fetch
//! ends; edge-host deletes those an instance still holds when it fails.

/// How the store key of a fill lease begins (the key is `f:<hash>`),
/// written by the edge and looked for by edge-host, which deletes the
/// leases a failed instance took and never released instead of letting
/// them hold other requests back until they lapse.
pub const FILL_LEASE_KEY_PREFIX: &str = "f:";

/// Whether `key` is a fill lease's store key.
pub fn is_fill_lease_key(key: &str) -> bool {
    key.starts_with(FILL_LEASE_KEY_PREFIX)
}
