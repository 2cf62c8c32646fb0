//! The seams of the flow: the messages it exchanges (`messages`, their
//! content in `body`) and the things it does I/O with (`io`: the host's
//! [`KeyValueStore`], the [`Origin`] and why it may fail
//! (`origin_failure`), the [`Clock`], a [`RequestBody`] not read yet).
//!
//! Everything above this module is pure: the adapters (one per Spin SDK
//! flavour) implement these traits over the host, the unit tests over
//! in-memory fakes, and the origin's decorators (breaker, failover) over
//! another [`Origin`]. This module imports nothing of the crate above
//! `http`, so every layer can speak it.

mod body;
mod io;
mod messages;
mod origin_failure;

pub use body::{Body, BodyStream, BrokenBody, ByteSource, NextPiece, WHOLE_BODY_BYTES};
pub use io::{BodyError, Clock, KeyValueStore, Origin, RequestBody, StoreFailure};
pub(crate) use messages::Fallback;
pub use messages::{ClientConnection, ClientRequest, OriginRequest, RequestHead, Response};
pub use origin_failure::OriginFailure;
