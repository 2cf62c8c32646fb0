//! Revalidating a stale entry (RFC 9111 §4.3): a conditional request
//! with its validators; a `304` refreshes it, a full answer replaces it,
//! a failure serves it stale where `stale-if-error` or grace allows.

use crate::flow::answer::{error_response, serve_stored};
use crate::flow::decision::StoredFacts;
use crate::flow::exchange::Exchange;
use crate::flow::{Fetched, Flow, Storing};
use crate::policy::cache_status::{CacheStatus, Forward};
use crate::policy::forwarding::client_response_headers;
use crate::policy::freshness::EffectiveControl;
use crate::policy::revalidation::{StaleOnError, add_validators, refreshed_headers};
use crate::policy::vary::VaryNames;
use crate::seams::{Clock, Fallback, Origin, Response};
use crate::store::Found;
use crate::store::keys::Store;

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    /// Revalidates a stale entry (§4.3): a `304` refreshes it, a full answer
    /// replaces it, a failure serves it stale where `stale-if-error` allows.
    pub(super) async fn revalidate(
        &self,
        exchange: &Exchange<'_>,
        found: Found,
        control: &EffectiveControl,
        stored: &StoredFacts,
    ) -> Response {
        let StoredFacts { age, lifetime, .. } = *stored;
        let stale_on_error = StaleOnError::of(control, age, lifetime, self.grace);
        let serve_stale = |answered: Option<&Fetched>, detail: &str| {
            let mut status = CacheStatus::forward(Forward::Stale).with_detail(detail);
            if let Some(fetched) = answered {
                fetched.answered(&mut status);
            }
            status.ttl = Some(stored.ttl());
            // (Only a flow with the store's handles stores chunked objects.)
            let body = self.stored_body(&found).unwrap_or_default();
            let delivery = self.delivery(exchange);
            serve_stored(&exchange.request, &found, body, age, &status, delivery)
        };

        let vary = match VaryNames::of(found.headers()) {
            VaryNames::Names(names) => names,
            _ => Vec::new(),
        };
        let mut origin_request = exchange.fill_request(self.trust, &vary);
        if stale_on_error.allowed() {
            origin_request.fallback = Fallback::Stale;
        }
        add_validators(&mut origin_request.headers, found.headers());
        let mut status = CacheStatus::forward(Forward::Stale);
        match self.send_timed(origin_request).await {
            Ok(fetched) if fetched.response.status == 304 => {
                fetched.answered(&mut status);
                let headers = refreshed_headers(
                    found.headers(),
                    &client_response_headers(&fetched.response.headers),
                );
                let updated = Fetched {
                    response: Response {
                        status: found.meta().status,
                        headers,
                        body: self.stored_body(&found).unwrap_or_default(),
                    },
                    stored_chunks: found.chunks(),
                    stored_encodings: found.meta().encodings.clone(),
                    ..fetched
                };
                self.store_and_serve(exchange, updated, status, Storing::IfStorable)
                    .await
            }
            Ok(fetched)
                if matches!(fetched.response.status, 500 | 502 | 503 | 504)
                    && stale_on_error.allowed() =>
            {
                serve_stale(Some(&fetched), stale_on_error.detail(None))
            }
            Ok(fetched) => {
                fetched.answered(&mut status);
                self.store_and_serve(exchange, fetched, status, Storing::IfStorable)
                    .await
            }
            Err(failure) if stale_on_error.allowed() => {
                serve_stale(None, stale_on_error.detail(Some(&failure)))
            }
            Err(failure) => error_response(&failure, &status),
        }
    }
}
