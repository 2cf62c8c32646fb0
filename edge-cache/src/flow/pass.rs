//! Requests the cache passes through without storing: bypassed paths and
//! a broken rules file (forwarded whole, less the edge-owned fields), and
//! unsafe methods, whose non-error answers invalidate what they name
//! (RFC 9111 §4.4).

use http::{HeaderMap, Method};

use crate::flow::Flow;
use crate::flow::answer::{error_response, finish, strip_edge_only};
use crate::policy::cache_status::{CacheStatus, Forward};
use crate::policy::forwarding::{client_response_headers, origin_request_headers};
use crate::policy::key::build_key;
use crate::policy::rules::CacheRules;
use crate::policy::target::invalidated_targets;
use crate::seams::{ClientRequest, Clock, Fallback, Origin, OriginRequest, Response};
use crate::store::keys::Store;

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    /// Forwards a request unchanged (apart from forwarding fields).
    /// Sends `request` to the origin, its body (taken from it) streaming
    /// through, and answers the origin's response as it streams back.
    pub(crate) async fn pass(
        &self,
        request: &mut ClientRequest,
        mut status: CacheStatus,
    ) -> Response {
        let origin_request = OriginRequest {
            method: request.method.clone(),
            target: request.path_and_query.clone(),
            headers: origin_request_headers(&request.headers, &request.connection, self.trust),
            body: std::mem::take(&mut request.body),
            fallback: Fallback::Nothing,
        };
        match self.send_timed(origin_request).await {
            Ok(fetched) => {
                fetched.answered(&mut status);
                let response = fetched.response;
                let mut headers = client_response_headers(&response.headers);
                strip_edge_only(&mut headers);
                let is_head = request.method == Method::HEAD;
                finish(
                    response.status,
                    headers,
                    response.body,
                    None,
                    &status,
                    is_head,
                )
            }
            Err(failure) => error_response(&failure, &status),
        }
    }

    /// Unsafe methods go through; a non-error answer invalidates the target
    /// URI and same-host `Location`/`Content-Location` (RFC 9111 §4.4).
    pub(crate) async fn pass_unsafe(
        &self,
        request: &mut ClientRequest,
        rules: &CacheRules,
    ) -> Response {
        let status = CacheStatus::forward(Forward::Bypass).with_detail("method");
        let response = self.pass(request, status).await;
        // Every method but the safe ones is unsafe, unknown ones included
        // (RFC 9110 §9.2.1, RFC 9111 §4.4).
        let unsafe_method = !matches!(request.method.as_str(), "OPTIONS" | "TRACE");
        // Edge-made errors (502/504) are >= 400 too, so they never invalidate.
        if unsafe_method && response.status < 400 {
            let connection = &request.connection;
            let host = connection.host.as_deref().unwrap_or_default();
            let targets = invalidated_targets(
                &request.path_and_query,
                &response.headers,
                &connection.scheme,
                host,
            );
            for target in targets {
                let rule = rules.for_target(&target);
                let keyed = build_key(&connection.scheme, host, &target, &HeaderMap::new(), rule);
                let _ = self.storage().invalidate_url(&keyed).await;
            }
        }
        response
    }
}
