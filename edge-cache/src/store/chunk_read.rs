//! A chunked object's body read back from the store, chunk by chunk as
//! the client takes it, or only the chunks a range covers.
//!
//! A chunk that is missing (evicted) or fails its checks ends the body
//! as broken (the client's connection is aborted, never given a wrong
//! byte) and drops the head, so that the next request is a miss that
//! fills the object again. The flow reads the first piece before it
//! answers (`BodyStream::prefetch`), so the common case, a chunk evicted
//! since the object was stored, is a miss rather than an aborted answer.
//!
//! A request that joins a fill still streaming (`while_filling`) reads the
//! chunks as the fill writes them: a chunk not there yet is waited for,
//! checked every [`LEASE_CHECK`], while the fill's lease still announces
//! the same head; once the fill has ended, every chunk it stored is there.

use std::rc::Rc;

use bytes::Bytes;

use crate::collapse::fill_lease::{FillLeases, LEASE_CHECK, LeaseState};
use crate::policy::key::CacheKey;
use crate::seams::{BrokenBody, ByteSource, Clock, NextPiece};
use crate::store::capacity::StoreCapacity;
use crate::store::chunks::{ChunkLayout, decode_chunk};
use crate::store::keys::EntryKey;
use crate::store::l1::L1;
use crate::store::{CacheStorage, Store};

/// What a body read from the store, or a fill writing to it, holds on to
/// after the request's flow has returned: the node's store, clock and
/// first tier, shared.
pub(crate) struct StoreHandles<S, C> {
    pub store: Rc<S>,
    pub clock: Rc<C>,
    pub l1: Option<Rc<L1>>,
    /// The entries store's capacity, once read.
    pub capacity: Rc<StoreCapacity>,
}

impl<S, C> Clone for StoreHandles<S, C> {
    fn clone(&self) -> Self {
        StoreHandles {
            store: self.store.clone(),
            clock: self.clock.clone(),
            l1: self.l1.clone(),
            capacity: self.capacity.clone(),
        }
    }
}

impl<S: Store, C: Clock> StoreHandles<S, C> {
    /// The cache in the store, as a flow uses it.
    pub(crate) fn storage(&self) -> CacheStorage<'_, S, C> {
        CacheStorage {
            store: &self.store,
            clock: &self.clock,
            l1: self.l1.as_deref(),
        }
    }
}

/// The body of a chunked entry, as a [`ByteSource`].
pub(crate) struct StoredChunks<S, C> {
    handles: StoreHandles<S, C>,
    /// The entry whose body this is (dropped if a chunk is bad).
    head: EntryKey,
    layout: ChunkLayout,
    /// The next byte to send, and the last.
    next: u64,
    last: u64,
    /// The fill still writing the chunks, if this joined one.
    fill: Option<JoinedFill>,
}

/// A fill being read as it writes: its key's lease, and the head it
/// announced there.
struct JoinedFill {
    key: CacheKey,
    head: Vec<u8>,
}

impl<S: Store + 'static, C: Clock + 'static> StoredChunks<S, C> {
    /// The whole body of the entry at `head`.
    pub(crate) fn new(handles: StoreHandles<S, C>, head: EntryKey, layout: ChunkLayout) -> Self {
        StoredChunks {
            handles,
            head,
            layout,
            next: 0,
            last: layout.length.saturating_sub(1),
            fill: None,
        }
    }

    /// The body of the object a fill of `key` is writing, as it announced
    /// it (`head`, laid out as `layout`) in the key's fill lease.
    pub(crate) fn while_filling(
        handles: StoreHandles<S, C>,
        at: EntryKey,
        layout: ChunkLayout,
        key: CacheKey,
        head: Vec<u8>,
    ) -> Self {
        StoredChunks {
            fill: Some(JoinedFill { key, head }),
            ..Self::new(handles, at, layout)
        }
    }

    /// Chunk `index`, checked; waited for while the fill writing it goes on.
    async fn chunk(&self, index: u64) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.read_chunk(index).await {
                return Some(chunk);
            }
            let fill = self.fill.as_ref()?;
            let leases = FillLeases {
                store: &*self.handles.store,
                clock: &*self.handles.clock,
            };
            match leases.read(&fill.key).await {
                LeaseState::Streaming(head) if head == fill.head => {
                    leases.clock.pause(LEASE_CHECK).await;
                }
                // Ended: whatever it stored was written before.
                _ => return self.read_chunk(index).await,
            }
        }
    }

    async fn read_chunk(&self, index: u64) -> Option<Bytes> {
        let key = EntryKey::chunk(self.layout.generation, index);
        match self.handles.store.get(&key).await {
            Ok(Some(value)) => decode_chunk(&self.layout, index, value),
            Ok(None) | Err(_) => None,
        }
    }

    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        if self.next > self.last || self.layout.length == 0 {
            return None;
        }
        let index = self.layout.index_of(self.next);
        let Some(chunk) = self.chunk(index).await else {
            return Some(Err(self.bad_chunk(index).await));
        };
        let start = self.layout.start_of(index);
        let from = (self.next - start) as usize;
        let to = ((self.last - start) as usize + 1).min(chunk.len());
        self.next = start + to as u64;
        Some(Ok(chunk.slice(from..to)))
    }

    /// Drops the head whose chunk `index` is bad, and says so.
    async fn bad_chunk(&mut self, index: u64) -> BrokenBody {
        self.next = self.last + 1;
        let _ = self.handles.store.delete(&self.head).await;
        if let Some(l1) = &self.handles.l1 {
            l1.remove(crate::store::keys::StoreKey::text(&self.head));
        }
        BrokenBody(format!(
            "chunk {index} of a stored object is missing or damaged; \
             the object will be fetched again"
        ))
    }
}

impl<S: Store + 'static, C: Clock + 'static> ByteSource for StoredChunks<S, C> {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(self.next())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: u64, end: u64) -> bool {
        if start > end || end >= self.layout.length {
            return false;
        }
        (self.next, self.last) = (start, end);
        true
    }
}
