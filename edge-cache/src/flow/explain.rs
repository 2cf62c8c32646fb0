//! The decision explainer: `GET {admin_path}/explain?url=/path?query`
//! (the purge token's bearer only) answers what the edge would do with a
//! `GET` of that URL carrying the explain request's own fields (cookies,
//! `Accept-Encoding`, …), and why: the rule, the key's inputs used and
//! dropped, the stored entry and the purge that covers it, the
//! `Cache-Status` the request would get, and what would make it a hit.
//! With `&fetch=1` it also asks the origin (a fill's request, nothing
//! stored) and says whether that answer would be stored, and why not.
//!
//! Every verdict comes from the code that decides a real request
//! (`route_past_admin`, `look_up_and_decide`, `assess`, `check_storable`);
//! this module only reads them out. It writes nothing: no fill, no lease,
//! no store write (the first tier may keep what the lookup read, as any
//! lookup's).

use http::{HeaderValue, Method};
use serde_json::{Value, json};

use crate::flow::decision::{Decision, StaleServe};
use crate::flow::exchange::Exchange;
use crate::flow::fill::assess;
use crate::flow::{Flow, Looked, Routed, slice};
use crate::policy::cache_status::{CacheStatus, Forward};
use crate::policy::compression::should_compress;
use crate::policy::cookies::cookie_names;
use crate::policy::freshness::{ControlSource, LifetimeSource, freshness_lifetime};
use crate::policy::invalidation::{PurgeKind, Validity};
use crate::policy::storability::{Candidate, check_storable};
use crate::policy::target::decode_component;
use crate::reply::json_response;
use crate::seams::{Body, ClientRequest, Clock, Origin, Response};
use crate::store::PurgeFound;
use crate::store::keys::Store;

/// The request field that asks for an answer's explanation, its value the
/// purge token.
pub(crate) const EXPLAIN_FIELD: &str = "edge-explain";

/// The explain request's fields that are not the explained request's: its
/// credentials, and what only framed its own body.
const NOT_EXPLAINED: [&str; 3] = ["authorization", "content-length", "transfer-encoding"];

