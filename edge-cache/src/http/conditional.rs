//! Answering a client from a stored response: conditional requests (304,
//! RFC 9110 §13) and single byte ranges (206/416, §14).

use http::HeaderMap;
use http::header::{DATE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use crate::http::http_date::{header_date, parse_http_date};

/// Whether the client's validators match the stored response, so `304`.
pub fn client_has_current(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let etag = stored.get(ETAG).and_then(|v| v.to_str().ok());
    if let Some(candidates) = request.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        // Weak comparison (§13.1.2).
        let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        return match etag {
            _ if candidates.trim() == "*" => true,
            Some(etag) => candidates.split(',').any(|c| strip(c) == strip(etag)),
            None => false,
        };
    }
    // Without `Last-Modified`, the stored `Date` stands in (RFC 9111
    // §4.3.2): the response is at least as old as when it was generated.
    let Some(since) = header_date(request, IF_MODIFIED_SINCE) else {
        return false;
    };
    header_date(stored, LAST_MODIFIED)
        .or_else(|| header_date(stored, DATE))
        .is_some_and(|modified| modified <= since)
}

/// Fields a `304` carries from the stored response (§15.4.5).
pub const NOT_MODIFIED_FIELDS: [&str; 7] = [
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
];

/// The outcome of a `Range` request against a full stored body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Serve the whole body (no, unsupported or multiple ranges, or a stale
    /// `If-Range`).
    Full,
    /// Serve `start..=end` of `total` bytes.
    Partial {
        /// Index of the first byte sent.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
        /// Length of the whole representation, for `Content-Range`.
        total: u64,
    },
    /// `416`, with `Content-Range: bytes */total`.
    Unsatisfiable {
        /// Length of the whole representation, for `Content-Range: */N`.
        total: u64,
    },
}

/// The one `bytes=first-last` or `bytes=first-` range a request asks for,
/// read without knowing the representation's length (`None` for a suffix,
/// several ranges, another unit or anything malformed).
pub fn requested_range(request: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let range = request.get("range")?.to_str().ok()?;
    let spec = range.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.trim().split_once('-')?;
    let first = first.trim().parse::<u64>().ok()?;
    match last.trim() {
        "" => Some((first, None)),
        last => last
            .parse::<u64>()
            .ok()
            .filter(|&last| last >= first)
            .map(|last| (first, Some(last))),
    }
}

