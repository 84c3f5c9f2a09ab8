//! The AIP-193 error envelope every route answers errors with, the status names of its
//! `error.status`, and the stable reason ids of its `google.rpc.ErrorInfo` detail.
//!
//! ```json
//! {"error": {"code": 404, "message": "API key not found", "status": "NOT_FOUND",
//!   "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
//!     "reason": "API_KEY_NOT_FOUND", "domain": "www.ory.com/talos", "metadata": {}}]}}
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codec::{de_lenient_i64, null_default};

/// `@type` of the one detail the server sends.
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// `domain` of that detail.
pub const ERROR_DOMAIN: &str = "www.ory.com/talos";

/// The message of every 500 (and of a verification that failed on the server's side): the cause
/// is logged with the request id, never sent.
pub const INTERNAL_MESSAGE: &str = "An internal server error occurred.";

/// The message of a 503 caused by storage (the cause is logged, never sent).
pub const UNAVAILABLE_MESSAGE: &str = "The service is temporarily unavailable.";

/// The gRPC status names of `error.status` (AIP-193).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// `INVALID_ARGUMENT`.
    InvalidArgument,
    /// `UNAUTHENTICATED`.
    Unauthenticated,
    /// `PERMISSION_DENIED`.
    PermissionDenied,
    /// `NOT_FOUND`.
    NotFound,
    /// `ALREADY_EXISTS`.
    AlreadyExists,
    /// `FAILED_PRECONDITION`.
    FailedPrecondition,
    /// `RESOURCE_EXHAUSTED`.
    ResourceExhausted,
    /// `DEADLINE_EXCEEDED`.
    DeadlineExceeded,
    /// `UNIMPLEMENTED`.
    Unimplemented,
    /// `UNAVAILABLE`.
    Unavailable,
    /// `INTERNAL`.
    Internal,
    /// `CANCELLED`: the client went away before the answer (HTTP 499, logged and counted; the
    /// client never sees it).
    Cancelled,
}