impl<S: Store + 'static, O: Origin, C: Clock + 'static> Flow<'_, S, O, C> {
    /// Answers an explain request (admitted: the token checked, no body).
    pub(crate) async fn explain(&self, request: &ClientRequest) -> Response {
        let params = query_params(&request.path_and_query);
        let Some(target) = params
            .iter()
            .find(|(n, _)| n == "url")
            .map(|(_, v)| v.clone())
        else {
            return refuse("name the URL to explain: ?url=/path?query (percent-encoded)");
        };
        if !target.starts_with('/') {
            return refuse("the URL to explain is a path on this host, starting with `/`");
        }
        let fetch = params.iter().any(|(n, v)| n == "fetch" && v == "1");
        let mut headers = request.headers.clone();
        for name in NOT_EXPLAINED {
            headers.remove(name);
        }
        let explained = ClientRequest {
            method: Method::GET,
            path_and_query: target,
            headers,
            connection: request.connection.clone(),
            body: Body::empty(),
        };
        json_response(200, &self.explanation(explained, fetch).await.into_json())
    }

    /// Whether `request` asks, with the purge token in `Edge-Explain`, for
    /// its answer to say why (the field is taken off the request either
    /// way: it is never forwarded, and a wrong token is ignored).
    pub(crate) fn explain_asked(&self, request: &mut ClientRequest) -> bool {
        let Some(value) = request.headers.remove(EXPLAIN_FIELD) else {
            return false;
        };
        let Some(settings) = self.purge.filter(|s| !s.token.is_empty()) else {
            return false;
        };
        let presented = value.to_str().unwrap_or("").trim();
        // Compared by hash, in constant time as the bearer token is.
        blake3::hash(presented.as_bytes()) == blake3::hash(settings.token.as_bytes())
    }

    /// The `Edge-Explain` field for a request's answer: the explanation
    /// of the same request, taken after it was answered (what it stored is
    /// what it explains), in `Cache-Status` style.
    pub(crate) async fn explain_field(&self, request: ClientRequest) -> Option<HeaderValue> {
        let explanation = self.explanation(request, false).await;
        HeaderValue::from_str(&explanation.field()).ok()
    }

    /// What the edge does with `explained` and why; with `fetch`, what the
    /// origin answers it too.
    async fn explanation(&self, explained: ClientRequest, fetch: bool) -> Explanation {
        let mut out = Explanation::default();
        match self.route_past_admin(explained) {
            Routed::Pass(request, status) => {
                out.rule = self.rule_facts(&request.path_and_query);
                out.advice.extend(pass_advice(self, &request, &status));
                out.predicted = Some(status);
            }
            Routed::Unsafe(request, _) => {
                out.rule = self.rule_facts(&request.path_and_query);
                out.predicted = Some(CacheStatus::forward(Forward::Bypass).with_detail("method"));
            }
            Routed::Cacheable(mut exchange) => {
                out.rule = self.rule_facts(&exchange.request.path_and_query);
                out.key = Some(key_facts(&exchange));
                self.explain_cacheable(&mut exchange, &mut out).await;
                if fetch {
                    out.origin = Some(self.explain_fetch(&exchange, &mut out.advice).await);
                }
            }
        }
        out
    }

    /// The rule a target falls under, as JSON.
    fn rule_facts(&self, target: &str) -> Value {
        match self.rules {
            None => json!({"error": "the cache rules are broken: nothing is cached"}),
            Some(rules) => {
                let rule = rules.for_target(target);
                json!({"name": rule.name, "label": rule.label(), "bypass": rule.bypass})
            }
        }
    }

    async fn explain_cacheable(&self, exchange: &mut Exchange<'_>, out: &mut Explanation) {
        let predicted = match self.look_up_and_decide(exchange).await {
            Looked::Forward(status, _) => {
                if status.detail.as_deref() == Some("no-store") {
                    out.advice
                        .push("the request's own Cache-Control: no-store sends it to the origin and stores nothing".into());
                }
                status
            }
            Looked::Unavailable => CacheStatus::default().with_detail("only-if-cached"),
            Looked::Miss(status) => {
                if status.detail.as_deref() == Some("invalidated") {
                    let keyed = &exchange.keyed;
                    let headers = &exchange.request.headers;
                    if let Ok(Some(purge)) = self.storage().purge_of_stored(keyed, headers).await {
                        out.purge = Some(purge_facts(&purge));
                    }
                    out.advice.push(
                        "a purge removed the stored answer: the next request fetches it again"
                            .into(),
                    );
                } else {
                    out.advice.push(
                        "nothing is stored for this key: the next request fills it (add &fetch=1 to see whether the origin's answer would be stored)"
                            .into(),
                    );
                }
                status
            }
            Looked::Found {
                found,
                control,
                stored,
                decision,
            } => {
                let meta = found.meta();
                let freshness = exchange.freshness_rule();
                let source = freshness_lifetime(
                    meta.status,
                    found.headers(),
                    &control,
                    &freshness,
                    crate::store::from_unix_ms(meta.response_time_ms),
                )
                .map(|(_, source)| lifetime_source(source));
                out.stored = Some(json!({
                    "status": meta.status,
                    "age_seconds": stored.age.as_secs(),
                    "lifetime_seconds": stored.lifetime.as_secs(),
                    "ttl_seconds": stored.ttl(),
                    "lifetime_from": source,
                    "directives_from": control_source(control.source),
                    "stored_at_unix_ms": meta.response_time_ms,
                    "tags": meta.tags,
                    "soft_purged": stored.soft_purged,
                    "chunked": meta.chunks.is_some(),
                    "codings": meta.encodings.as_ref().map(|e| e.codings().map(|c| c.token()).collect::<Vec<_>>()),
                }));
                if stored.soft_purged
                    && let Ok(Some(purge)) = self
                        .storage()
                        .purge_of_stored(&exchange.keyed, &exchange.request.headers)
                        .await
                {
                    out.purge = Some(purge_facts(&purge));
                }
                let partial = meta.sliced.is_some()
                    && (decision != Decision::Fresh
                        || !slice::slices_cover(&exchange.request, &found));
                match decision {
                    _ if partial => CacheStatus::forward(Forward::Miss).with_detail("partial"),
                    Decision::Fresh => CacheStatus::hit(stored.ttl()),
                    Decision::Stale(StaleServe::MaxStale) => {
                        CacheStatus::hit(stored.ttl()).with_detail("max-stale")
                    }
                    Decision::Stale(StaleServe::WhileRevalidate) => {
                        CacheStatus::hit(stored.ttl()).with_detail("stale-while-revalidate")
                    }
                    Decision::Unavailable => CacheStatus::default().with_detail("only-if-cached"),
                    Decision::Revalidate | Decision::Miss => {
                        out.advice.push(if stored.soft_purged {
                            "a soft purge covers the stored answer: it is revalidated with the origin".into()
                        } else if stored.ttl() >= 0 {
                            "the request asks for a fresher answer (Cache-Control: no-cache or max-age) than the stored one: it is revalidated; a rule's \"client_directives\": \"ignore\" would serve it".into()
                        } else {
                            "the stored answer is stale: it is revalidated with the origin (a longer max-age or s-maxage, or stale-while-revalidate, would serve it)".into()
                        });
                        CacheStatus::forward(Forward::Stale)
                    }
                }
            }
        };
        out.predicted = Some(predicted);
    }

    /// Asks the origin as a fill would, and reads its answer as a fill
    /// would; nothing is stored.
    async fn explain_fetch(&self, exchange: &Exchange<'_>, advice: &mut Vec<String>) -> Value {
        let fetched = match self
            .send_timed(exchange.fill_request(self.trust, &[]))
            .await
        {
            Ok(fetched) => fetched,
            Err(failure) => {
                let said = failure.to_response().body.trim_end().to_owned();
                advice.push(format!("the origin did not answer: {said}"));
                return json!({ "error": said });
            }
        };
        let mut status = CacheStatus::forward(Forward::Miss);
        let times = (fetched.request_time, fetched.response_time);
        let response = &fetched.response;
        let assessed = assess(
            exchange,
            response.status,
            &response.headers,
            times,
            &mut status,
        );
        let lifetime = freshness_lifetime(
            response.status,
            &assessed.headers,
            &assessed.control,
            &exchange.freshness_rule(),
            fetched.response_time,
        );
        let body_len = response.body.length();
        let candidate = Candidate {
            status: response.status,
            headers: &assessed.headers,
            control: &assessed.control,
            has_lifetime: assessed.lifetime.is_some(),
            body_len: body_len.unwrap_or(0),
            max_object_bytes: self.object_limit(exchange.rule, body_len).await,
        };
        let has_authorization = exchange.request.headers.contains_key("authorization");
        let verdict = check_storable(has_authorization, &candidate, exchange.rule);
        let reason = verdict.as_ref().err().map(|reason| reason.detail());
        if let Some(reason) = reason {
            advice.push(storability_advice(reason, exchange.rule.label()));
        }
        json!({
            "status": response.status,
            "lifetime_seconds": lifetime.map(|(l, _)| l.as_secs()),
            "lifetime_from": lifetime.map(|(_, source)| lifetime_source(source)),
            "directives_from": control_source(assessed.control.source),
            "body_bytes": body_len,
            "storable": verdict.is_ok(),
            "not_storable_because": reason,
            "compressed_when_stored": verdict.is_ok()
                && should_compress(exchange.rule, response.status, &assessed.headers, body_len.unwrap_or(0)),
        })
    }
}

