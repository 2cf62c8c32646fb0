//! Invalidation by stamps, not scans: every scope (for now, one URL) has a
//! stamp in the store; an entry records the stamps it was stored under and
//! is valid only while they are unchanged. Invalidating a scope rewrites one
//! key, whatever is cached; dead entries are left to the store's eviction.
//!
//! An entry stored from a response fetched *before* an invalidation carries
//! the old stamp (read before the fetch), so it is dead on arrival: a purge
//! racing with a store never resurrects content.

use crate::key::hash128;

/// The scope of one URL (all its cookie/header/Vary variants).
pub fn url_scope(canonical_url: &str) -> String {
    format!("url:{}", hash128(canonical_url.as_bytes()))
}

/// The store key holding a scope's stamp.
pub fn stamp_store_key(scope: &str) -> String {
    format!("s:{scope}")
}

/// Decodes a stored stamp; absent or unreadable counts as 0 (never
/// invalidated), which a damaged value can only make *more* conservative
/// on the next invalidation (stamps only grow).
pub fn decode_stamp(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// The stamp written by an invalidation: later than both the previous stamp
/// and the clock, so it differs from every stamp an entry could hold.
pub fn next_stamp(previous: u64, now_ms: u64) -> u64 {
    previous.saturating_add(1).max(now_ms)
}

/// Encodes a stamp for the store.
pub fn encode_stamp(stamp: u64) -> [u8; 8] {
    stamp.to_be_bytes()
}

/// Whether an entry's recorded stamps all equal the current ones.
pub fn stamps_current(recorded: &[(String, u64)], current: impl Fn(&str) -> u64) -> bool {
    recorded
        .iter()
        .all(|(scope, stamp)| current(scope) == *stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_grow_and_differ_from_before() {
        assert_eq!(next_stamp(0, 1000), 1000);
        assert_eq!(
            next_stamp(1000, 1000),
            1001,
            "two purges in one millisecond differ"
        );
        assert_eq!(
            next_stamp(5000, 1000),
            5001,
            "a clock behind the stamp cannot reuse it"
        );
        assert_eq!(next_stamp(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn stamp_codec() {
        assert_eq!(decode_stamp(Some(&encode_stamp(42))), 42);
        assert_eq!(decode_stamp(None), 0);
        assert_eq!(decode_stamp(Some(b"bad")), 0);
    }

    #[test]
    fn an_entry_is_valid_only_under_current_stamps() {
        let recorded = vec![(url_scope("http://h/a"), 7)];
        assert!(stamps_current(&recorded, |_| 7));
        assert!(!stamps_current(&recorded, |_| 8));
        assert_ne!(url_scope("http://h/a"), url_scope("http://h/b"));
    }
}
