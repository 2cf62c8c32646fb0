//! Bodies between the core and `wasi:http` 0.3: an incoming body (the
//! client's upload, the origin's response) read piece by piece as the
//! core asks, and an outgoing one written by a task of its own as the
//! host reads it. A streamed body holds a piece or two in the instance's
//! memory, whatever its size.

use bytes::Bytes;
use spin_sdk::wasip3::http::types::{ErrorCode, Fields};
use spin_sdk::wasip3::wit_bindgen::{FutureReader, StreamReader, StreamResult};
use spin_sdk::wasip3::{wit_future, wit_stream};

use edge_cache::{Body, BrokenBody, ByteSource, NextPiece};

/// The most one read of a streamed body asks for: enough that a fast
/// origin is read in few host calls, little enough that sixteen
/// concurrent streams fit an instance's memory many times over.
const PIECE_BYTES: usize = 64 * 1024;

/// A message's trailers, which say at the end whether its body arrived
/// whole.
pub(crate) type Trailers = FutureReader<Result<Option<Fields>, ErrorCode>>;

/// An incoming `wasi:http` body: its contents, then its trailers.
pub(crate) struct IncomingBody {
    contents: Option<StreamReader<u8>>,
    trailers: Option<Trailers>,
    /// Whose body it is, for the log ("origin shop:8080").
    from: String,
}

impl IncomingBody {
    pub(crate) fn new(contents: StreamReader<u8>, trailers: Trailers, from: String) -> Self {
        IncomingBody {
            contents: Some(contents),
            trailers: Some(trailers),
            from,
        }
    }

    /// Reads the whole body, or says it passed `limit` bytes.
    pub(crate) async fn read_whole(
        mut self,
        limit: usize,
    ) -> Result<Result<Bytes, usize>, BrokenBody> {
        let mut whole = Vec::new();
        while let Some(piece) = self.next().await {
            whole.extend_from_slice(&piece?);
            if whole.len() > limit {
                return Ok(Err(limit));
            }
        }
        Ok(Ok(whole.into()))
    }

    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        if let Some(contents) = self.contents.as_mut() {
            loop {
                let (result, piece) = contents.read(Vec::with_capacity(PIECE_BYTES)).await;
                match result {
                    StreamResult::Complete(_) if piece.is_empty() => continue,
                    StreamResult::Complete(_) => return Some(Ok(piece.into())),
                    StreamResult::Dropped | StreamResult::Cancelled => break,
                }
            }
            self.contents = None;
        }
        // The contents have ended: the trailers say whether cleanly.
        match self.trailers.take()?.await {
            Ok(_) => None,
            Err(code) => {
                let broken = format!("{}: the body broke off ({code:?})", self.from);
                eprintln!("edge-cache: {broken}");
                Some(Err(BrokenBody(broken)))
            }
        }
    }
}

impl ByteSource for IncomingBody {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(self.next())
    }
}

/// A body as the host reads it: a stream written by a task of its own
/// (none for an empty body), and the trailers, which carry an error if a
/// streamed body broke off, so that the host aborts the message rather
/// than end it as if complete.
pub(crate) fn outgoing(body: Body) -> (Option<StreamReader<u8>>, Trailers) {
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    if body.is_empty() {
        return (None, trailers);
    }
    let (mut writer, reader) = wit_stream::new::<u8>();
    spin_sdk::wasip3::spawn(async move {
        match body {
            // The host's stream takes a buffer of its own: the one place
            // the content is copied, unless this answer is its only holder.
            Body::Full(bytes) => {
                // A reader that went away leaves the rest unwritten.
                let _ = writer.write_all(Vec::from(bytes)).await;
            }
            Body::Stream(mut stream) => {
                while let Some(piece) = stream.next().await {
                    let piece = match piece {
                        Ok(piece) => piece,
                        Err(BrokenBody(why)) => {
                            // The contents end first, then the error.
                            drop(writer);
                            let broke = ErrorCode::InternalError(Some(why));
                            let _ = trailers_writer.write(Err(broke)).await;
                            return;
                        }
                    };
                    if !writer.write_all(Vec::from(piece)).await.is_empty() {
                        // The reader went away: a fill is still finished.
                        stream.abandon().await;
                        return;
                    }
                }
            }
        }
    });
    (Some(reader), trailers)
}
