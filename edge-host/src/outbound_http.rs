//! Outbound HTTP from components: the allow-list check, then the request.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::outbound::AllowedHosts;

/// `wasi:http` hooks that enforce `allowed_outbound_hosts`.
pub struct OutboundHooks {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
}

impl OutboundHooks {
    /// Hooks for `component` with its allow-list.
    pub fn new(component: Arc<str>, allowed: Arc<AllowedHosts>) -> Self {
        OutboundHooks { component, allowed }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        if !self.allowed.allows(request.uri()) {
            tracing::warn!(
                component = &*self.component,
                uri = %request.uri(),
                "outbound request denied: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
