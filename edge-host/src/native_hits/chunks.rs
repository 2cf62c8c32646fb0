//! A natively answered hit of an object stored in chunks: its body read
//! from the component's store here, chunk by chunk as the client takes
//! it, each checked by the core ([`StoredRange::take`]) before a byte of
//! it is sent. One chunk is held at a time.
//!
//! A chunk that is missing or damaged ends the body as broken (the client's
//! connection is aborted, never given a wrong byte), and the object's head
//! is deleted so that the next request fills it again: what the component
//! does in the same case, and the one write native hits make. (Heads of
//! chunked objects are never kept in a first tier, so no copy of it
//! outlives the delete.)

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use edge_cache::StoredRange;
use http_body::{Body, Frame, SizeHint};

use crate::key_value::{StoreBackend, StoreError};

type Read = Pin<Box<dyn Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send>>;

/// The body: the first piece (read before the answer was made), then
/// each chunk read as the last is taken.
pub(super) struct ChunkBody {
    store: Arc<dyn StoreBackend>,
    range: StoredRange,
    first: Option<Bytes>,
    reading: Option<Read>,
}

impl ChunkBody {
    /// The body of `range` in `store`, its first piece already read.
    pub(super) fn new(store: Arc<dyn StoreBackend>, range: StoredRange, first: Bytes) -> Self {
        ChunkBody {
            store,
            range,
            first: Some(first),
            reading: None,
        }
    }
}

/// Reads the first piece of `range` from `store` at once, or says it
/// cannot (not there, damaged, or the store not ready): the component then
/// answers, as it would.
pub(super) fn first_piece(store: &Arc<dyn StoreBackend>, range: &mut StoredRange) -> Option<Bytes> {
    let key = range.next_key()?;
    let value = super::now_or_never(store.get(&key))?.ok()??;
    range.take(value)
}

impl ChunkBody {
    /// Deletes the object's head, as the component's reader does when a
    /// chunk is bad: at once where the store answers at once.
    fn drop_head(&self) {
        let (store, head) = (self.store.clone(), self.range.head_key().to_owned());
        let delete = async move {
            let _ = store.delete(&head).await;
        };
        let mut delete = Box::pin(delete);
        if super::now_or_never(delete.as_mut()).is_none() {
            tokio::spawn(delete);
        }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let reading = match &mut self.reading {
            Some(reading) => reading,
            None => {
                let Some(key) = self.range.next_key() else {
                    return Poll::Ready(None);
                };
                let store = self.store.clone();
                self.reading
                    .insert(Box::pin(async move { store.get(&key).await }))
            }
        };
        let read = std::task::ready!(reading.as_mut().poll(context));
        self.reading = None;
        let piece = match read {
            Ok(Some(value)) => self.range.take(value),
            Ok(None) | Err(_) => None,
        };
        Poll::Ready(Some(match piece {
            Some(piece) => Ok(Frame::data(piece)),
            None => {
                self.drop_head();
                Err(wasmtime_wasi_http::Error::InternalError(Some(
                    "a chunk of a stored object is missing or damaged; \
                     the object will be fetched again"
                        .into(),
                )))
            }
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.range.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().map_or(0, |first| first.len() as u64);
        SizeHint::with_exact(first + self.range.remaining())
    }
}
