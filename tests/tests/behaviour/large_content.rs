//! Large content: bodies of any size stream through the component in
//! bounded memory, both ways, and a body that breaks off is never
//! answered as complete. Against the streaming origin (generated bodies:
//! the test process never holds a large body either).

use edge_tests::{
    Edge, EdgeSetup, FaultyStore, expected, join_all, ran_in_own_process, streaming_origin,
    upload_sum,
};
use std::sync::atomic::Ordering;
use std::time::Instant;

const MIB: u64 = 1024 * 1024;

/// What a download through the edge came to.
#[derive(Debug)]
struct Download {
    status: u16,
    cache_status: String,
    /// The bytes received, each checked against the pattern, or why the
    /// body ended early or wrong.
    body: Result<u64, String>,
    /// When its first body bytes arrived, and when it ended.
    first_byte: Option<Instant>,
    ended: Instant,
}

/// GETs `path` through `edge`, checking every byte as it arrives and
/// keeping none.
async fn download(edge: &Edge, path: &str) -> Download {
    download_range(edge, path, None).await
}

/// GETs `path` through `edge`, with a `Range` if given, checking every
/// byte as it arrives against the pattern at its offset (a `206`'s
/// offset is its `Content-Range`'s first byte), keeping none.
async fn download_range(edge: &Edge, path: &str, range: Option<&str>) -> Download {
    let mut request = reqwest::Client::new().get(edge.url(path));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let mut response = request.send().await.expect("response head");
    let status = response.status().as_u16();
    let first = response
        .headers()
        .get("content-range")
        .and_then(|v| {
            v.to_str()
                .ok()?
                .strip_prefix("bytes ")?
                .split('-')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0u64);
    let cache_status = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .unwrap_or_default();
    let mut received = 0u64;
    let mut first_byte = None;
    let body = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                first_byte.get_or_insert_with(Instant::now);
                let mut at = first + received;
                let right = chunk.chunks(64 * 1024).all(|piece| {
                    let same = piece == &expected(at, piece.len())[..];
                    at += piece.len() as u64;
                    same
                });
                if !right {
                    break Err(format!("wrong bytes after offset {}", first + received));
                }
                received = at - first;
            }
            Ok(None) => break Ok(received),
            Err(error) => break Err(format!("ended after {received} bytes: {error}")),
        }
    };
    Download {
        status,
        cache_status,
        body,
        first_byte,
        ended: Instant::now(),
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

/// The prefix of chunk keys in the store.
const CHUNKS: &str = "k:";

/// The chunk size the chunking edge is given.
const CHUNK_BYTES: u64 = 256 * 1024;

/// An edge whose rules store objects up to 512 MiB, over a store of
/// `capacity` it can look into.
async fn chunking_edge(origin: &str, capacity: u64) -> (Edge, FaultyStore) {
    let store = FaultyStore::with_capacity(capacity);
    let setup = EdgeSetup::origin(origin)
        .rules(r#"{ "rules": [ { "max_object_bytes": 536870912 } ] }"#)
        .variable("purge_token", "t0ken")
        .variable("chunk_bytes", &CHUNK_BYTES.to_string())
        .store(&store);
    (Edge::start(setup).await.expect("edge starts"), store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_object_is_stored_in_chunks_and_hit_with_one_origin_fetch() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 1024 * MIB).await;
    let size = 300 * MIB;
    let path = format!("/bytes/{size}");
    let first = download(&edge, &path).await;
    assert_eq!((first.status, &first.body), (200, &Ok(size)), "{first:?}");
    assert!(!first.cache_status.contains("hit"), "{first:?}");
    let second = download(&edge, &path).await;
    assert_eq!(
        (second.status, &second.body),
        (200, &Ok(size)),
        "{second:?}"
    );
    assert!(second.cache_status.contains("hit"), "{second:?}");
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 1);
    assert_eq!(store.keys_of(CHUNKS).await.len() as u64, size / CHUNK_BYTES);
}

#[tokio::test]
async fn ranges_are_answered_from_only_the_chunks_they_cover() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 64 * MIB).await;
    let size = 5 * MIB;
    let path = format!("/bytes/{size}");
    assert_eq!(download(&edge, &path).await.body, Ok(size));
    assert_eq!(store.keys_of(CHUNKS).await.len() as u64, size / CHUNK_BYTES);
    store.take_reads_of(CHUNKS);
    // Inside one chunk, across chunks, to the end, the last bytes.
    for (range, first, last) in [
        ("bytes=10-20", 10, 20),
        ("bytes=1500000-2100000", 1_500_000, 2_100_000),
        (
            &format!("bytes={}-", size - 1000) as &str,
            size - 1000,
            size - 1,
        ),
        ("bytes=-100", size - 100, size - 1),
    ] {
        let got = download_range(&edge, &path, Some(range)).await;
        assert_eq!(got.status, 206, "{range}: {got:?}");
        assert!(got.cache_status.contains("hit"), "{range}: {got:?}");
        assert_eq!(got.body, Ok(last - first + 1), "{range}: {got:?}");
        let covered = (last / CHUNK_BYTES - first / CHUNK_BYTES + 1) as usize;
        assert_eq!(store.take_reads_of(CHUNKS), covered, "{range}: chunks read");
    }
    let beyond = download_range(&edge, &path, Some(&format!("bytes={size}-"))).await;
    assert_eq!(beyond.status, 416, "{beyond:?}");
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_purge_makes_every_chunk_unreachable() {
    let origin = streaming_origin().await;
    let (edge, _store) = chunking_edge(&origin.url, 64 * MIB).await;
    let path = format!("/bytes/{}", 3 * MIB);
    download(&edge, &path).await;
    let hit = download_range(&edge, &path, Some("bytes=2000000-2000009")).await;
    assert!(hit.cache_status.contains("hit"), "{hit:?}");
    let purged = reqwest::Client::new()
        .post(edge.url("/_edge/purge"))
        .bearer_auth("t0ken")
        .body(format!(r#"{{"urls": ["{path}"]}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    // Not even a range of it is answered from the chunks stored before.
    let got = download_range(&edge, &path, Some("bytes=2000000-2000009")).await;
    assert!(!got.cache_status.contains("hit"), "{got:?}");
    assert!(got.body.is_ok(), "{got:?}");
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_missing_or_damaged_chunk_is_refetched_never_a_wrong_byte() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 64 * MIB).await;
    let size = 3 * MIB;
    let path = format!("/bytes/{size}");
    download(&edge, &path).await;
    // A damaged chunk in the middle: that answer is cut short, the next
    // one is fetched again, and no answer holds a wrong byte.
    let first_fill = store.keys_of(CHUNKS).await;
    let middle = first_fill
        .iter()
        .find(|key| key.ends_with(":3"))
        .expect("chunk 3");
    store.damage(middle).await;
    let cut = download(&edge, &path).await;
    assert!(cut.cache_status.contains("hit"), "{cut:?}");
    let error = cut.body.expect_err("a damaged chunk is never sent");
    assert!(error.starts_with("ended after"), "{error}");
    let again = download(&edge, &path).await;
    assert!(!again.cache_status.contains("hit"), "{again:?}");
    assert_eq!(again.body, Ok(size));
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 2);
    // The second fill's first chunk evicted: the next request is a miss
    // (found out before answering), answered whole.
    assert!(download(&edge, &path).await.cache_status.contains("hit"));
    let second_fill: Vec<String> = store
        .keys_of(CHUNKS)
        .await
        .into_iter()
        .filter(|key| !first_fill.contains(key))
        .collect();
    let first_chunk = second_fill
        .iter()
        .find(|key| key.ends_with(":0"))
        .expect("chunk 0");
    store.evict(first_chunk).await;
    let got = download(&edge, &path).await;
    assert!(got.cache_status.contains("detail=missing-chunk"), "{got:?}");
    assert_eq!(got.body, Ok(size));
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_fill_that_breaks_off_stores_nothing() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 64 * MIB).await;
    let size = 5 * MIB;
    let cut = download(&edge, &format!("/bytes/{size}?break_at={}", 3 * MIB)).await;
    assert!(cut.body.is_err(), "{cut:?}");
    let whole = download(&edge, &format!("/bytes/{size}?break_at={}", 3 * MIB)).await;
    assert!(!whole.cache_status.contains("hit"), "{whole:?}");
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 2);
    assert_eq!(store.keys_of("c:").await, Vec::<String>::new(), "no head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_requests_share_one_fill_each_streaming_as_it_arrives() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 256 * MIB).await;
    // 128 frames of 64 KiB, 16 ms apart: the fill takes about 2 s.
    let size = 8 * MIB;
    let path = format!("/bytes/{size}?pace_ms=16");
    let started = Instant::now();
    let clients = join_all((0..24).map(|_| download(&edge, &path))).await;
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 1, "one fill");
    let fill_ended = clients.iter().map(|c| c.ended).max().unwrap();
    let fill_time = fill_ended - started;
    for client in &clients {
        assert_eq!(
            (client.status, &client.body),
            (200, &Ok(size)),
            "{client:?}"
        );
        let first_byte = client.first_byte.expect("a body") - started;
        // Each one's bytes flow long before the fill is done.
        assert!(
            first_byte < fill_time / 3,
            "first byte after {first_byte:?}, fill took {fill_time:?}: {client:?}"
        );
    }
    let joined = clients
        .iter()
        .filter(|c| c.cache_status.contains("collapsed"))
        .count();
    assert_eq!(joined, clients.len() - 1, "{clients:?}");
    // Stored once, whole: the next request is a hit.
    let hit = download(&edge, &path).await;
    assert!(hit.cache_status.contains("hit"), "{hit:?}");
    assert_eq!(store.keys_of(CHUNKS).await.len() as u64, size / CHUNK_BYTES);
}

