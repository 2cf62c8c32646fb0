//! What a request asks for: the format (by `Accept`), the language and
//! currency (by cookie), the list page (by query). Pure.

use percent_encoding::percent_decode_str;

use crate::catalog::{ListQuery, Sort};
use crate::money::Currency;

/// Longest accepted search string, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Highest accepted page number.
pub const MAX_PAGE: u32 = 10_000;

/// A response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/html`.
    Html,
    /// `application/json`.
    Json,
}

/// HTML unless `Accept` prefers `application/json` (by q-value, then by
/// specificity); ties and absent headers go to HTML.
pub fn format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Html;
    };
    // The q-value the header gives a media type: the most specific
    // matching range decides (RFC 9110 §12.5.1).
    let quality = |ty: &str, sub: &str| -> f32 {
        let mut best: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let specificity = match media.split_once('/') {
                Some((t, s)) if t == ty && s == sub => 2,
                Some((t, "*")) if t == ty => 1,
                Some(("*", "*")) => 0,
                _ => continue,
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    if quality("application", "json") > quality("text", "html") {
        Format::Json
    } else {
        Format::Html
    }
}

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    En,
    /// Korean.
    Ko,
}

impl Lang {
    /// As in `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The language by the `lang` cookie: `en` or `ko`, else English.
pub fn lang(cookies: Option<&str>) -> Lang {
    match cookie(cookies, "lang") {
        Some("ko") => Lang::Ko,
        _ => Lang::En,
    }
}

/// The currency by the `currency` cookie, else US dollars.
pub fn currency(cookies: Option<&str>) -> Currency {
    cookie(cookies, "currency")
        .and_then(Currency::from_code)
        .unwrap_or(Currency::Usd)
}

/// `page`, `sort` and `q` from a query string; other parameters are
/// ignored (the edge does not forward them either). Later duplicates win.
pub fn list_query(query: Option<&str>) -> Result<ListQuery, String> {
    let mut list = ListQuery {
        page: 1,
        sort: Sort::Name,
        q: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value).ok_or_else(|| format!("parameter `{name}` is not UTF-8"))?;
        match name {
            "page" => {
                list.page = value
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=MAX_PAGE).contains(p))
                    .ok_or_else(|| format!("page must be a number from 1 to {MAX_PAGE}"))?;
            }
            "sort" => {
                list.sort = match value.as_str() {
                    "name" => Sort::Name,
                    "price" => Sort::Price,
                    _ => return Err("sort must be `price` or `name`".into()),
                };
            }
            "q" => {
                let q = value.trim();
                if q.chars().count() > MAX_QUERY_CHARS {
                    return Err(format!("q is longer than {MAX_QUERY_CHARS} characters"));
                }
                list.q = (!q.is_empty()).then(|| q.to_owned());
            }
            _ => {}
        }
    }
    Ok(list)
}

fn decode(value: &str) -> Option<String> {
    let spaced = value.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_json_only_when_preferred() {
        assert_eq!(format(None), Format::Html);
        assert_eq!(format(Some("application/json")), Format::Json);
        assert_eq!(format(Some("text/html,application/json")), Format::Html);
        assert_eq!(
            format(Some("text/html;q=0.5, application/json")),
            Format::Json
        );
        assert_eq!(format(Some("application/*")), Format::Json);
        assert_eq!(format(Some("*/*")), Format::Html);
        assert_eq!(
            format(Some(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            )),
            Format::Html
        );
        assert_eq!(format(Some("image/png")), Format::Html);
        assert_eq!(format(Some("*/*;q=0.1, application/json")), Format::Json);
    }

    #[test]
    fn cookies_choose_language_and_currency() {
        let c = Some("session=abc; lang=ko; currency=KRW");
        assert_eq!(cookie(c, "session"), Some("abc"));
        assert_eq!(lang(c), Lang::Ko);
        assert_eq!(currency(c), Currency::Krw);
        assert_eq!(lang(Some("lang=fr")), Lang::En);
        assert_eq!(currency(Some("currency=GBP")), Currency::Usd);
        assert_eq!(lang(None), Lang::En);
        assert_eq!(cookie(Some("xlang=ko"), "lang"), None);
    }

    #[test]
    fn list_parameters() {
        let q = list_query(Some("page=2&sort=price&q=blue+mug%21&utm=x")).unwrap();
        assert_eq!(
            (q.page, q.sort, q.q.as_deref()),
            (2, Sort::Price, Some("blue mug!"))
        );
        assert_eq!(list_query(None).unwrap().page, 1);
        assert_eq!(list_query(Some("q=%20%20")).unwrap().q, None);
        for (bad, message) in [
            ("page=0", "page must be"),
            ("page=-1", "page must be"),
            ("page=abc", "page must be"),
            ("page=10001", "page must be"),
            ("sort=stock", "sort must be"),
            ("q=%ff", "not UTF-8"),
        ] {
            let error = list_query(Some(bad)).unwrap_err();
            assert!(error.contains(message), "{bad}: {error}");
        }
        let long = format!("q={}", "a".repeat(101));
        assert!(list_query(Some(&long)).is_err());
    }
}
