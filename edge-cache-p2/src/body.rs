//! Bodies between the core and `wasi:http` 0.2: an incoming body (the
//! client's upload, the origin's response) read piece by piece with
//! blocking reads as the core asks, and an outgoing one written the same
//! way. A streamed body holds one piece in the instance's memory,
//! whatever its size.

use bytes::Bytes;
use spin_sdk::wit::wasi::http0_2_0::types::{IncomingBody, OutgoingBody};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use edge_cache::{Body, BrokenBody, ByteSource, NextPiece};

/// The most one read of a body asks for.
const PIECE_BYTES: u64 = 64 * 1024;

/// An incoming `wasi:http` body and its stream (a child of the body,
/// so dropped first).
pub(crate) struct Incoming {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    /// Whose body it is, for the log ("origin shop:8080").
    from: String,
}

/// How reading a whole body ended short of its end.
pub(crate) enum ReadEnd {
    /// It went past this many bytes.
    OverLimit(usize),
    /// It broke off; the host's words.
    Broken(BrokenBody),
}

impl Incoming {
    /// The body's reader, or `None` if the host has none to give.
    pub(crate) fn of(body: IncomingBody, from: String) -> Option<Incoming> {
        let stream = body.stream().ok()?;
        Some(Incoming {
            stream: Some(stream),
            body: Some(body),
            from,
        })
    }

    /// Reads the whole body, stopping as soon as it passes `limit` bytes.
    pub(crate) fn read_whole(mut self, limit: Option<usize>) -> Result<Bytes, ReadEnd> {
        let mut whole = Vec::new();
        while let Some(piece) = self.next() {
            whole.extend_from_slice(&piece.map_err(ReadEnd::Broken)?);
            if let Some(limit) = limit
                && whole.len() > limit
            {
                return Err(ReadEnd::OverLimit(limit));
            }
        }
        Ok(whole.into())
    }

    fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        let stream = self.stream.as_ref()?;
        match stream.blocking_read(PIECE_BYTES) {
            Ok(piece) => Some(Ok(piece.into())),
            Err(StreamError::Closed) => {
                self.stream = None;
                drop(self.body.take().map(IncomingBody::finish));
                None
            }
            Err(StreamError::LastOperationFailed(error)) => {
                self.stream = None;
                let broken = format!(
                    "{}: the body broke off ({})",
                    self.from,
                    error.to_debug_string()
                );
                eprintln!("edge-cache: {broken}");
                Some(Err(BrokenBody(broken)))
            }
        }
    }
}

impl ByteSource for Incoming {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(std::future::ready(self.next()))
    }
}

/// Writes `body` to an outgoing `wasi:http` body and finishes it; a
/// streamed body that breaks off leaves it unfinished, which the host
/// takes as an error (the message is aborted, never ended as if
/// complete). The error is in words, for the log.
pub(crate) async fn write(outgoing: OutgoingBody, body: Body) -> Result<(), String> {
    {
        let out = outgoing.write().map_err(|()| "no stream".to_owned())?;
        match body {
            Body::Full(bytes) => put(&out, &bytes)?,
            Body::Stream(mut stream) => {
                while let Some(piece) = stream.next().await {
                    if let Err(gone) = put(&out, &piece.map_err(|BrokenBody(why)| why)?) {
                        // The reader went away: a fill is still finished.
                        stream.abandon().await;
                        return Err(gone);
                    }
                }
            }
        }
        // No flush: the host sends what is written as it can, and once a
        // body of declared length is all written it may close the stream,
        // so that a flush then would fail a body that is complete.
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))
}

/// Writes all of `bytes`, as much at a time as the host will take
/// (`blocking-write-and-flush` would take 4 KiB a call).
fn put(out: &OutputStream, mut bytes: &[u8]) -> Result<(), String> {
    while !bytes.is_empty() {
        let permitted = out.check_write().map_err(|e| format!("{e:?}"))?;
        if permitted == 0 {
            out.subscribe().block();
            continue;
        }
        let (now, later) = bytes.split_at(bytes.len().min(permitted as usize));
        out.write(now).map_err(|e| format!("{e:?}"))?;
        bytes = later;
    }
    Ok(())
}
