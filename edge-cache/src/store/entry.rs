//! The stored form of a cached response (or of a Vary index).
//!
//! Layout: magic `ECE2`, a 4-byte big-endian length of the metadata, the
//! metadata, the body, and 16 bytes of blake3 over everything before it.
//! The metadata is postcard (varints, length-prefixed strings and bytes, no
//! field names; [`Wire`]): for a 1 KiB response from the bench origin it
//! takes 192 bytes where ECE1's JSON took 358, so the same budget holds
//! about 13 % more objects. Values written as `ECE1` (the same layout with
//! JSON metadata) by an earlier version, in a store shared with other nodes
//! or persisted, still decode. A value that is truncated, foreign, or of an
//! unknown version fails to decode and is treated as a miss (then
//! overwritten), never served.

use serde::{Deserialize, Serialize, Serializer};

pub use crate::http::content_coding::Coding;
pub use crate::store::chunks::{ChunkLayout, ChunkSet};

const MAGIC: &[u8; 4] = b"ECE2";
/// The previous version: JSON metadata, read but no longer written.
const MAGIC_JSON: &[u8; 4] = b"ECE1";
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
    /// Where the body is when it is stored in chunks (a large object);
    /// `None`: the body follows the metadata in this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<ChunkLayout>,
    /// For an object stored by slices, which of its chunks are stored
    /// (`None`: all of them, or it is not chunked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliced: Option<ChunkSet>,
    /// For an object the edge compressed at fill, the codings its body
    /// holds (`None`: the body is the response's own bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encodings: Option<Encodings>,
}

/// The body of an object the edge compressed at fill: each coding's bytes
/// one after another, in the order listed, and no copy of the original
/// bytes (a client that accepts none of the codings gets them by
/// decompressing). Never combined with chunks: only bodies stored whole
/// are compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encodings {
    /// The length of the original (identity) body.
    pub identity_length: u64,
    /// Each coding stored and the length of its bytes.
    pub parts: Vec<(Coding, u64)>,
}

impl Encodings {
    /// The codings stored, in the order the edge prefers them.
    pub fn codings(&self) -> impl Iterator<Item = Coding> + '_ {
        self.parts.iter().map(|(coding, _)| *coding)
    }

    /// Where `coding`'s bytes are in the stored body (`None`: not stored,
    /// or the lengths do not add up to the body's, as in a damaged value).
    pub fn range_of(&self, coding: Coding, body_len: usize) -> Option<std::ops::Range<usize>> {
        let total: u64 = self.parts.iter().map(|(_, length)| *length).sum();
        if total != body_len as u64 {
            return None;
        }
        let mut start = 0usize;
        for (stored, length) in &self.parts {
            let end = start + *length as usize;
            if *stored == coding {
                return Some(start..end);
            }
            start = end;
        }
        None
    }
}

