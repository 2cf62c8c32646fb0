//! Request collapsing within an instance: concurrent misses of one key wait
//! for one fill instead of each going to the origin.
//!
//! The first miss of a key leads a *flight*; later misses of that key join
//! it and wait until the leader lands — its guard drops on success, failure
//! or cancellation — then look the key up again. A fill that stored nothing
//! (failed, uncacheable, oversized) leaves them a miss, and each fetches
//! for itself: collapsing never makes a request wait longer than one
//! fetch, nor answers it with another request's private response.
//!
//! Followers check for the landing in [`LANDING_CHECK`] steps on a host
//! timer (`Clock::pause`), not on a waker: wasmtime 48 cannot wake one
//! request's task from another's (see `seams::Clock`). A follower so learns
//! of the landing within a millisecond (nginx's cache lock polls every
//! 500 ms). The component is single-threaded (WASI 0.3 interleaves requests
//! at await points), so the state is `Cell`s, not locks.

pub(crate) mod fill_lease;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// How often a follower checks whether its flight has landed.
pub(crate) const LANDING_CHECK: Duration = Duration::from_millis(1);

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Collapser {
    flights: RefCell<HashMap<String, Rc<Flight>>>,
}

#[derive(Default)]
struct Flight {
    landed: Cell<bool>,
}

/// A request's part in a key's flight.
pub(crate) enum Turn<'a> {
    /// Fetch; waiters are released when this guard drops.
    Lead(FlightGuard<'a>),
    /// Wait for the leader, then look again.
    Follow(Landing),
}

impl Collapser {
    /// Joins the flight for `key`, leading it if there is none.
    pub(crate) fn join(&self, key: &str) -> Turn<'_> {
        let mut flights = self.flights.borrow_mut();
        if let Some(flight) = flights.get(key) {
            return Turn::Follow(Landing {
                flight: flight.clone(),
            });
        }
        let flight = Rc::new(Flight::default());
        flights.insert(key.to_owned(), flight.clone());
        Turn::Lead(FlightGuard {
            collapser: self,
            key: key.to_owned(),
            flight,
        })
    }

    #[cfg(test)]
    /// Flights in progress (for tests and statistics).
    pub(crate) fn in_flight(&self) -> usize {
        self.flights.borrow().len()
    }
}

/// Held by a flight's leader; landing the flight when dropped.
pub(crate) struct FlightGuard<'a> {
    collapser: &'a Collapser,
    key: String,
    flight: Rc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.collapser.flights.borrow_mut().remove(&self.key);
        self.flight.landed.set(true);
    }
}

/// A follower's view of the flight it joined.
pub(crate) struct Landing {
    flight: Rc<Flight>,
}

impl Landing {
    /// Whether the leader has finished (stored or not).
    pub(crate) fn landed(&self) -> bool {
        self.flight.landed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_leads_the_rest_follow_and_are_released_on_landing() {
        let collapser = Collapser::default();
        let Turn::Lead(guard) = collapser.join("k") else {
            panic!("the first request leads")
        };
        let Turn::Follow(landing) = collapser.join("k") else {
            panic!("a second request follows")
        };
        assert!(matches!(collapser.join("other"), Turn::Lead(_)));
        assert!(!landing.landed());
        drop(guard);
        assert!(landing.landed());
        assert_eq!(collapser.in_flight(), 0);
        // The next miss leads a new flight.
        assert!(matches!(collapser.join("k"), Turn::Lead(_)));
    }
}
