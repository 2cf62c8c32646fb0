//! Revalidation (RFC 9111 §4.3): what a conditional request to the origin
//! adds, how a `304` updates what is stored, and when a failed one may
//! still be answered from the stale entry.

use std::time::Duration;

use http::HeaderMap;

use crate::policy::freshness::EffectiveControl;
use crate::policy::storability::NOT_STORED_HEADERS;
use crate::seams::OriginFailure;

/// Whether a stale entry may answer when its revalidation fails: within
/// the response's `stale-if-error` or the configured grace, whichever is
/// longer, unless the response forbids serving it stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StaleOnError {
    by_directive: bool,
    by_grace: bool,
    forbidden: bool,
}

impl StaleOnError {
    /// The verdict for an entry of `age` and `lifetime` under `control`.
    pub(crate) fn of(
        control: &EffectiveControl,
        age: Duration,
        lifetime: Duration,
        grace: Duration,
    ) -> Self {
        StaleOnError {
            by_directive: control
                .stale_if_error()
                .is_some_and(|window| age < lifetime + window),
            by_grace: !grace.is_zero() && age < lifetime + grace,
            forbidden: control.forbids_stale(),
        }
    }

    /// Whether the stale entry may be served on failure.
    pub(crate) fn allowed(&self) -> bool {
        !self.forbidden && (self.by_directive || self.by_grace)
    }

    /// The `Cache-Status` detail when it is: why the origin was not asked,
    /// or what allowed it.
    pub(crate) fn detail(&self, failure: Option<&OriginFailure>) -> &'static str {
        match failure {
            Some(held_back) if !held_back.reached_origin() => held_back.stale_detail(),
            _ if self.by_directive => "stale-if-error",
            _ => "grace",
        }
    }
}

/// Adds the stored response's validators to a request for it (§4.3.1).
pub(crate) fn add_validators(request: &mut HeaderMap, stored: &HeaderMap) {
    if let Some(etag) = stored.get("etag") {
        request.insert("if-none-match", etag.clone());
    }
    if let Some(modified) = stored.get("last-modified") {
        request.insert("if-modified-since", modified.clone());
    }
}

/// The stored header fields after a `304` (§4.3.4): each field the `304`
/// carries replaces the stored one, except the framing and what is never
/// stored.
pub(crate) fn refreshed_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut headers = stored.clone();
    for name in not_modified.keys() {
        if name == "content-length" || NOT_STORED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        headers.remove(name);
        for value in not_modified.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn validators_come_from_the_stored_response() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let mut request = headers(&[("accept", "*/*")]);
        add_validators(&mut request, &stored);
        assert_eq!(request["if-none-match"], "\"v1\"");
        assert_eq!(
            request["if-modified-since"],
            "Mon, 01 Jan 2024 00:00:00 GMT"
        );
        let mut bare = HeaderMap::new();
        add_validators(&mut bare, &HeaderMap::new());
        assert!(bare.is_empty());
    }

    #[test]
    fn a_304_replaces_the_fields_it_carries_but_not_framing_or_cookies() {
        let stored = headers(&[
            ("cache-control", "max-age=1"),
            ("content-length", "5"),
            ("x-kept", "1"),
            ("link", "</a>"),
            ("link", "</b>"),
        ]);
        let not_modified = headers(&[
            ("cache-control", "max-age=60"),
            ("content-length", "0"),
            ("set-cookie", "s=1"),
            ("link", "</c>"),
        ]);
        let updated = refreshed_headers(&stored, &not_modified);
        assert_eq!(updated["cache-control"], "max-age=60");
        assert_eq!(updated["content-length"], "5");
        assert_eq!(updated["x-kept"], "1");
        assert!(updated.get("set-cookie").is_none());
        let links: Vec<_> = updated.get_all("link").iter().collect();
        assert_eq!(links, ["</c>"]);
    }
}
