//! A message's content: whole in memory, or streamed piece by piece from
//! the adapter's `wasi:http` stream, its declared length checked.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A message's content as it crosses the seams: whole in one shared
/// buffer (small bodies, stored ones: a hit hands on the stored bytes
/// themselves, no copy), or a stream read piece by piece, so that a body
/// of any size passes through in a chunk or two of memory.
pub enum Body {
    /// All of the content, in one shared buffer.
    Full(Bytes),
    /// Content still arriving.
    Stream(BodyStream),
}

/// Where a streamed body's pieces come from: the adapter's `wasi:http`
/// stream (an origin's response, a client's request). A trait object
/// rather than a generic so that every seam keeps one [`Body`] type; a
/// boxed future per piece costs nothing beside the piece.
pub trait ByteSource {
    /// The next piece of the body; `None` once it has ended cleanly, an
    /// error if it broke off (the message is for the log).
    fn next_piece(&mut self) -> NextPiece<'_>;

    /// Whether it can start anywhere (see [`ByteSource::seek`]).
    fn can_seek(&self) -> bool {
        false
    }

    /// Restricts it to bytes `start..=end` of the body without reading
    /// what comes before, if it can (a stored object can; an origin's
    /// stream cannot); asked only before its first piece is read.
    fn seek(&mut self, _start: u64, _end: u64) -> bool {
        false
    }

    /// What is left of it, if it is a stored object's chunks that a host
    /// may read from the store itself (see `StoredRange`).
    fn stored_range(&self) -> Option<crate::store::chunk_read::StoredRange> {
        None
    }
}

/// A [`ByteSource`]'s next piece, to await: `None` once the body has
/// ended cleanly.
pub type NextPiece<'a> = Pin<Box<dyn Future<Output = Option<Result<Bytes, BrokenBody>>> + 'a>>;

/// Why a streamed body ended before it was complete (the sender's words,
/// for the log). A client that receives such a body has its connection
/// aborted, never a complete-looking answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenBody(pub String);

/// The longest origin body an adapter reads whole (one buffer, sized from
/// its `Content-Length`); a longer one, or one of unknown length, streams.
/// The core holds whole what fits one entry anyway (a chunk at most), so
/// this is the adapters' fast path for the small bodies most answers have.
pub const WHOLE_BODY_BYTES: u64 = 1 << 20;

/// A body read piece by piece from its [`ByteSource`].
pub struct BodyStream {
    /// Pieces read ahead of `source` while trying to hold the body whole
    /// (see [`Body::held_whole`]): handed out first.
    read_ahead: VecDeque<Bytes>,
    source: Box<dyn ByteSource>,
    /// The length its sender declared (`Content-Length`), if it did.
    length: Option<u64>,
    /// Bytes taken from `source` so far.
    pulled: u64,
    /// Whether it is read to its end even if its reader goes away (see
    /// [`BodyStream::abandon`]).
    finish_unread: bool,
}

impl BodyStream {
    /// A stream over `source`, whose sender declared `length` bytes.
    pub fn new(source: impl ByteSource + 'static, length: Option<u64>) -> BodyStream {
        BodyStream {
            read_ahead: VecDeque::new(),
            source: Box::new(source),
            length,
            pulled: 0,
            finish_unread: false,
        }
    }

    /// Marks it as feeding something worth finishing when its reader goes
    /// away (a fill storing it): see [`BodyStream::abandon`].
    pub(crate) fn finishing(mut self) -> BodyStream {
        self.finish_unread = true;
        self
    }

    /// Its reader went away (the client closed the connection). A body
    /// that feeds a fill is read to its end, so that the fill stores the
    /// object for the next request, and the requests that joined it as it
    /// streams are answered whole (Varnish and Fastly finish such fetches
    /// too); any other is dropped at once.
    pub async fn abandon(mut self) {
        if self.finish_unread {
            while let Some(Ok(_)) = self.next().await {}
        }
    }

    /// The length its sender declared, if it did.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// Reads its first piece ahead, so that a body that cannot even
    /// begin (a stored chunk gone) is known before an answer is sent.
    pub(crate) async fn prefetch(&mut self) -> Result<(), BrokenBody> {
        if self.read_ahead.is_empty()
            && let Some(piece) = self.pull().await
        {
            self.read_ahead.push_back(piece?);
        }
        Ok(())
    }

    /// What is left of it to read from the store, if it is a stored
    /// object's chunks none of which has been read yet.
    pub fn stored_range(&self) -> Option<crate::store::chunk_read::StoredRange> {
        if self.pulled != 0 || !self.read_ahead.is_empty() {
            return None;
        }
        self.source.stored_range()
    }

    /// Whether [`BodyStream::range`] can cut it.
    pub(crate) fn can_seek(&self) -> bool {
        self.pulled == 0 && self.read_ahead.is_empty() && self.source.can_seek()
    }

