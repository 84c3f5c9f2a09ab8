use thiserror::Error;

/// What conflicted, so callers can map it to the right API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// The key is already revoked.
    AlreadyRevoked,
    /// The key exists but is not active (revoked or expired) where an active key is required.
    NotActive,
    /// A row with the same key id, hash or request id exists.
    Duplicate,
}

/// The one error type of the storage interface. No backend error type escapes it.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The named key of an update, revoke, rotate or delete does not exist. Lookups return
    /// `Ok(None)` instead (see "Not found" on [`Store`](crate::Store)).
    #[error("not found")]
    NotFound,
    #[error("conflict: {0:?}")]
    Conflict(ConflictKind),
    /// The network already holds `limit` active keys (`current` of them, counted atomically).
    #[error("quota exceeded: limit {limit}, current {current}")]
    QuotaExceeded { limit: u64, current: u64 },
    /// The database is down, unreachable, or the pool timed out.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Bad DSN or configuration.
    #[error("storage configuration: {0}")]
    Config(String),
    /// Migrations are pending or failed.
    #[error("migration: {0}")]
    Migration(String),
    /// Anything else (corrupt row, unexpected driver error); the message is for logs, not clients.
    #[error("storage internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
