//! Browser and host protection, before routing.
//!
//! - A request carrying an `Origin` that `serve.http.cors` does not allow is refused (403
//!   `ORIGIN_NOT_ALLOWED`): bodies are parsed as JSON whatever their content type, so without this
//!   any web page could drive the admin API of a server its visitor's browser can reach (a
//!   cross-site form post needs no preflight). Clients without `Origin` (curl, SDKs, the CLI) are
//!   unaffected. `GET` of the public JWKS stays open to browsers, and gateway verify to the
//!   browser requests a proxy relays.
//! - `Host` must be one the operator expects (421 `HOST_NOT_ALLOWED`): `serve.http.allowed_hosts`,
//!   or, when unset and bound to a loopback address, only loopback names, which stops DNS
//!   rebinding of a local server. The networks' hostnames are allowed under multitenancy.

use actix_web::dev::ServiceRequest;
use actix_web::http::{Method, StatusCode, header};

use crate::AppState;
use crate::error::ApiError;
use talos_api::Code;
use talos_api::error::reason;

/// Which `Host` values are accepted.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Lower-case names, with or without a port; `None` = any host.
    allowed: Option<Vec<String>>,
}

const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

impl HostPolicy {
    /// Any host (tests; a non-loopback bind without `allowed_hosts`).
    pub fn any() -> Self {
        HostPolicy { allowed: None }
    }

    /// The policy of a server: `allowed_hosts` when set; else loopback names when bound to a
    /// loopback address; else any host. `network_hosts` (multitenancy) are added to a list.
    pub fn new(allowed_hosts: &[String], network_hosts: &[String], loopback_bind: bool) -> Self {
        let mut allowed: Vec<String> = if !allowed_hosts.is_empty() {
            allowed_hosts.to_vec()
        } else if loopback_bind {
            LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect()
        } else {
            return HostPolicy::any();
        };
        allowed.extend(network_hosts.iter().cloned());
        for a in &mut allowed {
            *a = a.trim().to_ascii_lowercase();
        }
        HostPolicy {
            allowed: Some(allowed),
        }
    }

    /// Whether `host` (a `Host` header value, maybe with a port) is accepted.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(allowed) = &self.allowed else {
            return true;
        };
        let Some(host) = host.map(|h| h.trim().to_ascii_lowercase()) else {
            return false;
        };
        let name = strip_port(&host);
        allowed.iter().any(|a| *a == host || a == name)
    }
}

/// `example.com:80` → `example.com`, `[::1]:80` → `[::1]`; a bare IPv6 address stays as is.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Whether `serve.http.cors` lets `origin` call the API.
pub(crate) fn origin_allowed(cors: &crate::config::CorsConfig, origin: &str) -> bool {
    cors.enabled
        && cors
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Gateway verify: the proxy relays the headers of its client's request, whose `Origin` is about
/// the proxied application, not about Talos. The answer only says whether the presented
/// credential is valid, which its presenter knows, and changes nothing.
fn is_gateway(req: &ServiceRequest) -> bool {
    let p = req.path();
    p == "/gateway/verify" || p.starts_with("/gateway/verify/")
}

fn is_public_jwks(req: &ServiceRequest) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        && matches!(
            req.path(),
            "/.well-known/jwks.json" | "/v2alpha1/derivedKeys/jwks.json"
        )
}

/// Why `req` is refused before routing, if it is: a foreign host (421) or a foreign browser
/// origin (403).
pub(crate) fn refusal(req: &ServiceRequest, state: &AppState) -> Option<ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = if state.trust_forwarded_host {
        header("x-forwarded-host").or_else(|| header("host"))
    } else {
        header("host")
    };
    let host = host.map(|h| h.split(',').next().unwrap_or(h));
    let authority = req.uri().authority().map(|a| a.as_str());
    if !state.access.hosts.allows(host.or(authority)) {
        return Some(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            Code::FailedPrecondition,
            reason::HOST_NOT_ALLOWED,
            "this server does not answer for the requested host (serve.http.allowed_hosts)",
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !is_public_jwks(req)
        && !is_gateway(req)
        && !origin
            .to_str()
            .is_ok_and(|o| origin_allowed(&state.cors.get(), o))
    {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            Code::PermissionDenied,
            reason::ORIGIN_NOT_ALLOWED,
            "requests from this browser origin are not allowed (serve.http.cors)",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_policies() {
        let local = HostPolicy::new(&[], &[], true);
        for h in [
            "localhost",
            "LOCALHOST:4420",
            "127.0.0.1:1",
            "[::1]:4420",
            "[::1]",
        ] {
            assert!(local.allows(Some(h)), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:4420",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!local.allows(Some(h)), "{h}");
        }
        assert!(!local.allows(None));
        assert!(HostPolicy::new(&[], &[], false).allows(Some("anything")));
        let set = HostPolicy::new(
            &["api.example.com".into(), "admin.internal:8443".into()],
            &["tenant.example".into()],
            false,
        );
        assert!(set.allows(Some("api.example.com:443")));
        assert!(set.allows(Some("admin.internal:8443")));
        assert!(!set.allows(Some("admin.internal:9000")));
        assert!(set.allows(Some("Tenant.Example")));
        assert!(!set.allows(Some("localhost")));
    }

    #[test]
    fn origins() {
        let mut cors = crate::config::CorsConfig::default();
        assert!(
            !origin_allowed(&cors, "https://a.example"),
            "CORS off: none"
        );
        cors.enabled = true;
        assert!(origin_allowed(&cors, "null"), "`*` allows any");
        cors.allowed_origins = vec!["https://a.example/".into()];
        assert!(origin_allowed(&cors, "https://A.example"));
        assert!(!origin_allowed(&cors, "https://b.example"));
        assert!(!origin_allowed(&cors, "null"));
    }
}
