//! Client errors: the server's AIP-193 envelope, transport failures, and undecodable answers.

use serde_json::Value;
pub use talos_api::ErrorDetail;
use talos_api::ErrorResponse;

/// The less used parts of an API error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiErrorContext {
    /// All envelope details.
    pub details: Vec<ErrorDetail>,
    /// `X-Request-ID` of the failed request, for correlating with server logs.
    pub request_id: Option<String>,
    /// The whole response body (JSON, or a string if it was not JSON).
    pub body: Value,
}

/// Everything that can go wrong in a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error status (normally with the error envelope).
    #[error("{message} (HTTP {status}{})", reason.as_deref().map(|r| format!(", {r}")).unwrap_or_default())]
    Api {
        /// HTTP status code.
        status: u16,
        /// gRPC status name from the envelope, e.g. `NOT_FOUND` (empty if the body had no envelope).
        code: String,
        /// Human-readable message.
        message: String,
        /// `details[0].reason`, e.g. `API_KEY_NOT_FOUND`.
        reason: Option<String>,
        /// Envelope details, request id and the whole body (boxed: rarely needed, keeps the error small).
        context: Box<ApiErrorContext>,
    },
    /// The endpoint could not be reached (connection refused, DNS, TLS, timeout).
    #[error("cannot reach Talos at {endpoint}: {detail}")]
    Unreachable {
        /// The endpoint the client was configured with.
        endpoint: String,
        /// The innermost cause, readable.
        detail: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 2xx with a body that is not what this endpoint returns.
    #[error("unexpected response from {endpoint} (HTTP {status}): {message}")]
    Decode {
        /// The endpoint.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// What did not decode.
        message: String,
    },
    /// The extra CA certificates given to [`crate::Client::with_ca_certs`] are not usable PEM.
    #[error("invalid CA certificate: {message}")]
    InvalidCaCert {
        /// What is wrong with them.
        message: String,
    },
    /// The endpoint is not a usable URL.
    #[error("invalid endpoint {endpoint:?}: {message}")]
    InvalidEndpoint {
        /// What was given.
        endpoint: String,
        /// Why it is unusable.
        message: String,
    },
}

impl ClientError {
    /// HTTP status of an [`ClientError::Api`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The envelope's `reason` of an [`ClientError::Api`] error.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Api { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    /// True for transport failures.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    pub(crate) fn unreachable(endpoint: &str, source: reqwest::Error) -> Self {
        // reqwest's top-level message ("error sending request for url …") hides the useful cause.
        let mut detail = source.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&source);
        while let Some(e) = cur {
            detail = e.to_string();
            cur = e.source();
        }
        ClientError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail,
            source,
        }
    }

    /// Builds an API error from a non-2xx response body, with or without the envelope.
    pub(crate) fn from_response(status: u16, body: &[u8], request_id: Option<String>) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let envelope = parsed
            .as_ref()
            .and_then(|v| serde_json::from_value::<ErrorResponse>(v.clone()).ok())
            .and_then(|e| e.error);
        let body_value = parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned()));
        match envelope {
            Some(e) => {
                let reason = e
                    .details
                    .iter()
                    .map(|d| d.reason.clone())
                    .find(|r| !r.is_empty());
                let message = if e.message.is_empty() {
                    default_message(status)
                } else {
                    e.message
                };
                ClientError::Api {
                    status,
                    code: e.status,
                    message,
                    reason,
                    context: Box::new(ApiErrorContext {
                        details: e.details,
                        request_id,
                        body: body_value,
                    }),
                }
            }
            None => {
                // Not our envelope: a proxy's page, or `/health/ready`'s `{"errors":{…}}`. Show something useful.
                let message = match &parsed {
                    Some(Value::Object(o)) if o.contains_key("errors") => {
                        format!("{}: {}", default_message(status), o["errors"])
                    }
                    _ => {
                        let text = String::from_utf8_lossy(body);
                        let text = text.trim();
                        if text.is_empty() {
                            default_message(status)
                        } else {
                            text.chars().take(300).collect()
                        }
                    }
                };
                ClientError::Api {
                    status,
                    code: String::new(),
                    message,
                    reason: None,
                    context: Box::new(ApiErrorContext {
                        details: Vec::new(),
                        request_id,
                        body: body_value,
                    }),
                }
            }
        }
    }
}

fn default_message(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_envelope() {
        let body = br#"{"error":{"code":404,"message":"API key not found","status":"NOT_FOUND",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_NOT_FOUND",
            "domain":"www.ory.com/talos","metadata":{}}]}}"#;
        let e = ClientError::from_response(404, body, Some("rid".into()));
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.reason(), Some("API_KEY_NOT_FOUND"));
        assert_eq!(
            e.to_string(),
            "API key not found (HTTP 404, API_KEY_NOT_FOUND)"
        );
        match e {
            ClientError::Api { code, context, .. } => {
                assert_eq!(code, "NOT_FOUND");
                assert_eq!(context.details[0].domain, "www.ory.com/talos");
                assert_eq!(context.request_id.as_deref(), Some("rid"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_envelope_bodies_still_give_a_message() {
        let e = ClientError::from_response(502, b"Bad gateway from proxy", None);
        assert_eq!(e.to_string(), "Bad gateway from proxy (HTTP 502)");
        let e = ClientError::from_response(503, b"", None);
        assert_eq!(e.to_string(), "Service Unavailable (HTTP 503)");
        let e = ClientError::from_response(503, br#"{"errors":{"database":"down"}}"#, None);
        assert!(e.to_string().contains("database"), "{e}");
    }
}
