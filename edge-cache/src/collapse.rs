//! Request collapsing within an instance: concurrent misses of one key wait
//! for one fill instead of each going to the origin.
//!
//! The first miss of a key leads a *flight*; later misses of that key join
//! it and sleep until the leader lands, then look the key up again. A fill
//! that stored nothing (failed, uncacheable, oversized) leaves them a miss,
//! and each fetches for itself: collapsing never makes a request wait
//! longer than one fetch, nor answers it with another request's private
//! response. Waiters are woken when the leader's guard drops — on success,
//! failure, or cancellation — with no polling delay (nginx's cache lock
//! polls every 500 ms).
//!
//! The component is single-threaded (WASI 0.3 interleaves requests at await
//! points), so the state is `RefCell`s and wakers, not locks.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The flights in progress, by key.
#[derive(Default)]
pub struct Collapser {
    flights: RefCell<HashMap<String, Rc<Flight>>>,
}

#[derive(Default)]
struct Flight {
    landed: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

/// A request's part in a key's flight.
pub enum Turn<'a> {
    /// Fetch; waiters are released when this guard drops.
    Lead(FlightGuard<'a>),
    /// Wait for the leader, then look again.
    Follow(Landing),
}

impl Collapser {
    /// Joins the flight for `key`, leading it if there is none.
    pub fn join(&self, key: &str) -> Turn<'_> {
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

    /// Flights in progress (for tests and statistics).
    pub fn in_flight(&self) -> usize {
        self.flights.borrow().len()
    }
}

/// Held by a flight's leader; landing the flight when dropped.
pub struct FlightGuard<'a> {
    collapser: &'a Collapser,
    key: String,
    flight: Rc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.collapser.flights.borrow_mut().remove(&self.key);
        self.flight.landed.set(true);
        for waiter in self.flight.waiters.borrow_mut().drain(..) {
            waiter.wake();
        }
    }
}

/// Resolves when the flight a follower joined has landed.
pub struct Landing {
    flight: Rc<Flight>,
}

impl Future for Landing {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.flight.landed.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.flight.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(context.waker())) {
            waiters.push(context.waker().clone());
        }
        Poll::Pending
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
        let Turn::Follow(mut landing) = collapser.join("k") else {
            panic!("a second request follows")
        };
        assert!(matches!(collapser.join("other"), Turn::Lead(_)));
        let mut context = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut landing).poll(&mut context).is_pending());
        drop(guard);
        assert!(Pin::new(&mut landing).poll(&mut context).is_ready());
        assert_eq!(collapser.in_flight(), 0);
        // The next miss leads a new flight.
        assert!(matches!(collapser.join("k"), Turn::Lead(_)));
    }
}