/// Header values in ECE1's JSON metadata (ECE2 does not go through this
/// module: it is an untagged enum, which only self-describing formats can
/// read): a JSON string where the value is UTF-8
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

    pub(super) fn serialize<S: Serializer>(
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

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
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
    /// The index under a URL whose responses vary: which variants are
    /// stored.
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

/// The ECE2 metadata: [`StoredValue`] field for field, with strings and
/// header values borrowed from the value written or the bytes read. Field
/// order is the format: a change is a new magic.
#[derive(Serialize, Deserialize)]
enum Wire<'a> {
    #[serde(borrow)]
    Response(WireMeta<'a>),
    #[serde(borrow)]
    Vary(WireVary<'a>),
    /// The head of an object stored in chunks (added after the first two:
    /// values written before it still decode).
    #[serde(borrow)]
    Chunked(WireChunked<'a>),
    /// The head of an object stored by slices: which chunks are stored
    /// (added last, for the same reason).
    #[serde(borrow)]
    Sliced(WireSliced<'a>),
    /// The head of an object the edge compressed at fill (added last, for
    /// the same reason).
    #[serde(borrow)]
    Encoded(WireEncoded<'a>),
}

/// A compressed object on the wire: its metadata and its codings.
#[derive(Serialize, Deserialize)]
struct WireEncoded<'a> {
    #[serde(borrow)]
    meta: WireMeta<'a>,
    identity_length: u64,
    #[serde(borrow)]
    parts: Vec<(&'a str, u64)>,
}

/// A sliced object's head on the wire: a chunked head, and the bits of
/// the chunks stored.
#[derive(Serialize, Deserialize)]
struct WireSliced<'a> {
    #[serde(borrow)]
    head: WireChunked<'a>,
    #[serde(serialize_with = "as_bytes")]
    stored: &'a [u8],
}

/// A chunked object's head on the wire: its metadata and its layout.
#[derive(Serialize, Deserialize)]
struct WireChunked<'a> {
    #[serde(borrow)]
    meta: WireMeta<'a>,
    layout: ChunkLayout,
}

/// [`EntryMeta`] on the wire.
#[derive(Serialize, Deserialize)]
struct WireMeta<'a> {
    key: &'a str,
    status: u16,
    #[serde(borrow)]
    headers: Vec<WireHeader<'a>>,
    request_time_us: u64,
    response_time_ms: u64,
    initial_age_ms: u64,
    lifetime_ms: u64,
    #[serde(borrow)]
    tags: Vec<&'a str>,
}

/// A header field on the wire: its value as length-prefixed bytes (serde
/// would write a slice as a sequence of numbers; postcard happens to lay
/// both out alike, but the format should not rest on that).
#[derive(Serialize, Deserialize)]
struct WireHeader<'a> {
    name: &'a str,
    #[serde(serialize_with = "as_bytes")]
    value: &'a [u8],
}

fn as_bytes<S: Serializer>(value: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(value)
}

/// [`VaryIndex`] on the wire.
#[derive(Serialize, Deserialize)]
struct WireVary<'a> {
    key: &'a str,
    #[serde(borrow)]
    names: Vec<&'a str>,
    epoch: u64,
    #[serde(borrow)]
    variants: Vec<&'a str>,
}

impl<'a> From<&'a StoredValue> for Wire<'a> {
    fn from(value: &'a StoredValue) -> Self {
        match value {
            StoredValue::Response(meta) => {
                let wire = WireMeta {
                    key: &meta.key,
                    status: meta.status,
                    headers: meta
                        .headers
                        .iter()
                        .map(|(name, value)| WireHeader { name, value })
                        .collect(),
                    request_time_us: meta.request_time_us,
                    response_time_ms: meta.response_time_ms,
                    initial_age_ms: meta.initial_age_ms,
                    lifetime_ms: meta.lifetime_ms,
                    tags: meta.tags.iter().map(String::as_str).collect(),
                };
                match (meta.chunks, &meta.sliced) {
                    (None, _) if let Some(encodings) = &meta.encodings => {
                        Wire::Encoded(WireEncoded {
                            meta: wire,
                            identity_length: encodings.identity_length,
                            parts: encodings
                                .parts
                                .iter()
                                .map(|(coding, length)| (coding.token(), *length))
                                .collect(),
                        })
                    }
                    (Some(layout), None) => Wire::Chunked(WireChunked { meta: wire, layout }),
                    (Some(layout), Some(stored)) => Wire::Sliced(WireSliced {
                        head: WireChunked { meta: wire, layout },
                        stored: &stored.0,
                    }),
                    (None, _) => Wire::Response(wire),
                }
            }
            StoredValue::Vary(index) => Wire::Vary(WireVary {
                key: &index.key,
                names: index.names.iter().map(String::as_str).collect(),
                epoch: index.epoch,
                variants: index.variants.iter().map(String::as_str).collect(),
            }),
        }
    }
}