/// Whether a download was answered from the cache.
fn is_hit(download: &Download) -> bool {
    download.cache_status.contains("hit")
}

#[tokio::test]
async fn a_cold_range_costs_one_slice_and_later_ranges_reuse_it() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 256 * MIB).await;
    // The whole object would take the origin 16 s (1024 frames, 16 ms
    // each); one slice takes 4 frames.
    let size = 64 * MIB;
    let path = format!("/bytes/{size}?pace_ms=16");
    let sent = || origin.bytes_sent.load(Ordering::SeqCst);
    let range = |first: u64, last: u64| format!("bytes={first}-{last}");
    let at = 40 * MIB + 1000;
    let cold = download_range(&edge, &path, Some(&range(at, at + 999))).await;
    assert_eq!((cold.status, &cold.body), (206, &Ok(1000)), "{cold:?}");
    assert!(cold.cache_status.contains("stored"), "{cold:?}");
    assert_eq!(sent(), CHUNK_BYTES, "one slice fetched, not the object");
    assert_eq!(store.keys_of(CHUNKS).await.len(), 1);
    // Another range in the stored chunk: a hit.
    let again = download_range(&edge, &path, Some(&range(at + 5000, at + 9999))).await;
    assert_eq!((again.status, &again.body), (206, &Ok(5000)), "{again:?}");
    assert!(is_hit(&again), "{again:?}");
    assert_eq!(sent(), CHUNK_BYTES);
    // A range reaching into the next chunk fetches the slice it needs,
    // then both are stored.
    let chunk_end = 40 * MIB + CHUNK_BYTES - 1;
    let across = download_range(&edge, &path, Some(&range(chunk_end - 10, chunk_end + 10))).await;
    assert_eq!((across.status, &across.body), (206, &Ok(21)), "{across:?}");
    assert!(across.cache_status.contains("detail=partial"), "{across:?}");
    assert_eq!(sent(), 3 * CHUNK_BYTES);
    let both = download_range(&edge, &path, Some(&range(at, chunk_end + 100))).await;
    assert!(is_hit(&both), "{both:?}");
    assert_eq!(both.body, Ok(chunk_end + 100 - at + 1), "{both:?}");
    // An open-ended range from a stored chunk to the end needs the rest.
    let beyond = download_range(&edge, &path, Some(&format!("bytes={}-", size + 1))).await;
    assert_eq!(beyond.status, 416, "{beyond:?}");
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_partly_stored_object_is_filled_whole_for_a_whole_request() {
    let origin = streaming_origin().await;
    let (edge, _store) = chunking_edge(&origin.url, 64 * MIB).await;
    let size = 3 * MIB;
    let path = format!("/bytes/{size}");
    let part = download_range(&edge, &path, Some("bytes=1000-1999")).await;
    assert_eq!((part.status, &part.body), (206, &Ok(1000)), "{part:?}");
    let whole = download(&edge, &path).await;
    assert_eq!((whole.status, &whole.body), (200, &Ok(size)), "{whole:?}");
    assert!(whole.cache_status.contains("detail=partial"), "{whole:?}");
    // Stored whole now: every range and the whole are hits.
    for range in [None, Some("bytes=2000000-2999999"), Some("bytes=-10")] {
        let got = download_range(&edge, &path, range).await;
        assert!(is_hit(&got), "{range:?}: {got:?}");
        assert!(got.body.is_ok(), "{range:?}: {got:?}");
    }
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_default_largest_object_is_an_eighth_of_the_store_and_a_rule_stays_within_it() {
    let origin = streaming_origin().await;
    let store = FaultyStore::with_capacity(64 * MIB);
    let setup = EdgeSetup::origin(&origin.url)
        .variable("chunk_bytes", &CHUNK_BYTES.to_string())
        .store(&store);
    let edge = Edge::start(setup).await.expect("edge starts");
    // 64 MiB of store: objects up to 8 MiB are stored by default.
    for (size, stored) in [(8 * MIB, true), (8 * MIB + 1, false)] {
        let path = format!("/bytes/{size}");
        let first = download(&edge, &path).await;
        assert_eq!(first.body, Ok(size), "{first:?}");
        let second = download(&edge, &path).await;
        assert_eq!(is_hit(&second), stored, "{size}: {second:?}");
        if !stored {
            assert!(
                second.cache_status.contains("detail=too-large"),
                "{second:?}"
            );
        }
    }
    // A rule's own limit is kept, but not past the store's capacity.
    let store = FaultyStore::with_capacity(64 * MIB);
    let setup = EdgeSetup::origin(&origin.url)
        .rules(r#"{ "rules": [ { "max_object_bytes": 1073741824 } ] }"#)
        .variable("chunk_bytes", &CHUNK_BYTES.to_string())
        .store(&store);
    let edge = Edge::start(setup).await.expect("edge starts");
    for (size, stored) in [(40 * MIB, true), (64 * MIB + 1, false)] {
        let path = format!("/bytes/{size}");
        download(&edge, &path).await;
        let again = download(&edge, &path).await;
        assert_eq!(is_hit(&again), stored, "{size}: {again:?}");
    }
}

#[tokio::test]
async fn a_fill_whose_client_goes_away_is_finished_and_stored() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 256 * MIB).await;
    // 64 frames, 4 ms apart: the client is gone long before the end.
    let size = 4 * MIB;
    let path = format!("/bytes/{size}?pace_ms=4");
    let mut response = reqwest::get(edge.url(&path)).await.expect("head");
    assert!(response.chunk().await.expect("a piece").is_some());
    drop(response);
    // The head is written after the last chunk: the store says when.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while store.keys_of("c:").await.is_empty() {
        assert!(Instant::now() < deadline, "the fill was never finished");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = download(&edge, &path).await;
    assert!(is_hit(&again), "{again:?}");
    assert_eq!(again.body, Ok(size), "{again:?}");
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_hot_chunked_object_is_read_natively_byte_for_byte_without_the_component() {
    let origin = streaming_origin().await;
    let (edge, store) = chunking_edge(&origin.url, 64 * MIB).await;
    let size = 3 * MIB + 123;
    let path = format!("/bytes/{size}");
    // The fill, and the hit that lets this lane build its native node.
    for _ in 0..2 {
        assert_eq!(download(&edge, &path).await.body, Ok(size));
    }
    let before = edge.instance_stats().requests;
    let _ = store.take_reads_of(CHUNKS);
    for _ in 0..3 {
        let hit = download(&edge, &path).await;
        assert!(hit.cache_status.contains("hit"), "{hit:?}");
        assert_eq!(hit.body, Ok(size));
    }
    let ranged = download_range(&edge, &path, Some("bytes=1048570-1048580")).await;
    assert_eq!((ranged.status, ranged.body), (206, Ok(11)));
    // Every chunk of three whole reads, and the two a range across a
    // chunk boundary covers: nothing read twice, nothing more.
    let chunks = size.div_ceil(CHUNK_BYTES);
    assert_eq!(store.take_reads_of(CHUNKS) as u64, 3 * chunks + 2);
    assert_eq!(origin.byte_requests.load(Ordering::SeqCst), 1);
    if edge_tests::default_native_hits() {
        assert_eq!(
            edge.instance_stats().requests,
            before,
            "entered the component"
        );
    }
}
