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
use crate::store::keys::StoreKey;
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
    /// Which bytes are still to send.
    range: StoredRange,
    /// The fill still writing the chunks, if this joined one.
    fill: Option<JoinedFill>,
}

/// Which bytes of a chunked entry are still to be sent, and how to read
/// them from its chunks: what [`StoredChunks`] reads by, and what a host
/// reading the store itself (edge-host's native hits) is handed instead,
/// since it can cross threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRange {
    /// The key of the entry whose body this is.
    head: String,
    layout: ChunkLayout,
    /// The next byte to send, and the last.
    next: u64,
    last: u64,
}

impl StoredRange {
    fn whole(head: &EntryKey, layout: ChunkLayout) -> Self {
        StoredRange {
            head: head.text().to_owned(),
            layout,
            next: 0,
            last: layout.length.saturating_sub(1),
        }
    }

    /// The chunk holding the next byte to send; `None` once all are sent.
    fn next_index(&self) -> Option<u64> {
        (self.next <= self.last && self.layout.length > 0).then(|| self.layout.index_of(self.next))
    }

    /// The bytes to send of chunk `index` (its decoded `chunk`), moving on
    /// past them.
    fn advance(&mut self, index: u64, chunk: Bytes) -> Bytes {
        let start = self.layout.start_of(index);
        let from = (self.next - start) as usize;
        let to = ((self.last - start) as usize + 1).min(chunk.len());
        self.next = start + to as u64;
        chunk.slice(from..to)
    }

    /// The store key of the chunk holding the next byte to send; `None`
    /// once all are sent.
    pub fn next_key(&self) -> Option<String> {
        let index = self.next_index()?;
        Some(
            EntryKey::chunk(self.layout.generation, index)
                .text()
                .to_owned(),
        )
    }

    /// The next bytes to send, from the value read at
    /// [`next_key`](Self::next_key); `None` if that value is not that
    /// chunk, whole and unaltered (never a wrong byte).
    pub fn take(&mut self, value: Vec<u8>) -> Option<Bytes> {
        let index = self.next_index()?;
        let chunk = decode_chunk(&self.layout, index, value)?;
        Some(self.advance(index, chunk))
    }

    /// The key of the entry whose body this is.
    pub fn head_key(&self) -> &str {
        &self.head
    }

    /// How many bytes are still to send.
    pub fn remaining(&self) -> u64 {
        match self.next_index() {
            Some(_) => self.last + 1 - self.next,
            None => 0,
        }
    }
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
            range: StoredRange::whole(&head, layout),
            head,
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
        let layout = &self.range.layout;
        let key = EntryKey::chunk(layout.generation, index);
        match self.handles.store.get(&key).await {
            Ok(Some(value)) => decode_chunk(layout, index, value),
            Ok(None) | Err(_) => None,
        }
    }

    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let index = self.range.next_index()?;
        let Some(chunk) = self.chunk(index).await else {
            return Some(Err(self.bad_chunk(index).await));
        };
        Some(Ok(self.range.advance(index, chunk)))
    }

    /// Drops the head whose chunk `index` is bad, and says so.
    async fn bad_chunk(&mut self, index: u64) -> BrokenBody {
        self.range.next = self.range.last + 1;
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
        if start > end || end >= self.range.layout.length {
            return false;
        }
        (self.range.next, self.range.last) = (start, end);
        true
    }

    fn stored_range(&self) -> Option<StoredRange> {
        // A fill still writing is read by its lease, which only this
        // reader follows.
        self.fill.is_none().then(|| self.range.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chunks::encode_chunk;

    #[test]
    fn a_stored_range_names_each_chunk_it_needs_and_takes_only_its_bytes() {
        // Ten bytes in chunks of four: "0123" "4567" "89".
        let layout = ChunkLayout {
            length: 10,
            chunk_bytes: 4,
            generation: 7,
        };
        let chunk = |index: u64| {
            let body = b"0123456789";
            let start = index as usize * 4;
            encode_chunk(7, index, &body[start..(start + 4).min(10)])
        };
        let mut range = StoredRange::whole(&EntryKey::chunk(1, 1), layout);
        range.next = 3;
        range.last = 8;
        assert_eq!(range.remaining(), 6);
        assert_eq!(range.next_key().unwrap(), EntryKey::chunk(7, 0).text());
        // Another chunk's value, or a damaged one, is refused.
        assert_eq!(range.take(chunk(1)), None);
        let mut damaged = chunk(0);
        damaged[21] ^= 1;
        assert_eq!(range.take(damaged), None);
        assert_eq!(range.take(chunk(0)).unwrap(), &b"3"[..]);
        assert_eq!(range.next_key().unwrap(), EntryKey::chunk(7, 1).text());
        assert_eq!(range.take(chunk(1)).unwrap(), &b"4567"[..]);
        assert_eq!(range.take(chunk(2)).unwrap(), &b"8"[..]);
        assert_eq!((range.next_key(), range.remaining()), (None, 0));
    }
}
