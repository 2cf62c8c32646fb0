//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Each migration runs in its own transaction together with the version
//! bump, so a crash leaves the database at a whole version. Migrations are
//! append-only: never edit one that has shipped.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The migrations in order; the database's version is how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the catalog and the purge outbox.
    r#"
    CREATE TABLE products (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT    NOT NULL,
        description   TEXT    NOT NULL,
        stock         INTEGER NOT NULL CHECK (stock >= 0),
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE product_prices (
        product_id   INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
        currency     TEXT    NOT NULL CHECK (currency IN ('USD', 'EUR', 'KRW')),
        amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
        PRIMARY KEY (product_id, currency)
    ) WITHOUT ROWID;
    -- When anything in the catalog last changed (deletes included): the
    -- Last-Modified of the pages listing products.
    CREATE TABLE catalog_state (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        changed_at_ms INTEGER NOT NULL
    );
    INSERT INTO catalog_state (id, changed_at_ms) VALUES (1, 0);
    CREATE TABLE outbox (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        payload            TEXT    NOT NULL,
        created_at_ms      INTEGER NOT NULL,
        attempts           INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms INTEGER NOT NULL,
        delivered_at_ms    INTEGER,
        last_error         TEXT
    );
    CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at_ms IS NULL;
    "#,
];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to [`LATEST`]; returns the version it was at.
/// A database from a newer origin is refused rather than guessed at.
pub fn migrate(conn: &mut Connection) -> Result<u32> {
    let before = version(conn)?;
    if before > LATEST {
        return Err(Error::Migration(format!(
            "database is at schema version {before}, this origin knows up to {LATEST}"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
        let target = index as u32 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|e| Error::Migration(format!("to version {target}: {e}")))?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        tracing::info!(version = target, "database migrated");
    }
    Ok(before)
}

/// The database's schema version.
pub fn version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(version(&conn).unwrap(), LATEST);
        assert_eq!(migrate(&mut conn).unwrap(), LATEST);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let error = migrate(&mut conn).unwrap_err().to_string();
        assert!(error.contains("knows up to"), "{error}");
    }
}
