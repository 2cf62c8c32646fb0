//! The collapsing measurement: `n` clients open their connections first,
//! then all send a GET for the same cold URL at once, so the cache sees `n`
//! concurrent misses of one key. How many of them reach the origin is read
//! from the origin's own count by the caller (bench/run); this module
//! reports how the cache labelled its answers.

use std::sync::{Arc, Barrier};
use std::thread;

use crate::client::Connection;

/// How a burst was answered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BurstOutcome {
    pub requests: usize,
    /// 2xx answers.
    pub ok: usize,
    /// Answers whose `Cache-Status` says `collapsed` (RFC 9211 extension
    /// member the edge sets on a follower's answer).
    pub collapsed: usize,
    /// Transport failures and non-2xx answers.
    pub failed: usize,
}

impl BurstOutcome {
    fn count(&mut self, answer: Option<(u16, Option<String>)>) {
        self.requests += 1;
        match answer {
            Some((status, cache_status)) if (200..300).contains(&status) => {
                self.ok += 1;
                if cache_status.is_some_and(|s| s.contains("collapsed")) {
                    self.collapsed += 1;
                }
            }
            _ => self.failed += 1,
        }
    }
}

/// Sends `n` simultaneous GETs of `target` to `addr`, one per connection.
pub fn burst(addr: &str, target: &str, n: usize) -> BurstOutcome {
    // Connections first, so the requests leave together rather than behind
    // n handshakes.
    let start = Arc::new(Barrier::new(n));
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (addr, target, start) = (addr.to_owned(), target.to_owned(), start.clone());
            thread::spawn(move || {
                let connection = Connection::open(&addr);
                start.wait();
                let (reply, _) = connection.ok()?.get(&target).ok()?;
                let cache_status = reply.header("cache-status").map(str::to_owned);
                Some((reply.status, cache_status))
            })
        })
        .collect();
    let mut outcome = BurstOutcome::default();
    for client in clients {
        outcome.count(client.join().unwrap_or(None));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_status_and_label() {
        let mut outcome = BurstOutcome::default();
        outcome.count(Some((200, Some("edge-cache; fwd=uri-miss; stored".into()))));
        outcome.count(Some((200, Some("edge-cache; hit; collapsed".into()))));
        outcome.count(Some((503, None)));
        outcome.count(None);
        assert_eq!(
            outcome,
            BurstOutcome {
                requests: 4,
                ok: 2,
                collapsed: 1,
                failed: 2
            }
        );
    }
}
