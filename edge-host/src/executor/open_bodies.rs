//! The response bodies an instance is still sending, watched for its
//! end.
//!
//! wasmtime-wasi-http ends a component's response body cleanly when the
//! instance behind it is dropped: its end is a channel from the instance,
//! and a dropped channel reads as "no more frames". An instance that traps
//! halfway through a chunked body would so hand the client a short body
//! with the last chunk that says it is whole, and a cache in front would
//! keep it. So each body is watched ([`OpenBodies::watch`]); when the
//! instance ends, before its store is dropped ([`OpenBodies::instance_ending`]),
//! each body takes what of its end is already there (the guest finished
//! it, and only the last frames are in flight); any other body, which
//! would have been cut short, ends in an error instead, and hyper closes
//! the connection without finishing the response. That is any end of the
//! instance, not only a trap: a store dropped for any reason takes the
//! unsent rest of a body with it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// What a body ends with if its instance ended before it did.
const INSTANCE_ENDED: &str = "its instance ended while sending it";

/// The bodies of one instance's responses still being sent.
#[derive(Default)]
pub(crate) struct OpenBodies(Mutex<Vec<Weak<Mutex<Watched>>>>);

/// A body and what is known of it beyond its own frames.
struct Watched {
    inner: HyperOutgoingBody,
    /// Frames taken from `inner` when the instance ended, not yet sent.
    taken: VecDeque<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>,
    /// `inner` has ended, and `taken` holds the rest.
    ended: bool,
    /// The instance has ended; any end `inner` gives from now on is the
    /// dropped instance's, not the guest's.
    instance_gone: bool,
    /// The task sending the body, woken when the instance ends.
    waker: Option<Waker>,
}

fn lock(watched: &Mutex<Watched>) -> MutexGuard<'_, Watched> {
    // A panic while holding it leaves nothing half-done that matters here.
    watched.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OpenBodies {
    /// Watches `body`, one of this instance's responses.
    pub(crate) fn watch(&self, body: HyperOutgoingBody) -> WatchedBody {
        let watched = Arc::new(Mutex::new(Watched {
            inner: body,
            taken: VecDeque::new(),
            ended: false,
            instance_gone: false,
            waker: None,
        }));
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|body| body.strong_count() > 0);
        open.push(Arc::downgrade(&watched));
        WatchedBody(watched)
    }

    /// The instance has ended (retired, trapped, stopped), and its store
    /// is about to be dropped: each open body takes the frames it already
    /// has, and learns whether that reached its end; one that did not will
    /// end in an error.
    pub(crate) fn instance_ending(&self) {
        let open = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for body in open.iter().filter_map(Weak::upgrade) {
            let mut watched = lock(&body);
            watched.take_what_is_there();
            watched.instance_gone = true;
            // It may be waiting on a channel just polled with another
            // waker: its task polls again and sees the frames or the end.
            if let Some(waker) = watched.waker.take() {
                waker.wake();
            }
        }
    }
}

impl Watched {
    /// Takes every frame `inner` can give at once, and its end if that is
    /// there too.
    fn take_what_is_there(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        while !self.ended {
            match Pin::new(&mut self.inner).poll_frame(&mut cx) {
                Poll::Ready(Some(frame)) => self.taken.push_back(frame),
                Poll::Ready(None) => self.ended = true,
                Poll::Pending => break,
            }
        }
    }
}

/// A component's response body, watched for its instance's end.
pub(crate) struct WatchedBody(Arc<Mutex<Watched>>);

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut watched = lock(&self.0);
        if let Some(frame) = watched.taken.pop_front() {
            return Poll::Ready(Some(frame));
        }
        if watched.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut watched.inner).poll_frame(cx);
        match polled {
            Poll::Ready(None) if watched.instance_gone => {
                watched.ended = true;
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    INSTANCE_ENDED.to_owned(),
                )))))
            }
            Poll::Ready(None) => {
                watched.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame)),
            Poll::Pending => {
                if !watched
                    .waker
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    watched.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let watched = lock(&self.0);
        watched.taken.is_empty()
            && (watched.ended || (!watched.instance_gone && watched.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.0).inner.size_hint()
    }
}

/// Why a component's response body broke off, in words for the log.
pub(crate) fn why_broken(error: &wasmtime_wasi_http::Error) -> String {
    use wasmtime_wasi_http::Error;
    match error {
        Error::InternalError(Some(why)) if why == INSTANCE_ENDED => why.clone(),
        Error::InternalError(Some(why)) => format!("the component failed it: {why}"),
        Error::HttpResponseBodySize(Some(sent)) => {
            format!("the component sent {sent} bytes of it, not its declared length")
        }
        Error::HttpResponseBodySize(None) => {
            "the component did not send its declared length".to_owned()
        }
        Error::HttpProtocolError => "the component ended it unfinished".to_owned(),
        other => format!("it failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed frame by frame through a channel, as an instance feeds
    /// its response's: when the sender is dropped, the body ends.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|data| data.map(|data| Ok(Frame::data(data))))
        }
    }

    fn fed() -> (mpsc::Sender<Bytes>, HyperOutgoingBody) {
        let (sender, receiver) = mpsc::channel(4);
        (sender, Fed(receiver).boxed_unsync())
    }

    #[tokio::test]
    async fn a_body_its_instance_finished_before_ending_ends_whole() {
        let open = OpenBodies::default();
        let (sender, body) = fed();
        let mut body = open.watch(body);
        sender.send(Bytes::from_static(b"all")).await.unwrap();
        drop(sender);
        open.instance_ending();
        let whole = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&whole[..], b"all");
        assert!(body.frame().await.is_none(), "ended whole");
    }

    #[tokio::test]
    async fn a_body_its_instance_ended_before_finishing_ends_in_an_error() {
        let open = OpenBodies::default();
        let (sender, body) = fed();
        let mut body = open.watch(body);
        sender.send(Bytes::from_static(b"part")).await.unwrap();
        open.instance_ending();
        // The instance's store is dropped: its end of the body with it.
        drop(sender);
        let part = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&part[..], b"part");
        let error = body.frame().await.unwrap().unwrap_err();
        assert_eq!(why_broken(&error), INSTANCE_ENDED);
    }

    #[tokio::test]
    async fn bodies_of_a_running_instance_end_as_they_end() {
        let open = OpenBodies::default();
        let (sender, body) = fed();
        let mut body = open.watch(body);
        sender.send(Bytes::from_static(b"x")).await.unwrap();
        drop(sender);
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_body_is_woken_when_its_instance_ends() {
        let open = Arc::new(OpenBodies::default());
        let (sender, body) = fed();
        let mut body = open.watch(body);
        let waiting = tokio::spawn(async move { body.frame().await.map(|f| f.is_err()) });
        tokio::task::yield_now().await;
        open.instance_ending();
        drop(sender);
        assert_eq!(waiting.await.unwrap(), Some(true));
    }
}
