//! How a request reaches a component instance: one executor per `wasi:http`
//! flavour, as Spin's `trigger-http` has them, chosen for each component
//! when the application loads (`Serving`).
//!
//! - `wasi`: WASI 0.2: a fresh instance per request.
//! - `wasip3`: WASI 0.3: reused instances, several requests at once.
//! - [`reuse`]: WASI 0.3 instance reuse: the handler state, its flags, when an instance retires.
//! - `failure`: a request the host answers itself: the client's few words, the log's detail under an error id.
//! - `open_bodies`: the response bodies an instance is still sending, ended in an error if it ends first.

pub(crate) mod failure;
pub(crate) mod open_bodies;
pub mod reuse;
mod wasi;
mod wasip3;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::instance::RequestState;
use crate::instance::limits::InstanceLimits;
use crate::net::request_body::{BodyWatch, LimitedBody};
use crate::observe::instances::InstanceCounters;
use crate::reload::live::LiveContext;
use failure::Failure;
use reuse::ComponentHandler;

/// Which `wasi:http` a component exports, and so how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// WASI 0.2, `wasi:http/incoming-handler@0.2.x`: a fresh instance per
    /// request.
    P2,
    /// WASI 0.3, `wasi:http/handler@0.3.0`: instances reused, several
    /// requests at once ([`reuse`]).
    P3,
}

/// How a component's requests reach an instance.
pub(crate) enum Serving {
    /// A fresh instance per request.
    P2 {
        pre: ProxyPre<RequestState>,
        /// One per instance alive (serving, or streaming a body after its
        /// response): a request beyond the pool's slots waits for one to
        /// end instead of failing to instantiate. HTTP/2 lets one
        /// connection carry more requests than the pool holds.
        permits: Arc<Semaphore>,
    },
    /// Reused instances.
    P3 {
        /// One per serving lane: a lane's requests go to its own instances.
        handlers: Vec<ProxyHandler<ComponentHandler>>,
        /// Bounds this component's requests in flight (accepted or waiting
        /// for an instance): reuse never makes the host queue without bound.
        permits: Semaphore,
    },
}

/// A component ready to serve requests.
pub(crate) struct ServingComponent {
    /// Its context as the latest reload left it; each request or
    /// instance takes the current one when it starts.
    pub(crate) context: Arc<LiveContext>,
    pub(crate) serving: Serving,
    pub(crate) stats: Arc<InstanceCounters>,
    /// Its fresh hits answered natively, if it is an edge-cache component
    /// built from this host's core and native hits are on.
    pub(crate) native: Option<crate::native_hits::NativeHits>,
}

/// A component's response, and the component's id.
pub(crate) type Dispatched = (Response<HyperOutgoingBody>, String);

impl ServingComponent {
    pub(crate) fn flavour(&self) -> Flavour {
        match self.serving {
            Serving::P2 { .. } => Flavour::P2,
            Serving::P3 { .. } => Flavour::P3,
        }
    }

    /// Runs `request` (its body held to `limit` bytes, `trip` set when it
    /// goes past) on an instance under `limits`, with this component's
    /// executor; a WASI 0.3 request goes to the current lane's instances.
    pub(crate) async fn execute(
        &self,
        limits: InstanceLimits,
        request: Request<LimitedBody<Incoming>>,
        limit: u64,
        trip: &Arc<BodyWatch>,
    ) -> Result<Dispatched, Failure> {
        match &self.serving {
            Serving::P2 { pre, permits } => {
                wasi::execute(self, pre, permits, limits, request, limit, trip).await
            }
            Serving::P3 { handlers, permits } => {
                let handler = &handlers[crate::net::lanes::current() % handlers.len()];
                wasip3::execute(self, handler, permits, &limits, request, limit, trip).await
            }
        }
    }
}
