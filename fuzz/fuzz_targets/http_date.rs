//! HTTP dates (`Date`, `Expires`, `Last-Modified`, `If-Modified-Since`,
//! `If-Range`; origin and client bytes) through `edge_cache::fuzzing::http_date`:
//! any text is a date or not, never a panic; a date is never before 1970;
//! it formats as an IMF-fixdate that parses back to itself; and wherever
//! the `httpdate` crate (strict) reads a date, ours reads the same one.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_cache::fuzzing::http_date::{header_date, parse_http_date_at};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The 50-year rule of RFC 850 dates is relative to a fixed "now".
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let text = String::from_utf8_lossy(data);
    let ours = parse_http_date_at(&text, now);
    if let Some(time) = ours {
        assert!(time >= UNIX_EPOCH);
        // A leap second on 31 Dec 9999 reaches year 10000, which httpdate
        // cannot format (nothing in the edge formats a parsed date).
        if time >= UNIX_EPOCH + Duration::from_secs(253_402_300_800) {
            return;
        }
        let formatted = httpdate::fmt_http_date(time);
        assert_eq!(
            parse_http_date_at(&formatted, now),
            Some(time),
            "{text:?} as {formatted:?}"
        );
    }
    // On what a field value can hold (visible ASCII, spaces, tabs), we
    // must agree with httpdate, except on RFC 850's two-digit years:
    // httpdate fixes the century (< 70 is 20xx), we use the 50-year rule.
    let field_text = HeaderValue::from_str(&text).is_ok_and(|v| v.to_str().is_ok());
    let rfc850 = text.contains('-');
    if let Ok(theirs) = httpdate::parse_http_date(&text)
        && field_text
        && !rfc850
    {
        assert_eq!(ours, Some(theirs), "{text:?}");
    }

    // Through the header reader the flow uses: once is a date, twice none.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.append("expires", value.clone());
        let once: Option<SystemTime> = header_date(&headers, "expires");
        if once.is_some() {
            assert!(value.to_str().is_ok());
        }
        headers.append("expires", value);
        assert_eq!(header_date(&headers, "expires"), None);
    }
});
