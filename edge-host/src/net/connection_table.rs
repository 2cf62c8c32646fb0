//! The connection cap of one listener, shared by its lanes: which
//! connections are open, how many come from each client address, and which
//! one gives way when a new connection needs a slot.
//!
//! A cap that only refuses lets whoever holds the slots lock every other
//! client out: 520 sockets that send nothing, or that idle in keep-alive
//! after one request (85 browsers with 6 connections each), kept every
//! other client at `503` for as long as the header or keep-alive timeout
//! (a minute), and the holder simply reopens. So, as nginx does when it
//! runs short of connections, a full table makes room by closing the
//! connection that has waited longest without a request in flight
//! ([`oldest_idle`]); a new connection is refused only when every slot is
//! serving a request or has just begun sending one (closing those would
//! lose requests clients have sent, to admit one that may never send one). The same rule applies per client address
//! (`--max-connections-per-client`), so one address cannot take every
//! slot even with busy connections.
//!
//! Near the cap (three quarters full, until it falls below half) the table
//! reports pressure, and each connection's watchdog then gives a silent
//! connection a much shorter timeout ([`crate::net::connection::ConnectionLimits`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::net::connection::{Activity, IdleRank};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot is serving a request.
    Full,
    /// Every slot of this client's address is serving a request.
    ClientFull,
}

/// The open connections of one listener.
pub(crate) struct ConnectionTable {
    state: Mutex<Table>,
    max_open: usize,
    /// Zero: no limit per address.
    max_per_client: usize,
    pressure: watch::Sender<bool>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Open>,
    per_client: HashMap<IpAddr, usize>,
}

struct Open {
    client: IpAddr,
    activity: Arc<Activity>,
}

/// A connection's place in the table; dropping it frees the place.
pub(crate) struct Slot {
    table: Arc<ConnectionTable>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.release(self.id);
    }
}

impl ConnectionTable {
    /// A table of at most `max_open` connections, at most `max_per_client`
    /// of them from one address (zero: no such limit).
    pub(crate) fn new(max_open: u32, max_per_client: u32) -> Arc<ConnectionTable> {
        Arc::new(ConnectionTable {
            state: Mutex::new(Table::default()),
            max_open: (max_open as usize).max(1),
            max_per_client: max_per_client as usize,
            pressure: watch::channel(false).0,
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Plain counters and maps, each update whole: a panic elsewhere
        // cannot leave them half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the table is near its cap; watchdogs shorten silent
    /// connections' timeouts while it is.
    pub(crate) fn pressure(&self) -> watch::Receiver<bool> {
        self.pressure.subscribe()
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table().open.len()
    }

    /// Admits a connection from `client` whose activity is `activity`,
    /// closing the longest-idle connection (of that client first, when the
    /// client is at its own limit) if that is what makes room. Returns the
    /// connections closed for it with the slot.
    pub(crate) fn admit(
        self: &Arc<Self>,
        client: IpAddr,
        activity: Arc<Activity>,
    ) -> Result<(Slot, Vec<Arc<Activity>>), Refused> {
        let mut table = self.table();
        let mut evicted = Vec::new();
        let from_client = table.per_client.get(&client).copied().unwrap_or(0);
        if self.max_per_client > 0 && from_client >= self.max_per_client {
            let Some(victim) = table.evict_oldest_idle(|open| open.client == client) else {
                return Err(Refused::ClientFull);
            };
            evicted.push(victim);
        }
        if table.open.len() >= self.max_open {
            let Some(victim) = table.evict_oldest_idle(|_| true) else {
                return Err(Refused::Full);
            };
            evicted.push(victim);
        }
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(id, Open { client, activity });
        *table.per_client.entry(client).or_default() += 1;
        // Pressure from three quarters full.
        if table.open.len() * 4 >= self.max_open * 3 {
            self.pressure
                .send_if_modified(|on| !std::mem::replace(on, true));
        }
        drop(table);
        let slot = Slot {
            table: self.clone(),
            id,
        };
        Ok((slot, evicted))
    }

    fn release(&self, id: u64) {
        let mut table = self.table();
        // An evicted connection left the table when it was chosen.
        if table.remove(id).is_none() {
            return;
        }
        // No pressure below half full (not at once below three quarters, so
        // a table hovering at the threshold does not flap).
        if table.open.len() * 2 < self.max_open {
            self.pressure
                .send_if_modified(|on| std::mem::replace(on, false));
        }
    }
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Open> {
        let open = self.open.remove(&id)?;
        if let Some(count) = self.per_client.get_mut(&open.client) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&open.client);
            }
        }
        Some(open)
    }

    /// Closes the longest-idle connection among those `eligible` and
    /// returns it; `None` if every one of them is serving a request.
    fn evict_oldest_idle(&mut self, eligible: impl Fn(&Open) -> bool) -> Option<Arc<Activity>> {
        let candidates = self
            .open
            .iter()
            .filter(|(_, open)| eligible(open))
            .filter_map(|(id, open)| open.activity.idle_rank().map(|rank| (*id, rank)));
        let victim = self.remove(oldest_idle(candidates, Instant::now())?)?;
        victim.activity.evict();
        Some(victim.activity)
    }
}

/// How long an accept loop that closed connections to make room waits
/// for each one's descriptor to be released before it accepts again.
const EVICTION_PATIENCE: Duration = Duration::from_millis(100);

