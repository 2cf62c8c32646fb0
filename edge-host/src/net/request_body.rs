//! The host-wide request-body limit: no request can make the host (or a
//! component) buffer more than `--max-request-body-bytes`.
//!
//! A request whose `Content-Length` is over the limit is answered `413` by
//! the server before the component runs, without reading the body. A body
//! without a length (chunked) is counted as it streams: past the limit the
//! component's read fails, the server answers `413` instead of whatever the
//! component makes of that, and if the response has already started, the
//! connection is closed mid-response.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use wasmtime_wasi_http::Error;

/// Default limit: 16 MiB, far above what the edge itself accepts (the purge
/// API takes 64 KiB) and below the default instance memory limit.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 16 << 20;

/// What became of one request's body: whether it went past the limit, and
/// whether it was read to its end (if not, the connection must drain it
/// before closing, or the client may get a reset instead of the answer).
#[derive(Debug, Default)]
pub(crate) struct BodyWatch {
    tripped: AtomicBool,
    finished: AtomicBool,
    notify: Notify,
}

impl BodyWatch {
    /// A watch for a body that is `finished` already (none, or empty).
    pub(crate) fn new(finished: bool) -> Arc<BodyWatch> {
        Arc::new(BodyWatch {
            finished: AtomicBool::new(finished),
            ..Default::default()
        })
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    fn trip(&self) {
        if !self.tripped.swap(true, Ordering::SeqCst) {
            // `notify_one` keeps a permit if no one is waiting yet.
            self.notify.notify_one();
        }
    }

    /// Whether the body went past the limit.
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Resolves when the body goes past the limit (never, if it does not).
    pub(crate) async fn tripped(&self) {
        while !self.is_tripped() {
            self.notify.notified().await;
        }
    }
}

/// A request body that fails once more than `limit` bytes have come in.
pub(crate) struct LimitedBody<B> {
    inner: B,
    limit: u64,
    received: u64,
    trip: Arc<BodyWatch>,
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(inner: B, limit: u64, trip: Arc<BodyWatch>) -> Self {
        LimitedBody {
            inner,
            limit,
            received: 0,
            trip,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.trip.is_tripped() {
            return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(self.limit)))));
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                if self.inner.is_end_stream() {
                    self.trip.finish();
                }
                if let Some(data) = frame.data_ref() {
                    self.received = self.received.saturating_add(data.len() as u64);
                    if self.received > self.limit {
                        self.trip.trip();
                        return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(
                            self.limit,
                        )))));
                    }
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => Some(Err(error.into())),
            None => {
                self.trip.finish();
                None
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    fn chunks(sizes: &[usize]) -> impl Body<Data = Bytes, Error = Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = sizes
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![b'x'; *n]))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_whole() {
        let trip = BodyWatch::new(false);
        let body = LimitedBody::new(chunks(&[4, 6]), 10, trip.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 10);
        assert!(!trip.is_tripped());
        assert!(trip.is_finished());
    }

    #[tokio::test]
    async fn one_byte_past_the_limit_fails_the_read_and_trips() {
        let trip = BodyWatch::new(false);
        let body = LimitedBody::new(chunks(&[4, 6, 1, 5]), 10, trip.clone());
        let error = body.collect().await.expect_err("over the limit");
        assert!(
            matches!(error, Error::HttpRequestBodySize(Some(10))),
            "{error:?}"
        );
        assert!(trip.is_tripped());
        assert!(!trip.is_finished(), "the rest was never read");
        // Whoever waits for the trip is woken, even after the fact.
        tokio::time::timeout(std::time::Duration::from_secs(5), trip.tripped())
            .await
            .expect("tripped resolves");
    }
}