    /// Bytes `start..=end` of it, if its source can seek there (else the
    /// stream unchanged, as the error).
    pub(crate) fn range(mut self, start: u64, end: u64) -> Result<BodyStream, BodyStream> {
        if !self.can_seek() || !self.source.seek(start, end) {
            return Err(self);
        }
        self.length = Some(end - start + 1);
        Ok(self)
    }

    /// Bytes `skip..skip + take` of it, read through: what comes after
    /// them is still read, and dropped, so that whatever the stream feeds
    /// (a fill storing it) sees it to its end.
    pub(crate) fn cut(self, skip: u64, take: u64) -> BodyStream {
        BodyStream::new(
            Cut {
                inner: self,
                skip,
                take,
            },
            Some(take),
        )
    }

    /// The next piece; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        if let Some(piece) = self.read_ahead.pop_front() {
            return Some(Ok(piece));
        }
        self.pull().await
    }

    /// The source's next piece, checked against the declared length: a
    /// body that ends short of it, or runs past it, is broken, so that no
    /// client is answered a truncated or overlong body as if complete.
    async fn pull(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let piece = self.source.next_piece().await;
        let declared = self.length;
        match &piece {
            Some(Ok(bytes)) => {
                self.pulled += bytes.len() as u64;
                if declared.is_some_and(|length| self.pulled > length) {
                    return Some(Err(BrokenBody(format!(
                        "the body ran past its declared {} bytes",
                        declared.unwrap_or_default()
                    ))));
                }
            }
            None if declared.is_some_and(|length| self.pulled < length) => {
                return Some(Err(BrokenBody(format!(
                    "the body ended after {} of its declared {} bytes",
                    self.pulled,
                    declared.unwrap_or_default()
                ))));
            }
            _ => {}
        }
        piece
    }
}

impl Body {
    /// No content.
    pub const fn empty() -> Body {
        Body::Full(Bytes::new())
    }

    /// The content held in memory: all of a [`Body::Full`], nothing of a
    /// stream (whose bytes are not here yet).
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Body::Full(bytes) => bytes,
            Body::Stream(_) => &[],
        }
    }

    /// Its length in bytes, where it is known: a whole body's, or what a
    /// stream's sender declared.
    pub fn length(&self) -> Option<u64> {
        match self {
            Body::Full(bytes) => Some(bytes.len() as u64),
            Body::Stream(stream) => stream.length,
        }
    }

    /// Whether it is known to have no content.
    pub fn is_empty(&self) -> bool {
        self.length() == Some(0)
    }

    /// Holds a stream whole if it ends within `limit` bytes, so that it
    /// can be stored and answered as today; a longer one stays a stream
    /// (what was read of it is handed out first). A stream that declares
    /// more than `limit` is not read at all. Memory: `limit` plus one
    /// piece.
    /// The body as a stream, whole bytes or not.
    pub(crate) fn into_stream(self) -> BodyStream {
        match self {
            Body::Full(whole) => {
                let length = whole.len() as u64;
                BodyStream::new(Whole(Some(whole)), Some(length))
            }
            Body::Stream(stream) => stream,
        }
    }

    pub(crate) async fn held_whole(self, limit: u64) -> Result<Body, BrokenBody> {
        let mut stream = match self {
            Body::Stream(stream) if stream.length.is_none_or(|length| length <= limit) => stream,
            whole_or_long => return Ok(whole_or_long),
        };
        let mut pieces = std::mem::take(&mut stream.read_ahead);
        let mut held: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        while held <= limit {
            match stream.pull().await {
                Some(Ok(piece)) => {
                    held += piece.len() as u64;
                    pieces.push_back(piece);
                }
                Some(Err(broken)) => return Err(broken),
                None => return Ok(Body::Full(concatenated(pieces.into()))),
            }
        }
        stream.read_ahead = pieces;
        Ok(Body::Stream(stream))
    }
}

/// The pieces as one buffer: the piece itself when there is one (a body
/// read in one go is not copied).
fn concatenated(mut pieces: Vec<Bytes>) -> Bytes {
    match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.remove(0),
        _ => {
            let mut whole = bytes::BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for piece in pieces {
                whole.extend_from_slice(&piece);
            }
            whole.freeze()
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            Body::Stream(stream) => f
                .debug_struct("Stream")
                .field("length", &stream.length)
                .finish_non_exhaustive(),
        }
    }
}

/// Whole bodies compare by content; a stream equals nothing (its content
/// is not here to compare).
impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        match (self, other) {
            (Body::Full(a), Body::Full(b)) => a == b,
            _ => false,
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::Full(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Full(bytes.into())
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::Full(text.into())
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body::Full(Bytes::from_static(bytes))
    }
}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        matches!(self, Body::Full(bytes) if bytes == other)
    }
}

