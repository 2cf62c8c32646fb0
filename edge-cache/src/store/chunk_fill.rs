//! A large response stored as it streams to the client: the fill tees
//! the origin's body, handing each piece on at once and gathering the
//! pieces into chunks that are written to the store.
//!
//! A chunk's write runs while the next piece is read from the origin, so
//! the client waits for the store at most at the very end (the last chunk
//! and the head). The head, which makes the object visible, is written
//! only after every chunk: a lookup never finds a partial object. A fill
//! that cannot finish (the body breaks off or runs past the rule's limit,
//! a store write fails, the client goes away) writes no head, and its
//! chunks are left to the store's eviction.
//!
//! A fill that holds its key's fill lease keeps it to the end, renewed with
//! each chunk, and announces in it the head it will write (when the body's
//! length is declared and the response does not vary): requests for the
//! key that arrive meanwhile read the chunks as they are written
//! (`StoredChunks::while_filling`) rather than fetching the object again.
//! The fill runs at its own client's pace; a client that stops reading
//! stops the renewals, and the lease lapses after
//! [`FILL_LEASE`](crate::collapse::fill_lease::FILL_LEASE), ending the
//! other readers' answers (aborted, never short).

use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use http::HeaderMap;

use crate::collapse::fill_lease::FillLeases;
use crate::policy::freshness::EffectiveControl;
use crate::policy::key::{CacheKey, KeyedTarget};
use crate::policy::vary::VaryNames;
use crate::seams::{BodyStream, BrokenBody, ByteSource, Clock, NextPiece, StoreFailure};
use crate::store::chunk_read::StoreHandles;
use crate::store::chunks::{ChunkFrame, ChunkLayout};
use crate::store::entry::{self, StoredValue};
use crate::store::keys::EntryKey;
use crate::store::write::{StoredFetch, entry_meta};
use crate::store::{PurgeEpoch, Store};

/// What the head of a chunked object is written with once its chunks are
/// all stored: the response's metadata, owned (the flow has returned).
pub(crate) struct HeadToWrite {
    pub keyed: KeyedTarget,
    pub request_headers: HeaderMap,
    pub status: u16,
    pub headers: HeaderMap,
    pub request_time: std::time::SystemTime,
    pub response_time: std::time::SystemTime,
    pub initial_age: std::time::Duration,
    pub lifetime: Option<std::time::Duration>,
    pub control: EffectiveControl,
    pub epoch: PurgeEpoch,
}

impl HeadToWrite {
    /// The response as stored, its body in chunks laid out as `chunks`.
    pub(crate) fn fetch(&self, chunks: ChunkLayout) -> StoredFetch<'_> {
        static EMPTY: Bytes = Bytes::new();
        StoredFetch {
            status: self.status,
            headers: &self.headers,
            body: &EMPTY,
            request_time: self.request_time,
            response_time: self.response_time,
            initial_age: self.initial_age,
            lifetime: self.lifetime,
            control: &self.control,
            chunks: Some(chunks),
            sliced: None,
            encodings: None,
        }
    }
}

/// The fill lease a fill holds to its end, and the head it announces.
struct HeldLease {
    key: CacheKey,
    /// The encoded head, where others may read the chunks as they come.
    announced: Option<Rc<[u8]>>,
}

/// A chunk write in flight.
type Write = Pin<Box<dyn Future<Output = Result<(), StoreFailure>>>>;

/// The origin's body, stored in chunks as it passes.
pub(crate) struct ChunkFill<S, C> {
    source: BodyStream,
    handles: StoreHandles<S, C>,
    /// `None` once the fill is given up: the body still passes.
    filling: Option<Filling>,
    write: Option<Write>,
    lease: Option<HeldLease>,
}

struct Filling {
    head: HeadToWrite,
    generation: u64,
    chunk_bytes: usize,
    /// The most the object may be (the rule's `max_object_bytes`).
    limit: u64,
    /// The chunk being gathered.
    frame: ChunkFrame,
    index: u64,
    /// Bytes gathered so far, in all chunks.
    length: u64,
}

impl<S: Store + 'static, C: Clock + 'static> ChunkFill<S, C> {
    /// Stores `source` as it is read, in chunks of `chunk_bytes`, unless
    /// it turns out longer than `limit`; ends the fill lease on `lease`
    /// when it is done (see [`ChunkFill::announce`]).
    pub(crate) fn new(
        source: BodyStream,
        handles: StoreHandles<S, C>,
        head: HeadToWrite,
        (chunk_bytes, limit): (usize, u64),
        lease: Option<CacheKey>,
    ) -> Self {
        let at = crate::store::unix_us(head.response_time);
        let generation = generation_of(&format!("{}|{at}", head.keyed.key.canonical));
        let lease = lease.map(|key| HeldLease {
            key,
            announced: announced_head(&head, source.length(), chunk_bytes, generation),
        });
        ChunkFill {
            lease,
            source,
            handles,
            filling: Some(Filling {
                head,
                generation,
                chunk_bytes,
                limit,
                frame: ChunkFrame::new(generation, 0, chunk_bytes),
                index: 0,
                length: 0,
            }),
            write: None,
        }
    }

    /// Announces the head in the fill lease (before the first byte is
    /// read), so requests for the key arriving now join this fill.
    pub(crate) async fn announce(&self) {
        if let Some(lease) = &self.lease {
            let head = lease.announced.as_deref();
            self.leases().renew(&lease.key, head).await;
        }
    }

