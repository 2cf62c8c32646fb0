//! Large content: bodies of any size stream through the component in
//! bounded memory, both ways, and a body that breaks off is never
//! answered as complete. Against the streaming origin (generated bodies:
//! the test process never holds a large body either).

use edge_tests::{
    Edge, EdgeSetup, expected, join_all, ran_in_own_process, streaming_origin, upload_sum,
};
use std::sync::atomic::Ordering;

const MIB: u64 = 1024 * 1024;

/// What a download through the edge came to.
#[derive(Debug)]
struct Download {
    status: u16,
    cache_status: String,
    /// The bytes received, each checked against the pattern, or why the
    /// body ended early or wrong.
    body: Result<u64, String>,
}

/// GETs `path` through `edge`, checking every byte as it arrives and
/// keeping none.
async fn download(edge: &Edge, path: &str) -> Download {
    let mut response = reqwest::get(edge.url(path)).await.expect("response head");
    let status = response.status().as_u16();
    let cache_status = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .unwrap_or_default();
    let mut received = 0u64;
    let body = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let mut at = received;
                let right = chunk.chunks(64 * 1024).all(|piece| {
                    let same = piece == &expected(at, piece.len())[..];
                    at += piece.len() as u64;
                    same
                });
                if !right {
                    break Err(format!("wrong bytes after offset {received}"));
                }
                received = at;
            }
            Ok(None) => break Ok(received),
            Err(error) => break Err(format!("ended after {received} bytes: {error}")),
        }
    };
    Download {
        status,
        cache_status,
        body,
    }
}

/// This process's resident memory and its peak so far, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .expect("a kB field")
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_passes_through_intact_with_memory_bounded() {
    // The peak is the process's: measured with no other test beside it.
    if ran_in_own_process() {
        return;
    }
    let origin = streaming_origin().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.url)).await.unwrap();
    // An instance exists and has served before the baseline is taken.
    assert_eq!(download(&edge, "/bytes/1000").await.body, Ok(1000));
    let (baseline, _) = memory();
    let gib = 1024 * MIB;
    let got = download(&edge, &format!("/bytes/{gib}")).await;
    let (_, peak) = memory();
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body, Ok(gib), "{got:?}");
    assert!(got.cache_status.contains("detail=too-large"), "{got:?}");
    let growth = peak.saturating_sub(baseline);
    println!(
        "1 GiB through the edge: peak RSS {} MiB over the baseline",
        growth / MIB
    );
    assert!(growth < 128 * MIB, "peak RSS grew {} MiB", growth / MIB);
}

#[tokio::test]
async fn a_body_that_breaks_off_mid_stream_aborts_the_client() {
    let origin = streaming_origin().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.url)).await.unwrap();
    let length = 3 * MIB;
    let cut = 2 * MIB;
    for framing in ["", "&chunked"] {
        let got = download(&edge, &format!("/bytes/{length}?break_at={cut}{framing}")).await;
        assert_eq!(got.status, 200, "{framing}: {got:?}");
        let error = got
            .body
            .expect_err("a cut body is not answered as complete");
        assert!(error.starts_with("ended after"), "{framing}: {error}");
    }
    // The edge goes on serving, and the whole body still passes.
    let whole = download(&edge, &format!("/bytes/{length}")).await;
    assert_eq!(whole.body, Ok(length), "{whole:?}");
}

#[tokio::test]
async fn a_small_body_that_breaks_off_is_a_502_and_stores_nothing() {
    let origin = streaming_origin().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.url)).await.unwrap();
    let cut = download(&edge, "/bytes/100000?break_at=50000").await;
    assert_eq!(cut.status, 502, "{cut:?}");
    let first = download(&edge, "/bytes/100000").await;
    assert_eq!(first.body, Ok(100_000), "{first:?}");
    assert!(!first.cache_status.contains("hit"), "{first:?}");
    let second = download(&edge, "/bytes/100000").await;
    assert!(second.cache_status.contains("hit"), "{second:?}");
    assert_eq!(second.body, Ok(100_000));
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_downloads_do_not_fail_small_requests_beside_them() {
    let origin = streaming_origin().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.url)).await.unwrap();
    let large = 200 * MIB;
    let path = format!("/bytes/{large}");
    let downloads = join_all((0..8).map(|_| download(&edge, &path)));
    let small = join_all((0..16).map(|_| download(&edge, "/bytes/1000")));
    let (downloads, small) = tokio::join!(downloads, small);
    for got in &downloads {
        assert_eq!((got.status, &got.body), (200, &Ok(large)), "{got:?}");
    }
    for got in &small {
        assert_eq!((got.status, &got.body), (200, &Ok(1000)), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_stream_to_the_origin_without_failing_small_requests() {
    let origin = streaming_origin().await;
    let edge = Edge::start(EdgeSetup::origin(&origin.url)).await.unwrap();
    let size = 16_000_000u64;
    let upload: bytes::Bytes = (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let sum = upload_sum(0, 0, &upload);
    let client = reqwest::Client::new();
    let uploads = join_all((0..12).map(|_| {
        let request = client.post(edge.url("/upload")).body(upload.clone());
        async move {
            let response = request.send().await.expect("upload answered");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    }));
    let small = join_all((0..16).map(|_| download(&edge, "/bytes/1000")));
    let (uploads, small) = tokio::join!(uploads, small);
    for (status, text) in &uploads {
        assert_eq!(
            (*status, text.as_str()),
            (200, format!("{size} {sum}").as_str())
        );
    }
    for got in &small {
        assert_eq!((got.status, &got.body), (200, &Ok(1000)), "{got:?}");
    }
}
