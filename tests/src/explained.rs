//! The decision explainer as the harness uses it: an edge started with
//! [`EdgeSetup::explained`](crate::EdgeSetup::explained) asks
//! `{admin}/explain` before each `GET` through [`Edge::fetch_with`]
//! (crate::Edge::fetch_with), and the answer's `Cache-Status` must agree
//! with what the explainer predicted: the explainer is checked on every
//! such request of the suites that use it, not by a copy of the policy.

use serde_json::Value;

/// The purge token an explained edge is given (the explainer's bearer).
pub const EXPLAIN_TOKEN: &str = "explain-token";

/// What the explainer predicted for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub hit: bool,
    pub fwd: Option<String>,
    pub detail: Option<String>,
    /// The whole explanation, for the failure message.
    pub explanation: String,
}

/// Asks the edge at `base` (`http://127.0.0.1:PORT`) to explain a `GET
/// path` with `headers`.
pub async fn explain(base: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Value> {
    let mut request = reqwest::Client::new()
        .get(format!("{base}/_edge/explain"))
        .query(&[("url", path)])
        .bearer_auth(EXPLAIN_TOKEN);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    anyhow::ensure!(
        response.status() == 200,
        "explain answered {}",
        response.status()
    );
    Ok(serde_json::from_slice(&response.bytes().await?)?)
}

/// The prediction in an explanation.
pub fn prediction_of(explanation: &Value) -> Prediction {
    let outcome = &explanation["outcome"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Prediction {
        hit: outcome["hit"].as_bool().unwrap_or(false),
        fwd: text(&outcome["fwd"]),
        detail: text(&outcome["detail"]),
        explanation: explanation.to_string(),
    }
}

/// Fails unless `cache_status` (as the request got it) is what
/// `prediction` said: hit or not, the `fwd` reason, and the detail where
/// one was predicted (a fill adds details of its own, such as why the
/// origin's answer was not stored, that only the fetch can tell).
pub fn assert_agrees(prediction: &Prediction, path: &str, cache_status: &str) {
    let parts: Vec<&str> = cache_status.split(';').map(str::trim).collect();
    let hit = parts.contains(&"hit");
    let param = |name: &str| {
        parts
            .iter()
            .find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(|v| v.trim_matches('"').to_owned())
    };
    let agrees = hit == prediction.hit
        && param("fwd") == prediction.fwd
        && (prediction.detail.is_none() || param("detail") == prediction.detail);
    assert!(
        agrees,
        "the explainer predicted {prediction:?} for GET {path}, the request got `{cache_status}`"
    );
}
