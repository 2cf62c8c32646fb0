//! Objects the edge compresses (`policy::compression`): packed in every
//! stored coding at fill, and at answer the representation the client
//! accepts cut out of them, or the original bytes decoded for a client
//! that accepts none.
//!
//! Validators follow RFC 9110 §8.8.3: a compressed representation is not
//! the origin's bytes, so a strong `ETag` is sent weak with it (`W/"x"`,
//! as nginx does), which still matches `If-None-Match` by weak comparison
//! and never satisfies an `If-Range`; the decoded original keeps the
//! origin's validator. Ranges are only cut from the original bytes.

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, ETAG, RANGE, VARY};
use http::{HeaderMap, HeaderValue, Method};

use crate::flow::answer::finish;
use crate::http::content_coding::{Coding, DecodeFailure};
use crate::policy::cache_status::CacheStatus;
use crate::policy::compression::{STORED_CODINGS, choose_coding};
use crate::policy::vary::VaryNames;
use crate::seams::{Body, ClientRequest, Response};
use crate::store::entry::Encodings;

/// `body` compressed in each stored coding that makes it smaller, packed
/// one after another; `None` when none does (it is stored as it is).
pub(crate) fn pack(body: &[u8]) -> Option<(Bytes, Encodings)> {
    let mut packed = Vec::new();
    let mut parts = Vec::new();
    for coding in STORED_CODINGS {
        if let Some(encoded) = coding.compress(body)
            && encoded.len() < body.len()
        {
            parts.push((coding, encoded.len() as u64));
            packed.extend_from_slice(&encoded);
        }
    }
    (!parts.is_empty()).then(|| {
        let encodings = Encodings {
            identity_length: body.len() as u64,
            parts,
        };
        (Bytes::from(packed), encodings)
    })
}

/// The representation of the packed `body` that `request` gets: `headers`
/// (the stored object's) made to describe it, and its bytes. `original`,
/// where the caller still has the bytes `body` was packed from, saves
/// decoding them.
pub(crate) fn representation(
    request: &ClientRequest,
    headers: &mut HeaderMap,
    body: &Bytes,
    encodings: &Encodings,
    original: Option<&Bytes>,
) -> Result<Bytes, DecodeFailure> {
    // The answer depends on Accept-Encoding, whichever is chosen.
    let varies = match VaryNames::of(headers) {
        VaryNames::None => false,
        VaryNames::Star => true,
        VaryNames::Names(names) => names.iter().any(|n| n == "accept-encoding"),
    };
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    headers.remove(CONTENT_LENGTH);
    let wants_range = request.method == Method::GET && request.headers.contains_key(RANGE);
    let available: Vec<Coding> = encodings.codings().collect();
    let chosen = match wants_range {
        true => None,
        false => choose_coding(&request.headers, &available),
    };
    if let Some(coding) = chosen {
        let range = encodings
            .range_of(coding, body.len())
            .ok_or(DecodeFailure::WrongLength)?;
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        weaken_etag(headers);
        return Ok(body.slice(range));
    }
    if let Some(original) = original {
        return Ok(original.clone());
    }
    // The cheapest to decode: gzip where stored.
    let coding = available
        .iter()
        .copied()
        .find(|c| *c == Coding::Gzip)
        .or(available.first().copied())
        .ok_or(DecodeFailure::WrongLength)?;
    let range = encodings
        .range_of(coding, body.len())
        .ok_or(DecodeFailure::WrongLength)?;
    let decoded = coding.decompress(&body[range], encodings.identity_length)?;
    Ok(Bytes::from(decoded))
}

/// Makes a strong `ETag` weak (`"x"` → `W/"x"`).
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(strong) = headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with('"'))
    else {
        return;
    };
    if let Ok(weak) = HeaderValue::from_str(&format!("W/{strong}")) {
        headers.insert(ETAG, weak);
    }
}

/// The answer when a stored object's codings do not decode. Unreachable
/// in practice (the value's checksum held and the edge wrote the codings
/// itself), and never answered with bytes the client did not ask for.
pub(crate) fn undecodable(status: &CacheStatus) -> Response {
    let status = status.clone().with_detail("undecodable-entry");
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let body = Body::from(&b"the stored object could not be decoded\n"[..]);
    finish(500, headers, body, None, &status, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn request(fields: &[(&str, &str)]) -> ClientRequest {
        ClientRequest {
            method: Method::GET,
            path_and_query: "/page".into(),
            headers: headers(fields),
            connection: Default::default(),
            body: Body::empty(),
        }
    }

    fn page() -> Vec<u8> {
        (0..500)
            .flat_map(|i| format!("<p>paragraph {i} of the page</p>\n").into_bytes())
            .collect()
    }

    #[test]
    fn each_client_gets_its_coding_and_one_that_takes_none_the_original() {
        let page = page();
        let (packed, encodings) = pack(&page).unwrap();
        assert_eq!(
            encodings.codings().collect::<Vec<_>>(),
            vec![Coding::Br, Coding::Gzip]
        );
        let stored = headers(&[("content-type", "text/html"), ("etag", "\"v1\"")]);
        for (accept, coding) in [
            (Some("gzip, br"), Some(Coding::Br)),
            (Some("gzip"), Some(Coding::Gzip)),
            (None, None),
        ] {
            let fields: Vec<(&str, &str)> =
                accept.map(|a| ("accept-encoding", a)).into_iter().collect();
            let mut out = stored.clone();
            let body =
                representation(&request(&fields), &mut out, &packed, &encodings, None).unwrap();
            assert_eq!(out["vary"], "Accept-Encoding");
            match coding {
                Some(coding) => {
                    assert_eq!(out["content-encoding"], coding.token());
                    assert_eq!(out["etag"], "W/\"v1\"");
                    assert_eq!(coding.decompress(&body, page.len() as u64).unwrap(), page);
                }
                None => {
                    assert!(!out.contains_key("content-encoding"));
                    assert_eq!(out["etag"], "\"v1\"");
                    assert_eq!(body, page);
                }
            }
        }
    }

    #[test]
    fn a_range_is_cut_from_the_original_and_vary_is_not_repeated() {
        let page = page();
        let (packed, encodings) = pack(&page).unwrap();
        let mut out = headers(&[("vary", "accept-encoding, cookie")]);
        let ranged = request(&[("accept-encoding", "br"), ("range", "bytes=0-9")]);
        let body = representation(&ranged, &mut out, &packed, &encodings, None).unwrap();
        assert_eq!(body, page);
        assert!(!out.contains_key("content-encoding"));
        assert_eq!(out.get_all("vary").iter().count(), 1);
    }

    #[test]
    fn what_does_not_shrink_is_not_packed() {
        assert!(pack(b"x").is_none());
    }
}
