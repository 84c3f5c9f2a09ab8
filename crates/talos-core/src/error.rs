//! The service's one error type: the domain outcomes a caller branches on. How each is shown to a
//! client (an HTTP status, a status name and a reason id) is `talos-http`'s business.

use talos_storage::{ConflictKind, KeyKind, StorageError};
use thiserror::Error;

/// Why a service call failed. `Display` is a message fit for the caller's user; 5xx-like variants
/// (`Unavailable`, `Internal`) carry a detail for logs only ([`CoreError::log_detail`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A request field is invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The credential to act on is missing (derive, self-revoke).
    #[error("credential is required")]
    CredentialRequired,
    /// No such key in this network (or the id has the other kind's shape).
    #[error("{}", match kind { KeyKind::Issued => "API key not found", KeyKind::Imported => "imported key not found" })]
    KeyNotFound { kind: KeyKind },
    /// Issue: a key with the new id exists already.
    #[error("API key already exists")]
    KeyExists,
    /// Import: the raw key is already imported (under the current or a retired secret).
    #[error("key already imported (duplicate detected)")]
    AlreadyImported,
    /// Batch import: the same raw key appears earlier in the batch, at `first`.
    #[error("key already imported (duplicate detected at index {first})")]
    DuplicateInBatch { first: usize },
    /// Another row has the same key id, hash or request id.
    #[error("conflict: Duplicate")]
    Duplicate,
    /// Revoke: the key is revoked already.
    #[error("key is already revoked")]
    AlreadyRevoked,
    /// Rotate: the key is revoked or expired.
    #[error("cannot rotate a non-active key")]
    NotActive,
    /// The network's active-key quota is exhausted (`current` is known for single inserts).
    #[error("API key quota exceeded: limit {limit}{}", current.map(|c| format!(", current usage {c}")).unwrap_or_default())]
    QuotaExceeded { limit: u64, current: Option<u64> },
    /// Import: the raw key has the shape of a derived token.
    #[error("raw_key has the shape of a derived token (JWT or macaroon) and cannot be imported")]
    RawKeyIsDerivedToken,
    /// Import: the raw key has the format of a key Talos issues.
    #[error("raw_key has the format of a Talos-issued key and cannot be imported")]
    RawKeyIsIssuedKey,
    /// Self-revoke of a derived token (only keys can be revoked).
    #[error("derived tokens cannot be revoked; revoke the parent key")]
    DerivedTokenNotRevocable,
    /// Revoke: a free-text reason with a reason other than "privilege withdrawn".
    #[error("reason_text is only allowed with the privilege-withdrawn reason")]
    ReasonTextNotAllowed,
    /// Self-revoke with "privilege withdrawn", which is for administrators.
    #[error("the privilege-withdrawn reason is reserved for administrators")]
    ReasonReserved,
    /// Derive: the parent credential does not verify.
    #[error("verify API key")]
    ParentKeyInvalid,
    /// Derive: the parent key is revoked.
    #[error("key is revoked")]
    ParentKeyRevoked,
    /// Derive: the parent key has expired.
    #[error("parent key has expired")]
    ParentKeyExpired,
    /// Derive: the parent is itself a derived token.
    #[error("tokens can only be derived from API keys, not from derived tokens")]
    ParentIsDerivedToken,
    /// Derive: a requested scope the parent key does not have.
    #[error("scope {0:?} is not granted to the parent key")]
    ScopeNotGranted(String),
    /// No `secrets.hmac.current` configured.
    #[error("project has no HMAC key configured")]
    NoHmacKey,
    /// JWT derive without a signing key.
    #[error("no JWT signing key configured")]
    NoSigningKey,
    /// Storage is down; the detail is for logs only.
    #[error("service unavailable")]
    Unavailable(String),
    /// Anything else; the detail is for logs only.
    #[error("internal error")]
    Internal(String),
}

impl CoreError {
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        CoreError::Invalid(message.into())
    }

    pub(crate) fn not_found(kind: KeyKind) -> Self {
        CoreError::KeyNotFound { kind }
    }

    /// The detail of `Unavailable` and `Internal`, to be logged with the request id (never sent
    /// to clients).
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            CoreError::Unavailable(d) | CoreError::Internal(d) => Some(d),
            _ => None,
        }
    }
}

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => CoreError::not_found(KeyKind::Issued),
            StorageError::Conflict(ConflictKind::AlreadyRevoked) => CoreError::AlreadyRevoked,
            StorageError::Conflict(ConflictKind::NotActive) => CoreError::NotActive,
            StorageError::Conflict(ConflictKind::Duplicate) => CoreError::Duplicate,
            StorageError::QuotaExceeded { limit, current } => CoreError::QuotaExceeded {
                limit,
                current: Some(current),
            },
            StorageError::Unavailable(d) => CoreError::Unavailable(d),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