/// What the explainer has found out.
#[derive(Default)]
struct Explanation {
    rule: Value,
    key: Option<Value>,
    stored: Option<Value>,
    purge: Option<Value>,
    predicted: Option<CacheStatus>,
    origin: Option<Value>,
    advice: Vec<String>,
}

impl Explanation {
    /// The explanation as one structured field (RFC 8941 parameters, as
    /// `Cache-Status` has them): rule, key, dropped inputs, the stored
    /// entry's age, lifetime and its source, the covering purge.
    fn field(&self) -> String {
        let quoted =
            |value: &str| format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(label) = self.rule["label"].as_str() {
            params.push(("rule", quoted(label)));
        }
        if let Some(key) = &self.key {
            params.push(("key", quoted(key["canonical"].as_str().unwrap_or(""))));
            for (field, name) in [
                ("query_dropped", "query-dropped"),
                ("cookies_dropped", "cookies-dropped"),
            ] {
                let dropped: Vec<&str> = key[field]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !dropped.is_empty() {
                    params.push((name, quoted(&dropped.join(" "))));
                }
            }
        }
        if let Some(stored) = &self.stored {
            for (field, name) in [
                ("age_seconds", "stored-age"),
                ("lifetime_seconds", "lifetime"),
            ] {
                if let Some(n) = stored[field].as_u64() {
                    params.push((name, n.to_string()));
                }
            }
            if let Some(source) = stored["lifetime_from"].as_str() {
                params.push(("lifetime-from", quoted(source)));
            }
        }
        if let Some(scope) = self.purge.as_ref().and_then(|p| p["scope"].as_str()) {
            params.push(("purged-by", quoted(scope)));
        }
        let mut out = String::from("edge-cache");
        for (name, value) in params {
            out.push_str(&format!("; {name}={value}"));
        }
        out
    }

