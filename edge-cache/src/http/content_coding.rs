//! Content codings (RFC 9110 §8.4.1): their tokens, and compressing and
//! decompressing whole bodies in the two the edge produces, Brotli and
//! gzip. Whole bodies only: the edge compresses what it stores whole (at
//! most one store value), so each call is bounded by that size.

use std::io::{Read, Write};

/// A content coding the edge knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    /// `br` (RFC 7932).
    Br,
    /// `zstd` (RFC 8878): recognised in `Accept-Encoding`, never produced.
    Zstd,
    /// `gzip` (RFC 1952).
    Gzip,
}

/// Brotli quality at fill: 5 is where its ratio on web text passes
/// gzip -9 by about a fifth while it still compresses at tens of MB/s
/// (Cloudflare serves quality 4 on the fly; a fill pays once per object).
const BROTLI_QUALITY: u32 = 5;
/// Brotli window (log2 bytes): 22 is the format's default, 4 MiB, far
/// above any body compressed here.
const BROTLI_WINDOW: u32 = 22;
/// gzip level at fill: zlib's default, 6 (nginx's `gzip_comp_level` is 1
/// because it compresses on every request; a fill pays once).
const GZIP_LEVEL: u32 = 6;

impl Coding {
    /// The token as `Content-Encoding` and `Accept-Encoding` spell it.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding a token names (case-insensitive; `x-gzip` is gzip,
    /// RFC 9110 §8.4.1.3).
    pub fn of_token(token: &str) -> Option<Coding> {
        let token = token.trim();
        [Coding::Br, Coding::Zstd, Coding::Gzip]
            .into_iter()
            .find(|coding| token.eq_ignore_ascii_case(coding.token()))
            .or_else(|| token.eq_ignore_ascii_case("x-gzip").then_some(Coding::Gzip))
    }

    /// `body` in this coding; `None` for a coding the edge does not
    /// produce.
    pub fn compress(self, body: &[u8]) -> Option<Vec<u8>> {
        // Writing into a Vec cannot fail: the errors below are unreachable,
        // and answered as "not compressed" rather than a panic.
        match self {
            Coding::Br => {
                let mut out = Vec::with_capacity(body.len() / 3 + 64);
                let mut writer =
                    brotli::CompressorWriter::new(&mut out, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
                writer.write_all(body).ok()?;
                writer.flush().ok()?;
                drop(writer);
                Some(out)
            }
            Coding::Gzip => {
                let out = Vec::with_capacity(body.len() / 3 + 64);
                let mut writer =
                    flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
                writer.write_all(body).ok()?;
                writer.finish().ok()
            }
            Coding::Zstd => None,
        }
    }

    /// `encoded` decoded, which must come to exactly `length` bytes; an
    /// error for anything else (a longer output is not decoded past
    /// `length` + 1, so nothing here allocates beyond what the caller
    /// expects).
    pub fn decompress(self, encoded: &[u8], length: u64) -> Result<Vec<u8>, DecodeFailure> {
        let limit = length.saturating_add(1);
        let mut out = Vec::with_capacity(usize::try_from(length).unwrap_or(0).min(1 << 24));
        let read = match self {
            Coding::Br => brotli::Decompressor::new(encoded, 4096)
                .take(limit)
                .read_to_end(&mut out),
            Coding::Gzip => flate2::read::GzDecoder::new(encoded)
                .take(limit)
                .read_to_end(&mut out),
            Coding::Zstd => return Err(DecodeFailure::Unsupported),
        };
        match read {
            Err(_) => Err(DecodeFailure::Malformed),
            Ok(_) if out.len() as u64 != length => Err(DecodeFailure::WrongLength),
            Ok(_) => Ok(out),
        }
    }
}

/// Why an encoded body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeFailure {
    #[error("the encoded body does not decode")]
    Malformed,
    #[error("the decoded body is not of the recorded length")]
    WrongLength,
    #[error("the edge does not decode this coding")]
    Unsupported,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<u8> {
        let mut page = b"<!doctype html><html><head><title>Products</title></head><body>".to_vec();
        for i in 0..2000 {
            page.extend_from_slice(
                format!("<li class=\"product\"><a href=\"/products/{i}\">Product {i}</a></li>\n")
                    .as_bytes(),
            );
        }
        page.extend_from_slice(b"</body></html>");
        page
    }

    #[test]
    fn each_produced_coding_round_trips_and_shrinks_text() {
        let page = page();
        for coding in [Coding::Br, Coding::Gzip] {
            let encoded = coding.compress(&page).unwrap();
            assert!(
                encoded.len() * 5 < page.len(),
                "{coding:?}: {}",
                encoded.len()
            );
            let decoded = coding.decompress(&encoded, page.len() as u64).unwrap();
            assert_eq!(decoded, page, "{coding:?}");
        }
        assert!(
            Coding::Br.compress(&page).unwrap().len() < Coding::Gzip.compress(&page).unwrap().len()
        );
        assert_eq!(Coding::Zstd.compress(&page), None);
    }

    #[test]
    fn gzip_is_a_real_gzip_stream() {
        let encoded = Coding::Gzip.compress(b"hello").unwrap();
        assert_eq!(&encoded[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn decoding_refuses_the_wrong_length_and_garbage_without_reading_past_it() {
        let page = page();
        let encoded = Coding::Gzip.compress(&page).unwrap();
        assert_eq!(
            Coding::Gzip.decompress(&encoded, 10),
            Err(DecodeFailure::WrongLength)
        );
        assert_eq!(
            Coding::Gzip.decompress(&encoded, page.len() as u64 + 5),
            Err(DecodeFailure::WrongLength)
        );
        assert_eq!(
            Coding::Br.decompress(b"not brotli at all", 5),
            Err(DecodeFailure::Malformed)
        );
        assert!(
            Coding::Gzip
                .decompress(&encoded[..encoded.len() / 2], page.len() as u64)
                .is_err()
        );
    }

    #[test]
    fn tokens() {
        assert_eq!(Coding::of_token(" BR "), Some(Coding::Br));
        assert_eq!(Coding::of_token("x-gzip"), Some(Coding::Gzip));
        assert_eq!(Coding::of_token("zstd"), Some(Coding::Zstd));
        assert_eq!(Coding::of_token("deflate"), None);
        assert_eq!(Coding::Gzip.token(), "gzip");
    }
}
