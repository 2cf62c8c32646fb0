//! Purge tags as origins write them: the response fields a rule reads
//! them from (`tag_headers`), and how each field separates its tags.
//!
//! Frameworks tag for the CDN they were written for: Fastly's
//! `Surrogate-Key` and Varnish's `xkey` (tags separated by whitespace; an
//! `xkey` field may repeat), Cloudflare's `Cache-Tag` (separated by
//! commas, spaces around them ignored). Reading all three lets an
//! existing purger work unchanged: it purges by the same tag it wrote.
//! A purge names one word (`purge::request`), so a `Cache-Tag` member with
//! a space inside it could never be purged and is not recorded.

use http::{HeaderMap, HeaderName};
use serde::Deserialize;

use crate::http::field_names::{CACHE_TAG, SURROGATE_KEY, XKEY};

/// A response field that carries purge tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TagHeader {
    /// `Surrogate-Key` (Fastly): separated by whitespace.
    SurrogateKey,
    /// `Cache-Tag` (Cloudflare): separated by commas.
    CacheTag,
    /// `xkey` (Varnish): separated by whitespace.
    Xkey,
}

impl TagHeader {
    /// Every tag field, in the order the default reads them.
    pub const ALL: [TagHeader; 3] = [
        TagHeader::SurrogateKey,
        TagHeader::CacheTag,
        TagHeader::Xkey,
    ];

    /// The field's name.
    pub fn field(self) -> HeaderName {
        match self {
            TagHeader::SurrogateKey => SURROGATE_KEY,
            TagHeader::CacheTag => CACHE_TAG,
            TagHeader::Xkey => XKEY,
        }
    }

    /// The tags of one field line.
    fn split(self, line: &str) -> impl Iterator<Item = &str> {
        let members: Box<dyn Iterator<Item = &str>> = match self {
            TagHeader::SurrogateKey | TagHeader::Xkey => Box::new(line.split_ascii_whitespace()),
            TagHeader::CacheTag => Box::new(
                line.split(',')
                    .map(|member| member.trim_matches([' ', '\t']))
                    .filter(|member| !member.bytes().any(|b| b.is_ascii_whitespace())),
            ),
        };
        members.filter(|tag| !tag.is_empty())
    }

    fn bit(self) -> u8 {
        match self {
            TagHeader::SurrogateKey => 1,
            TagHeader::CacheTag => 2,
            TagHeader::Xkey => 4,
        }
    }
}

impl TryFrom<String> for TagHeader {
    type Error = String;

    /// A field name as a rules file writes it, in any case.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        TagHeader::ALL
            .into_iter()
            .find(|header| name.eq_ignore_ascii_case(header.field().as_str()))
            .ok_or_else(|| {
                format!("`{name}` is not a tag header: give surrogate-key, cache-tag or xkey")
            })
    }
}

/// The set of fields a rule reads tags from (the rule option
/// `tag_headers`); by default all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "Vec<TagHeader>")]
pub struct TagHeaders(u8);

impl TagHeaders {
    /// `Surrogate-Key`, `Cache-Tag` and `xkey`.
    pub const ALL: TagHeaders = TagHeaders(1 | 2 | 4);

    /// Whether tags are read from `header`.
    pub fn reads(self, header: TagHeader) -> bool {
        self.0 & header.bit() != 0
    }

    /// The tags `headers` carry in the fields this set reads: sorted,
    /// each once.
    pub fn tags_of(self, headers: &HeaderMap) -> Vec<String> {
        let mut tags: Vec<String> = TagHeader::ALL
            .into_iter()
            .filter(|header| self.reads(*header))
            .flat_map(|header| {
                headers
                    .get_all(header.field())
                    .iter()
                    .filter_map(|line| line.to_str().ok())
                    .flat_map(move |line| header.split(line))
            })
            .map(str::to_owned)
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

impl Default for TagHeaders {
    fn default() -> Self {
        TagHeaders::ALL
    }
}

impl From<Vec<TagHeader>> for TagHeaders {
    fn from(headers: Vec<TagHeader>) -> Self {
        TagHeaders(headers.iter().fold(0, |set, header| set | header.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn each_field_is_split_by_its_own_separator() {
        let response = headers(&[
            ("surrogate-key", "home  product:7\tstatic"),
            ("cache-tag", "a, b ,c,,my tag, d"),
            ("xkey", "x y"),
            ("xkey", "z x"),
        ]);
        let table: [(&[TagHeader], &[&str]); 5] = [
            (
                &TagHeader::ALL,
                &[
                    "a",
                    "b",
                    "c",
                    "d",
                    "home",
                    "product:7",
                    "static",
                    "x",
                    "y",
                    "z",
                ],
            ),
            (&[TagHeader::SurrogateKey], &["home", "product:7", "static"]),
            (&[TagHeader::CacheTag], &["a", "b", "c", "d"]),
            (&[TagHeader::Xkey], &["x", "y", "z"]),
            (&[], &[]),
        ];
        for (read, expected) in table {
            assert_eq!(
                TagHeaders::from(read.to_vec()).tags_of(&response),
                expected,
                "{read:?}"
            );
        }
        assert_eq!(TagHeaders::default(), TagHeaders::ALL);
        assert!(TagHeaders::ALL.tags_of(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn a_rules_file_names_the_fields_in_any_case_and_a_typo_is_named() {
        let read: TagHeaders = serde_json::from_str(r#"["Cache-Tag", "XKEY"]"#).unwrap();
        assert!(read.reads(TagHeader::CacheTag) && read.reads(TagHeader::Xkey));
        assert!(!read.reads(TagHeader::SurrogateKey));
        let error = serde_json::from_str::<TagHeaders>(r#"["etag"]"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`etag` is not a tag header: give surrogate-key, cache-tag or xkey"),
            "{error}"
        );
    }

    #[test]
    fn a_field_line_that_is_not_text_is_skipped() {
        let mut response = HeaderMap::new();
        response.append(
            CACHE_TAG,
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        response.append(CACHE_TAG, http::HeaderValue::from_static("ok"));
        assert_eq!(TagHeaders::ALL.tags_of(&response), ["ok"]);
    }
}
