//! Outbound HTTP from components (`wasi:http/outgoing-handler`): the
//! manifest's `allowed_outbound_hosts` is checked first ([`allowed_hosts`]),
//! then the request goes to the origin ([`sender`]) over a connection of
//! the host's [`pool`] of keep-alive connections; on the way back, the
//! hop-by-hop fields an intermediary must drop are removed before the
//! component sees the response.
//!
//! [`OutboundHooks`] is each instance's state for this capability: the
//! `wasi:http` hooks the request state hands to `wasmtime-wasi-http`.

pub mod allowed_hosts;
pub mod pool;
pub mod sender;

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub use allowed_hosts::{AllowedHostError, AllowedHosts};
pub use pool::{OriginPool, PoolOptions};
use sender::{IoFuture, send_request};

use crate::net::hop_by_hop::remove_connection_fields;

/// `wasi:http` hooks that enforce `allowed_outbound_hosts`.
pub struct OutboundHooks {
    /// For the log line of a denied or failed request.
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    /// The host's connections to origins, shared by every instance.
    pool: OriginPool,
}

impl OutboundHooks {
    /// Hooks for `component` with its allow-list, sending over `pool`.
    pub fn new(component: Arc<str>, allowed: Arc<AllowedHosts>, pool: OriginPool) -> Self {
        OutboundHooks {
            component,
            allowed,
            pool,
        }
    }
}

type ResponseFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let component = self.component.clone();
        let allowed = self.allowed.clone();
        let pool = self.pool.clone();
        Box::new(async move { send_checked(component, &allowed, &pool, request, options).await })
    }
}

/// Sends `request` for `component` if its allow-list lets it, with the
/// `Host` it asked for, timed for the metrics, and its response without the
/// fields that described the origin's connection: what a component's
/// `wasi:http` request gets, and the core's when edge-host runs it natively.
pub(crate) async fn send_checked(
    component: Arc<str>,
    allowed: &AllowedHosts,
    pool: &OriginPool,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, sender::IoFuture), Error> {
    if !allowed.allows(request.uri()) {
        tracing::warn!(
            component = &*component,
            uri = %request.uri(),
            "outbound request denied: not in allowed_outbound_hosts"
        );
        return Err(Error::HttpRequestDenied);
    }
    send_host_asked_for(request.headers_mut());
    let timer = crate::observe::metrics::OriginTimer::start();
    let sent = send_request(request, options, component, pool).await;
    if let Some(timer) = timer {
        timer.finish(
            sent.as_ref()
                .ok()
                .map(|(response, _)| response.status().as_u16()),
        );
    }
    let (mut response, io) = sent?;
    // The fields that described the origin's connection, and those
    // its `Connection` nominates, are neither relayed nor stored
    // (RFC 9110 §7.6.1, RFC 9111 §3.1).
    remove_connection_fields(response.headers_mut());
    Ok((response, io))
}

/// Sends the `Host` the component asked for in
/// [`purge_wire::ORIGIN_HOST_FIELD`] (the edge's `forward_host`), instead
/// of the authority's; the field itself goes no further. The connection
/// is still to the authority, which the allow-list checked.
fn send_host_asked_for(headers: &mut http::HeaderMap) {
    if let Some(host) = headers.remove(purge_wire::ORIGIN_HOST_FIELD) {
        headers.insert(http::header::HOST, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_asked_for_replaces_the_authority_s_and_the_field_goes() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
        send_host_asked_for(&mut headers);
        assert_eq!(headers[http::header::HOST], "127.0.0.1:8080", "not asked");
        headers.insert(
            purge_wire::ORIGIN_HOST_FIELD,
            "shop.example".parse().unwrap(),
        );
        send_host_asked_for(&mut headers);
        assert_eq!(headers[http::header::HOST], "shop.example");
        assert!(!headers.contains_key(purge_wire::ORIGIN_HOST_FIELD));
        assert_eq!(headers.len(), 1);
    }
}
