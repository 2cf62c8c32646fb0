//! Invalidation by scope times, not scans.
//!
//! Every scope (everything; one URL with all its variants; one tag; one
//! path prefix) has one small value in the store: the times of its latest
//! hard and soft purge. An entry is dead if a hard purge of any of its
//! scopes happened at or after the moment its fetch *started*, and stale
//! (to be revalidated) if a soft purge did. A purge therefore writes one
//! key per target, whatever is cached; dead entries are left to the store's
//! eviction.
//!
//! Comparing against the fetch's start time means a response fetched
//! before a purge and stored after it is dead on arrival: a purge racing a
//! store never resurrects content. Scope values only grow (`max`), so two
//! purges racing each other both take effect, up to the clock's resolution (Spin key-value 2.0 has no compare-and-swap; see the README).

use crate::policy::key::hash128;

/// Deepest path prefix a purge may name (entries record this many levels).
pub const MAX_PREFIX_DEPTH: usize = 8;

/// The scope every entry belongs to: a purge of `all` writes it.
pub fn all_scope() -> String {
    "all".to_owned()
}

/// The scope of one URL (all its cookie, header and Vary variants).
pub fn url_scope(canonical_url: &str) -> String {
    format!("url:{}", hash128(canonical_url.as_bytes()))
}

/// The scope of one surrogate key.
pub fn tag_scope(tag: &str) -> String {
    format!("tag:{}", hash128(tag.as_bytes()))
}

/// The scope of a path prefix, aligned to segments: `/static` and
/// `/static/` both mean "`/static` and everything below it".
pub fn prefix_scope(prefix: &str) -> String {
    let mut normalised = prefix.trim_end_matches('/').to_owned();
    normalised.push('/');
    format!("prefix:{}", hash128(normalised.as_bytes()))
}

/// The prefixes a path is purged by, as a purge names them: `/a/b` →
/// `/`, `/a`, `/a/b` (at most [`MAX_PREFIX_DEPTH`] segments deep).
pub fn prefixes_of(path: &str) -> Vec<String> {
    let mut prefixes = vec!["/".to_owned()];
    let mut prefix = String::new();
    for segment in path
        .split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_PREFIX_DEPTH)
    {
        prefix.push('/');
        prefix.push_str(segment);
        prefixes.push(prefix.clone());
    }
    prefixes
}

/// How many segments a purge prefix has.
pub fn prefix_depth(prefix: &str) -> usize {
    prefix.split('/').filter(|s| !s.is_empty()).count()
}

/// What a purge does to what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeKind {
    /// Dead: the next request is a miss.
    Hard,
    /// Stale: revalidated before reuse, and servable under `stale-*`.
    Soft,
}

impl PurgeKind {
    /// The kind a purge request's `soft` flag asks for.
    pub fn from_soft(soft: bool) -> Self {
        if soft {
            PurgeKind::Soft
        } else {
            PurgeKind::Hard
        }
    }
}

/// A scope's latest purges, in unix microseconds (0: never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeTimes {
    /// The latest hard purge: entries fetched before it are dead.
    pub hard_us: u64,
    /// The latest soft purge: entries fetched before it are stale.
    pub soft_us: u64,
}

/// What the scopes say about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validity {
    /// Untouched by any purge.
    Valid,
    /// Soft-purged: revalidate before reuse (stale-if-error may serve it).
    Stale,
    /// Hard-purged: never serve.
    Invalid,
}

impl PurgeTimes {
    /// Decodes a stored value; anything unreadable counts as "purged now"
    /// would be unsafe to guess, so it counts as never purged *and* the
    /// caller's next purge overwrites it.
    pub fn decode(bytes: Option<&[u8]>) -> Self {
        match bytes {
            Some(b) if b.len() == 16 => PurgeTimes {
                hard_us: u64::from_be_bytes(b[..8].try_into().unwrap_or_default()),
                soft_us: u64::from_be_bytes(b[8..].try_into().unwrap_or_default()),
            },
            _ => PurgeTimes::default(),
        }
    }

    /// The stored form: the hard then the soft time, 8 big-endian bytes
    /// each.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.hard_us.to_be_bytes());
        out[8..].copy_from_slice(&self.soft_us.to_be_bytes());
        out
    }

    /// The value after a purge at `now_us`.
    pub fn after_purge(self, now_us: u64, kind: PurgeKind) -> Self {
        if kind == PurgeKind::Soft {
            PurgeTimes {
                soft_us: self.soft_us.max(now_us),
                ..self
            }
        } else {
            PurgeTimes {
                hard_us: self.hard_us.max(now_us),
                ..self
            }
        }
    }

    /// The validity of an entry whose fetch started at `fetched_us`.
    pub fn validity(&self, fetched_us: u64) -> Validity {
        if self.hard_us != 0 && self.hard_us >= fetched_us {
            Validity::Invalid
        } else if self.soft_us != 0 && self.soft_us >= fetched_us {
            Validity::Stale
        } else {
            Validity::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_times_round_trip_and_only_grow() {
        let t = PurgeTimes::default()
            .after_purge(1000, PurgeKind::Hard)
            .after_purge(500, PurgeKind::Hard)
            .after_purge(700, PurgeKind::Soft);
        assert_eq!(
            t,
            PurgeTimes {
                hard_us: 1000,
                soft_us: 700
            }
        );
        assert_eq!(PurgeTimes::decode(Some(&t.encode())), t);
        assert_eq!(PurgeTimes::decode(Some(b"junk")), PurgeTimes::default());
        assert_eq!(PurgeTimes::decode(None), PurgeTimes::default());
    }

    #[test]
    fn validity_compares_with_the_fetch_start() {
        let t = PurgeTimes {
            hard_us: 1000,
            soft_us: 2000,
        };
        assert_eq!(
            t.validity(999),
            Validity::Invalid,
            "fetched before the hard purge"
        );
        assert_eq!(
            t.validity(1000),
            Validity::Invalid,
            "same microsecond: be safe"
        );
        assert_eq!(
            t.validity(1500),
            Validity::Stale,
            "fetched before the soft purge"
        );
        assert_eq!(t.validity(2001), Validity::Valid);
        assert_eq!(PurgeTimes::default().validity(0), Validity::Valid);
    }

    #[test]
    fn prefix_scopes_cover_ancestors_and_self() {
        let prefix_scopes = |path: &str| -> Vec<String> {
            prefixes_of(path).iter().map(|p| prefix_scope(p)).collect()
        };
        let scopes = prefix_scopes("/static/js/app.js");
        assert_eq!(scopes.len(), 4);
        assert!(scopes.contains(&prefix_scope("/")));
        assert!(scopes.contains(&prefix_scope("/static")));
        assert!(scopes.contains(&prefix_scope("/static/js/")));
        assert!(scopes.contains(&prefix_scope("/static/js/app.js")));
        assert!(!prefix_scopes("/statics/x").contains(&prefix_scope("/static")));
        assert_eq!(prefix_scopes(&"/a".repeat(20)).len(), 1 + MAX_PREFIX_DEPTH);
        assert_eq!(prefix_depth("/a/b/"), 2);
    }
}