/// Waits until the connections `evicted` to make room have closed (each
/// at most [`EVICTION_PATIENCE`]), so that closing keeps pace with
/// accepting and descriptors cannot pile up under a flood of new
/// connections; the rest wait in the kernel's listen queue, which costs
/// none.
pub(crate) async fn await_evicted(evicted: Vec<Arc<Activity>>) {
    for victim in evicted {
        victim.closed_within(EVICTION_PATIENCE).await;
    }
}

/// How long a connection may take to send its header section before it
/// may be closed to make room. A client's header arrives in well under a
/// second; one still arriving after that is slow (or a slowloris), and a
/// connection that has just sent its request is never closed for a
/// newcomer: the newcomer is refused instead.
pub(crate) const HEADER_GRACE: Duration = Duration::from_secs(1);

/// Of connections with no request in flight, the one to close for a new
/// one at `now`: first those that have not started sending their next
/// request, the one idle longest; then one whose header section has been
/// arriving for longer than [`HEADER_GRACE`], the slowest. Closing one that
/// is sending its request loses a request the client has begun, so one
/// within its grace is never chosen.
pub(crate) fn oldest_idle(
    candidates: impl Iterator<Item = (u64, IdleRank)>,
    now: Instant,
) -> Option<u64> {
    candidates
        .filter(|(_, rank)| {
            !rank.receiving || now.saturating_duration_since(rank.since) > HEADER_GRACE
        })
        .min_by_key(|(_, rank)| *rank)
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::net::request_body::BodyWatch;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn the_silent_connection_idle_longest_is_chosen_then_a_slow_sender_never_a_prompt_one() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let rank = |receiving, since| IdleRank { receiving, since };
        let now = at(10_000);
        let table = [
            // (id, sending its next request's header, since)
            (1, rank(true, at(0))),
            (2, rank(false, at(5_000))),
            (3, rank(false, at(2_000))),
            (4, rank(true, at(1_000))),
            (5, rank(true, at(9_500))),
        ];
        assert_eq!(oldest_idle(table.into_iter(), now), Some(3));
        let without_3 = table.into_iter().filter(|(id, _)| *id != 3);
        assert_eq!(oldest_idle(without_3, now), Some(2));
        let senders = || table.into_iter().filter(|(_, r)| r.receiving);
        assert_eq!(oldest_idle(senders(), now), Some(1), "the slowest sender");
        // One that began its request within the grace is never chosen.
        let prompt = table.into_iter().filter(|(id, _)| *id == 5);
        assert_eq!(oldest_idle(prompt, now), None);
        assert_eq!(oldest_idle(std::iter::empty(), now), None);
    }

    #[tokio::test]
    async fn a_full_table_closes_the_longest_idle_connection_and_refuses_only_when_all_are_busy() {
        let table = ConnectionTable::new(2, 0);
        let first = Activity::new();
        let second = Activity::new();
        let (_first_slot, evicted) = table.admit(ip(1), first.clone()).unwrap();
        assert!(evicted.is_empty());
        let (_second_slot, _) = table.admit(ip(1), second.clone()).unwrap();
        // Both idle: the third takes the first's place.
        let third = Activity::new();
        let (third_slot, evicted) = table.admit(ip(2), third.clone()).unwrap();
        assert_eq!(evicted.len(), 1);
        assert!(Arc::ptr_eq(&evicted[0], &first));
        assert!(first.is_evicted() && !second.is_evicted());
        assert_eq!(table.open(), 2);
        // Both now serving a request: the next is refused.
        let _a = second.request_started(BodyWatch::new(true));
        let _b = third.request_started(BodyWatch::new(true));
        assert_eq!(
            table.admit(ip(3), Activity::new()).err(),
            Some(Refused::Full)
        );
        // A slot freed is a slot for the next.
        drop(third_slot);
        assert!(table.admit(ip(3), Activity::new()).is_ok());
    }

    #[tokio::test]
    async fn a_client_at_its_limit_gives_way_among_its_own_connections_only() {
        let table = ConnectionTable::new(10, 2);
        let other = Activity::new();
        let (_other, _) = table.admit(ip(9), other.clone()).unwrap();
        let mine = [Activity::new(), Activity::new()];
        let _slots: Vec<_> = mine
            .iter()
            .map(|a| table.admit(ip(1), a.clone()).unwrap())
            .collect();
        // Room in the table, none for this address: its own oldest goes.
        let (_third, evicted) = table.admit(ip(1), Activity::new()).unwrap();
        assert_eq!(evicted.len(), 1);
        assert!(mine[0].is_evicted() && !mine[1].is_evicted() && !other.is_evicted());
        // A client whose every connection is busy is refused, though the
        // table has room.
        let table2 = ConnectionTable::new(10, 1);
        let only = Activity::new();
        let (_only, _) = table2.admit(ip(1), only.clone()).unwrap();
        let _serving = only.request_started(BodyWatch::new(true));
        assert_eq!(
            table2.admit(ip(1), Activity::new()).err(),
            Some(Refused::ClientFull)
        );
        assert!(table2.admit(ip(2), Activity::new()).is_ok());
    }

    #[tokio::test]
    async fn pressure_starts_at_three_quarters_and_ends_below_half() {
        let table = ConnectionTable::new(8, 0);
        let pressure = table.pressure();
        let mut slots = Vec::new();
        for n in 1..=6 {
            let (slot, _) = table.admit(ip(1), Activity::new()).unwrap();
            slots.push(slot);
            assert_eq!(*pressure.borrow(), n >= 6, "{n} open");
        }
        // 5 and 4 open: still pressed; 3: relieved.
        for open in [5, 4, 3] {
            slots.pop();
            assert_eq!(*pressure.borrow(), open >= 4, "{open} open");
        }
    }
}