    fn leases(&self) -> FillLeases<'_, S, C> {
        FillLeases {
            store: &self.handles.store,
            clock: &self.handles.clock,
        }
    }

    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let piece = self.next_teed().await;
        // Given up or done (the head written): waiters go on.
        if self.filling.is_none()
            && let Some(lease) = self.lease.take()
        {
            // A write still in flight would renew the lease.
            self.write = None;
            self.leases().release(&lease.key).await;
        }
        piece
    }

    async fn next_teed(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let piece = match self.write.take() {
            Some(write) => {
                let (written, piece) = both(write, self.source.next()).await;
                if written.is_err() {
                    self.filling = None;
                }
                piece
            }
            None => self.source.next().await,
        };
        match &piece {
            Some(Ok(bytes)) => {
                self.gather(bytes);
                // A body of declared length is complete with its last
                // byte: stored before that byte goes, so that a client
                // that has it all and asks again finds the object.
                let declared = self.source.length();
                if self
                    .filling
                    .as_ref()
                    .is_some_and(|f| Some(f.length) == declared)
                {
                    self.finish().await;
                }
            }
            Some(Err(_)) => self.filling = None,
            None => self.finish().await,
        }
        piece
    }

    /// Adds `bytes` to the chunk being gathered, starting its write when
    /// it is full.
    fn gather(&mut self, mut bytes: &[u8]) {
        let Some(filling) = self.filling.as_mut() else {
            return;
        };
        filling.length += bytes.len() as u64;
        if filling.length > filling.limit {
            self.filling = None;
            return;
        }
        while !bytes.is_empty() {
            let room = filling.chunk_bytes - filling.frame.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            filling.frame.extend(now);
            bytes = later;
            if filling.frame.len() == filling.chunk_bytes {
                let (generation, index) = (filling.generation, filling.index);
                let next = ChunkFrame::new(generation, index + 1, filling.chunk_bytes);
                let full = std::mem::replace(&mut filling.frame, next);
                let key = EntryKey::chunk(generation, index);
                let handles = self.handles.clone();
                let lease = self
                    .lease
                    .as_ref()
                    .map(|lease| (lease.key.clone(), lease.announced.clone()));
                // A piece longer than a chunk fills more than one: each
                // write goes after those in flight.
                let before = self.write.take();
                self.write = Some(Box::pin(async move {
                    if let Some(before) = before {
                        before.await?;
                    }
                    handles.store.set(&key, &full.finish()).await?;
                    if let Some((key, announced)) = lease {
                        let leases = FillLeases {
                            store: &*handles.store,
                            clock: &*handles.clock,
                        };
                        leases.renew(&key, announced.as_deref()).await;
                    }
                    Ok(())
                }));
                filling.index += 1;
            }
        }
    }

    /// The body has ended: the last chunk, then the head.
    async fn finish(&mut self) {
        if let Some(write) = self.write.take()
            && write.await.is_err()
        {
            self.filling = None;
        }
        let Some(Filling {
            head,
            generation,
            chunk_bytes,
            frame,
            index,
            length,
            ..
        }) = self.filling.take()
        else {
            return;
        };
        if frame.len() > 0 {
            let key = EntryKey::chunk(generation, index);
            if self.handles.store.set(&key, &frame.finish()).await.is_err() {
                return;
            }
        }
        let fetch = head.fetch(ChunkLayout {
            length,
            chunk_bytes: chunk_bytes as u32,
            generation,
        });
        let storage = self.handles.storage();
        let request_headers = &head.request_headers;
        let _ = storage
            .store(&head.keyed, request_headers, fetch, &head.epoch)
            .await;
    }
}

impl<S: Store + 'static, C: Clock + 'static> ByteSource for ChunkFill<S, C> {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(self.next())
    }
}

/// The head a fill of declared `length` announces to requests that join
/// it: what it will store, encoded. None where the length is unknown, or
/// where the response varies (a joiner might want another variant).
fn announced_head(
    head: &HeadToWrite,
    length: Option<u64>,
    chunk_bytes: usize,
    generation: u64,
) -> Option<Rc<[u8]>> {
    if !matches!(VaryNames::of(&head.headers), VaryNames::None) {
        return None;
    }
    let layout = ChunkLayout {
        length: length?,
        chunk_bytes: chunk_bytes as u32,
        generation,
    };
    let (meta, _) = entry_meta(&head.keyed, &head.fetch(layout));
    Some(entry::encode(&StoredValue::Response(meta), &[]).into())
}

/// A fill's generation from what makes it unique: its key and moment
/// (two fills of one key at the same microsecond would share chunks of
/// equal content).
pub(crate) fn generation_of(seed: &str) -> u64 {
    u64::from_be_bytes(
        blake3::hash(seed.as_bytes()).as_bytes()[..8]
            .try_into()
            .unwrap_or_default(),
    )
}

/// Runs two futures together in one task (no other task is involved, so
/// nothing needs waking across tasks) and gives both outputs.
pub(crate) async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_out, mut b_out) = (None, None);
    std::future::poll_fn(|context| {
        if a_out.is_none()
            && let Poll::Ready(out) = a.as_mut().poll(context)
        {
            a_out = Some(out);
        }
        if b_out.is_none()
            && let Poll::Ready(out) = b.as_mut().poll(context)
        {
            b_out = Some(out);
        }
        match (a_out.take(), b_out.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (a_out, b_out) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
}
