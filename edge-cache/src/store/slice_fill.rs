//! An object stored by slices: chunk-aligned ranges of it, fetched from
//! the origin as clients ask for them (nginx's `slice`), each stored as it
//! streams to the client, under a head that records which chunks are
//! stored ([`ChunkSet`]). Seeking in a cold video costs one slice, not the
//! whole file.
//!
//! The head is written before the slice's first byte, naming the chunks
//! already stored, and rewritten with the slice's own as they land (every
//! [`RECORD_EVERY`] chunks, and at the end), merged with what the stored
//! head says then: a request for a part already stored is a hit while the
//! rest of a slice still streams. Two slice fills of one object that
//! rewrite the head at the same moment can lose one's record; its chunks
//! are then fetched again, never served wrong (each chunk is checked). A
//! head replaced meanwhile by another fill (another generation) or purged
//! is left alone, and the slice stops storing.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::seams::{BodyStream, BrokenBody, ByteSource, Clock, NextPiece, StoreFailure};
use crate::store::chunk_fill::{HeadToWrite, both};
use crate::store::chunk_read::StoreHandles;
use crate::store::chunks::{ChunkFrame, ChunkLayout, ChunkSet};
use crate::store::keys::EntryKey;
use crate::store::{Lookup, Store};

/// How many chunks a slice stores between rewrites of the head.
const RECORD_EVERY: u32 = 8;

/// Chunk writes in flight, one after another.
type Writes = Pin<Box<dyn Future<Output = Result<(), StoreFailure>>>>;

/// A slice of an object streaming from the origin, stored as it passes.
pub(crate) struct SliceFill<S, C> {
    source: BodyStream,
    handles: StoreHandles<S, C>,
    head: HeadToWrite,
    layout: ChunkLayout,
    /// The chunks stored, as this fill knows them.
    stored: ChunkSet,
    /// The chunk being gathered (`None` once storing is given up: the
    /// bytes still pass).
    frame: Option<ChunkFrame>,
    index: u64,
    /// Writes in flight, and the chunks they write.
    writes: Option<Writes>,
    writing: Vec<u64>,
    /// Chunks stored since the head was last written.
    unrecorded: u32,
    /// Whether the head has been written once.
    began: bool,
}

impl<S: Store + 'static, C: Clock + 'static> SliceFill<S, C> {
    /// Stores `source`, the object's bytes from chunk `first` on, as chunks
    /// of `layout`; `stored` are the chunks already stored.
    pub(crate) fn new(
        source: BodyStream,
        handles: StoreHandles<S, C>,
        head: HeadToWrite,
        (layout, stored): (ChunkLayout, ChunkSet),
        first: u64,
    ) -> Self {
        let chunk_bytes = layout.chunk_bytes as usize;
        SliceFill {
            source,
            handles,
            head,
            layout,
            stored,
            frame: Some(ChunkFrame::new(layout.generation, first, chunk_bytes)),
            index: first,
            writes: None,
            writing: Vec::new(),
            unrecorded: 0,
            began: false,
        }
    }

    /// Writes the head, naming the chunks stored so far: before the
    /// slice's first byte, then as its chunks land. False if it could not
    /// (the slice then stops storing).
    pub(crate) async fn record(&mut self) -> bool {
        self.unrecorded = 0;
        let storage = self.handles.storage();
        let (keyed, request_headers) = (&self.head.keyed, &self.head.request_headers);
        let current = match storage.lookup(keyed, request_headers).await {
            Ok((Lookup::Found(found), _)) => Some(found),
            Ok((Lookup::Miss(_, None), _)) => None,
            // Purged, unreadable: not this fill's to overwrite.
            Ok((Lookup::Miss(_, Some(_)), _)) | Err(_) => return self.give_up(),
        };
        if let Some(found) = current {
            match (found.chunks(), &found.meta().sliced) {
                (Some(layout), Some(theirs)) if layout == self.layout => {
                    self.stored.extend(theirs);
                }
                // Another fill's head: replaced by this slice's at its
                // start (the flow chose a new generation), else replaced
                // by another fill since.
                _ if self.began => return self.give_up(),
                _ => {}
            }
        }
        self.began = true;
        let mut fetch = self.head.fetch(self.layout);
        fetch.sliced = Some(self.stored.clone());
        let stored = storage
            .store(keyed, request_headers, fetch, &self.head.epoch)
            .await;
        stored.is_ok() || self.give_up()
    }

    fn give_up(&mut self) -> bool {
        self.frame = None;
        self.writes = None;
        self.writing.clear();
        false
    }

    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let piece = match self.writes.take() {
            Some(writes) => {
                let (written, piece) = both(writes, self.source.next()).await;
                self.written(written.is_ok()).await;
                piece
            }
            None => self.source.next().await,
        };
        match &piece {
            Some(Ok(bytes)) => self.gather(bytes),
            Some(Err(_)) => {
                self.give_up();
            }
            None => self.finish().await,
        }
        piece
    }

    /// The writes in flight have ended.
    async fn written(&mut self, ok: bool) {
        if !ok {
            self.give_up();
            return;
        }
        for index in std::mem::take(&mut self.writing) {
            self.stored.insert(index);
            self.unrecorded += 1;
        }
        if self.unrecorded >= RECORD_EVERY {
            self.record().await;
        }
    }

    /// Adds `bytes` to the chunk being gathered, writing each chunk that
    /// fills up after those in flight.
    fn gather(&mut self, mut bytes: &[u8]) {
        let chunk_bytes = self.layout.chunk_bytes as usize;
        while !bytes.is_empty() {
            let Some(frame) = self.frame.as_mut() else {
                return;
            };
            let room = chunk_bytes - frame.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            frame.extend(now);
            bytes = later;
            if frame.len() == chunk_bytes {
                self.write_frame();
            }
        }
    }

    /// Starts the write of the chunk gathered, after those in flight.
    fn write_frame(&mut self) {
        let (generation, index) = (self.layout.generation, self.index);
        let next = ChunkFrame::new(generation, index + 1, self.layout.chunk_bytes as usize);
        let Some(full) = self.frame.replace(next) else {
            return;
        };
        let store = self.handles.store.clone();
        let before = self.writes.take();
        self.writes = Some(Box::pin(async move {
            if let Some(before) = before {
                before.await?;
            }
            store
                .set(&EntryKey::chunk(generation, index), &full.finish())
                .await
        }));
        self.writing.push(index);
        self.index += 1;
    }

    /// The slice has ended: the object's last chunk if it holds it (a
    /// short chunk anywhere else is part of no chunk), then the head.
    async fn finish(&mut self) {
        let last = self
            .layout
            .length
            .div_ceil(u64::from(self.layout.chunk_bytes))
            - 1;
        if let Some(frame) = &self.frame
            && self.index == last
            && frame.len() as u64 == self.layout.length_of(last)
        {
            self.write_frame();
        }
        if let Some(writes) = self.writes.take() {
            let ok = writes.await.is_ok();
            self.written(ok).await;
        }
        if self.frame.is_some() && self.unrecorded > 0 {
            self.record().await;
        }
        self.give_up();
    }
}

impl<S: Store + 'static, C: Clock + 'static> ByteSource for SliceFill<S, C> {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(self.next())
    }
}
