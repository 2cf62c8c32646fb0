//! Where the core runs natively: it is single-threaded (its node and its
//! futures are not `Send`), so a natively served request runs as a task of
//! a [`LocalSet`] and hands its answer back to its connection. A serving
//! lane runs its own set (see `trigger::server`), so the request is served
//! on the lane's thread, beside the lane's node and its warm first tier.
//! Elsewhere (the single-runtime server of tests and embedders) one thread
//! of this module's, started on first use, runs them all. A streamed body
//! is read there too and passed on a piece at a time ([`pumped`]).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use edge_cache::{BodyStream, BrokenBody};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::task::LocalSet;

thread_local! {
    static TASKS: RefCell<Option<Rc<LocalSet>>> = const { RefCell::new(None) };
}

/// A task to start on the thread that runs it: made there, from what can
/// be sent to it.
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Makes `tasks` this thread's set, for the lane that runs it.
pub(crate) fn enter(tasks: Rc<LocalSet>) {
    TASKS.with(|cell| *cell.borrow_mut() = Some(tasks));
}

/// Runs the task `make` makes, on this thread if it serves a lane, or
/// else on the shared thread.
pub(crate) fn spawn<F>(make: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()> + 'static,
{
    if let Some(make) = spawn_here(make) {
        let job: Job = Box::new(move || Box::pin(make()));
        // Only a thread that cannot start drops the job (and so its
        // answer: the request then goes to the component).
        let _ = shared().send(job);
    }
}

/// Spawns on this thread's set, or gives `make` back when it has none.
fn spawn_here<F, M>(make: M) -> Option<M>
where
    F: Future<Output = ()> + 'static,
    M: FnOnce() -> F,
{
    TASKS.with(|cell| match cell.borrow().as_ref() {
        Some(tasks) => {
            tasks.spawn_local(make());
            None
        }
        None => Some(make),
    })
}

/// A task on this thread's set (a task of the core's own, such as a
/// refresh, or a body's reader): this thread is always one that has one.
fn spawn_local(task: impl Future<Output = ()> + 'static) {
    if let Some(task) = spawn_here(move || task) {
        tokio::task::spawn_local(task());
    }
}

/// Runs `task` beside the one that calls it, on the same thread (a
/// refresh after its answer).
pub(crate) fn beside(task: impl Future<Output = ()> + 'static) {
    spawn_local(task);
}

/// The shared thread's queue, the thread started on first use.
fn shared() -> &'static mpsc::UnboundedSender<Job> {
    static SHARED: OnceLock<mpsc::UnboundedSender<Job>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
        let started = std::thread::Builder::new()
            .name("edge-native".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let Ok(runtime) = runtime else { return };
                let tasks = Rc::new(LocalSet::new());
                enter(tasks.clone());
                runtime.block_on(tasks.run_until(async move {
                    while let Some(job) = jobs.recv().await {
                        tokio::task::spawn_local(job());
                    }
                }));
            });
        if let Err(error) = started {
            tracing::warn!("no thread for native serving ({error}): requests go to the component");
        }
        sender
    })
}

/// `stream` as a body another task may hold: a task of this lane's reads
/// it one piece ahead of the reader. A reader that goes away leaves the
/// rest to [`BodyStream::abandon`] (a fill is still finished); a stream
/// that breaks off ends the body in an error, never as if complete.
pub(crate) fn pumped(mut stream: BodyStream) -> PumpedBody {
    let length = stream.length();
    let (sender, receiver) = mpsc::channel(1);
    spawn_local(async move {
        loop {
            let piece = match stream.next().await {
                Some(Ok(piece)) => Piece::Data(piece),
                Some(Err(BrokenBody(why))) => Piece::Broken(why),
                None => Piece::End,
            };
            let last = !matches!(piece, Piece::Data(_));
            if sender.send(piece).await.is_err() {
                stream.abandon().await;
                return;
            }
            if last {
                return;
            }
        }
    });
    PumpedBody {
        state: Pumped::Reading(receiver),
        length,
    }
}

/// What the reading task passes on. The end is said, not inferred: a task
/// that stopped without saying it (dropped with its lane) ends the body in
/// an error, never as if complete.
enum Piece {
    Data(Bytes),
    Broken(String),
    End,
}

/// The reading end of [`pumped`].
pub(crate) struct PumpedBody {
    state: Pumped,
    length: Option<u64>,
}

enum Pumped {
    Reading(mpsc::Receiver<Piece>),
    /// It has ended, cleanly or not, and said so.
    Ended,
}