/// Interprets `Range` (one `bytes=` range) and `If-Range`.
pub fn range_answer(request: &HeaderMap, stored: &HeaderMap, total: u64) -> RangeAnswer {
    let Some(range) = request.get("range").and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    if let Some(if_range) = request.get("if-range").and_then(|v| v.to_str().ok()) {
        let if_range = if_range.trim();
        let current = if if_range.starts_with('"') {
            // Strong comparison only.
            stored.get("etag").and_then(|v| v.to_str().ok()) == Some(if_range)
        } else {
            matches!(
                (parse_http_date(if_range), header_date(stored, "last-modified")),
                (Some(a), Some(b)) if a == b
            )
        };
        if !current {
            return RangeAnswer::Full;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full; // multipart ranges: a full 200 is allowed
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (first.trim().is_empty(), parse(first), parse(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 => (total.saturating_sub(n), total.saturating_sub(1)),
        (true, _, _) => return RangeAnswer::Unsatisfiable { total },
        (false, Some(start), None) if last.trim().is_empty() => (start, total.saturating_sub(1)),
        (false, Some(start), Some(end)) if end >= start => {
            (start, end.min(total.saturating_sub(1)))
        }
        _ => return RangeAnswer::Full, // syntactically invalid: ignore
    };
    if total == 0 || start >= total {
        return RangeAnswer::Unsatisfiable { total };
    }
    RangeAnswer::Partial { start, end, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn a_requested_range_is_read_without_the_length() {
        let range = |value: &str| requested_range(&headers(&[("range", value)]));
        assert_eq!(range("bytes=10-20"), Some((10, Some(20))));
        assert_eq!(range("bytes=5-"), Some((5, None)));
        for unusable in [
            "bytes=-5",
            "bytes=1-2,4-5",
            "items=1-2",
            "bytes=9-3",
            "bytes=a-",
        ] {
            assert_eq!(range(unusable), None, "{unusable}");
        }
        assert_eq!(requested_range(&headers(&[])), None);
    }

    #[test]
    fn conditional_matches() {
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert!(client_has_current(
            &headers(&[("if-none-match", "\"v0\", W/\"v1\"")]),
            &stored
        ));
        assert!(!client_has_current(
            &headers(&[("if-none-match", "\"v2\"")]),
            &stored
        ));
        assert!(client_has_current(
            &headers(&[("if-none-match", "*")]),
            &stored
        ));
        // If-None-Match wins over If-Modified-Since.
        assert!(!client_has_current(
            &headers(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")
            ]),
            &stored
        ));
        assert!(client_has_current(
            &headers(&[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")]),
            &stored
        ));
        assert!(!client_has_current(
            &headers(&[("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")]),
            &stored
        ));
        assert!(!client_has_current(
            &headers(&[("if-modified-since", "yesterday")]),
            &stored
        ));
    }

    #[test]
    fn dates_are_read_in_every_form_a_recipient_must_accept() {
        let stored = headers(&[("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        for since in [
            "TUE, 14 NOV 2023 22:13:20 GMT",
            "Tuesday, 14-Nov-23 22:13:20 GMT",
            "Tue Nov 14 22:13:20 2023",
            "Sat, 14 Nov 2023 22:13:20 GMT",
        ] {
            assert!(
                client_has_current(&headers(&[("if-modified-since", since)]), &stored),
                "{since}"
            );
        }
        // A stored Last-Modified in another form is read too.
        let asctime = headers(&[("last-modified", "Tue Nov 14 22:13:20 2023")]);
        assert!(client_has_current(
            &headers(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]),
            &asctime
        ));
        for invalid in [
            "Tue, 14 Nov 2023 22:13:20 UTC",
            "Tue 14 Nov 2023 22:13:20 GMT",
            "Tue, 14-Nov-2023 22:13:20 GMT",
        ] {
            assert!(
                !client_has_current(&headers(&[("if-modified-since", invalid)]), &stored),
                "{invalid}"
            );
        }

        let partial = RangeAnswer::Partial {
            start: 0,
            end: 1,
            total: 10,
        };
        for (if_range, expected) in [
            ("tue, 14 nov 2023 22:13:20 gmt", partial.clone()),
            ("Tue Nov 14 22:13:20 2023", partial.clone()),
            ("Tuesday, 14-Nov-23 22:13:20 GMT", partial),
            ("Tue, 14 Nov 2023 22:13:21 GMT", RangeAnswer::Full),
            ("Tue, 14 Nov 2023 22:13:20 UTC", RangeAnswer::Full),
        ] {
            let request = headers(&[("range", "bytes=0-1"), ("if-range", if_range)]);
            assert_eq!(range_answer(&request, &stored, 10), expected, "{if_range}");
        }
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let stored = headers(&[("etag", "\"v1\"")]);
        let table = [
            (
                "bytes=0-3",
                Partial {
                    start: 0,
                    end: 3,
                    total: 10,
                },
            ),
            (
                "bytes=5-",
                Partial {
                    start: 5,
                    end: 9,
                    total: 10,
                },
            ),
            (
                "bytes=-3",
                Partial {
                    start: 7,
                    end: 9,
                    total: 10,
                },
            ),
            (
                "bytes=8-100",
                Partial {
                    start: 8,
                    end: 9,
                    total: 10,
                },
            ),
            ("bytes=10-", Unsatisfiable { total: 10 }),
            ("bytes=-0", Unsatisfiable { total: 10 }),
            ("bytes=0-1,4-5", Full),
            ("bytes=5-2", Full),
            ("items=0-1", Full),
            ("bytes=x-y", Full),
        ];
        for (range, expected) in table {
            assert_eq!(
                range_answer(&headers(&[("range", range)]), &stored, 10),
                expected,
                "{range}"
            );
        }
        let stale = headers(&[("range", "bytes=0-1"), ("if-range", "\"v0\"")]);
        assert_eq!(range_answer(&stale, &stored, 10), Full);
        let current = headers(&[("range", "bytes=0-1"), ("if-range", "\"v1\"")]);
        assert_eq!(
            range_answer(&current, &stored, 10),
            Partial {
                start: 0,
                end: 1,
                total: 10
            }
        );
    }

    #[test]
    fn if_modified_since_falls_back_to_the_stored_date() {
        let date = "Mon, 01 Jan 2024 00:00:00 GMT";
        let stored = crate::test_support::headers(&[("date", date)]);
        let asks = |since: &str| crate::test_support::headers(&[("if-modified-since", since)]);
        assert!(client_has_current(&asks(date), &stored));
        assert!(client_has_current(
            &asks("Tue, 02 Jan 2024 00:00:00 GMT"),
            &stored
        ));
        assert!(!client_has_current(
            &asks("Sun, 31 Dec 2023 00:00:00 GMT"),
            &stored
        ));
        assert!(!client_has_current(&asks(date), &HeaderMap::new()));
    }
}
