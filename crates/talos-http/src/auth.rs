//! Admin token authentication: every `/v2alpha1/admin/*` route is wrapped with the scope it needs
//! (see [`scope_of`]); while `serve.http.admin_auth.tokens` is non-empty, a request needs
//! `Authorization: Bearer <token>` whose digest matches a configured token with that scope. The
//! tokens live in [`Access`], swapped as a whole when the configuration is reloaded.
//!
//! The middleware sits on the route, not the app: it runs only on admin routes (the public verify
//! path pays nothing) and before the handler reads the body.

use std::time::Duration;

use arc_swap::ArcSwap;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use talos_core::LogThrottle;

use crate::AppState;
use crate::admin_tokens::{AdminTokens, Scope};
use crate::endpoints::{Endpoint, Method};
use crate::error::ApiError;
use crate::guard::HostPolicy;
use crate::planes::Plane;
use crate::self_service::SelfService;
use talos_api::Code;
use talos_api::error::reason;

/// `WWW-Authenticate` of a 401 from an admin route.
pub const CHALLENGE: &str = "Bearer realm=\"talos\"";

/// Access-control state shared by every worker.
pub struct Access {
    /// The routes this process serves.
    pub plane: Plane,
    /// Accepted `Host` values.
    pub hosts: HostPolicy,
    /// `serve.http.admin_auth.tokens`, as digests; empty = the admin API is open.
    admin_tokens: ArcSwap<AdminTokens>,
    /// At most one "admin authentication failed" log line per interval (the metric counts all).
    failures: LogThrottle,
    /// Who a self-service request is from (`self_service.*`; off by default).
    pub self_service: SelfService,
}

impl Access {
    /// Serves `plane` to any host, with the admin API open (no tokens).
    pub fn new(plane: Plane) -> Self {
        Access {
            plane,
            hosts: HostPolicy::any(),
            admin_tokens: Default::default(),
            failures: LogThrottle::new(Duration::from_secs(10)),
            self_service: SelfService::default(),
        }
    }

    pub fn with_self_service(mut self, self_service: SelfService) -> Self {
        self.self_service = self_service;
        self
    }

    pub fn with_hosts(mut self, hosts: HostPolicy) -> Self {
        self.hosts = hosts;
        self
    }

    pub fn with_admin_tokens(self, tokens: AdminTokens) -> Self {
        self.set_admin_tokens(tokens);
        self
    }

    /// Replaces the admin tokens (a configuration reload); requests already past the check keep
    /// the token they were admitted with.
    pub fn set_admin_tokens(&self, tokens: AdminTokens) {
        self.admin_tokens.store(tokens.into());
    }

    /// No admin token configured: anyone who reaches an admin route may use it.
    pub fn admin_api_open(&self) -> bool {
        self.admin_tokens.load().is_empty()
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
    let tokens = state.access.admin_tokens.load();
    if tokens.is_empty() {
        return next.call(req).await;
    }
    let principal = bearer(&req).and_then(|t| tokens.authenticate(t));
    let refusal = match principal {
        Some(p) if p.allows(scope) => {
            let name = p.name.clone();
            drop(tokens);
            return talos_core::audit::with_admin_token(name, next.call(req)).await;
        }
        Some(p) => {
            failed(&state, &req, "permission_denied", &p.name);
            ApiError::new(
                StatusCode::FORBIDDEN,
                Code::PermissionDenied,
                reason::PERMISSION_DENIED,
                format!("the admin token lacks the scope {scope}"),
            )
            .error_response()
        }
        None => {
            failed(&state, &req, "unauthenticated", "");
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                reason::UNAUTHENTICATED,
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
