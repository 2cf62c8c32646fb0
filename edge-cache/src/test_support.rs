//! Helpers shared by the unit tests: a header-map builder and the fakes
//! the request flow's collaborators (store, origin, clock) are tested with.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::seams::{
    Body, Clock, NextPiece, Origin, OriginFailure, OriginRequest, Response, StoreFailure,
};
use crate::store::keys::{Store, StoreKey};

/// A header map from (name, value) pairs, appending repeated names.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

/// Runs a future of the flow to completion. The fakes here never wait, so
/// one poll must finish it; a future that is still pending is a bug in the
/// test (nothing would ever wake it).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a test future waited, but the fakes never wait"),
    }
}

/// Runs `futures` to completion together on one thread, polling each in
/// turn as an instance interleaves its requests; `between_rounds` runs
/// after every round (with its number), e.g. to open a gate. Panics if
/// they are not all done after `max_rounds`.
pub(crate) fn run_together<F: Future>(
    futures: Vec<F>,
    max_rounds: usize,
    mut between_rounds: impl FnMut(usize),
) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut context = Context::from_waker(Waker::noop());
    for round in 0..max_rounds {
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none()
                && let Poll::Ready(value) = future.as_mut().poll(&mut context)
            {
                *output = Some(value);
            }
        }
        if outputs.iter().all(Option::is_some) {
            return outputs.into_iter().flatten().collect();
        }
        between_rounds(round);
    }
    panic!("futures still pending after {max_rounds} rounds");
}

/// An origin whose answers wait until `open` is set (counting requests).
pub(crate) struct GatedOrigin {
    pub calls: Cell<usize>,
    pub open: Cell<bool>,
    answer: Response,
}

impl GatedOrigin {
    pub(crate) fn new(answer: Response) -> Self {
        GatedOrigin {
            calls: Cell::new(0),
            open: Cell::new(false),
            answer,
        }
    }
}

impl Origin for GatedOrigin {
    async fn send(&self, _request: OriginRequest) -> Result<Response, OriginFailure> {
        self.calls.set(self.calls.get() + 1);
        std::future::poll_fn(|_| {
            if self.open.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        Ok(copy_of(&self.answer))
    }
}

/// An in-memory store; while `broken`, every operation fails.
#[derive(Default)]
pub(crate) struct MemStore {
    pub values: RefCell<HashMap<String, Vec<u8>>>,
    pub broken: Cell<bool>,
    /// Every key read, in order.
    pub reads: RefCell<Vec<String>>,
}

impl MemStore {
    /// How many keys are held under `prefix` (`"v:"`: Vary variants).
    pub fn count_under(&self, prefix: &str) -> usize {
        let values = self.values.borrow();
        values.keys().filter(|key| key.starts_with(prefix)).count()
    }

    fn check(&self) -> Result<(), StoreFailure> {
        if self.broken.get() {
            return Err(StoreFailure("down".into()));
        }
        Ok(())
    }
}

/// One store for every role: values are kept under their keys' text.
impl Store for MemStore {
    async fn get<K: StoreKey + ?Sized>(&self, key: &K) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.check()?;
        self.reads.borrow_mut().push(key.text().to_owned());
        Ok(self.values.borrow().get(key.text()).cloned())
    }
    async fn set<K: StoreKey + ?Sized>(&self, key: &K, value: &[u8]) -> Result<(), StoreFailure> {
        self.check()?;
        self.values
            .borrow_mut()
            .insert(key.text().to_owned(), value.to_vec());
        Ok(())
    }
    async fn delete<K: StoreKey + ?Sized>(&self, key: &K) -> Result<(), StoreFailure> {
        self.check()?;
        self.values.borrow_mut().remove(key.text());
        Ok(())
    }
}

type Answer = Box<dyn Fn(&OriginRequest) -> Result<Response, OriginFailure>>;

/// An origin answering with a closure; counts the requests it gets.
pub(crate) struct FakeOrigin {
    pub calls: Cell<usize>,
    answer: Answer,
}

impl FakeOrigin {
    pub(crate) fn new(
        answer: impl Fn(&OriginRequest) -> Result<Response, OriginFailure> + 'static,
    ) -> Self {
        FakeOrigin {
            calls: Cell::new(0),
            answer: Box::new(answer),
        }
    }
}

impl Origin for FakeOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        self.calls.set(self.calls.get() + 1);
        (self.answer)(&request)
    }
}

/// A clock that moves only when told.
pub(crate) struct FakeClock(pub Cell<SystemTime>);

impl FakeClock {
    /// Stopped at `ms` after the Unix epoch.
    pub(crate) fn at_unix_ms(ms: u64) -> Self {
        FakeClock(Cell::new(UNIX_EPOCH + Duration::from_millis(ms)))
    }

    /// Moves to `ms` after the Unix epoch.
    pub(crate) fn set_unix_ms(&self, ms: u64) {
        self.0.set(UNIX_EPOCH + Duration::from_millis(ms));
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        self.0.get()
    }

    /// Returns at once the first time it is polled again: a pause is one
    /// round of `run_together`, and time stands still.
    async fn pause(&self, _duration: Duration) {
        let mut paused = false;
        std::future::poll_fn(|_| {
            if paused {
                Poll::Ready(())
            } else {
                paused = true;
                Poll::Pending
            }
        })
        .await
    }
}

/// A bodiless response with `status`.
pub(crate) fn status_response(status: u16) -> Response {
    Response {
        status,
        headers: HeaderMap::new(),
        body: Default::default(),
    }
}

/// `GET /` to the origin.
pub(crate) fn origin_request() -> OriginRequest {
    OriginRequest {
        method: http::Method::GET,
        target: "/".into(),
        headers: HeaderMap::new(),
        body: Default::default(),
        fallback: crate::seams::Fallback::Nothing,
    }
}

/// A copy of a response whose body is whole (the fakes answer the same
/// response many times; a stream could be answered once).
pub(crate) fn copy_of(response: &Response) -> Response {
    Response {
        status: response.status,
        headers: response.headers.clone(),
        body: Body::Full(bytes::Bytes::copy_from_slice(response.body.as_slice())),
    }
}

/// A streamed body of `pieces`, ending cleanly or broken off after them.
pub(crate) struct Pieces {
    pub pieces: std::collections::VecDeque<bytes::Bytes>,
    pub breaks_off: bool,
}

impl Pieces {
    pub(crate) fn body(pieces: &[&'static [u8]], declared: Option<u64>, breaks_off: bool) -> Body {
        let source = Pieces {
            pieces: pieces
                .iter()
                .map(|p| bytes::Bytes::from_static(p))
                .collect(),
            breaks_off,
        };
        Body::Stream(crate::seams::BodyStream::new(source, declared))
    }
}

impl crate::seams::ByteSource for Pieces {
    fn next_piece(&mut self) -> NextPiece<'_> {
        let next = match self.pieces.pop_front() {
            Some(piece) => Some(Ok(piece)),
            None if self.breaks_off => Some(Err(crate::seams::BrokenBody("broke".into()))),
            None => None,
        };
        Box::pin(std::future::ready(next))
    }
}

/// Reads a body to its end: its bytes, or where it broke.
pub(crate) fn drain(body: Body) -> Result<Vec<u8>, crate::seams::BrokenBody> {
    match body {
        Body::Full(bytes) => Ok(bytes.to_vec()),
        Body::Stream(mut stream) => block_on(async {
            let mut out = Vec::new();
            while let Some(piece) = stream.next().await {
                out.extend_from_slice(&piece?);
            }
            Ok(out)
        }),
    }
}