    fn into_json(self) -> Value {
        let predicted = self.predicted.unwrap_or_default();
        json!({
            "rule": self.rule,
            "key": self.key,
            "stored": self.stored,
            "purged_by": self.purge,
            "cache_status": predicted.header_value(),
            "outcome": {
                "hit": predicted.hit,
                "fwd": predicted.fwd.map(Forward::token),
                "detail": predicted.detail,
            },
            "origin": self.origin,
            "advice": self.advice,
        })
    }
}

/// The key and its inputs: what of the query and cookies it takes, and
/// what it drops.
fn key_facts(exchange: &Exchange<'_>) -> Value {
    let keyed = &exchange.keyed;
    let rule = exchange.rule;
    let query = exchange
        .request
        .path_and_query
        .split_once('?')
        .map_or("", |(_, q)| q);
    let mut dropped: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| decode_component(p.split('=').next().unwrap_or("")))
        .filter(|name| !keyed.query_names.contains(name))
        .collect();
    dropped.dedup();
    let cookies: Vec<&str> = cookie_names(&exchange.request.headers).collect();
    let (keyed_cookies, dropped_cookies): (Vec<&str>, Vec<&str>) = cookies
        .iter()
        .partition(|name| rule.cookies.iter().any(|k| k == *name));
    json!({
        "canonical": keyed.key.canonical,
        "hash": keyed.key.hash,
        "query_kept": keyed.query_names,
        "query_dropped": dropped,
        "cookies_kept": keyed_cookies,
        "cookies_dropped": dropped_cookies,
        "headers_kept": rule.headers,
    })
}

fn purge_facts(purge: &PurgeFound) -> Value {
    let (kind, at_us) = match purge.validity {
        Validity::Invalid => (PurgeKind::Hard, purge.times.hard_us),
        _ => (PurgeKind::Soft, purge.times.soft_us),
    };
    json!({
        "id": purge.id,
        "scope": purge.scope,
        "kind": if kind == PurgeKind::Hard { "hard" } else { "soft" },
        "purged_at_unix_ms": at_us / 1000,
        "entry_fetched_at_unix_ms": purge.fetched_us / 1000,
    })
}

