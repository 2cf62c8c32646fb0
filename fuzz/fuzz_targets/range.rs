//! `Range` / `If-Range` and the conditional fields (`If-None-Match`,
//! `If-Modified-Since`) of a client against a stored response.
//!
//! Input: a parameter line (`total=10`), the request's header block, a
//! blank line, the stored response's header block.
#![no_main]

use edge_cache::fuzzing::conditional::{RangeAnswer, client_has_current, range_answer};
use edge_fuzz::{first_line, header_block, param_u64, params, split_blank_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (line, rest) = first_line(data);
    let p = params(line);
    let (request, stored) = split_blank_line(rest);
    let request = header_block(request);
    let stored = header_block(stored);

    // Small totals exercise the edges; the first byte of the input also
    // reaches the extremes.
    let total = param_u64(&p, "total").unwrap_or(match data.first() {
        Some(b'M') => u64::MAX,
        Some(b) => u64::from(*b % 16),
        None => 0,
    });
    match range_answer(&request, &stored, total) {
        RangeAnswer::Full => {}
        RangeAnswer::Partial {
            start,
            end,
            total: t,
        } => {
            assert_eq!(t, total);
            assert!(start <= end && end < total, "{start}-{end}/{total}");
            assert!(request.contains_key("range"));
        }
        RangeAnswer::Unsatisfiable { total: t } => {
            assert_eq!(t, total);
            assert!(request.contains_key("range"));
        }
    }

    let current = client_has_current(&request, &stored);
    if request
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*")
    {
        assert!(current);
    }
    if current {
        assert!(request.contains_key("if-none-match") || request.contains_key("if-modified-since"));
    }
});
