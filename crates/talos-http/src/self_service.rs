//! Self-service access (`/v2alpha1/self/*`, public plane): who the caller is. An authenticating
//! proxy in front of Talos puts the user's id in a header (`self_service.user_id_header`,
//! default `X-User-Id`); Talos believes that header only from a peer address inside
//! `self_service.trusted_proxies`, since anyone else could send any id. The section is the
//! server's (`self_service`), checked here like `serve`.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use talos_api::Code;
use talos_api::error::reason;
use talos_core::config::ConfigError;

use crate::error::ApiError;

/// The `self_service` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfServiceConfig {
    /// Serve `/v2alpha1/self/*` (otherwise they answer 404).
    pub enabled: bool,
    /// The header the trusted proxy puts the user's id in.
    pub user_id_header: String,
    /// Peer addresses (CIDRs or single addresses) allowed to name the user.
    pub trusted_proxies: Vec<String>,
}

impl Default for SelfServiceConfig {
    fn default() -> Self {
        SelfServiceConfig {
            enabled: false,
            user_id_header: "X-User-Id".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A CIDR, or a single address as a /32 or /128.
fn parse_net(s: &str) -> Option<IpNet> {
    let t = s.trim();
    if t.contains('/') {
        t.parse().ok()
    } else {
        t.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, a dual-stack listener's view of an IPv4
/// peer) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl SelfServiceConfig {
    /// What serde cannot check: the header name and the CIDRs; enabled without a trusted proxy
    /// would refuse every request, so it is refused at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        actix_web::http::header::HeaderName::try_from(self.user_id_header.trim()).map_err(
            |_| {
                invalid(
                    "self_service.user_id_header",
                    format!("{:?} is not a header name", self.user_id_header),
                )
            },
        )?;
        for p in &self.trusted_proxies {
            if parse_net(p).is_none() {
                return Err(invalid(
                    "self_service.trusted_proxies",
                    format!("{p:?} is not a CIDR or an IP address"),
                ));
            }
        }
        if self.enabled && self.trusted_proxies.is_empty() {
            return Err(invalid(
                "self_service.trusted_proxies",
                "must list the authenticating proxy's address when self_service.enabled is true",
            ));
        }
        Ok(())
    }

    /// One line of prose per key, for the configuration reference.
    pub fn describe(path: &str) -> Option<&'static str> {
        Some(match path {
            "self_service.enabled" => {
                "Serve `/v2alpha1/self/*` on the public plane: an actor manages its own issued keys and reads its balance and usage (docs/metering.md). Off: those routes answer 404."
            }
            "self_service.user_id_header" => {
                "Header carrying the actor id, set by the authenticating proxy in front of Talos."
            }
            "self_service.trusted_proxies" => {
                "Peer addresses (CIDRs or single addresses) whose `user_id_header` is believed; a self-service request from any other peer is refused with 403 `PERMISSION_DENIED`. Required when enabled."
            }
            _ => return None,
        })
    }
}

/// Self-service access as the running server applies it.
#[derive(Debug, Clone, Default)]
pub struct SelfService {
    enabled: bool,
    header: String,
    trusted: Vec<IpNet>,
}

impl SelfService {
    /// From a validated section (entries that do not parse are left out, which trusts less).
    pub fn from_config(c: &SelfServiceConfig) -> Self {
        SelfService {
            enabled: c.enabled,
            header: c.user_id_header.trim().to_owned(),
            trusted: c
                .trusted_proxies
                .iter()
                .filter_map(|p| parse_net(p))
                .collect(),
        }
    }

    fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.map(canonical)
            .is_some_and(|ip| self.trusted.iter().any(|n| n.contains(&ip)))
    }

    /// The calling actor: the user id header of a request from a trusted proxy.
    pub fn actor(&self, req: &HttpRequest) -> Result<String, ApiError> {
        if !self.enabled {
            return Err(ApiError::not_found("self-service is not enabled"));
        }
        if !self.trusts(req.peer_addr().map(|a| a.ip())) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Code::PermissionDenied,
                reason::PERMISSION_DENIED,
                "self-service requests must come through the trusted authenticating proxy",
            ));
        }
        let actor = req
            .headers()
            .get(self.header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        if actor.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                reason::UNAUTHENTICATED,
                format!("the {} header naming the user is required", self.header),
            ));
        }
        Ok(actor.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn service(proxies: &[&str]) -> SelfService {
        SelfService::from_config(&SelfServiceConfig {
            enabled: true,
            trusted_proxies: proxies.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        })
    }

    fn status(r: Result<String, ApiError>) -> Result<String, u16> {
        r.map_err(|e| e.status.as_u16())
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let s = service(&["10.0.0.0/8", "::1"]);
        let req = |peer: &str, user: Option<&str>| {
            let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
            if let Some(u) = user {
                r = r.insert_header(("x-user-id", u));
            }
            r.to_http_request()
        };
        assert_eq!(
            status(s.actor(&req("10.1.2.3:5000", Some("alice")))),
            Ok("alice".into())
        );
        assert_eq!(
            status(s.actor(&req("[::1]:5000", Some(" bob ")))),
            Ok("bob".into())
        );
        assert_eq!(
            status(s.actor(&req("[::ffff:10.0.0.9]:1", Some("carol")))),
            Ok("carol".into()),
            "an IPv4 peer seen through a dual-stack socket"
        );
        assert_eq!(
            status(s.actor(&req("192.168.1.1:5000", Some("alice")))),
            Err(403)
        );
        assert_eq!(status(s.actor(&req("10.1.2.3:5000", None))), Err(401));
        assert_eq!(status(s.actor(&req("10.1.2.3:5000", Some("  ")))), Err(401));
        let off = SelfService::default();
        assert_eq!(
            status(off.actor(&req("10.1.2.3:5000", Some("alice")))),
            Err(404)
        );
    }

    #[test]
    fn config_is_checked() {
        let ok = SelfServiceConfig {
            enabled: true,
            trusted_proxies: vec!["127.0.0.1".into(), "fd00::/8".into()],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        for (bad, key) in [
            (
                SelfServiceConfig {
                    enabled: true,
                    ..Default::default()
                },
                "trusted_proxies",
            ),
            (
                SelfServiceConfig {
                    trusted_proxies: vec!["10.0.0.0/33".into()],
                    ..Default::default()
                },
                "trusted_proxies",
            ),
            (
                SelfServiceConfig {
                    user_id_header: "bad header".into(),
                    ..Default::default()
                },
                "user_id_header",
            ),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        assert!(
            SelfServiceConfig::default().validate().is_ok(),
            "off needs nothing"
        );
    }
}
