use thiserror::Error;

/// The service's error. Variants are what callers branch on; each maps to one HTTP status and
/// AIP-193 status name in `talos-http`. `reason` is the stable upper-case error id.
#[derive(Debug, Error)]
pub enum CoreError {
    /// 400 INVALID_ARGUMENT.
    #[error("{message}")]
    InvalidArgument {
        reason: &'static str,
        message: String,
    },
    /// 401 UNAUTHENTICATED.
    #[error("{message}")]
    Unauthenticated {
        reason: &'static str,
        message: String,
    },
    /// 402: the network's active-key quota is exhausted.
    #[error("API key quota exceeded: limit {limit}, current usage {current}")]
    QuotaExceeded { limit: u64, current: u64 },
    /// 403 PERMISSION_DENIED.
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    /// 404 NOT_FOUND.
    #[error("{message}")]
    NotFound {
        reason: &'static str,
        message: String,
    },
    /// 409 ALREADY_EXISTS.
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
    },
    /// 409 FAILED_PRECONDITION.
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// 503: no `secrets.hmac.current` configured.
    #[error("project has no HMAC key configured")]
    NoHmacKey,
    /// 503: JWT derive without a signing key.
    #[error("no JWT signing key configured")]
    NoSigningKey,
    /// 503: storage down; the detail is for logs only.
    #[error("service unavailable")]
    Unavailable(String),
    /// 500; the detail is for logs only.
    #[error("internal error")]
    Internal(String),
}

impl CoreError {
    pub fn bad(message: impl Into<String>) -> Self {
        CoreError::InvalidArgument {
            reason: "BAD_REQUEST",
            message: message.into(),
        }
    }
    pub fn key_not_found() -> Self {
        CoreError::NotFound {
            reason: "API_KEY_NOT_FOUND",
            message: "API key not found".into(),
        }
    }
    pub fn imported_not_found() -> Self {
        CoreError::NotFound {
            reason: "API_KEY_NOT_FOUND",
            message: "imported key not found".into(),
        }
    }
    /// The detail of 5xx errors, to be logged with the request id (never sent to clients).
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            CoreError::Unavailable(d) | CoreError::Internal(d) => Some(d),
            _ => None,
        }
    }
}

impl From<talos_storage::StorageError> for CoreError {
    fn from(e: talos_storage::StorageError) -> Self {
        use talos_storage::StorageError as S;
        match e {
            S::NotFound => CoreError::key_not_found(),
            S::Conflict(kind) => CoreError::AlreadyExists {
                reason: "CONFLICT",
                message: format!("conflict: {kind:?}"),
            },
            S::QuotaExceeded { limit, current } => CoreError::QuotaExceeded { limit, current },
            S::Unavailable(d) => CoreError::Unavailable(d),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
