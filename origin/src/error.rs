//! The origin's one error type.

use std::path::PathBuf;

/// Everything that can go wrong inside the origin (request-level refusals
/// are responses, not errors; see `server`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused or failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A file or directory could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database was written by a newer origin, or a migration failed.
    #[error("migration: {0}")]
    Migration(String),
    /// The seed file is unusable.
    #[error("seed {}: {message}", path.display())]
    Seed {
        /// The seed file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A setting is unusable.
    #[error("config: {0}")]
    Config(String),
    /// A stored outbox payload is not valid JSON (the database was edited
    /// by hand or corrupted).
    #[error("outbox row {id}: {source}")]
    OutboxPayload {
        /// The row.
        id: i64,
        /// Why.
        source: serde_json::Error,
    },
    /// A blocking task died (it panicked or the runtime is shutting down).
    #[error("background task: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The origin's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
