//! Delivers outbox rows to the edge's purge API: oldest first, coalesced,
//! retried with backoff until the edge acknowledges, resumed after a
//! restart from whatever the database still holds.
//!
//! Delivery is at least once: if the edge purged but its answer was lost,
//! the purge is sent again, which only costs the edge one extra miss.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::config::PurgeEndpoint;
use crate::db::{Db, now_ms};
use crate::outbox::{self, OutboxStatus, PurgeBody};

/// Rows read per round (coalescing may use fewer).
const BATCH_ROWS: usize = 100;
/// Largest edge answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The worker and what it listens to.
pub(crate) struct Worker {
    pub db: Db,
    pub endpoint: Option<PurgeEndpoint>,
    pub backoff: Backoff,
    pub timeout: Duration,
    /// Signalled after every commit that adds outbox rows.
    pub wake: Arc<Notify>,
    pub status: watch::Sender<OutboxStatus>,
    pub shutdown: watch::Receiver<bool>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

impl Worker {
    /// Runs until shutdown.
    pub async fn run(mut self) {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        if self.endpoint.is_none() {
            tracing::warn!("no purge token: purges are recorded in the outbox but not sent");
        }
        loop {
            let snapshot = self
                .db
                .read(|c| Ok((outbox::pending(c, BATCH_ROWS)?, outbox::status(c)?)))
                .await;
            let (rows, status) = match snapshot {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    tracing::error!(%error, "cannot read the outbox");
                    if self.pause(Some(self.backoff.max)).await {
                        return;
                    }
                    continue;
                }
            };
            self.status.send_replace(status);
            let (Some(head), Some(endpoint)) = (rows.first(), &self.endpoint) else {
                if self.pause(None).await {
                    return;
                }
                continue;
            };
            // Later rows wait behind the head: purges go out in order.
            let due_in = head.next_attempt_at_ms - now_ms();
            if due_in > 0 {
                if self.pause(Some(Duration::from_millis(due_in as u64))).await {
                    return;
                }
                continue;
            }
            let (purge, used) = outbox::coalesce(&rows);
            let batch = &rows[..used];
            let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
            let delivery = tokio::select! {
                result = deliver(&client, endpoint, &purge, self.timeout) => result,
                // Unacknowledged rows stay pending and go out after restart.
                _ = crate::stopping(&mut self.shutdown) => return,
            };
            let recorded = match delivery {
                Ok(()) => {
                    tracing::info!(rows = ids.len(), ?purge, "purge delivered");
                    self.db
                        .write(move |c| outbox::mark_delivered(c, &ids, now_ms()))
                        .await
                }
                Err(error) => {
                    let failures = batch.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
                    let delay = self.backoff.delay(failures);
                    tracing::warn!(
                        rows = ids.len(),
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        %error,
                        "purge not delivered"
                    );
                    let next = now_ms() + delay.as_millis() as i64;
                    self.db
                        .write(move |c| outbox::record_failure(c, &ids, next, &error))
                        .await
                }
            };
            if let Err(error) = recorded {
                tracing::error!(%error, "cannot record a delivery outcome");
                if self.pause(Some(self.backoff.max)).await {
                    return;
                }
            }
        }
    }

    /// Waits for a commit, `timeout`, or shutdown; true on shutdown.
    async fn pause(&mut self, timeout: Option<Duration>) -> bool {
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.wake.notified() => false,
            _ = sleep => false,
            _ = crate::stopping(&mut self.shutdown) => true,
        }
    }
}

/// Sends one purge; `Ok` only for the edge's `200` receipt (a proxied
/// answer from some origin is not an acknowledgement).
async fn deliver(
    client: &HttpClient,
    endpoint: &PurgeEndpoint,
    purge: &PurgeBody,
    timeout: Duration,
) -> Result<(), String> {
    let body = serde_json::to_vec(purge).map_err(|e| e.to_string())?;
    let request = Request::post(endpoint.uri.clone())
        .header(header::AUTHORIZATION, endpoint.authorization.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, answer))
    };
    let (status, answer) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))??;
    let excerpt = || String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
    if status != http::StatusCode::OK {
        return Err(format!("edge answered {status}: {}", excerpt()));
    }
    let receipt: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|_| format!("not a purge receipt: {}", excerpt()))?;
    if receipt.get("purged").is_none() {
        return Err(format!("not a purge receipt: {}", excerpt()));
    }
    Ok(())
}

/// An error with its causes (the client's own message is only "client
/// error (Connect)").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
