//! The WASI 0.2 executor: a fresh instance of the component for each
//! request (`wasi:http/incoming-handler@0.2`), run in a task of its own
//! under the request time limit, counted as it starts and ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::failure::Failure;
use super::open_bodies::OpenBodies;
use super::{Dispatched, ServingComponent};
use crate::instance::RequestState;
use crate::instance::limits::InstanceLimits;
use crate::net::request_body::{BodyWatch, LimitedBody};
use crate::observe::instances::InstanceCounters;
use crate::observe::metrics::FailureCause;

/// Counts a WASI 0.2 instance as ended when its task does (or is aborted).
struct SingleUse {
    stats: Arc<InstanceCounters>,
    failed: bool,
}

impl Drop for SingleUse {
    fn drop(&mut self) {
        self.stats.ended(self.failed);
    }
}

/// WASI 0.2: a fresh instance for this request.
pub(super) async fn execute(
    component: &ServingComponent,
    pre: &ProxyPre<RequestState>,
    permits: &Arc<Semaphore>,
    limits: InstanceLimits,
    request: Request<LimitedBody<Incoming>>,
    limit: u64,
    trip: &Arc<BodyWatch>,
) -> Result<Dispatched, Failure> {
    let component_id = component.context.id.to_string();
    let internal = |detail: String| Failure::internal(detail, &component_id);

    let state = RequestState::new(&component.context.current(), limits.max_memory_bytes)
        .map_err(|e| internal(format!("preparing instance: {e:#}")))?;
    let memory_hit = state.memory_limit_hit();
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limits);
    // Yield at every epoch tick so the time limit below can stop a guest
    // that never returns to the host.
    crate::instance::limits::yield_at_every_tick(&mut store);
    // Over TLS the server gave the target as an https URI
    // (`trigger::headers::normalise_target`); the guest sees that scheme.
    let scheme = match request.uri().scheme() {
        Some(scheme) if *scheme == http::uri::Scheme::HTTPS => Scheme::Https,
        _ => Scheme::Http,
    };
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(scheme, request)
        .map_err(|e| {
            Failure::client(
                StatusCode::BAD_REQUEST,
                format!("bad request: {e:#}"),
                &component_id,
            )
        })?;
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let outparam = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(|e| internal(format!("{e:#}")))?;

    // The guest runs in its own task: it may keep working after it has sent
    // the response head (streaming the body, or background work).
    let bodies = Arc::new(OpenBodies::default());
    let instance_bodies = bodies.clone();
    let pre = pre.clone();
    let id = component.context.id.clone();
    let stats = component.stats.clone();
    // Never closed: the permits live as long as the app.
    let permit = permits.clone().acquire_owned().await;
    let mut task = tokio::spawn(async move {
        // Declared before the store, so dropped after it: the pool slot is
        // free before the next request may take it.
        let _permit = permit;
        let mut store = store;
        stats.created();
        stats.request_started(1);
        let mut single_use = SingleUse {
            stats,
            failed: false,
        };
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        };
        // Dropping the future stops the guest at its next yield.
        let outcome = match tokio::time::timeout(limits.request_timeout, run).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(error)) => Outcome::Failed(error),
            Err(_) => Outcome::TimedOut,
        };
        single_use.failed = !matches!(outcome, Outcome::Finished);
        // Its store is dropped when this task ends: a response body it had
        // not finished ends in an error, never as if whole.
        instance_bodies.instance_ending();
        if single_use.failed {
            // Its fill leases end with it, before its client is answered:
            // the next request for the same key need not wait them out.
            store.data_mut().left_leases().release().await;
        }
        outcome
    });

    let answered = tokio::select! {
        // A body over the limit decides the answer, whatever the guest made
        // of its failed read.
        biased;
        () = trip.tripped() => None,
        answered = &mut receiver => Some(answered),
    };
    if trip.is_tripped() {
        task.abort();
        tracing::debug!(
            component = &*id,
            "request body over the {limit}-byte limit; instance stopped"
        );
        return Err(Failure::body_too_large(limit, &component_id));
    }
    match answered {
        Some(Ok(Ok(response))) => {
            // The client has its answer; a failure of the work the guest
            // still does (a refresh after responding) is only for the log.
            // A failure before responding is logged once, by `handle`.
            tokio::spawn(async move {
                match task.await {
                    Ok(Outcome::Failed(error)) => tracing::warn!(
                        component = &*id,
                        "instance failed after responding: {error:#}"
                    ),
                    Ok(Outcome::TimedOut) => tracing::warn!(
                        component = &*id,
                        "instance stopped after responding: over the {} ms request time limit",
                        limits.request_timeout.as_millis()
                    ),
                    _ => {}
                }
            });
            Ok((
                response.map(|body| bodies.watch(body).boxed_unsync()),
                component_id,
            ))
        }
        Some(Ok(Err(code))) => Err(internal(format!(
            "component answered with an error: {code:?}"
        ))),
        Some(Err(_)) | None => {
            let outcome = (&mut task).await;
            let memory_hit = memory_hit.load(Ordering::SeqCst);
            Err(match outcome {
                Ok(outcome) => {
                    let (cause, detail) = match outcome {
                        Outcome::Finished => (
                            FailureCause::Trap,
                            "component returned without sending a response".to_owned(),
                        ),
                        // With the trap and its wasm backtrace: the log is
                        // where an operator looks for them.
                        Outcome::Failed(error) => (
                            if memory_hit {
                                FailureCause::MemoryLimit
                            } else {
                                FailureCause::Trap
                            },
                            format!("component failed: {error:#}"),
                        ),
                        Outcome::TimedOut => (
                            FailureCause::TimeLimit,
                            format!(
                                "component stopped after the {} ms request time limit",
                                limits.request_timeout.as_millis()
                            ),
                        ),
                    };
                    Failure::instance(cause, &limits, detail, &component_id)
                }
                Err(error) => internal(format!("component task failed: {error}")),
            })
        }
    }
}

/// What became of a request's instance.
enum Outcome {
    Finished,
    Failed(wasmtime::Error),
    TimedOut,
}
