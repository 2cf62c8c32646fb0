//! The traits the core does I/O through, each implemented by the adapters
//! over the host and by the unit tests over in-memory fakes: the request
//! body not read yet, the host's key-value stores, the origin, the clock.

use std::time::{Duration, SystemTime};

use crate::seams::{Body, OriginFailure, OriginRequest, Response};

/// A request body not read yet: the adapter reads it only if and as far
/// as the edge admits it (see `Node::serve`).
#[allow(async_fn_in_trait)]
pub trait RequestBody {
    /// Reads the whole body, failing with [`BodyError::TooLarge`] as soon
    /// as it passes `limit` bytes (the purge API's small bodies).
    async fn read(self, limit: usize) -> Result<Body, BodyError>;
    /// The body as a stream (an upload passed to the origin as it
    /// arrives), its sender having declared `length` bytes.
    fn stream(self, length: Option<u64>) -> Result<Body, BodyError>;
}

/// Why a request body could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It went past this many bytes (a `413`).
    TooLarge(usize),
    /// The host could not give it: its error, for the log (a `400`).
    Unreadable(String),
}

/// A failed store operation, with the store's message; the flow then
/// bypasses the cache rather than failing the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure(pub String);

/// A byte-valued key-value store as the host has it (Spin key-value):
/// keys are text, and it holds whatever it is given. Which of the
/// host's stores a value goes to is the core's business (see
/// `store::keys::Store`).
///
/// The I/O seams are `async` so one pipeline serves both adapters: the
/// WASI 0.2 adapter answers each call at once (Spin's blocking host calls),
/// the WASI 0.3 adapter awaits the host and so lets one instance serve
/// other requests meanwhile. The component is single-threaded, so the
/// futures need not be `Send` (hence the allowed lint).
#[allow(async_fn_in_trait)]
pub trait KeyValueStore {
    /// The value under `key`; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure>;
    /// Writes `value` under `key`, replacing what was there.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreFailure>;
}

/// Where requests the edge cannot answer go.
#[allow(async_fn_in_trait)]
pub trait Origin {
    /// Sends `request` and reads the whole response, or says why not.
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure>;
}

impl<O: Origin + ?Sized> Origin for &O {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        (**self).send(request).await
    }
}

/// Wall-clock time (a fake in tests, so ages and purges are exact), and a
/// way to pause.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current time (the system's, unless a test fakes it).
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    /// Resumes after `duration`: a collapsed miss waits for its leader's
    /// fill in such steps, because WASI 0.3 on wasmtime 48 cannot wake one
    /// request's task from another's (wit-bindgen's `inter-task-wakeup`
    /// traps there), while a host timer always can.
    async fn pause(&self, duration: Duration);
}
