//! The stored form of a cached response (or of a Vary index).
//!
//! Layout: magic `ECE1`, a 4-byte big-endian length of the JSON metadata,
//! the metadata, the body, and 16 bytes of blake3 over everything before
//! it. A value that is truncated, foreign, or of another version fails to
//! decode and is treated as a miss (then overwritten), never served.

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"ECE1";
const CHECKSUM_LEN: usize = 16;

/// What is stored beside the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The canonical cache key (checked on read against the request's).
    pub key: String,
    /// The stored response's status, served as is.
    pub status: u16,
    /// Response headers as stored (hop-by-hop and `Set-Cookie` removed).
    #[serde(with = "header_values")]
    pub headers: Vec<(String, Vec<u8>)>,
    /// When we sent the request that produced it (unix µs).
    pub request_time_us: u64,
    /// When we received the response (unix ms).
    pub response_time_ms: u64,
    /// The response's corrected initial age (ms), §4.2.3.
    pub initial_age_ms: u64,
    /// Freshness lifetime (ms).
    pub lifetime_ms: u64,
    /// Surrogate keys (tags) the origin gave.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Header values in the metadata: a JSON string where the value is UTF-8
/// (nearly always: field values are visible ASCII), an array of bytes
/// otherwise; both read back to the same bytes. serde_json writes a bare
/// `Vec<u8>` as an array of numbers, about four bytes per byte, which made
/// a stored 1 KiB response's metadata nearly as large as its body and cost
/// the cache a share of the objects its budget holds. Entries written
/// before, all arrays, still decode.
mod header_values {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Written<'a> {
        Text(&'a str),
        Bytes(&'a [u8]),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Read {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(
        headers: &[(String, Vec<u8>)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(headers.iter().map(|(name, value)| {
            let value = match std::str::from_utf8(value) {
                Ok(text) => Written::Text(text),
                Err(_) => Written::Bytes(value),
            };
            (name, value)
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let pairs = Vec::<(String, Read)>::deserialize(deserializer)?;
        Ok(pairs
            .into_iter()
            .map(|(name, value)| match value {
                Read::Text(text) => (name, text.into_bytes()),
                Read::Bytes(bytes) => (name, bytes),
            })
            .collect())
    }
}

/// The value under a URL's primary key when its response varies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaryIndex {
    /// The canonical cache key.
    pub key: String,
    /// The `Vary` field names, sorted.
    pub names: Vec<String>,
    /// Distinguishes this index from earlier ones for the same URL, so that
    /// variants stored under an invalidated index can never be reached.
    pub epoch: u64,
    /// Variance hashes stored, oldest first (bounded).
    pub variants: Vec<String>,
}

/// A decoded store value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredValue {
    /// A stored response: its metadata, the body follows.
    Response(EntryMeta),
    /// A Vary index.
    Vary(VaryIndex),
}

/// Why a stored value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not ours, or another format version.
    #[error("unknown format")]
    Foreign,
    /// Fewer bytes than the layout says (a torn or foreign value).
    #[error("truncated")]
    Truncated,
    /// The checksum does not match.
    #[error("checksum mismatch")]
    Corrupt,
    /// The metadata does not parse.
    #[error("bad metadata: {0}")]
    Metadata(String),
}

/// Encodes a value with its body.
pub fn encode(value: &StoredValue, body: &[u8]) -> Vec<u8> {
    let meta = serde_json::to_vec(value).expect("entry metadata always serialises");
    let mut out = Vec::with_capacity(8 + meta.len() + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(body);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_LEN]);
    out
}

/// Decodes a value, verifying its checksum. Returns the value and its body.
pub fn decode(bytes: &[u8]) -> Result<(StoredValue, Vec<u8>), DecodeError> {
    if bytes.len() < 8 + CHECKSUM_LEN {
        return Err(if bytes.starts_with(&MAGIC[..bytes.len().min(4)]) {
            DecodeError::Truncated
        } else {
            DecodeError::Foreign
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(DecodeError::Foreign);
    }
    let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if &blake3::hash(content).as_bytes()[..CHECKSUM_LEN] != checksum {
        return Err(DecodeError::Corrupt);
    }
    let meta_len = u32::from_be_bytes([content[4], content[5], content[6], content[7]]) as usize;
    let meta_end = 8usize
        .checked_add(meta_len)
        .filter(|end| *end <= content.len())
        .ok_or(DecodeError::Truncated)?;
    let value: StoredValue = serde_json::from_slice(&content[8..meta_end])
        .map_err(|e| DecodeError::Metadata(e.to_string()))?;
    Ok((value, content[meta_end..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredValue {
        StoredValue::Response(EntryMeta {
            key: "http://h/p".into(),
            status: 200,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            request_time_us: 1,
            response_time_ms: 2,
            initial_age_ms: 0,
            lifetime_ms: 60_000,
            tags: vec!["a".into()],
        })
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&sample(), b"hello");
        let (value, body) = decode(&bytes).unwrap();
        assert_eq!(value, sample());
        assert_eq!(body, b"hello");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = encode(&sample(), b"hello world");
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(decode(&damaged).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn truncated_and_foreign_values_are_rejected() {
        let bytes = encode(&sample(), b"hello");
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        assert_eq!(
            decode(b"some other application's value!!!"),
            Err(DecodeError::Foreign)
        );
    }

    /// `encode` with the metadata given as JSON text, as an older writer
    /// would have produced it.
    fn encode_json(meta: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(meta.as_bytes());
        out.extend_from_slice(body);
        let checksum = blake3::hash(&out);
        out.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_LEN]);
        out
    }

    #[test]
    fn header_values_are_stored_as_text_and_any_bytes_come_back_exactly() {
        let meta = |headers: Vec<(String, Vec<u8>)>| {
            StoredValue::Response(EntryMeta {
                headers,
                ..match sample() {
                    StoredValue::Response(meta) => meta,
                    StoredValue::Vary(_) => unreachable!(),
                }
            })
        };
        let text = encode(&sample(), b"");
        let json = String::from_utf8_lossy(&text);
        assert!(json.contains(r#"["content-type","text/plain"]"#), "{json}");
        // obs-text that is not UTF-8, and UTF-8 beyond ASCII.
        let odd = meta(vec![
            ("x-latin1".into(), vec![b'a', 0xe9, b'b']),
            ("x-utf8".into(), "caf\u{e9}".as_bytes().to_vec()),
        ]);
        assert_eq!(decode(&encode(&odd, b"x")).unwrap().0, odd);
    }

    #[test]
    fn entries_written_with_byte_arrays_still_decode() {
        let old = r#"{"Response":{"key":"http://h/p","status":200,"headers":[["content-type",[116,101,120,116,47,112,108,97,105,110]]],"request_time_us":1,"response_time_ms":2,"initial_age_ms":0,"lifetime_ms":60000,"tags":["a"]}}"#;
        let (value, body) = decode(&encode_json(old, b"hello")).unwrap();
        assert_eq!(value, sample());
        assert_eq!(body, b"hello");
    }
}
