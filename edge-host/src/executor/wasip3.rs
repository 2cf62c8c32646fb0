//! The WASI 0.3 executor: the request goes to one of the component's
//! reused instances (`wasi:http/handler@0.3.0`), through wasmtime-wasi-http's
//! [`ProxyHandler`] with the host's side of reuse ([`super::reuse`]); a
//! failure is told apart by how the instance ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::handler::{
    ExpirationError, InstantiationError, ProxyHandler, TrapOrPanicError,
};

use super::failure::Failure;
use super::reuse::{ComponentHandler, Ended, Ticket};
use super::{Dispatched, ServingComponent};
use crate::instance::limits::InstanceLimits;
use crate::net::request_body::{BodyWatch, LimitedBody};
use crate::observe::metrics::FailureCause;

/// How long a request whose instance failed waits for the instance's
/// worker to say why (it does so right after dropping the requests).
const FAILURE_REPORT_PATIENCE: Duration = Duration::from_secs(5);

/// WASI 0.3: the request goes to a reused instance, through the component's
/// [`ProxyHandler`].
pub(super) async fn execute(
    component: &ServingComponent,
    handler: &ProxyHandler<ComponentHandler>,
    permits: &Semaphore,
    limits: &InstanceLimits,
    request: Request<LimitedBody<Incoming>>,
    limit: u64,
    trip: &Arc<BodyWatch>,
) -> Result<Dispatched, Failure> {
    let component_id = component.context.id.to_string();
    let request = with_absolute_uri(request).map_err(|e| {
        Failure::client(
            StatusCode::BAD_REQUEST,
            format!("bad request: {e}"),
            &component_id,
        )
    })?;
    let request = request.map(|body| body.boxed_unsync());
    let ticket = Arc::new(Ticket::default());
    let started = Instant::now();
    let handled = async {
        // Never closed: the permits live as long as the app.
        let _permit = permits.acquire().await;
        handler.handle(ticket.clone(), request).await
    };
    let answered = tokio::select! {
        // As for WASI 0.2: a body over the limit decides the answer.
        biased;
        () = trip.tripped() => None,
        answered = handled => Some(answered),
    };
    if trip.is_tripped() {
        tracing::debug!(
            component = component_id,
            "request body over the {limit}-byte limit; response dropped"
        );
        return Err(Failure::body_too_large(limit, &component_id));
    }
    match answered {
        // Watched by its instance: if that ends before the body does, the
        // body ends in an error, never as if whole.
        Some(Ok(response)) => Ok(match ticket.instance() {
            Some(instance) => (
                response.map(|body| instance.bodies.watch(body).boxed_unsync()),
                component_id,
            ),
            None => (response, component_id),
        }),
        Some(Err(error)) => Err(p3_failure(error, &ticket, started, limits, component_id).await),
        None => unreachable!("only a tripped body stops the wait"),
    }
}

/// What the client of a failed WASI 0.3 request is told, and what the log
/// gets under its error id.
async fn p3_failure(
    error: wasmtime::Error,
    ticket: &Ticket,
    started: Instant,
    limits: &InstanceLimits,
    component_id: String,
) -> Failure {
    let instance = ticket.instance();
    let instance_id = instance.map_or(0, |instance| instance.id);
    let memory_hit = instance.is_some_and(|instance| instance.memory.limit_hit());
    // A trap while the memory limit was hit is the limit's doing.
    let trapped = if memory_hit {
        FailureCause::MemoryLimit
    } else {
        FailureCause::Trap
    };
    if error.is::<ExpirationError>() {
        let detail = format!(
            "no response within the {} ms request time limit; instance {instance_id} takes no more requests",
            limits.request_timeout.as_millis()
        );
        return Failure::instance(FailureCause::TimeLimit, limits, detail, &component_id);
    }
    if let Some(failed) = error.downcast_ref::<InstantiationError<Arc<Ticket>>>() {
        let detail = format!("instantiating the component: {:#}", failed.error);
        return Failure::internal(detail, &component_id);
    }
    if error.is::<TrapOrPanicError>() {
        // The instance failed while it had this request: its worker says why.
        let ended = match instance {
            Some(instance) => instance.ended(FAILURE_REPORT_PATIENCE).await,
            None => None,
        };
        let (cause, detail) = match ended {
            Some(Ended::TimedOut) => (
                FailureCause::TimeLimit,
                format!(
                    "instance {instance_id} stopped: busy for the {} ms request time limit (request {} ms old)",
                    limits.request_timeout.as_millis(),
                    started.elapsed().as_millis()
                ),
            ),
            Some(Ended::Failed(cause)) => {
                (trapped, format!("instance {instance_id} failed: {cause}"))
            }
            Some(Ended::Retired) | None => (
                FailureCause::Trap,
                format!("instance {instance_id} ended without answering ({error})"),
            ),
        };
        return Failure::instance(cause, limits, detail, &component_id);
    }
    // The guest's own failure: an `error-code` instead of a response, or a
    // trap in this request's call.
    Failure::instance(
        trapped,
        limits,
        format!("component failed (instance {instance_id}): {error:#}"),
        &component_id,
    )
}

/// WASI 0.3 takes a request's authority from its URI only (`Host` is a
/// forbidden field there): the origin-form URI a server receives becomes
/// absolute, `http://{Host}{path}`, as Spin does. An absolute-form request
/// keeps its own.
fn with_absolute_uri<B>(request: Request<B>) -> Result<Request<B>, String> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() {
        let host = parts
            .headers
            .get(http::header::HOST)
            .map(|host| {
                host.to_str()
                    .map_err(|_| "the Host field is not text".to_owned())
            })
            .transpose()?
            .unwrap_or("localhost");
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(host)
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| format!("the Host field is not an authority: {e}"))?;
    } else if parts.uri.scheme().is_none() {
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        parts.uri = http::Uri::from_parts(uri).map_err(|e| e.to_string())?;
    }
    Ok(Request::from_parts(parts, body))
}
