//! Serving lanes: one thread per core, each with its own current-thread
//! runtime, its own accept loop and its own WASI 0.3 instances, as nginx
//! runs one worker per core. A request is read, handed to an instance,
//! answered and written on one thread; under tokio's work-stealing runtime
//! its connection task and its instance's worker task ran on whichever
//! thread was free, and each hand-off between them could wake the other
//! core. Measured on the 2-core bench machine (hot 1 KiB hit, wrk -t2
//! -c32): one worker thread cost 35.7 us of CPU per request in every run;
//! two work-stealing workers 36-49 us, varying from run to run.
//!
//! The application (stores, origin pool, metrics) is shared by every lane;
//! only instances are per lane ([`current`] picks a component's handler).
//! One thread accepts and gives each connection to the lane with the
//! fewest open ([`Dispatcher`]): lanes racing to accept on one socket let
//! one lane take most of a client's connections when the other was busy.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// The lane this thread serves (0 where none was entered: tests, and
/// embedders that run one runtime).
pub fn current() -> usize {
    LANE.with(Cell::get)
}

/// Marks this thread as serving `lane`.
pub(crate) fn enter(lane: usize) {
    LANE.with(|cell| cell.set(lane));
}

/// The default number of lanes: one per core the process may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Hands accepted connections, each with what the acceptor decided about
/// it (`T`), to the lane with the fewest open.
///
/// The channels are unbounded, but what they hold is not: the acceptor
/// hands over only connections admitted under the connection cap.
pub(crate) struct Dispatcher<T> {
    lanes: Vec<(Arc<AtomicUsize>, mpsc::UnboundedSender<Connection<T>>)>,
}

/// A connection on its way to a lane: the socket, its peer, its share of
/// the lane's load (released when the lane is done with it), and `T`.
pub(crate) type Connection<T> = (std::net::TcpStream, SocketAddr, Load, T);

/// One lane's end: the connections handed to it.
pub(crate) struct Handed<T>(mpsc::UnboundedReceiver<Connection<T>>);

impl<T> Handed<T> {
    /// The next connection; `None` once the dispatcher is gone.
    pub(crate) async fn next(&mut self) -> Option<Connection<T>> {
        self.0.recv().await
    }
}

/// One open connection counted against its lane, until dropped.
pub(crate) struct Load(Arc<AtomicUsize>);

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T> Dispatcher<T> {
    /// A dispatcher over `lanes` lanes, and each lane's end.
    pub(crate) fn new(lanes: usize) -> (Dispatcher<T>, Vec<Handed<T>>) {
        let (lanes, handed) = (0..lanes)
            .map(|_| {
                let (sender, receiver) = mpsc::unbounded_channel();
                ((Arc::new(AtomicUsize::new(0)), sender), Handed(receiver))
            })
            .unzip();
        (Dispatcher { lanes }, handed)
    }

    /// Gives `stream` to the least loaded lane (the first of equals).
    pub(crate) fn hand(&self, stream: std::net::TcpStream, peer: SocketAddr, with: T) {
        let Some((open, lane)) = self
            .lanes
            .iter()
            .min_by_key(|(open, _)| open.load(Ordering::Relaxed))
        else {
            return;
        };
        open.fetch_add(1, Ordering::Relaxed);
        let _ = lane.send((stream, peer, Load(open.clone()), with));
    }

    /// Open connections per lane.
    #[cfg(test)]
    fn loads(&self) -> Vec<usize> {
        self.lanes
            .iter()
            .map(|(open, _)| open.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_loaded_lane_and_leave_it_when_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (dispatcher, mut lanes) = Dispatcher::new(2);
        let mut clients = Vec::new();
        let mut held = Vec::new();
        for _ in 0..5 {
            clients.push(tokio::net::TcpStream::connect(address).await.unwrap());
            let (stream, peer) = listener.accept().await.unwrap();
            dispatcher.hand(stream.into_std().unwrap(), peer, ());
        }
        assert_eq!(dispatcher.loads(), vec![3, 2]);
        for lane in &mut lanes {
            while let Ok(connection) = lane.0.try_recv() {
                held.push(connection);
            }
        }
        assert_eq!(held.len(), 5);
        // Lane 0 had the first, third and fifth: once they close, it is
        // the lighter one again.
        held.retain(|(_, _, load, ())| !Arc::ptr_eq(&load.0, &dispatcher.lanes[0].0));
        assert_eq!(dispatcher.loads(), vec![0, 2]);
        clients.push(tokio::net::TcpStream::connect(address).await.unwrap());
        let (stream, peer) = listener.accept().await.unwrap();
        dispatcher.hand(stream.into_std().unwrap(), peer, ());
        assert_eq!(dispatcher.loads(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_lane_hears_the_end_when_the_dispatcher_goes() {
        let (dispatcher, mut lanes) = Dispatcher::<()>::new(1);
        drop(dispatcher);
        assert!(lanes[0].next().await.is_none());
    }
}
