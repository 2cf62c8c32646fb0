//! Vary (RFC 9111 §4.1): one stored variant per combination of the request
//! headers the response names, with `Accept-Encoding` normalised so trivial
//! differences in what clients send do not multiply variants.

use http::HeaderMap;

/// Most variants kept per URL; further ones replace the oldest.
pub const MAX_VARIANTS: usize = 16;

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaryNames {
    /// No `Vary`: one variant.
    None,
    /// `Vary: *`: never reusable, so never stored.
    Star,
    /// Lower-cased, sorted, de-duplicated field names.
    Names(Vec<String>),
}

impl VaryNames {
    /// Reads every `Vary` line of a response.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut names: Vec<String> = headers
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().any(|n| n == "*") {
            return VaryNames::Star;
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            VaryNames::None
        } else {
            VaryNames::Names(names)
        }
    }
}

/// The canonical values of `names` in a request: the secondary key.
pub fn variance(names: &[String], request: &HeaderMap) -> String {
    names
        .iter()
        .map(|name| {
            let values: Vec<&str> = request
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let joined = values.join(",");
            let value = if name == "accept-encoding" {
                normalise_accept_encoding(&joined).to_owned()
            } else if name == "accept-language" {
                // Language tags and parameters are case-insensitive
                // (RFC 9110 §12.5.4): `en-US` and `en-us` share a variant.
                joined
                    .split(',')
                    .map(|member| {
                        member
                            .split(';')
                            .map(str::trim)
                            .collect::<Vec<_>>()
                            .join(";")
                    })
                    .collect::<Vec<_>>()
                    .join(",")
                    .to_ascii_lowercase()
            } else {
                // Whitespace around list members does not change meaning.
                joined
                    .split(',')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collapses `Accept-Encoding` to the coding we would want the origin to
/// use: `br` if acceptable, else `zstd`, else `gzip`, else `identity`. The
/// forwarded request carries the same value, so the stored variant
/// matches its key.
pub fn normalise_accept_encoding(value: &str) -> &'static str {
    let accepts = |coding: &str| {
        value.split(',').any(|member| {
            let mut parts = member.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case(coding) && !q_zero
        })
    };
    if accepts("br") {
        "br"
    } else if accepts("zstd") {
        "zstd"
    } else if accepts("gzip") {
        "gzip"
    } else {
        "identity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn vary_names() {
        assert_eq!(VaryNames::of(&headers(&[])), VaryNames::None);
        assert_eq!(VaryNames::of(&headers(&[("vary", "*")])), VaryNames::Star);
        assert_eq!(
            VaryNames::of(&headers(&[
                ("vary", "Accept, accept-encoding"),
                ("vary", "*")
            ])),
            VaryNames::Star
        );
        assert_eq!(
            VaryNames::of(&headers(&[
                ("vary", "Accept-Language, Accept"),
                ("vary", "accept")
            ])),
            VaryNames::Names(vec!["accept".into(), "accept-language".into()])
        );
    }

    #[test]
    fn accept_encoding_is_normalised() {
        let table = [
            ("gzip, deflate, br", "br"),
            ("gzip;q=1.0, br;q=0", "gzip"),
            ("GZIP", "gzip"),
            ("gzip, zstd", "zstd"),
            ("gzip, deflate, br, zstd", "br"),
            ("deflate", "identity"),
            ("", "identity"),
        ];
        for (value, expected) in table {
            assert_eq!(normalise_accept_encoding(value), expected, "{value}");
        }
    }

    #[test]
    fn variance_distinguishes_what_matters() {
        let names = vec!["accept".to_owned(), "accept-encoding".to_owned()];
        let a = variance(
            &names,
            &headers(&[("accept", "text/html"), ("accept-encoding", "gzip, br")]),
        );
        let b = variance(
            &names,
            &headers(&[("accept", "text/html"), ("accept-encoding", "br,gzip")]),
        );
        let c = variance(
            &names,
            &headers(&[("accept", "application/json"), ("accept-encoding", "br")]),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, "accept=text/html\naccept-encoding=br");
    }

    #[test]
    fn accept_language_variants_ignore_case_and_blanks() {
        let names = vec!["accept-language".to_owned()];
        let of = |value: &str| {
            variance(
                &names,
                &crate::test_support::headers(&[("accept-language", value)]),
            )
        };
        assert_eq!(of("en-US, fr;q=0.5"), of("en-us,FR; q=0.5"));
        assert_ne!(of("en-US"), of("fr"));
    }
}
