//! The edge's own answers that have nothing to do with caching: a request
//! it cannot read, a configuration it cannot run with, the purge API's
//! refusals and JSON, and the health check. Every layer that answers a client by itself (the
//! adapters, the node, the purge API, the flow) takes them from here; the
//! answers about cached content are `flow::answer`'s.

use http::HeaderMap;
use http::header::HeaderValue;

use crate::config::ConfigError;
use crate::seams::{Body, Response};

// Here rather than beside `Response` in `seams`, with the edge's other
// answers of its own.
impl Response {
    /// `400` for a request whose method the edge cannot read.
    pub fn invalid_method() -> Response {
        plain_text(400, "bad request: invalid method\n".to_owned())
    }
}

/// `413` for a request body past `limit` bytes (see `Admission`).
pub(crate) fn body_too_large(limit: usize) -> Response {
    json_response(
        413,
        &serde_json::json!({"error": format!("request body over {limit} bytes")}),
    )
}

/// A plain-text answer of the edge's own (an adapter's refusal of a
/// request it cannot read, a configuration error).
pub(crate) fn plain_text(status: u16, body: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("content-length", HeaderValue::from(body.len()));
    Response {
        status,
        headers,
        body: body.into(),
    }
}

/// `500` for a configuration the edge cannot run with: which variable,
/// in words; not its value (an origin address, a token), which the log
/// has beside the reason.
pub(crate) fn misconfigured(error: &ConfigError) -> Response {
    let what = match error {
        ConfigError::Missing(_) => "is required but not set",
        ConfigError::Invalid { .. } => "is invalid",
    };
    let variable = error.variable();
    plain_text(
        500,
        format!("edge misconfigured: variable `{variable}` {what} (the edge's log says more)\n"),
    )
}

/// `400` for a request whose body could not be read; the adapter logs
/// the host's error.
pub(crate) fn unreadable_body() -> Response {
    plain_text(
        400,
        "bad request: the request body could not be read\n".to_owned(),
    )
}

/// A small JSON answer of the edge's own (purge API), never stored.
pub(crate) fn json_response(status: u16, value: &serde_json::Value) -> Response {
    let text = format!("{value}\n");
    let mut headers = HeaderMap::new();
    headers.insert("age", HeaderValue::from_static("0"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("content-length", HeaderValue::from(text.len()));
    Response {
        status,
        headers,
        body: text.into(),
    }
}

/// `405` for the purge endpoint.
pub(crate) fn method_not_allowed() -> Response {
    let mut response = json_response(
        405,
        &serde_json::json!({"error": "the purge endpoint accepts POST only"}),
    );
    response
        .headers
        .insert("allow", HeaderValue::from_static("POST"));
    response
}

/// `405` for a method other than GET or HEAD on the explainer.
pub(crate) fn explain_method_not_allowed() -> Response {
    let mut response = json_response(
        405,
        &serde_json::json!({"error": "the explain endpoint accepts GET and HEAD only"}),
    );
    response
        .headers
        .insert("allow", HeaderValue::from_static("GET, HEAD"));
    response
}

/// `401` with the challenge for the purge API's bearer token.
pub(crate) fn unauthorized() -> Response {
    let mut response = json_response(
        401,
        &serde_json::json!({"error": "missing or wrong bearer token"}),
    );
    response.headers.insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer realm=\"edge-cache purge\""),
    );
    response
}

/// `200` for the health check (`{admin_path}/health`): the edge runs;
/// `store` says whether the store answered (`ok`) or not
/// (`unavailable`). No body for a HEAD, its `Content-Length` still the
/// GET's.
pub(crate) fn health(store_answers: bool, head: bool) -> Response {
    let store = if store_answers { "ok" } else { "unavailable" };
    let mut response = json_response(200, &serde_json::json!({"status": "ok", "store": store}));
    if head {
        response.body = Body::empty();
    }
    response
}

/// `405` for the health check, which answers GET and HEAD only.
pub(crate) fn health_method_not_allowed() -> Response {
    let mut response = json_response(
        405,
        &serde_json::json!({"error": "the health check accepts GET and HEAD only"}),
    );
    response
        .headers
        .insert("allow", HeaderValue::from_static("GET, HEAD"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misconfiguration_names_the_variable_not_its_value() {
        let invalid = ConfigError::Invalid {
            name: "origin_url",
            reason: "not an http(s) URL (got `ftp://user:secret@10.0.0.7`)".into(),
        };
        let body = String::from_utf8(misconfigured(&invalid).body.as_slice().to_vec()).unwrap();
        assert_eq!(
            body,
            "edge misconfigured: variable `origin_url` is invalid (the edge's log says more)\n"
        );
        let missing = misconfigured(&ConfigError::Missing("origin_url"));
        assert_eq!(missing.status, 500);
        assert_eq!(
            String::from_utf8(missing.body.as_slice().to_vec()).unwrap(),
            "edge misconfigured: variable `origin_url` is required but not set \
             (the edge's log says more)\n"
        );
    }
}
