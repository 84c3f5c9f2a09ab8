//! Admin token authentication: every `/v2alpha1/admin/*` route is wrapped with the scope it needs
//! (see [`scope_of`]); while `serve.http.admin_auth.tokens` is non-empty, a request needs
//! `Authorization: Bearer <token>` whose digest matches a configured token with that scope.
//!
//! The middleware sits on the route, not the app: it runs only on admin routes (the public verify
//! path pays nothing) and before the handler reads the body.

use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use talos_core::LogThrottle;
use talos_core::admin_auth::Scope;

use crate::AppState;
use crate::endpoints::{Endpoint, Method};
use crate::error::ApiError;
use crate::guard::HostPolicy;
use crate::planes::Plane;

/// `WWW-Authenticate` of a 401 from an admin route.
pub const CHALLENGE: &str = "Bearer realm=\"talos\"";

/// Access-control state shared by every worker.
pub struct Access {
    /// The routes this process serves.
    pub plane: Plane,
    /// Accepted `Host` values.
    pub hosts: HostPolicy,
    /// At most one "admin authentication failed" log line per interval (the metric counts all).
    failures: LogThrottle,
}

impl Access {
    pub fn new(plane: Plane) -> Self {
        Access {
            plane,
            hosts: HostPolicy::any(),
            failures: LogThrottle::new(Duration::from_secs(10)),
        }
    }
}

impl Access {
    pub fn with_hosts(mut self, hosts: HostPolicy) -> Self {
        self.hosts = hosts;
        self
    }
}

impl Default for Access {
    fn default() -> Self {
        Access::new(Plane::All)
    }
}

/// The scope an endpoint needs; `None` outside `/v2alpha1/admin/`.
pub fn scope_of(e: &Endpoint) -> Option<Scope> {
    let rest = e.path.strip_prefix("/v2alpha1/admin/")?;
    Some(
        if rest.starts_with("usage:") || rest.starts_with("actorBalances") {
            Scope::UsageWrite
        } else if matches!(
            rest,
            "apiKeys:verify" | "apiKeys:batchVerify" | "apiKeys:derive"
        ) {
            Scope::KeysVerify
        } else if e.method == Method::Get {
            Scope::KeysRead
        } else {
            Scope::KeysWrite
        },
    )
}

/// The bearer token of `Authorization`, if any (scheme case-insensitive).
fn bearer(req: &ServiceRequest) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Route middleware: checks the admin token for `scope`; runs the handler on behalf of the
/// token's name, so audit events carry it.
pub async fn require(
    scope: Scope,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let runtime = state.service.runtime();
    if runtime.admin_tokens.is_empty() {
        return next.call(req).await;
    }
    let principal = bearer(&req).and_then(|t| runtime.admin_tokens.authenticate(t));
    let refusal = match principal {
        Some(p) if p.allows(scope) => {
            let name = p.name.clone();
            drop(runtime);
            return talos_core::audit::with_admin_token(name, next.call(req)).await;
        }
        Some(p) => {
            failed(&state, &req, "permission_denied", &p.name);
            ApiError::new(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "PERMISSION_DENIED",
                format!("the admin token lacks the scope {scope}"),
            )
            .error_response()
        }
        None => {
            failed(&state, &req, "unauthenticated", "");
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "UNAUTHENTICATED",
                "a valid admin token is required: send Authorization: Bearer <token>",
            )
            .error_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
            resp
        }
    };
    Ok(req.into_response(refusal))
}

/// Counts a refused admin request and logs it at a limited rate (never the token).
fn failed(state: &AppState, req: &ServiceRequest, reason: &'static str, token_name: &str) {
    metrics::counter!("talos_admin_auth_failures_total", "reason" => reason).increment(1);
    if let Some(suppressed) = state.access.failures.allow() {
        tracing::warn!(
            event = "admin_auth_failed",
            reason,
            admin_token = token_name,
            route = req.match_pattern().as_deref().unwrap_or("(unmatched)"),
            peer = %req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
            suppressed,
            "admin request refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::ENDPOINTS;

    #[test]
    fn every_admin_endpoint_has_a_scope_and_no_other_does() {
        for e in ENDPOINTS {
            assert_eq!(
                scope_of(e).is_some(),
                e.path.starts_with("/v2alpha1/admin/"),
                "{}",
                e.path
            );
        }
        let by_op = |op: &str| scope_of(ENDPOINTS.iter().find(|e| e.operation_id == op).unwrap());
        assert_eq!(by_op("VerifyApiKey"), Some(Scope::KeysVerify));
        assert_eq!(by_op("DeriveToken"), Some(Scope::KeysVerify));
        assert_eq!(by_op("ListIssuedApiKeys"), Some(Scope::KeysRead));
        assert_eq!(by_op("DeleteImportedApiKey"), Some(Scope::KeysWrite));
        assert_eq!(by_op("SelfRevokeApiKey"), None);
    }
}
