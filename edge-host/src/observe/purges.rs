//! The purges this edge-host accepted lately, newest first, for the status
//! page: each one's id (the purge API's receipt names it, as the edge's
//! log does), its targets by kind and when it was answered. Kept in a ring
//! of [`RECENT`]; older ones are counted in `edge_purges_total` only.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::observe::metrics::PurgeReceipt;

/// Purges kept.
pub const RECENT: usize = 20;

/// One accepted purge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentPurge {
    /// The receipt's id (at most [`ID_LIMIT`] characters of it).
    pub id: String,
    /// When it was answered, in milliseconds since the Unix epoch.
    pub t: u64,
    /// Marked stale rather than invalidated.
    pub soft: bool,
    pub urls: u64,
    pub tags: u64,
    pub prefixes: u64,
    /// Everything on the host.
    pub all: bool,
}

/// The most of a receipt's id kept: ids are short; a long one is the
/// edge's mistake and should not grow the page.
pub const ID_LIMIT: usize = 64;

/// The last [`RECENT`] purges, oldest first.
#[derive(Debug, Default)]
pub struct RecentPurges(Mutex<VecDeque<RecentPurge>>);

static PURGES: RecentPurges = RecentPurges(Mutex::new(VecDeque::new()));

/// Records a purge accepted at `t` (ms since the epoch) in the process's ring.
pub(crate) fn record(id: &str, receipt: PurgeReceipt, t: u64) {
    PURGES.record(id, receipt, t);
}

/// The process's recent purges, newest first.
pub fn recent() -> Vec<RecentPurge> {
    PURGES.newest_first()
}

impl RecentPurges {
    /// Keeps this purge, forgetting the oldest beyond [`RECENT`].
    pub fn record(&self, id: &str, receipt: PurgeReceipt, t: u64) {
        let id: String = id.chars().take(ID_LIMIT).collect();
        let mut ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == RECENT {
            ring.pop_front();
        }
        ring.push_back(RecentPurge {
            id,
            t,
            soft: receipt.soft,
            urls: receipt.urls,
            tags: receipt.tags,
            prefixes: receipt.prefixes,
            all: receipt.all,
        });
    }

    /// Newest first.
    pub fn newest_first(&self) -> Vec<RecentPurge> {
        let ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_twenty_newest_first() {
        let ring = RecentPurges::default();
        assert!(ring.newest_first().is_empty());
        for i in 0..25u64 {
            ring.record(
                &format!("p{i}"),
                PurgeReceipt {
                    urls: i,
                    ..Default::default()
                },
                1_000 + i,
            );
        }
        let recent = ring.newest_first();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].id, "p24");
        assert_eq!(recent[0].urls, 24);
        assert_eq!(recent[0].t, 1_024);
        assert_eq!(recent[RECENT - 1].id, "p5");
        ring.record(&"x".repeat(500), PurgeReceipt::default(), 0);
        assert_eq!(ring.newest_first()[0].id.len(), ID_LIMIT);
    }
}