impl From<Wire<'_>> for StoredValue {
    fn from(wire: Wire<'_>) -> Self {
        let owned = |strings: Vec<&str>| strings.into_iter().map(str::to_owned).collect();
        let mut encodings = None;
        let (meta, chunks, sliced) = match wire {
            Wire::Response(meta) => (meta, None, None),
            Wire::Chunked(head) => (head.meta, Some(head.layout), None),
            Wire::Sliced(WireSliced { head, stored }) => (
                head.meta,
                Some(head.layout),
                Some(ChunkSet(stored.to_vec())),
            ),
            Wire::Encoded(encoded) => {
                // A coding this version does not know makes the parts'
                // lengths fail to add up: the value reads as damaged.
                encodings = Some(Encodings {
                    identity_length: encoded.identity_length,
                    parts: encoded
                        .parts
                        .iter()
                        .filter_map(|(token, length)| Some((Coding::of_token(token)?, *length)))
                        .collect(),
                });
                (encoded.meta, None, None)
            }
            Wire::Vary(index) => {
                return StoredValue::Vary(VaryIndex {
                    key: index.key.to_owned(),
                    names: owned(index.names),
                    epoch: index.epoch,
                    variants: owned(index.variants),
                });
            }
        };
        StoredValue::Response(EntryMeta {
            key: meta.key.to_owned(),
            status: meta.status,
            headers: meta
                .headers
                .into_iter()
                .map(|header| (header.name.to_owned(), header.value.to_vec()))
                .collect(),
            request_time_us: meta.request_time_us,
            response_time_ms: meta.response_time_ms,
            initial_age_ms: meta.initial_age_ms,
            lifetime_ms: meta.lifetime_ms,
            tags: owned(meta.tags),
            chunks,
            sliced,
            encodings,
        })
    }
}

/// Reads ECE2 metadata, all of it. Lengths in it are untrusted: postcard
/// borrows strings and bytes from the input (a length past its end is an
/// error, not an allocation), and it passes a sequence's stated length on
/// as a capacity hint only when at least that many bytes remain (serde
/// caps the hint at 1 MiB besides), so what decoding allocates is bounded
/// by the input's size.
fn read_wire(meta: &[u8]) -> Result<StoredValue, DecodeError> {
    let bad = |e: postcard::Error| DecodeError::Metadata(e.to_string());
    let (wire, rest) = postcard::take_from_bytes::<Wire<'_>>(meta).map_err(bad)?;
    if !rest.is_empty() {
        return Err(DecodeError::Metadata(format!(
            "{} bytes after the metadata",
            rest.len()
        )));
    }
    Ok(wire.into())
}

/// Frames metadata and body under `magic`: length, metadata, body, checksum.
fn frame(magic: &[u8; 4], meta: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + meta.len() + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(body);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_LEN]);
    out
}

/// Encodes a value with its body (format ECE2).
pub fn encode(value: &StoredValue, body: &[u8]) -> Vec<u8> {
    let meta = postcard::to_allocvec(&Wire::from(value)).expect("entry metadata always serialises");
    frame(MAGIC, &meta, body)
}

