//! `Vary` (origin bytes) and the secondary key built from the request's
//! fields (client bytes), including `Accept-Encoding` normalisation.
//!
//! Input: the response's header block, a blank line, the request's.
#![no_main]

use edge_cache::fuzzing::vary::{VaryNames, normalise_accept_encoding, variance};
use edge_fuzz::{header_block, split_blank_line};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (response, request) = split_blank_line(data);
    let response = header_block(response);
    let request = header_block(request);

    match VaryNames::of(&response) {
        VaryNames::None | VaryNames::Star => {}
        VaryNames::Names(names) => {
            assert!(!names.is_empty());
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "sorted, unique: {names:?}"
            );
            for n in &names {
                assert!(!n.is_empty() && *n == n.to_ascii_lowercase() && *n == n.trim());
                assert!(!n.contains(',') && n != "*");
            }
            let key = variance(&names, &request);
            assert_eq!(key, variance(&names, &request.clone()));
            // Whitespace around list members never splits a variant.
            let mut spaced = HeaderMap::new();
            for (name, value) in &request {
                if let Ok(text) = value.to_str() {
                    let respaced = text
                        .split(',')
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" , ");
                    if let Ok(v) = respaced.parse() {
                        spaced.append(name, v);
                        continue;
                    }
                }
                spaced.append(name, value.clone());
            }
            assert_eq!(key, variance(&names, &spaced), "{names:?}");
        }
    }

    for value in request.get_all("accept-encoding") {
        let text = String::from_utf8_lossy(value.as_bytes());
        let coding = normalise_accept_encoding(&text);
        assert!(matches!(coding, "br" | "gzip" | "identity"));
        // The normalised value is what the origin gets; it is stable.
        assert_eq!(normalise_accept_encoding(coding), coding);
    }
});
