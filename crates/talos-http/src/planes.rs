//! Planes: one process serves the whole API (`all`), only the admin plane (`admin`, internal), or
//! only the public plane (`public`, internet-facing). One endpoint table; each plane registers the
//! endpoints it serves, so a route of the other plane answers 404 in the envelope.

use crate::endpoints::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plane {
    #[default]
    All,
    Admin,
    Public,
}

const JWKS: &[&str] = &["/v2alpha1/derivedKeys/jwks.json", "/.well-known/jwks.json"];

/// Routes a key's holder (or a proxy in front of a service) calls without an admin token:
/// self-revoke, gateway verify and (when they exist) self-service. A new public route is added
/// here.
fn public_only(path: &str) -> bool {
    path == "/v2alpha1/apiKeys:selfRevoke"
        || path.starts_with("/gateway/")
        || path.starts_with("/v2alpha1/self/")
}

impl Plane {
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::All => "all",
            Plane::Admin => "admin",
            Plane::Public => "public",
        }
    }

    /// Whether this plane serves `e`.
    pub fn serves(self, e: &Endpoint) -> bool {
        let p = e.path;
        let shared = JWKS.contains(&p) || p.starts_with("/health/") || p == "/version";
        match self {
            Plane::All => true,
            Plane::Admin => shared || p.starts_with("/v2alpha1/admin/") || p == "/openapi.json",
            Plane::Public => shared || public_only(p),
        }
    }

    /// Whether this plane serves the admin API (for the "admin API is open" startup warning).
    pub fn has_admin(self) -> bool {
        self != Plane::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::ENDPOINTS;

    #[test]
    fn every_endpoint_is_in_all_and_in_at_least_one_other_plane() {
        for e in ENDPOINTS {
            assert!(Plane::All.serves(e));
            assert!(
                Plane::Admin.serves(e) || Plane::Public.serves(e),
                "{} is in no plane",
                e.path
            );
            if e.path.starts_with("/v2alpha1/admin/") {
                assert!(!Plane::Public.serves(e), "{}", e.path);
            }
        }
        let served = |plane: Plane, path: &str| {
            ENDPOINTS
                .iter()
                .filter(|e| e.path == path)
                .all(|e| plane.serves(e))
        };
        assert!(served(Plane::Public, "/v2alpha1/apiKeys:selfRevoke"));
        assert!(!served(Plane::Admin, "/v2alpha1/apiKeys:selfRevoke"));
        assert!(!served(Plane::Public, "/openapi.json"));
        for p in ["/gateway/verify", "/gateway/verify/{path}"] {
            assert!(served(Plane::Public, p) && !served(Plane::Admin, p), "{p}");
        }
        for p in ["/.well-known/jwks.json", "/health/ready", "/version"] {
            assert!(served(Plane::Public, p) && served(Plane::Admin, p), "{p}");
        }
    }
}