/// What to change so that a passed request is cached.
fn pass_advice<S: Store + 'static, O: Origin, C: Clock + 'static>(
    flow: &Flow<'_, S, O, C>,
    request: &ClientRequest,
    status: &CacheStatus,
) -> Option<String> {
    let detail = status.detail.as_deref()?;
    let rule = flow.rules.map(|r| r.for_target(&request.path_and_query));
    Some(match detail {
        "rules-error" => {
            "the cache rules are broken, so nothing is cached: `edge-host check` names the problem"
                .into()
        }
        "cookie" => {
            let cookie = rule
                .and_then(|r| r.passing_cookie(&request.headers))
                .unwrap_or("?");
            format!(
                "the cookie `{cookie}` may make the page personal, so it is not shared: if the page does not depend on it, add it to the rule's \"ignored_cookies\" (or set \"other_cookies\": \"ignore\"); if it does, key on it with \"cookies\": [\"{cookie}\"]"
            )
        }
        d if d.starts_with("rule-") => format!(
            "the rule `{}` has \"bypass\": true",
            rule.map_or("?", |r| r.label())
        ),
        _ => return None,
    })
}

/// What would make a response the origin gave storable.
fn storability_advice(reason: &str, rule: &str) -> String {
    match reason {
        "no-freshness" => format!(
            "the origin gives no lifetime: send Cache-Control: max-age=N (or s-maxage=N for shared caches only), or give the rule `{rule}` \"default_ttl_seconds\""
        ),
        "private" => "the origin marks it private (one user's): only drop `private` if every user gets the same answer".into(),
        "no-store" => "the origin says no-store: drop it, and give a lifetime, if the answer may be shared".into(),
        "set-cookie" => format!(
            "the origin sets a cookie with it: the rule `{rule}`'s \"store_set_cookie\": true stores it without the cookie"
        ),
        "vary-star" => "the origin sends Vary: *: name the fields it varies on instead".into(),
        "too-large" => format!(
            "the body is larger than the rule `{rule}` stores: raise its \"max_object_bytes\" (bounded by the store's capacity)"
        ),
        "authorization" => "the request carries Authorization: the origin must say public or s-maxage for it to be shared".into(),
        "status" => "this status is not stored without an explicit lifetime from the origin".into(),
        other => format!("not stored: {other}"),
    }
}

fn lifetime_source(source: LifetimeSource) -> &'static str {
    match source {
        LifetimeSource::RuleOverride => "rule ttl_seconds",
        LifetimeSource::Immutable => "versioned object",
        LifetimeSource::SMaxAge => "s-maxage",
        LifetimeSource::MaxAge => "max-age",
        LifetimeSource::Expires => "Expires",
        LifetimeSource::Heuristic => "heuristic (Last-Modified)",
        LifetimeSource::RuleDefault => "rule default_ttl_seconds",
        LifetimeSource::Invalid => "invalid (stale at once)",
    }
}

fn control_source(source: ControlSource) -> &'static str {
    match source {
        ControlSource::CdnCacheControl => "CDN-Cache-Control",
        ControlSource::SurrogateControl => "Surrogate-Control",
        ControlSource::CacheControl => "Cache-Control",
    }
}

/// The query parameters of `path_and_query`, percent-decoded.
fn query_params(path_and_query: &str) -> Vec<(String, String)> {
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(name), decode_component(value))
        })
        .collect()
}

fn refuse(message: &str) -> Response {
    json_response(400, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explained_url_is_read_percent_decoded() {
        let params =
            query_params("/_edge/explain?url=%2Fproducts%3Fpage%3D2%26utm_source%3Dx&fetch=1");
        assert_eq!(
            params[0],
            ("url".into(), "/products?page=2&utm_source=x".into())
        );
        assert_eq!(params[1], ("fetch".into(), "1".into()));
    }

    #[test]
    fn each_reason_not_to_store_has_advice_naming_the_change() {
        for reason in [
            "no-freshness",
            "private",
            "no-store",
            "set-cookie",
            "vary-star",
            "too-large",
            "authorization",
            "status",
        ] {
            let advice = storability_advice(reason, "pages");
            assert!(!advice.starts_with("not stored"), "{reason}: {advice}");
        }
        assert!(storability_advice("no-freshness", "pages").contains("default_ttl_seconds"));
    }
}
