//! The AIP-193 error envelope, on every route, and how each domain error is shown: its HTTP
//! status, status name and reason id (the names come from `talos-api`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value};
use talos_api::error::{INTERNAL_MESSAGE, UNAVAILABLE_MESSAGE, reason};
use talos_api::{Code, ErrorResponse, RevocationReason};
use talos_core::CoreError;

/// An error response: HTTP status, status name, stable reason id, message and details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub reason: &'static str,
    pub message: String,
    pub metadata: Map<String, Value>,
    /// Extra top-level fields next to `error` (batch import's per-item results).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: Code,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            reason,
            message: message.into(),
            metadata: Map::new(),
            extra: Map::new(),
        }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            reason::BAD_REQUEST,
            message,
        )
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            reason::NOT_FOUND,
            message,
        )
    }
    /// 499 `CANCELLED`: the client went away mid-request.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(talos_api::error::CLIENT_CLOSED_REQUEST)
                .unwrap_or(StatusCode::BAD_REQUEST),
            Code::Cancelled,
            reason::CANCELLED,
            message,
        )
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            reason::INTERNAL_SERVER_ERROR,
            INTERNAL_MESSAGE,
        )
    }

    pub fn body(&self) -> Value {
        let envelope = ErrorResponse::new(
            self.status.as_u16(),
            self.code,
            self.reason,
            self.message.clone(),
            self.metadata.clone(),
        );
        let mut body = match serde_json::to_value(envelope) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        body.extend(self.extra.clone());
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(self.body())
    }
}

/// How a domain error is shown: HTTP status, status name and reason id.
pub(crate) fn classify(e: &CoreError) -> (StatusCode, Code, &'static str) {
    use CoreError as E;
    use StatusCode as S;
    match e {
        E::Invalid(_) | E::ReasonTextNotAllowed | E::ReasonReserved => {
            (S::BAD_REQUEST, Code::InvalidArgument, reason::BAD_REQUEST)
        }
        E::CredentialRequired => (
            S::BAD_REQUEST,
            Code::InvalidArgument,
            reason::CREDENTIAL_REQUIRED,
        ),
        E::DerivedTokenNotRevocable => (
            S::BAD_REQUEST,
            Code::InvalidArgument,
            reason::DERIVED_TOKEN_NOT_REVOCABLE,
        ),
        E::ParentIsDerivedToken => (
            S::BAD_REQUEST,
            Code::InvalidArgument,
            reason::INVALID_TOKEN_TYPE,
        ),
        E::ParentKeyInvalid => (
            S::UNAUTHORIZED,
            Code::Unauthenticated,
            reason::PARENT_KEY_INVALID,
        ),
        E::QuotaExceeded { .. } => (
            S::PAYMENT_REQUIRED,
            Code::PermissionDenied,
            reason::API_KEY_QUOTA_EXCEEDED,
        ),
        E::ParentKeyRevoked => (
            S::FORBIDDEN,
            Code::PermissionDenied,
            reason::API_KEY_REVOKED,
        ),
        E::ScopeNotGranted(_) => (S::FORBIDDEN, Code::PermissionDenied, reason::FORBIDDEN),
        E::KeyNotFound { .. } => (S::NOT_FOUND, Code::NotFound, reason::API_KEY_NOT_FOUND),
        E::KeyExists | E::AlreadyImported | E::DuplicateInBatch { .. } => {
            (S::CONFLICT, Code::AlreadyExists, reason::API_KEY_EXISTS)
        }
        E::Duplicate | E::AlreadyRevoked | E::RawKeyIsIssuedKey => {
            (S::CONFLICT, Code::AlreadyExists, reason::CONFLICT)
        }
        E::NotActive => (
            S::CONFLICT,
            Code::FailedPrecondition,
            reason::FAILED_PRECONDITION,
        ),
        E::RawKeyIsDerivedToken => (
            S::CONFLICT,
            Code::FailedPrecondition,
            reason::INVALID_TOKEN_TYPE,
        ),
        E::ParentKeyExpired => (
            S::CONFLICT,
            Code::FailedPrecondition,
            reason::API_KEY_EXPIRED,
        ),
        E::NoHmacKey | E::NoSigningKey | E::Unavailable(_) => (
            S::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            reason::SERVICE_UNAVAILABLE,
        ),
        _ => (
            S::INTERNAL_SERVER_ERROR,
            Code::Internal,
            reason::INTERNAL_SERVER_ERROR,
        ),
    }
}

/// The message a client sees: the domain's, except where it names a wire value or hides a cause.
fn message(e: &CoreError) -> String {
    let withdrawn = RevocationReason::PrivilegeWithdrawn.as_str();
    match e {
        CoreError::ReasonTextNotAllowed => {
            format!("reason_text is only allowed with {withdrawn}")
        }
        CoreError::ReasonReserved => format!("{withdrawn} is reserved for administrators"),
        CoreError::Unavailable(_) => UNAVAILABLE_MESSAGE.into(),
        CoreError::NoHmacKey | CoreError::NoSigningKey => e.to_string(),
        e if e.log_detail().is_some() => INTERNAL_MESSAGE.into(),
        e => match classify(e).1 {
            Code::Internal => INTERNAL_MESSAGE.into(),
            _ => e.to_string(),
        },
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match &e {
            CoreError::Unavailable(detail) => {
                tracing::error!(cause = %detail, "storage unavailable")
            }
            CoreError::Internal(detail) => tracing::error!(cause = %detail, "internal error"),
            _ => {}
        }
        let (status, code, reason) = classify(&e);
        let mut err = ApiError::new(status, code, reason, message(&e));
        if let CoreError::QuotaExceeded { limit, current } = e {
            err.metadata
                .insert("limit".into(), limit.to_string().into());
            if let Some(current) = current {
                err.metadata
                    .insert("current_usage".into(), current.to_string().into());
            }
        }
        err
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
