//! The stored-entry codec (bytes from the key-value store, which another
//! version or another application may have written): decoding any bytes is
//! an error or a value, never a panic; encode → decode round-trips; a cut
//! or flipped value is rejected.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use edge_cache::fuzzing::entry::{
    ChunkLayout, ChunkSet, Coding, Encodings, EntryMeta, StoredValue, VaryIndex, decode, encode,
};
use edge_cache::fuzzing::header_list::from_pairs;
use edge_cache::fuzzing::invalidation::PurgeTimes;
use libfuzzer_sys::fuzz_target;

fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<StoredValue> {
    Ok(if bool::arbitrary(u)? {
        let mut meta = EntryMeta {
            key: String::arbitrary(u)?,
            status: u16::arbitrary(u)?,
            headers: Vec::arbitrary(u)?,
            request_time_us: u64::arbitrary(u)?,
            response_time_ms: u64::arbitrary(u)?,
            initial_age_ms: u64::arbitrary(u)?,
            lifetime_ms: u64::arbitrary(u)?,
            tags: Vec::arbitrary(u)?,
            chunks: match bool::arbitrary(u)? {
                true => Some(ChunkLayout {
                    length: u64::arbitrary(u)?,
                    chunk_bytes: u32::arbitrary(u)?,
                    generation: u64::arbitrary(u)?,
                }),
                false => None,
            },
            sliced: match bool::arbitrary(u)? {
                true => Some(ChunkSet(Vec::arbitrary(u)?)),
                false => None,
            },
            encodings: None,
        };
        // Only a chunked object is stored by slices.
        if meta.chunks.is_none() {
            meta.sliced = None;
        }
        StoredValue::Response(meta)
    } else {
        StoredValue::Vary(VaryIndex {
            key: String::arbitrary(u)?,
            names: Vec::arbitrary(u)?,
            epoch: u64::arbitrary(u)?,
            variants: Vec::arbitrary(u)?,
        })
    })
}

/// Frames `meta` and `body` the way `encode` does, with a valid checksum,
/// so arbitrary metadata reaches the metadata decoders (`ECE2`: postcard;
/// `ECE1`, still read: JSON).
fn frame(magic: &[u8; 4], meta: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(body);
    let checksum = blake3_16(&out);
    out.extend_from_slice(&checksum);
    out
}

fn blake3_16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// What the flow does with a decoded value.
fn use_value(value: &StoredValue, body: &[u8]) {
    match value {
        StoredValue::Response(meta) => {
            let headers = from_pairs(&meta.headers);
            assert!(headers.len() <= meta.headers.len());
            let _ = body.len() as u64;
        }
        StoredValue::Vary(index) => {
            let _ = index.variants.len();
        }
    }
}

fn round_trips(value: &StoredValue, body: &[u8]) {
    let bytes = encode(value, body);
    let (decoded, decoded_body) = decode(&bytes).expect("an encoded value decodes");
    assert_eq!(&decoded, value);
    assert_eq!(decoded_body, body);
}

fuzz_target!(|data: &[u8]| {
    // Raw store bytes.
    if let Ok((value, body)) = decode(data) {
        use_value(&value, &body);
        round_trips(&value, &body);
    }
    // Arbitrary metadata behind a valid frame.
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (meta, body) = data.split_at(split);
    for magic in [b"ECE2", b"ECE1"] {
        if let Ok((value, decoded_body)) = decode(&frame(magic, meta, body)) {
            assert_eq!(decoded_body, body);
            use_value(&value, &decoded_body);
            round_trips(&value, &decoded_body);
        }
    }
    // A structured value: round trip, and damage is detected.
    let mut u = Unstructured::new(data);
    if let Ok(mut value) = value(&mut u) {
        let body = u.take_rest();
        // A compressed object's codings cover its body exactly (decoding
        // refuses anything else); only bodies stored whole have them.
        if let StoredValue::Response(meta) = &mut value
            && meta.chunks.is_none()
            && data.len() % 3 == 0
        {
            let split = body.len() / 2;
            meta.encodings = Some(Encodings {
                identity_length: data.len() as u64,
                parts: vec![
                    (Coding::Br, split as u64),
                    (Coding::Gzip, (body.len() - split) as u64),
                ],
            });
        }
        round_trips(&value, body);
        let bytes = encode(&value, body);
        let at = data.len() % bytes.len();
        // A cut value is refused, unless the cut lands where the body
        // itself (origin bytes) carries a valid checksum of what precedes
        // it: then it is the same entry with a shorter body, which a store
        // never produces by truncating (the checksum detects accidents, it
        // does not authenticate).
        if let Ok((cut_value, cut_body)) = decode(&bytes[..at]) {
            assert_eq!(cut_value, value, "cut at {at}");
            assert!(body.starts_with(&cut_body), "cut at {at}");
        }
        let mut flipped = bytes.clone();
        flipped[at] ^= 1 << (data.len() % 8);
        assert!(decode(&flipped).is_err(), "bit flipped at {at}");
    }
    // The purge-time records beside the entries.
    let times = PurgeTimes::decode(Some(data));
    if data.len() == 16 {
        assert_eq!(&times.encode()[..], data);
    }
});
