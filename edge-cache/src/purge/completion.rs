//! Has my purge reached every node? Each purge leaves a record in the
//! shared purge state (`q:<id>`: when, which targets, by which node), and
//! each node that has a name (`node_name`) records there the newest purge
//! epoch it has applied (`n:<name>`: the epoch's time and when it saw it)
//! and its name in the list of such nodes (`n:nodes`).
//!
//! A node has applied a purge once it has read purge state written at or
//! after it: a request it then answers reads scopes no older than the
//! purge (`store::shared_state` reuses a read at most
//! `purge_staleness_ms`). It reports when its component handles a request
//! (a miss, the health check, the purge API) and the epoch moved since its
//! last report, so a node that is stopped, or that answers only fresh hits
//! natively in edge-host, reports at its next such request: a load
//! balancer's health checks keep every live node's report current.
//!
//! `GET {admin_path}/purges/{id}` (the purge token's bearer) answers, for
//! each named node, applied or not and how long after the purge it saw it.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::reply::json_response;
use crate::seams::{Clock, Response, StoreFailure};
use crate::store::keys::{PurgeStateKey, Store};
use crate::store::unix_us;

/// A purge as recorded for completion queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PurgeRecord {
    /// When it was recorded (unix µs): its epoch's time.
    pub at_us: u64,
    /// What it targeted, as its receipt counts it.
    pub targets: purge_wire::Purged,
    pub soft: bool,
    /// The node that took it, if named.
    #[serde(default)]
    pub node: Option<String>,
}

/// A node's newest applied purge state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// The time of the newest epoch the node has read (unix µs).
    epoch_us: u64,
    /// When it first read that epoch (unix µs).
    seen_us: u64,
}

/// The time a purge epoch token was written (unix µs), from its prefix
/// (`store::CacheStorage::purge` writes `<µs hex>-<hash>`); `None` for a
/// token of an earlier version or a stand-in.
pub(crate) fn epoch_time(token: &str) -> Option<u64> {
    let (time, _) = token.split_once('-')?;
    u64::from_str_radix(time, 16).ok()
}

/// What a node tracks of its own reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reporter {
    /// The epoch token last reported by this instance.
    reported: RefCell<Option<String>>,
}

impl Reporter {
    /// Records, if the epoch moved since this instance last did, that node
    /// `name` has read purge state up to the current epoch. Failures are
    /// ignored: a report is retried with the next request.
    pub(crate) async fn report<S: Store, C: Clock>(&self, store: &S, clock: &C, name: &str) {
        // Never purged: the node is listed all the same, having read
        // nothing, so that a first purge finds it.
        let token = match store.get(&PurgeStateKey::Epoch).await {
            Ok(Some(token)) => String::from_utf8_lossy(&token).into_owned(),
            Ok(None) => String::new(),
            Err(_) => return,
        };
        if self.reported.borrow().as_deref() == Some(token.as_str()) {
            return;
        }
        let epoch_us = match token.is_empty() {
            true => 0,
            false => match epoch_time(&token) {
                Some(time) => time,
                None => return,
            },
        };
        let key = PurgeStateKey::node_progress(name);
        // Another instance of this node may have reported it already.
        let recorded = read_json::<Progress, _>(store, &key).await;
        if recorded.is_none_or(|p| p.epoch_us < epoch_us) {
            let progress = Progress {
                epoch_us,
                seen_us: unix_us(clock.now()),
            };
            let value = serde_json::to_vec(&progress).unwrap_or_default();
            if store.set(&key, &value).await.is_err() {
                return;
            }
        }
        if register(store, name).await.is_ok() {
            *self.reported.borrow_mut() = Some(token);
        }
    }
}

/// Adds `name` to the list of reporting nodes, unless it is there.
async fn register<S: Store>(store: &S, name: &str) -> Result<(), StoreFailure> {
    let mut nodes: Vec<String> = read_json(store, &PurgeStateKey::nodes())
        .await
        .unwrap_or_default();
    if nodes.iter().any(|n| n == name) {
        return Ok(());
    }
    nodes.push(name.to_owned());
    nodes.sort();
    let value = serde_json::to_vec(&nodes).unwrap_or_default();
    store.set(&PurgeStateKey::nodes(), &value).await
}

