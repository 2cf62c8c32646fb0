//! Large objects in pieces: a stored response longer than one entry holds
//! keeps its metadata in its head entry, with a [`ChunkLayout`], and its
//! body in chunks of `chunk_bytes` under keys of the fill's generation.
//!
//! Each chunk is its own checked value: a magic, the generation and index
//! it was written as, its bytes and a checksum over all of them. A chunk
//! read back is used only if all of that matches, so a torn, foreign,
//! misfiled or stale chunk can never put a wrong byte in an answer. (A
//! checksum over the whole object could only be checked after its last
//! byte had gone out; per-chunk checks catch a bad chunk before any of it
//! is sent.) The checksum is XXH3-64: it guards against corruption (a
//! torn write, bit rot in a store's file), not forgery (whoever can write
//! the store can write the head too), and it runs at memory speed in Wasm
//! where BLAKE3 cost half of every large hit. Purges and versions act on
//! the head: a chunk is reachable
//! only through the head that names its generation, and chunks no head
//! names any more are left to the store's eviction.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How a chunked object's body is laid out in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLayout {
    /// The whole body's length in bytes.
    pub length: u64,
    /// Each chunk's length but the last's.
    pub chunk_bytes: u32,
    /// Distinguishes this fill's chunks from any other fill's.
    pub generation: u64,
}

impl ChunkLayout {
    /// How many chunks the body has.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.length.div_ceil(u64::from(self.chunk_bytes.max(1)))
    }

    /// The chunk holding byte `offset`.
    pub(crate) fn index_of(&self, offset: u64) -> u64 {
        offset / u64::from(self.chunk_bytes.max(1))
    }

    /// Where chunk `index` starts in the body.
    pub(crate) fn start_of(&self, index: u64) -> u64 {
        index * u64::from(self.chunk_bytes)
    }

    /// How long chunk `index` is.
    pub(crate) fn length_of(&self, index: u64) -> u64 {
        let start = self.start_of(index);
        self.length
            .saturating_sub(start)
            .min(u64::from(self.chunk_bytes))
    }
}

/// Which chunks of an object stored by slices (ranges fetched from the
/// origin as clients asked for them, `flow::slice`) are in the store: one
/// bit per chunk. An object stored whole has none: all its chunks are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSet(pub Vec<u8>);

impl ChunkSet {
    /// Whether chunk `index` is stored.
    pub fn has(&self, index: u64) -> bool {
        let (byte, bit) = ((index / 8) as usize, index % 8);
        self.0.get(byte).is_some_and(|b| b & (1 << bit) != 0)
    }

    /// Records chunk `index` as stored.
    pub fn insert(&mut self, index: u64) {
        let (byte, bit) = ((index / 8) as usize, index % 8);
        if self.0.len() <= byte {
            self.0.resize(byte + 1, 0);
        }
        self.0[byte] |= 1 << bit;
    }

    /// Records every chunk `other` records as stored too.
    pub fn extend(&mut self, other: &ChunkSet) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine |= theirs;
        }
    }

    /// Whether chunks `first..=last` are all stored.
    pub fn has_all(&self, first: u64, last: u64) -> bool {
        (first..=last).all(|index| self.has(index))
    }
}

/// ECC1 chunks (BLAKE3-checked) read back as damaged: a miss that
/// refetches them, never a wrong byte.
const CHUNK_MAGIC: &[u8; 4] = b"ECC2";
const HEADER_LEN: usize = 4 + 8 + 8;
const CHECKSUM_LEN: usize = 8;

/// A chunk being written: its stored form, filled as the body's bytes
/// arrive (each byte is copied once, into it).
pub(crate) struct ChunkFrame(Vec<u8>);

impl ChunkFrame {
    /// Chunk `index` of `generation`, with room for `capacity` bytes.
    pub(crate) fn new(generation: u64, index: u64, capacity: usize) -> ChunkFrame {
        let mut frame = Vec::with_capacity(HEADER_LEN + capacity + CHECKSUM_LEN);
        frame.extend_from_slice(CHUNK_MAGIC);
        frame.extend_from_slice(&generation.to_be_bytes());
        frame.extend_from_slice(&index.to_be_bytes());
        ChunkFrame(frame)
    }

    /// Appends body bytes.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// How many body bytes it holds.
    pub(crate) fn len(&self) -> usize {
        self.0.len() - HEADER_LEN
    }