impl Body for PumpedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let broken = |why: String| Some(Err(wasmtime_wasi_http::Error::InternalError(Some(why))));
        let receiver = match &mut self.state {
            Pumped::Reading(receiver) => receiver,
            Pumped::Ended => return Poll::Ready(None),
        };
        let (frame, ended) = match receiver.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Piece::Data(piece))) => (Some(Ok(Frame::data(piece))), false),
            Poll::Ready(Some(Piece::End)) => (None, true),
            Poll::Ready(Some(Piece::Broken(why))) => (broken(why), true),
            Poll::Ready(None) => (broken("the body's reader stopped".to_owned()), true),
        };
        if ended {
            self.state = Pumped::Ended;
        }
        Poll::Ready(frame)
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(length) => SizeHint::with_exact(length),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use edge_cache::{ByteSource, NextPiece};
    use http_body_util::BodyExt;

    use super::*;

    /// Pieces, then the end or a break; counts the pieces read.
    struct Pieces {
        left: Vec<Result<Bytes, BrokenBody>>,
        read: Rc<Cell<usize>>,
    }

    impl ByteSource for Pieces {
        fn next_piece(&mut self) -> NextPiece<'_> {
            let next = (!self.left.is_empty()).then(|| self.left.remove(0));
            self.read.set(self.read.get() + usize::from(next.is_some()));
            Box::pin(async move { next })
        }
    }

    fn stream(pieces: &[Result<&'static str, &str>]) -> (BodyStream, Rc<Cell<usize>>) {
        let read = Rc::new(Cell::new(0));
        let left = pieces
            .iter()
            .map(|piece| match piece {
                Ok(text) => Ok(Bytes::from_static(text.as_bytes())),
                Err(why) => Err(BrokenBody((*why).to_owned())),
            })
            .collect();
        let source = Pieces {
            left,
            read: read.clone(),
        };
        (BodyStream::new(source, None), read)
    }

    /// Runs `test` on a thread with a task set, as a lane's.
    fn on_a_lane(test: impl Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tasks = Rc::new(LocalSet::new());
        enter(tasks.clone());
        runtime.block_on(tasks.run_until(test));
    }

    #[test]
    fn a_pumped_body_gives_every_piece_in_order() {
        on_a_lane(async {
            let (stream, _) = stream(&[Ok("one "), Ok("two "), Ok("three")]);
            let body = pumped(stream).collect().await.unwrap().to_bytes();
            assert_eq!(body, "one two three");
        });
    }

    #[test]
    fn a_broken_stream_ends_the_body_in_an_error_not_as_complete() {
        on_a_lane(async {
            let (stream, _) = stream(&[Ok("one "), Err("origin went away"), Ok("never")]);
            let mut body = pumped(stream);
            let first = body.frame().await.unwrap().unwrap();
            assert_eq!(first.into_data().unwrap(), "one ");
            let broken = body.frame().await.unwrap().unwrap_err();
            assert!(broken.to_string().contains("origin went away"), "{broken}");
            assert!(body.frame().await.is_none(), "nothing after the error");
        });
    }

    #[test]
    fn a_reader_that_goes_away_hands_the_stream_to_abandon() {
        on_a_lane(async {
            let (stream, read) = stream(&[Ok("a"), Ok("b"), Ok("c"), Ok("d")]);
            let mut body = pumped(stream);
            assert_eq!(
                body.frame().await.unwrap().unwrap().into_data().unwrap(),
                "a"
            );
            drop(body);
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            // At most a piece ahead was read; then the stream is
            // abandoned, which reads a plain one no further (a fill's own
            // stream is read to its end: the core's tests).
            assert!(read.get() < 4, "read {} pieces", read.get());
        });
    }

    #[test]
    fn a_reader_task_that_stops_unsaid_ends_the_body_in_an_error() {
        on_a_lane(async {
            let (sender, receiver) = mpsc::channel(1);
            sender
                .send(Piece::Data(Bytes::from_static(b"half")))
                .await
                .unwrap();
            drop(sender);
            let mut body = PumpedBody {
                state: Pumped::Reading(receiver),
                length: None,
            };
            assert_eq!(
                body.frame().await.unwrap().unwrap().into_data().unwrap(),
                "half"
            );
            assert!(
                body.frame().await.unwrap().is_err(),
                "not ended as if complete"
            );
            assert!(body.frame().await.is_none());
        });
    }

    #[test]
    fn a_thread_without_a_task_set_runs_its_task_on_the_shared_one() {
        let (done, ran) = std::sync::mpsc::channel();
        spawn(move || async move {
            let on = std::thread::current().name().map(str::to_owned);
            done.send(on).unwrap();
        });
        let on = ran
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(on.as_deref(), Some("edge-native"));
    }
}
