//! The purge outbox: invalidation intents committed in the same
//! transaction as the write that needs them, delivered later by the purge
//! worker, in order, at least once.

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::error::{Error, Result};

pub use purge_wire::{MAX_TARGETS, PurgeBody};

/// Adds `other`'s targets to `into` that are not there yet, keeping
/// first-seen order.
fn absorb(into: &mut PurgeBody, other: &PurgeBody) {
    for (mine, theirs) in [
        (&mut into.urls, &other.urls),
        (&mut into.tags, &other.tags),
        (&mut into.prefixes, &other.prefixes),
    ] {
        for target in theirs {
            if !mine.contains(target) {
                mine.push(target.clone());
            }
        }
    }
    into.all |= other.all;
}

/// An undelivered row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// Row id: the delivery order.
    pub id: i64,
    /// What to purge.
    pub purge: PurgeBody,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt_at_ms: i64,
}

/// Records a purge intent; call inside the write's transaction.
pub fn enqueue(conn: &Connection, purge: &PurgeBody, now_ms: i64) -> Result<i64> {
    let payload =
        serde_json::to_string(purge).map_err(|source| Error::OutboxPayload { id: 0, source })?;
    conn.execute(
        "INSERT INTO outbox (payload, created_at_ms, next_attempt_at_ms) VALUES (?1, ?2, ?2)",
        params![payload, now_ms],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The oldest undelivered rows, oldest first.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<PendingRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, payload, attempts, next_attempt_at_ms FROM outbox
         WHERE delivered_at_ms IS NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = statement.query_map([limit as i64], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, u32>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, payload, attempts, next_attempt_at_ms) = row?;
        let purge =
            serde_json::from_str(&payload).map_err(|source| Error::OutboxPayload { id, source })?;
        out.push(PendingRow {
            id,
            purge,
            attempts,
            next_attempt_at_ms,
        });
    }
    Ok(out)
}

/// Merges a prefix of `rows` (oldest first) into one purge of at most
/// [`MAX_TARGETS`] targets; returns it and how many rows it covers (at
/// least one, so an oversized row is still attempted on its own).
pub fn coalesce(rows: &[PendingRow]) -> (PurgeBody, usize) {
    let mut merged = PurgeBody::default();
    let mut used = 0;
    for row in rows {
        let mut candidate = merged.clone();
        absorb(&mut candidate, &row.purge);
        if used > 0 && candidate.targets() > MAX_TARGETS {
            break;
        }
        merged = candidate;
        used += 1;
    }
    (merged, used)
}

