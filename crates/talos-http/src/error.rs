//! The AIP-193 error envelope, on every route.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};
use talos_core::CoreError;

/// An error response: HTTP status, gRPC status name, stable reason id, message and details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub grpc: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub metadata: Map<String, Value>,
    /// Extra top-level fields next to `error` (batch import's per-item results).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        grpc: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            grpc,
            reason,
            message: message.into(),
            metadata: Map::new(),
            extra: Map::new(),
        }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
            message,
        )
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "NOT_FOUND", message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "INTERNAL_SERVER_ERROR",
            "An internal server error occurred.",
        )
    }

    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "error".into(),
            json!({
                "code": self.status.as_u16(),
                "message": self.message,
                "status": self.grpc,
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "www.ory.com/talos",
                    "metadata": self.metadata,
                }],
            }),
        );
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

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        match e {
            CoreError::InvalidArgument { reason, message } => {
                ApiError::new(S::BAD_REQUEST, "INVALID_ARGUMENT", reason, message)
            }
            CoreError::Unauthenticated { reason, message } => {
                ApiError::new(S::UNAUTHORIZED, "UNAUTHENTICATED", reason, message)
            }
            CoreError::QuotaExceeded { limit, current } => {
                let mut err = ApiError::new(
                    S::PAYMENT_REQUIRED,
                    "PERMISSION_DENIED",
                    "API_KEY_QUOTA_EXCEEDED",
                    format!("API key quota exceeded: limit {limit}, current usage {current}"),
                );
                err.metadata
                    .insert("limit".into(), limit.to_string().into());
                err.metadata
                    .insert("current_usage".into(), current.to_string().into());
                err
            }
            CoreError::PermissionDenied { reason, message } => {
                ApiError::new(S::FORBIDDEN, "PERMISSION_DENIED", reason, message)
            }
            CoreError::NotFound { reason, message } => {
                ApiError::new(S::NOT_FOUND, "NOT_FOUND", reason, message)
            }
            CoreError::AlreadyExists { reason, message } => {
                ApiError::new(S::CONFLICT, "ALREADY_EXISTS", reason, message)
            }
            CoreError::FailedPrecondition { reason, message } => {
                ApiError::new(S::CONFLICT, "FAILED_PRECONDITION", reason, message)
            }
            e @ (CoreError::NoHmacKey | CoreError::NoSigningKey) => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "SERVICE_UNAVAILABLE",
                e.to_string(),
            ),
            CoreError::Unavailable(detail) => {
                tracing::error!(cause = %detail, "storage unavailable");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "SERVICE_UNAVAILABLE",
                    "The service is temporarily unavailable.",
                )
            }
            CoreError::Internal(detail) => {
                tracing::error!(cause = %detail, "internal error");
                ApiError::internal()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