impl Code {
    /// The status name, e.g. `NOT_FOUND`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unavailable => "UNAVAILABLE",
            Code::Internal => "INTERNAL",
            Code::Cancelled => "CANCELLED",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable upper-case reason ids (`error.details[0].reason`).
pub mod reason {
    /// A request field is invalid.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// `credential` is missing or empty.
    pub const CREDENTIAL_REQUIRED: &str = "CREDENTIAL_REQUIRED";
    /// Self-revoke of a JWT or macaroon.
    pub const DERIVED_TOKEN_NOT_REVOCABLE: &str = "DERIVED_TOKEN_NOT_REVOCABLE";
    /// A derived token where a key is needed, or a raw key shaped like a derived token.
    pub const INVALID_TOKEN_TYPE: &str = "INVALID_TOKEN_TYPE";
    /// The parent credential of a derive does not verify.
    pub const PARENT_KEY_INVALID: &str = "PARENT_KEY_INVALID";
    /// The network's active-key quota is exhausted.
    pub const API_KEY_QUOTA_EXCEEDED: &str = "API_KEY_QUOTA_EXCEEDED";
    /// The parent key of a derive is revoked.
    pub const API_KEY_REVOKED: &str = "API_KEY_REVOKED";
    /// The parent key of a derive has expired.
    pub const API_KEY_EXPIRED: &str = "API_KEY_EXPIRED";
    /// A scope the parent key does not have.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// No such key in this network.
    pub const API_KEY_NOT_FOUND: &str = "API_KEY_NOT_FOUND";
    /// The key (or the imported raw key) exists already.
    pub const API_KEY_EXISTS: &str = "API_KEY_EXISTS";
    /// The request conflicts with the key's state or with another key.
    pub const CONFLICT: &str = "CONFLICT";
    /// The key is not in the state the operation needs.
    pub const FAILED_PRECONDITION: &str = "FAILED_PRECONDITION";
    /// No route, or no network for the host.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The route does not take this method.
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    /// The body exceeds 4 MiB.
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    /// The body did not arrive in time.
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    /// The request did not complete in time.
    pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";
    /// Too many requests in flight.
    pub const OVERLOADED: &str = "OVERLOADED";
    /// No admin token, or an unknown one.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The admin token lacks the scope.
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    /// The `Host` is not one this server answers for.
    pub const HOST_NOT_ALLOWED: &str = "HOST_NOT_ALLOWED";
    /// The browser `Origin` is not allowed.
    pub const ORIGIN_NOT_ALLOWED: &str = "ORIGIN_NOT_ALLOWED";
    /// A dependency (secret, signing key, storage) is missing or down.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// Anything else; the cause is in the server log.
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    /// The client closed the connection before the request completed (HTTP 499).
    pub const CANCELLED: &str = "CANCELLED";
}

/// The HTTP status of a request the client abandoned (nginx's convention, upstream's too).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The error envelope: `{"error": {...}}` (some errors add top-level fields, e.g. batch import's
/// per-item results).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Error", extend("required" = ["error"]))]
pub struct ErrorResponse {
    /// The error.
    #[serde(default)]
    pub error: Option<ErrorStatus>,
}

/// The `error` object of the envelope (a `google.rpc.Status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline, extend("required" = ["code", "message", "status", "details"]))]
pub struct ErrorStatus {
    /// The HTTP status code.
    #[serde(default, deserialize_with = "de_lenient_i64")]
    pub code: i64,
    /// Human-readable message.
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    /// The gRPC status name, e.g. `NOT_FOUND`.
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
    /// Details; the server sends one `google.rpc.ErrorInfo`.
    #[serde(default, deserialize_with = "null_default")]
    pub details: Vec<ErrorDetail>,
}

/// One entry of `error.details` (normally a `google.rpc.ErrorInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline, extend("required" = ["reason"]))]
pub struct ErrorDetail {
    /// Type URL, e.g. `type.googleapis.com/google.rpc.ErrorInfo`.
    #[serde(rename = "@type", default, deserialize_with = "null_default")]
    pub type_url: String,
    /// Stable upper-case id, e.g. `API_KEY_NOT_FOUND` .
    #[serde(default, deserialize_with = "null_default")]
    pub reason: String,
    /// Error domain.
    #[serde(default, deserialize_with = "null_default")]
    pub domain: String,
    /// String details (e.g. `limit`, `current_usage`).
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Map<String, Value>,
}

impl ErrorResponse {
    /// The envelope of one error with the server's single `ErrorInfo` detail.
    pub fn new(
        http_status: u16,
        code: Code,
        reason: &str,
        message: impl Into<String>,
        metadata: Map<String, Value>,
    ) -> Self {
        ErrorResponse {
            error: Some(ErrorStatus {
                code: i64::from(http_status),
                message: message.into(),
                status: code.as_str().to_string(),
                details: vec![ErrorDetail {
                    type_url: ERROR_INFO_TYPE.to_string(),
                    reason: reason.to_string(),
                    domain: ERROR_DOMAIN.to_string(),
                    metadata,
                }],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_round_trip() {
        let e = ErrorResponse::new(
            404,
            Code::NotFound,
            reason::API_KEY_NOT_FOUND,
            "API key not found",
            Map::new(),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": 404, "message": "API key not found", "status": "NOT_FOUND",
                "details": [{"@type": ERROR_INFO_TYPE, "reason": "API_KEY_NOT_FOUND",
                    "domain": ERROR_DOMAIN, "metadata": {}}]}})
        );
        assert_eq!(serde_json::from_value::<ErrorResponse>(v).unwrap(), e);
        let lenient: ErrorResponse =
            serde_json::from_value(json!({"error": {"message": null, "details": null}})).unwrap();
        assert_eq!(lenient.error.unwrap().details, vec![]);
    }
}