/// Decodes a value (ECE2, or ECE1 as earlier versions wrote it), verifying
/// its checksum. Returns the value and its body.
pub fn decode(bytes: &[u8]) -> Result<(StoredValue, Vec<u8>), DecodeError> {
    if bytes.len() < 8 + CHECKSUM_LEN {
        let start = &bytes[..bytes.len().min(4)];
        return Err(
            if MAGIC.starts_with(start) || MAGIC_JSON.starts_with(start) {
                DecodeError::Truncated
            } else {
                DecodeError::Foreign
            },
        );
    }
    let magic = &bytes[..4];
    if magic != MAGIC && magic != MAGIC_JSON {
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
    let meta = &content[8..meta_end];
    let value = if magic == MAGIC {
        read_wire(meta)?
    } else {
        serde_json::from_slice(meta).map_err(|e| DecodeError::Metadata(e.to_string()))?
    };
    let body = &content[meta_end..];
    if let StoredValue::Response(EntryMeta {
        encodings: Some(encodings),
        ..
    }) = &value
    {
        // Codings this version does not know were dropped as the head was
        // read; then the lengths do not add up and the value is no use.
        let total: u64 = encodings.parts.iter().map(|(_, length)| *length).sum();
        if encodings.parts.is_empty() || total != body.len() as u64 {
            return Err(DecodeError::Metadata(
                "the stored codings do not cover the body".into(),
            ));
        }
    }
    Ok((value, body.to_vec()))
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
            chunks: None,
            sliced: None,
            encodings: None,
        })
    }

    #[test]
    fn an_encoded_head_round_trips_and_slices_its_codings() {
        let StoredValue::Response(mut meta) = sample() else {
            unreachable!()
        };
        let encodings = Encodings {
            identity_length: 1000,
            parts: vec![(Coding::Br, 3), (Coding::Gzip, 5)],
        };
        meta.encodings = Some(encodings.clone());
        let value = StoredValue::Response(meta);
        let bytes = encode(&value, b"BBBGGGGG");
        let (decoded, body) = decode(&bytes).unwrap();
        assert_eq!(decoded, value);
        assert_eq!(
            &body[encodings.range_of(Coding::Gzip, body.len()).unwrap()],
            b"GGGGG"
        );
        assert_eq!(
            &body[encodings.range_of(Coding::Br, body.len()).unwrap()],
            b"BBB"
        );
        assert_eq!(encodings.range_of(Coding::Zstd, body.len()), None);
        assert_eq!(
            encodings.range_of(Coding::Br, 7),
            None,
            "lengths must add up"
        );
        // A head whose codings do not cover its body (a coding unknown to
        // this version, or a damaged value) does not decode.
        assert!(matches!(
            decode(&encode(&value, b"BBBGGGG")),
            Err(DecodeError::Metadata(_))
        ));
    }

    fn sample_vary() -> StoredValue {
        StoredValue::Vary(VaryIndex {
            key: "http://h/p".into(),
            names: vec!["accept-encoding".into(), "accept-language".into()],
            epoch: 1_767_225_600_000_123,
            variants: vec![
                "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
                "00112233445566778899aabbccddeeff".into(),
            ],
        })
    }

    /// A 1 KiB response from the bench origin (bench/run, "zipf"), as the
    /// edge stores it.
    fn bench_entry() -> StoredValue {
        let header = |name: &str, value: &str| (name.to_owned(), value.as_bytes().to_vec());
        StoredValue::Response(EntryMeta {
            key: "http://127.0.0.1:8080/z/31999?size=1024".into(),
            status: 200,
            headers: vec![
                header("content-type", "application/octet-stream"),
                header("cache-control", "public, max-age=3600"),
                header("content-length", "1024"),
                header("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ],
            request_time_us: 1_767_225_600_000_123,
            response_time_ms: 1_767_225_600_001,
            initial_age_ms: 0,
            lifetime_ms: 3_600_000,
            tags: vec![],
            chunks: None,
            sliced: None,
            encodings: None,
        })
    }

    /// `encode` as the previous version wrote it: ECE1, JSON metadata.
    fn encode_ece1(value: &StoredValue, body: &[u8]) -> Vec<u8> {
        let meta = serde_json::to_vec(value).unwrap();
        frame(MAGIC_JSON, &meta, body)
    }

    /// An ECE1 value with the metadata given as JSON text, as an older
    /// writer would have produced it.
    fn encode_json(meta: &str, body: &[u8]) -> Vec<u8> {
        frame(MAGIC_JSON, meta.as_bytes(), body)
    }

    /// An ECE2 frame with a valid checksum around any metadata bytes.
    fn encode_wire(meta: &[u8], body: &[u8]) -> Vec<u8> {
        frame(MAGIC, meta, body)
    }

    #[test]
    fn round_trip() {
        for value in [sample(), sample_vary(), bench_entry()] {
            let bytes = encode(&value, b"hello");
            assert_eq!(&bytes[..4], b"ECE2");
            let (decoded, body) = decode(&bytes).unwrap();
            assert_eq!(decoded, value);
            assert_eq!(body, b"hello");
        }
    }

    #[test]
    fn sizes_of_the_bench_entry_and_a_vary_index() {
        let body = [0x5a; 1024];
        let ece1 = encode_ece1(&bench_entry(), &body).len();
        let ece2 = encode(&bench_entry(), &body).len();
        let vary1 = encode_ece1(&sample_vary(), b"").len();
        let vary2 = encode(&sample_vary(), b"").len();
        println!("bench 1 KiB entry: ECE1 {ece1} bytes, ECE2 {ece2} bytes");
        println!("Vary index (2 names, 2 variants): ECE1 {vary1} bytes, ECE2 {vary2} bytes");
        // 8 of framing, the metadata, the body, 16 of checksum.
        assert_eq!(ece1, 8 + 358 + 1024 + 16);
        assert_eq!(ece2, 8 + 192 + 1024 + 16);
        assert!(vary2 < vary1);
    }

    #[test]
    fn a_chunked_head_round_trips_and_older_values_still_decode_beside_it() {
        let StoredValue::Response(meta) = sample() else {
            unreachable!()
        };
        let layout = ChunkLayout {
            length: 300 << 20,
            chunk_bytes: 512 << 10,
            generation: 0xfeed,
        };
        let head = StoredValue::Response(EntryMeta {
            chunks: Some(layout),
            ..meta.clone()
        });
        let (value, body) = decode(&encode(&head, b"")).unwrap();
        assert_eq!((value, body), (head, Vec::new()));
        let mut stored = ChunkSet::default();
        stored.insert(3);
        stored.insert(600);
        let sliced = StoredValue::Response(EntryMeta {
            chunks: Some(layout),
            sliced: Some(stored),
            ..meta
        });
        let (value, _) = decode(&encode(&sliced, b"")).unwrap();
        assert_eq!(value, sliced);
        let (value, _) = decode(&encode(&sample(), b"x")).unwrap();
        assert!(matches!(
            value,
            StoredValue::Response(EntryMeta { chunks: None, .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        for bytes in [
            encode(&sample(), b"hello world"),
            encode(&sample_vary(), b""),
            encode_ece1(&sample(), b"hello world"),
        ] {
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut damaged = bytes.clone();
                    damaged[i] ^= 1 << bit;
                    assert!(
                        decode(&damaged).is_err(),
                        "flip at byte {i} bit {bit} went unnoticed"
                    );
                }
            }
        }
    }

    #[test]
    fn truncated_and_foreign_values_are_rejected() {
        for bytes in [
            encode(&sample(), b"hello"),
            encode_ece1(&sample(), b"hello"),
        ] {
            for len in 0..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
            }
            assert_eq!(decode(&bytes[..6]), Err(DecodeError::Truncated));
        }
        assert_eq!(
            decode(b"some other application's value!!!"),
            Err(DecodeError::Foreign)
        );
        // A later version's value is not read as this one's.
        let mut ece3 = encode(&sample(), b"hello");
        ece3[3] = b'3';
        assert_eq!(decode(&ece3), Err(DecodeError::Foreign));
    }

    #[test]
    fn malformed_metadata_behind_a_valid_frame_is_a_metadata_error() {
        let good = postcard::to_allocvec(&Wire::from(&sample())).unwrap();
        let is_metadata_error = |meta: &[u8]| {
            matches!(
                decode(&encode_wire(meta, b"body")),
                Err(DecodeError::Metadata(_))
            )
        };
        // Every cut of valid metadata, and bytes after it.
        for len in 0..good.len() {
            assert!(is_metadata_error(&good[..len]), "metadata cut to {len}");
        }
        assert!(is_metadata_error(&[&good[..], &[0]].concat()));
        // An unknown variant; a status past u16; a key that is not UTF-8.
        assert!(is_metadata_error(&[2]));
        assert!(is_metadata_error(&[0, 1, b'k', 0xff, 0xff, 0x04]));
        assert!(is_metadata_error(&[0, 1, 0xff]));
        // Lengths far past the input: refused, not allocated (a key of
        // 2^32 - 1 bytes, then 2^32 - 1 headers, tags and Vary names).
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(is_metadata_error(&[&[0][..], &huge].concat()));
        assert!(is_metadata_error(
            &[&[0, 1, b'k', 200, 1][..], &huge].concat()
        ));
        assert!(is_metadata_error(
            &[&[0, 1, b'k', 200, 1, 0, 1, 2, 0, 3][..], &huge].concat()
        ));
        assert!(is_metadata_error(&[&[1, 1, b'k'][..], &huge].concat()));
        // Every short byte string is an error or a value, never a panic.
        for a in 0..=u8::MAX {
            for b in 0..=u8::MAX {
                let _ = decode(&encode_wire(&[a, b], b""));
                let _ = decode(&encode_wire(&[0, 1, b'k', a, b], b""));
            }
        }
    }

    #[test]
    fn header_values_are_stored_as_bytes_and_any_bytes_come_back_exactly() {
        let meta = |headers: Vec<(String, Vec<u8>)>| {
            StoredValue::Response(EntryMeta {
                headers,
                ..match sample() {
                    StoredValue::Response(meta) => meta,
                    StoredValue::Vary(_) => unreachable!(),
                }
            })
        };
        // obs-text that is not UTF-8, and UTF-8 beyond ASCII.
        let odd = meta(vec![
            ("x-latin1".into(), vec![b'a', 0xe9, b'b']),
            ("x-utf8".into(), "caf\u{e9}".as_bytes().to_vec()),
        ]);
        assert_eq!(decode(&encode(&odd, b"x")).unwrap().0, odd);
        assert_eq!(decode(&encode_ece1(&odd, b"x")).unwrap().0, odd);
        // The value is its length and its bytes.
        let bytes = encode(&sample(), b"");
        assert!(
            bytes.windows(11).any(|w| w == b"\x0atext/plain"),
            "{bytes:?}"
        );
        // ECE1 wrote UTF-8 values as JSON strings.
        let text = encode_ece1(&sample(), b"");
        let json = String::from_utf8_lossy(&text);
        assert!(json.contains(r#"["content-type","text/plain"]"#), "{json}");
    }

    #[test]
    fn entries_written_by_the_previous_version_still_decode() {
        for value in [sample(), sample_vary(), bench_entry()] {
            let (decoded, body) = decode(&encode_ece1(&value, b"hello")).unwrap();
            assert_eq!(decoded, value);
            assert_eq!(body, b"hello");
        }
        let old = r#"{"Response":{"key":"http://h/p","status":200,"headers":[["content-type","text/plain"]],"request_time_us":1,"response_time_ms":2,"initial_age_ms":0,"lifetime_ms":60000,"tags":["a"]}}"#;
        assert_eq!(
            decode(&encode_json(old, b"hello")).unwrap(),
            (sample(), b"hello".to_vec())
        );
    }

    #[test]
    fn entries_written_with_byte_arrays_still_decode() {
        let old = r#"{"Response":{"key":"http://h/p","status":200,"headers":[["content-type",[116,101,120,116,47,112,108,97,105,110]]],"request_time_us":1,"response_time_ms":2,"initial_age_ms":0,"lifetime_ms":60000,"tags":["a"]}}"#;
        let (value, body) = decode(&encode_json(old, b"hello")).unwrap();
        assert_eq!(value, sample());
        assert_eq!(body, b"hello");
    }
}