async fn read_json<T: for<'de> Deserialize<'de>, S: Store>(
    store: &S,
    key: &PurgeStateKey,
) -> Option<T> {
    let bytes = store.get_current(key).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Records purge `id`, recorded at `at_us`.
pub(crate) async fn record<S: Store>(
    store: &S,
    id: &str,
    record: &PurgeRecord,
) -> Result<(), StoreFailure> {
    let value = serde_json::to_vec(record).unwrap_or_default();
    store.set(&PurgeStateKey::purge_record(id), &value).await
}

/// One node's answer to a completion query.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct NodeCompletion {
    node: String,
    applied: bool,
    /// How long after the purge the node first read it, where its newest
    /// read epoch is this purge's (a later purge hides when it read this).
    #[serde(skip_serializing_if = "Option::is_none")]
    after_ms: Option<f64>,
    /// When the node last reported (unix ms).
    reported_at_unix_ms: u64,
}

/// Whether a node whose newest read epoch is `progress` has applied a
/// purge recorded at `at_us`, and how long after it.
fn completion_of(node: &str, progress: Option<Progress>, at_us: u64) -> NodeCompletion {
    let applied = progress.is_some_and(|p| p.epoch_us >= at_us);
    let after_ms = progress
        .filter(|p| p.epoch_us == at_us)
        .map(|p| p.seen_us.saturating_sub(at_us) as f64 / 1000.0);
    NodeCompletion {
        node: node.to_owned(),
        applied,
        after_ms,
        reported_at_unix_ms: progress.map_or(0, |p| p.seen_us / 1000),
    }
}

/// `GET {admin_path}/purges/{id}`: the purge's record and, for each named
/// node, whether it has applied it.
pub(crate) async fn answer<S: Store>(store: &S, id: &str, staleness_ms: u64) -> Response {
    let Some(record) = read_json::<PurgeRecord, _>(store, &PurgeStateKey::purge_record(id)).await
    else {
        return json_response(
            404,
            &json!({"error": format!("no purge `{id}` is recorded (its id is in the purge's receipt)")}),
        );
    };
    let nodes: Vec<String> = read_json(store, &PurgeStateKey::nodes())
        .await
        .unwrap_or_default();
    let mut answers = Vec::new();
    for node in &nodes {
        let progress = read_json::<Progress, _>(store, &PurgeStateKey::node_progress(node)).await;
        answers.push(completion_of(node, progress, record.at_us));
    }
    let applied = answers.iter().filter(|a| a.applied).count();
    json_response(
        200,
        &json!({
            "id": id,
            "purged_at_unix_ms": record.at_us / 1000,
            "soft": record.soft,
            "targets": record.targets,
            "by_node": record.node,
            "nodes": answers,
            "applied": applied,
            "of": answers.len(),
            "purge_staleness_ms": staleness_ms,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_token_carries_its_time() {
        assert_eq!(
            epoch_time("00063a1b2c3d4e5f-0123abcd"),
            Some(0x00063a1b2c3d4e5f)
        );
        assert_eq!(
            epoch_time("0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            None,
            "an older token"
        );
        assert_eq!(epoch_time("shared-store-unavailable:3"), None, "a stand-in");
    }

    #[test]
    fn a_node_has_applied_a_purge_once_it_read_its_epoch_or_a_later_one() {
        let at = 1_000_000;
        let exact = Progress {
            epoch_us: at,
            seen_us: at + 42_000,
        };
        let answer = completion_of("a", Some(exact), at);
        assert!(answer.applied);
        assert_eq!(answer.after_ms, Some(42.0));
        let later = Progress {
            epoch_us: at + 5,
            seen_us: at + 90_000,
        };
        let answer = completion_of("b", Some(later), at);
        assert!(answer.applied);
        assert_eq!(
            answer.after_ms, None,
            "a later purge hides when it read this one"
        );
        let earlier = Progress {
            epoch_us: at - 1,
            seen_us: at + 1,
        };
        assert!(!completion_of("c", Some(earlier), at).applied);
        assert!(!completion_of("d", None, at).applied);
    }
}
