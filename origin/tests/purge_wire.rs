//! The origin's purge payloads are accepted by the edge's own parser: the
//! two sides share `purge-wire`, and this proves the bytes agree too.

use edge_cache::purge::parse_purge_post;
use origin::catalog::invalidation;
use origin::outbox::{PendingRow, coalesce};

fn row(id: i64) -> PendingRow {
    PendingRow {
        id,
        purge: invalidation(id),
        attempts: 0,
        next_attempt_at_ms: 0,
    }
}

#[test]
fn what_the_purge_worker_sends_the_edge_accepts() {
    // The worker sends coalesced rows as JSON (purge_worker.rs).
    let rows: Vec<PendingRow> = (1..=50).map(row).collect();
    let (merged, used) = coalesce(&rows);
    assert_eq!(used, 50);
    let body = serde_json::to_vec(&merged).unwrap();
    let parsed = parse_purge_post(&http::Method::POST, &body, "shop.example")
        .unwrap_or_else(|refusal| panic!("edge refused the origin's purge: {refusal:?}"));
    let targets: Vec<&str> = parsed.urls.iter().map(|u| u.target.as_str()).collect();
    assert_eq!(targets, merged.urls);
    assert_eq!(parsed.tags, merged.tags);
    assert!(!parsed.all && !parsed.soft);
}

#[test]
fn a_coalesced_batch_never_exceeds_what_the_edge_takes() {
    let rows: Vec<PendingRow> = (1..=2000).map(row).collect();
    let (merged, used) = coalesce(&rows);
    assert!(used < rows.len());
    let body = serde_json::to_vec(&merged).unwrap();
    assert!(
        body.len() <= edge_cache::purge::MAX_BODY_BYTES,
        "{} bytes",
        body.len()
    );
    assert!(parse_purge_post(&http::Method::POST, &body, "shop.example").is_ok());
}
