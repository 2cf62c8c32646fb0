//! An origin of any size: bodies generated as they are sent and uploads
//! counted as they arrive, so that a test can move a gigabyte through the
//! edge while the test process holds a few blocks of it.
//!
//! - `GET /bytes/<n>`: `n` bytes of [`expected`]'s pattern, with
//!   `Content-Length` and `Cache-Control: max-age=3600`; the query may add
//!   `chunked` (no `Content-Length`), `break_at=<k>` (the body fails after
//!   `k` bytes: the connection is cut), `cc=<value>` (another
//!   `Cache-Control`) and `pace_ms=<t>` (each 64 KiB frame waits `t` ms,
//!   so that a fill takes a known time).
//!   Every `/bytes/` answer has `Accept-Ranges: bytes` and a strong `ETag`,
//!   and a `Range: bytes=a-b` (or `a-`) gets its `206`.
//! - `POST /upload`: reads the body to its end and answers
//!   `<bytes> <sum>`, the body's length and [`upload_sum`].
//! - anything else: `200 ok`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::net::TcpListener;

/// The pattern's period: a prime, so that a body shifted, truncated or
/// repeated by anything but a multiple of it does not match.
const PERIOD: usize = 65_521;

/// How much of the pattern one frame carries.
const FRAME: usize = 64 * 1024;

/// A running streaming origin; stops with the test's runtime.
pub struct StreamingOrigin {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests answered so far, by path prefix: `/bytes/…` ones.
    pub byte_requests: Arc<AtomicUsize>,
    /// Body bytes of `/bytes/…` answers sent so far.
    pub bytes_sent: Arc<AtomicU64>,
}

/// Starts a streaming origin on an ephemeral loopback port.
pub async fn streaming_origin() -> StreamingOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let byte_requests = Arc::new(AtomicUsize::new(0));
    let bytes_sent = Arc::new(AtomicU64::new(0));
    let counted = (byte_requests.clone(), bytes_sent.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| answer(request, counted.clone()));
                // A cut body ends its connection with an error: expected.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    StreamingOrigin {
        url,
        byte_requests,
        bytes_sent,
    }
}

async fn answer(
    request: Request<Incoming>,
    (byte_requests, bytes_sent): (Arc<AtomicUsize>, Arc<AtomicU64>),
) -> Result<Response<Pattern>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    if request.method() == hyper::Method::POST && path == "/upload" {
        let (bytes, sum) = count(request.into_body()).await;
        return Ok(Response::new(Pattern::text(format!("{bytes} {sum}"))));
    }
    let Some(length) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return Ok(Response::new(Pattern::text("ok".into())));
    };
    byte_requests.fetch_add(1, Ordering::SeqCst);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let chunked = query.split('&').any(|pair| pair == "chunked");
    let range = request
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok()?.strip_prefix("bytes=")?.split_once('-'))
        .and_then(|(a, b)| {
            let first = a.parse::<u64>().ok()?;
            let last = match b {
                "" => length - 1,
                b => b.parse::<u64>().ok()?.min(length - 1),
            };
            (first <= last).then_some((first, last))
        });
    let (sent, end) = range.map_or((0, length), |(first, last)| (first, last + 1));
    let body = Pattern {
        sent,
        length: end,
        counter: Some(bytes_sent),
        break_at: param("break_at").and_then(|k| k.parse().ok()),
        declared: !chunked,
        text: None,
        pace: param("pace_ms")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_millis),
        wait: None,
    };
    let cache_control = param("cc").unwrap_or_else(|| "max-age=3600".into());
    let mut response = Response::new(body);
    if let Some((first, last)) = range {
        *response.status_mut() = hyper::StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {first}-{last}/{length}");
        response
            .headers_mut()
            .insert("content-range", value.parse().expect("a field value"));
    }
    let etag = format!("\"{length}\"");
    response
        .headers_mut()
        .insert("etag", etag.parse().expect("a field value"));
    response
        .headers_mut()
        .insert("accept-ranges", "bytes".parse().expect("a field value"));
    response.headers_mut().insert(
        "cache-control",
        cache_control
            .replace("%3D", "=")
            .parse()
            .expect("a field value"),
    );
    Ok(response)
}

/// Reads an upload to its end: its length and [`upload_sum`].
async fn count(mut body: Incoming) -> (u64, u64) {
    let (mut bytes, mut sum) = (0u64, 0u64);
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            sum = upload_sum(sum, bytes, &data);
            bytes += data.len() as u64;
        }
    }
    (bytes, sum)
}

/// A running checksum of an upload: `data` arriving at `offset`, added to
/// `sum`. Position-dependent, so that reordered or repeated pieces change it.
pub fn upload_sum(sum: u64, offset: u64, data: &[u8]) -> u64 {
    data.iter().enumerate().fold(sum, |sum, (i, &byte)| {
        sum.wrapping_mul(31)
            .wrapping_add(u64::from(byte) ^ (offset + i as u64))
    })
}

/// The pattern's bytes from `offset` on, `len` of them (at most one
/// frame): what a correct body holds there.
pub fn expected(offset: u64, len: usize) -> Bytes {
    assert!(len <= FRAME, "compare at most one frame at a time");
    let start = (offset % PERIOD as u64) as usize;
    pattern().slice(start..start + len)
}

/// One period of the pattern and a frame more, made once: every frame
/// sent, and every comparison, is a slice of it.
fn pattern() -> &'static Bytes {
    static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..PERIOD + FRAME)
            .map(|i| ((i % PERIOD).wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect::<Vec<u8>>()
            .into()
    })
}

/// A generated body: the pattern (or a short text), sent in frames.
pub struct Pattern {
    sent: u64,
    length: u64,
    break_at: Option<u64>,
    declared: bool,
    text: Option<Bytes>,
    /// How long each frame waits before it is sent.
    pace: Option<Duration>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Where the bytes sent are counted.
    counter: Option<Arc<AtomicU64>>,
}

impl Pattern {
    fn text(text: String) -> Pattern {
        let length = text.len() as u64;
        Pattern {
            sent: 0,
            length,
            break_at: None,
            declared: true,
            text: Some(text.into()),
            pace: None,
            wait: None,
            counter: None,
        }
    }
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(pace) = self.pace {
            let wait = self
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(pace)));
            if wait.as_mut().poll(context).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
        if let Some(text) = self.text.take() {
            self.sent = self.length;
            return Poll::Ready(Some(Ok(Frame::data(text))));
        }
        if self.break_at.is_some_and(|at| self.sent >= at) {
            return Poll::Ready(Some(Err(std::io::Error::other("cut on purpose"))));
        }
        let end = self.break_at.unwrap_or(u64::MAX).min(self.length);
        if self.sent >= end {
            return Poll::Ready(None);
        }
        let len = (end - self.sent).min(FRAME as u64) as usize;
        let frame = expected(self.sent, len);
        self.sent += len as u64;
        if let Some(counter) = &self.counter {
            counter.fetch_add(len as u64, Ordering::SeqCst);
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.text.is_none() && self.sent >= self.length
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            true => SizeHint::with_exact(self.length - self.sent),
            false => SizeHint::default(),
        }
    }
}
