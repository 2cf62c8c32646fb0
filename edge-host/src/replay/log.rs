//! A recorded access log (`--access-log PATH --log-format json`) read back
//! for a replay: each request, and what the origin answered for each URL
//! as far as the log tells it (its `Cache-Status`: `fwd-status`, the
//! lifetime a fill was stored with, why one was not stored).

use std::collections::BTreeMap;

use serde::Deserialize;

/// One request of the log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Logged {
    /// When it arrived (RFC 3339, as the log writes it).
    pub time: String,
    pub method: String,
    pub host: String,
    pub path: String,
    /// Present where the log was written with `--access-log-query`.
    #[serde(default)]
    pub query: Option<String>,
    pub status: u16,
    pub cache_status: String,
    pub outcome: String,
    pub bytes: u64,
}

impl Logged {
    /// Path and query as the client sent them.
    pub fn target(&self) -> String {
        match &self.query {
            Some(query) if !query.is_empty() => format!("{}?{query}", self.path),
            _ => self.path.clone(),
        }
    }
}

/// Reads a JSON access log: one request per line; a line that does not
/// parse is an error naming its number.
pub fn parse(text: &str) -> Result<Vec<Logged>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| {
                format!(
                    "line {}: not an access log line of --log-format json ({e})",
                    n + 1
                )
            })
        })
        .collect()
}

/// What the origin answered for one URL, as the log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAnswer {
    pub status: u16,
    /// `Cache-Control` to answer with: the lifetime the fill was stored
    /// with, or what kept it from being stored.
    pub cache_control: Option<String>,
    /// Whether it set a cookie (why it was not stored).
    pub set_cookie: bool,
    /// Body length.
    pub bytes: u64,
}

/// The parameters of the edge's `Cache-Status` member.
fn params(cache_status: &str) -> BTreeMap<&str, &str> {
    let member = cache_status
        .split(',')
        .find(|m| m.split(';').next().map(str::trim) == Some(purge_wire::CACHE_NAME))
        .unwrap_or("");
    member
        .split(';')
        .skip(1)
        .map(|p| match p.split_once('=') {
            Some((name, value)) => (name.trim(), value.trim().trim_matches('"')),
            None => (p.trim(), ""),
        })
        .collect()
}

/// The origin's answer for each URL (`target`, normalised by
/// [`url_key`]), from the first request of it the origin answered; a URL
/// only ever served from the cache is taken as stored for the freshness
/// it had left.
pub fn origin_answers(lines: &[Logged]) -> BTreeMap<String, OriginAnswer> {
    let mut answers = BTreeMap::new();
    for line in lines {
        let params = params(&line.cache_status);
        let key = url_key(&line.target());
        let ttl = params.get("ttl").and_then(|t| t.parse::<i64>().ok());
        if let Some(status) = params.get("fwd-status").and_then(|s| s.parse().ok()) {
            if answers
                .get(&key)
                .is_some_and(|a: &OriginAnswer| a.cache_control.is_some())
            {
                continue;
            }
            let stored = params.contains_key("stored");
            let detail = params.get("detail").copied();
            let (cache_control, set_cookie) = match (stored, detail) {
                (true, _) => (ttl.map(|t| format!("max-age={}", t.max(1))), false),
                (false, Some("private")) => (Some("private, max-age=60".to_owned()), false),
                (false, Some("no-store")) => (Some("no-store".to_owned()), false),
                (false, Some("set-cookie")) => (ttl.map(|t| format!("max-age={}", t.max(1))), true),
                _ => (None, false),
            };
            answers.insert(
                key,
                OriginAnswer {
                    status,
                    cache_control,
                    set_cookie,
                    bytes: line.bytes,
                },
            );
        } else if params.contains_key("hit") && !answers.contains_key(&key) {
            answers.insert(
                key,
                OriginAnswer {
                    status: line.status,
                    cache_control: ttl.map(|t| format!("max-age={}", t.max(1))),
                    set_cookie: false,
                    bytes: line.bytes,
                },
            );
        }
    }
    answers
}

/// A target with its query parameters sorted: the edge sends the origin
/// the keyed query sorted, the log has the client's order.
pub fn url_key(target: &str) -> String {
    match target.split_once('?') {
        None => target.to_owned(),
        Some((path, query)) => {
            let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            params.sort_unstable();
            if params.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", params.join("&"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(path: &str, cache_status: &str, bytes: u64) -> String {
        format!(
            r#"{{"time":"2026-12-06T10:00:00.000Z","method":"GET","host":"shop.example","path":"{path}","protocol":"HTTP/1.1","status":200,"cache_status":"{cache_status}","outcome":"miss","bytes":{bytes},"duration_ms":1.0,"component":"edge"}}"#
        )
    }

    #[test]
    fn each_url_s_origin_answer_is_read_from_its_first_fill() {
        let text = [
            line(
                "/a",
                "edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored",
                100,
            ),
            line("/a", "edge-cache; hit; ttl=55", 100),
            line(
                "/p",
                "edge-cache; fwd=uri-miss; fwd-status=200; detail=private",
                7,
            ),
            line(
                "/n",
                "edge-cache; fwd=uri-miss; fwd-status=200; detail=no-freshness",
                5,
            ),
            line("/h", "edge-cache; hit; ttl=30", 9),
        ]
        .join("\n");
        let lines = parse(&text).unwrap();
        assert_eq!(lines.len(), 5);
        let answers = origin_answers(&lines);
        assert_eq!(answers["/a"].cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(answers["/a"].bytes, 100);
        assert_eq!(
            answers["/p"].cache_control.as_deref(),
            Some("private, max-age=60")
        );
        assert_eq!(answers["/n"].cache_control, None);
        assert_eq!(answers["/h"].cache_control.as_deref(), Some("max-age=30"));
    }

    #[test]
    fn a_line_that_is_not_json_is_named() {
        let error = parse("{\"time\":1}\nnot json").unwrap_err();
        assert!(
            error.starts_with("line 1: not an access log line"),
            "{error}"
        );
    }

    #[test]
    fn queries_are_compared_sorted() {
        assert_eq!(url_key("/p?b=2&a=1"), "/p?a=1&b=2");
        assert_eq!(url_key("/p?"), "/p");
        assert_eq!(url_key("/p"), "/p");
    }
}