    /// The value to store: magic, generation, index, bytes, checksum.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let checksum = chunk_checksum(&self.0);
        self.0.extend_from_slice(&checksum);
        self.0
    }
}

/// The checksum a chunk's stored form ends with.
fn chunk_checksum(content: &[u8]) -> [u8; CHECKSUM_LEN] {
    xxhash_rust::xxh3::xxh3_64(content).to_be_bytes()
}

/// Chunk `index` of `generation` as stored.
#[cfg(test)]
pub(crate) fn encode_chunk(generation: u64, index: u64, bytes: &[u8]) -> Vec<u8> {
    let mut frame = ChunkFrame::new(generation, index, bytes.len());
    frame.extend(bytes);
    frame.finish()
}

/// A stored chunk's bytes, if `value` is exactly chunk `index` of
/// `layout`'s generation, whole and unaltered.
pub(crate) fn decode_chunk(layout: &ChunkLayout, index: u64, value: Vec<u8>) -> Option<Bytes> {
    let expected = usize::try_from(layout.length_of(index)).ok()?;
    if value.len() != HEADER_LEN + expected + CHECKSUM_LEN || &value[..4] != CHUNK_MAGIC {
        return None;
    }
    let (content, checksum) = value.split_at(value.len() - CHECKSUM_LEN);
    let number = |at: usize| u64::from_be_bytes(content[at..at + 8].try_into().unwrap_or_default());
    if number(4) != layout.generation || number(12) != index || chunk_checksum(content) != *checksum
    {
        return None;
    }
    let mut bytes = Bytes::from(value);
    bytes.truncate(HEADER_LEN + expected);
    Some(bytes.slice(HEADER_LEN..))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: ChunkLayout = ChunkLayout {
        length: 10,
        chunk_bytes: 4,
        generation: 7,
    };

    #[test]
    fn the_layout_counts_and_places_chunks() {
        assert_eq!(LAYOUT.count(), 3);
        assert_eq!(
            (0..3).map(|i| LAYOUT.length_of(i)).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        assert_eq!(
            (LAYOUT.index_of(3), LAYOUT.index_of(4), LAYOUT.index_of(9)),
            (0, 1, 2)
        );
        assert_eq!(LAYOUT.start_of(2), 8);
        let exact = ChunkLayout {
            length: 8,
            ..LAYOUT
        };
        assert_eq!(exact.count(), 2);
    }

    #[test]
    fn a_chunk_set_records_which_chunks_are_stored() {
        let mut set = ChunkSet::default();
        assert!(!set.has(0) && !set.has(1000));
        for index in [0, 3, 4, 5, 17] {
            set.insert(index);
        }
        assert!(set.has(0) && set.has(17) && !set.has(1) && !set.has(16));
        assert!(set.has_all(3, 5) && !set.has_all(2, 5) && !set.has_all(5, 17));
        assert_eq!(set.0.len(), 3);
        let mut other = ChunkSet::default();
        other.insert(1);
        other.insert(40);
        other.extend(&set);
        assert!(other.has(1) && other.has(40) && other.has_all(3, 5) && other.has(17));
        assert!(!other.has(2) && !other.has(39));
    }

    #[test]
    fn a_chunk_reads_back_only_as_itself() {
        let stored = encode_chunk(7, 2, b"ij");
        assert_eq!(
            decode_chunk(&LAYOUT, 2, stored.clone()).unwrap(),
            &b"ij"[..]
        );
        // Another index, another generation, another length: refused.
        assert_eq!(decode_chunk(&LAYOUT, 1, stored.clone()), None);
        let other_fill = ChunkLayout {
            generation: 8,
            ..LAYOUT
        };
        assert_eq!(decode_chunk(&other_fill, 2, stored.clone()), None);
        let longer = ChunkLayout {
            length: 11,
            ..LAYOUT
        };
        assert_eq!(decode_chunk(&longer, 2, stored.clone()), None);
        // Any flipped bit, any truncation: refused.
        for bit in 0..stored.len() * 8 {
            let mut flipped = stored.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_chunk(&LAYOUT, 2, flipped), None, "bit {bit}");
        }
        for len in 0..stored.len() {
            assert_eq!(decode_chunk(&LAYOUT, 2, stored[..len].to_vec()), None);
        }
    }
}