/// Marks rows acknowledged by the edge.
pub fn mark_delivered(conn: &mut Connection, ids: &[i64], now_ms: i64) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut statement = tx.prepare_cached(
            "UPDATE outbox SET delivered_at_ms = ?2, last_error = NULL WHERE id = ?1",
        )?;
        for id in ids {
            statement.execute(params![id, now_ms])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Records a failed delivery of rows: their attempt count and when to try
/// again.
pub fn record_failure(
    conn: &mut Connection,
    ids: &[i64],
    next_attempt_at_ms: i64,
    error: &str,
) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut statement = tx.prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at_ms = ?2, last_error = ?3
             WHERE id = ?1",
        )?;
        for id in ids {
            statement.execute(params![id, next_attempt_at_ms, error])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The outbox at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStatus {
    /// Rows not yet acknowledged.
    pub pending: u64,
    /// Every row with an id at or below this has been delivered.
    pub delivered_through: i64,
    /// The newest row's id (0 when empty).
    pub last_id: i64,
    /// Failed attempts of the oldest pending row.
    pub head_attempts: u32,
    /// The oldest pending row's last delivery error.
    pub last_error: Option<String>,
}

/// Reads the outbox's state.
pub fn status(conn: &Connection) -> Result<OutboxStatus> {
    let last_id: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) FROM outbox", [], |r| r.get(0))?;
    let pending: u64 = conn.query_row(
        "SELECT count(*) FROM outbox WHERE delivered_at_ms IS NULL",
        [],
        |r| r.get(0),
    )?;
    let head = conn.query_row(
        "SELECT id, attempts, last_error FROM outbox WHERE delivered_at_ms IS NULL
         ORDER BY id LIMIT 1",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, r.get(2)?)),
    );
    let (delivered_through, head_attempts, last_error) = match head {
        Ok((id, attempts, error)) => (id - 1, attempts, error),
        Err(rusqlite::Error::QueryReturnedNoRows) => (last_id, 0, None),
        Err(e) => return Err(e.into()),
    };
    Ok(OutboxStatus {
        pending,
        delivered_through,
        last_id,
        head_attempts,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge(urls: &[&str], tags: &[&str]) -> PurgeBody {
        PurgeBody {
            urls: urls.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn row(id: i64, p: PurgeBody) -> PendingRow {
        PendingRow {
            id,
            purge: p,
            attempts: 0,
            next_attempt_at_ms: 0,
        }
    }

    #[test]
    fn serialises_as_the_edge_expects() {
        assert_eq!(
            serde_json::to_string(&purge(&["/products/1"], &["product:1", "home"])).unwrap(),
            r#"{"urls":["/products/1"],"tags":["product:1","home"]}"#
        );
        let all = PurgeBody {
            all: true,
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&all).unwrap(), r#"{"all":true}"#);
    }

    #[test]
    fn coalescing_unions_targets_in_order() {
        let rows = [
            row(1, purge(&["/products/1"], &["product:1", "home"])),
            row(2, purge(&["/products/2"], &["product:2", "home"])),
            row(3, purge(&["/products/1"], &["product:1"])),
        ];
        let (merged, used) = coalesce(&rows);
        assert_eq!(used, 3);
        assert_eq!(merged.urls, ["/products/1", "/products/2"]);
        assert_eq!(merged.tags, ["product:1", "home", "product:2"]);
    }

    #[test]
    fn coalescing_stops_at_the_edge_limit_but_always_takes_one_row() {
        let tags = |from: usize, n: usize| -> Vec<String> {
            (from..from + n).map(|i| format!("t{i}")).collect()
        };
        let big = |from, n| PurgeBody {
            tags: tags(from, n),
            ..Default::default()
        };
        let rows = [
            row(1, big(0, 600)),
            row(2, big(600, 600)),
            row(3, big(0, 1)),
        ];
        let (merged, used) = coalesce(&rows);
        assert_eq!((merged.targets(), used), (600, 1));
        let (merged, used) = coalesce(&[row(1, big(0, 1200))]);
        assert_eq!((merged.targets(), used), (1200, 1));
    }

    #[test]
    fn status_follows_delivery_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations::migrate(&mut conn).unwrap();
        assert_eq!(status(&conn).unwrap(), OutboxStatus::default());
        let a = enqueue(&conn, &purge(&["/a"], &[]), 10).unwrap();
        let b = enqueue(&conn, &purge(&["/b"], &[]), 11).unwrap();
        record_failure(&mut conn, &[a, b], 500, "edge down").unwrap();
        let s = status(&conn).unwrap();
        assert_eq!((s.pending, s.delivered_through, s.last_id), (2, 0, b));
        assert_eq!(s.head_attempts, 1);
        assert_eq!(s.last_error.as_deref(), Some("edge down"));
        let rows = pending(&conn, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].next_attempt_at_ms, 500);
        mark_delivered(&mut conn, &[a], 600).unwrap();
        let s = status(&conn).unwrap();
        assert_eq!((s.pending, s.delivered_through), (1, a));
        mark_delivered(&mut conn, &[b], 600).unwrap();
        let s = status(&conn).unwrap();
        assert_eq!((s.pending, s.delivered_through, s.last_error), (0, b, None));
        assert!(pending(&conn, 10).unwrap().is_empty());
    }
}