impl PartialEq<&[u8]> for Body {
    fn eq(&self, other: &&[u8]) -> bool {
        self == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Body {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self == other.as_slice()
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self == other.as_slice()
    }
}

/// Bytes held whole, as a stream of one piece.
struct Whole(Option<Bytes>);

impl ByteSource for Whole {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(std::future::ready(self.0.take().map(Ok)))
    }
}

/// A part of a stream: see [`BodyStream::cut`].
struct Cut {
    inner: BodyStream,
    skip: u64,
    take: u64,
}

impl Cut {
    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        while self.take > 0 {
            let mut piece = match self.inner.next().await? {
                Ok(piece) => piece,
                Err(broken) => return Some(Err(broken)),
            };
            let skipped = self.skip.min(piece.len() as u64);
            self.skip -= skipped;
            piece = piece.slice(skipped as usize..);
            if piece.is_empty() {
                continue;
            }
            let taken = self.take.min(piece.len() as u64);
            self.take -= taken;
            return Some(Ok(piece.slice(..taken as usize)));
        }
        // The part is whole: the rest is read for what it feeds, and
        // whether it ends well is no longer this body's concern.
        while let Some(Ok(_)) = self.inner.next().await {}
        None
    }
}

impl ByteSource for Cut {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Pieces, block_on, drain};

    /// A source that counts how many of its pieces were read.
    struct Counted(Pieces, std::rc::Rc<std::cell::Cell<usize>>);

    impl ByteSource for Counted {
        fn next_piece(&mut self) -> NextPiece<'_> {
            self.1.set(self.1.get() + 1);
            self.0.next_piece()
        }
    }

    #[test]
    fn a_cut_gives_its_part_and_still_reads_the_rest_through() {
        let reads = std::rc::Rc::new(std::cell::Cell::new(0));
        let pieces = Pieces {
            pieces: ["abc", "def", "ghi", "jkl"].map(Bytes::from).into(),
            breaks_off: false,
        };
        let stream = BodyStream::new(Counted(pieces, reads.clone()), Some(12));
        let part = Body::Stream(stream.cut(4, 5));
        assert_eq!(part.length(), Some(5));
        assert_eq!(drain(part).unwrap(), b"efghi");
        // Every piece, and the end, were read: what feeds on them saw all.
        assert_eq!(reads.get(), 5);
        // A stream that ends before the part does is broken.
        let short = Pieces::body(&[b"abc"], Some(3), false);
        let Body::Stream(short) = short else {
            unreachable!()
        };
        assert!(drain(Body::Stream(short.cut(1, 5))).is_err());
    }

    #[test]
    fn a_stream_that_ends_within_the_limit_is_held_whole_in_one_buffer() {
        let body = Pieces::body(&[b"ab", b"cd"], None, false);
        let held = block_on(body.held_whole(4)).unwrap();
        assert!(matches!(&held, Body::Full(bytes) if bytes == &b"abcd"[..]));
    }

    #[test]
    fn a_longer_stream_stays_a_stream_and_loses_nothing_read_ahead() {
        let body = Pieces::body(&[b"ab", b"cd", b"ef", b"gh"], None, false);
        let held = block_on(body.held_whole(3)).unwrap();
        assert!(matches!(held, Body::Stream(_)));
        assert_eq!(drain(held).unwrap(), b"abcdefgh");
    }

    #[test]
    fn a_stream_declared_longer_than_the_limit_is_not_read() {
        let body = Pieces::body(&[b"abcdef"], Some(6), false);
        let Body::Stream(stream) = block_on(body.held_whole(5)).unwrap() else {
            panic!("held a body longer than the limit");
        };
        assert!(stream.read_ahead.is_empty());
        assert_eq!(stream.pulled, 0);
    }

    #[test]
    fn a_stream_that_breaks_while_held_is_an_error() {
        let body = Pieces::body(&[b"ab"], None, true);
        assert_eq!(
            block_on(body.held_whole(10)).unwrap_err(),
            BrokenBody("broke".into())
        );
    }

    #[test]
    fn a_stream_shorter_or_longer_than_declared_is_broken() {
        let short = Pieces::body(&[b"ab"], Some(3), false);
        assert_eq!(
            drain(short).unwrap_err().0,
            "the body ended after 2 of its declared 3 bytes"
        );
        let long = Pieces::body(&[b"ab", b"cd"], Some(3), false);
        assert_eq!(
            drain(long).unwrap_err().0,
            "the body ran past its declared 3 bytes"
        );
        let exact = Pieces::body(&[b"ab", b"c"], Some(3), false);
        assert_eq!(drain(exact).unwrap(), b"abc");
    }
}
