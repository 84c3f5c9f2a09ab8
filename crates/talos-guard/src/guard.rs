//! The guard itself, free of any web framework: where a credential comes from, which backend
//! verifies it, and the answer — built by `talos_api::gateway`, the function the server's
//! `/gateway/verify` route uses, so a proxy and an embedded guard refuse a request alike.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use talos_api::VerifyApiKeyResponse;
use talos_api::gateway::{self, GatewayAnswer, GatewayBody};
use talos_api::headers::RateLimitHeaders;

/// The identity of a request that passed the guard: a handler's extractor (actix-web) or a
/// request extension (tower: `axum::Extension<VerifiedKey>`).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedKey {
    /// The key (the parent key, for a derived token).
    pub key_id: String,
    /// The key's holder.
    pub actor_id: String,
    /// Every scope the credential carries (not only the required ones).
    pub scopes: Vec<String>,
    /// The key's metadata.
    pub metadata: Map<String, Value>,
    /// When the credential stops being valid, when it expires.
    pub expire_time: Option<DateTime<Utc>>,
    /// The key's rate-limit state, when the server enforces a limit for it. The middleware and
    /// the layer add it to the response (`RateLimit-Policy`, `RateLimit`), as gateway verify does.
    pub rate_limit: Option<RateLimitHeaders>,
}

impl VerifiedKey {
    /// Whether the credential carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A refusal, ready to send: the gateway's status, headers and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// 401, 402, 403, 429 or 500.
    pub status: u16,
    /// `WWW-Authenticate`, `Retry-After`, `RateLimit*`, as the gateway sends them.
    pub headers: Vec<(&'static str, String)>,
    /// `{isValid:false, errorCode, errorMessage[, missingScopes]}`.
    pub body: Vec<u8>,
    /// The body's `errorMessage` (for logs and gRPC's `grpc-message`).
    pub message: String,
}

/// What the guard decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Valid, with every required scope.
    Allowed(VerifiedKey),
    /// Refused; send the denial as it is.
    Denied(Denial),
}

/// The client's address, for keys restricted to CIDRs. The actix-web middleware takes the
/// connection's peer address; behind tower, insert this extension in a layer before the guard
/// (e.g. from axum's `ConnectInfo`). Without it a restricted key fails closed (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Clone)]
enum Backend {
    #[cfg(feature = "embedded")]
    Embedded(Arc<crate::embedded::Embedded>),
    #[cfg(feature = "remote")]
    Remote(talos_client::Client),
}

/// Verifies credentials with one backend. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    backend: Backend,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A place match, so that it compiles with no backend feature (no variant) too.
        let kind = match self.backend {
            #[cfg(feature = "embedded")]
            Backend::Embedded(_) => "embedded",
            #[cfg(feature = "remote")]
            Backend::Remote(_) => "remote",
        };
        f.debug_struct("Guard").field("backend", &kind).finish()
    }
}

impl Guard {
    /// In-process verification by `service`, in the default network. Build the service from
    /// the server's `db` and `cache` settings (and its secrets): with a shared cache (Redis) the
    /// server's revocations reach this process as they reach every node; a process-local cache
    /// (`memory`) is only as fresh as its TTL allows (docs/ARCHITECTURE.md, "Revocation
    /// integrity").
    #[cfg(feature = "embedded")]
    pub fn embedded(service: Arc<talos_core::Service>) -> Guard {
        Guard::embedded_in(service, uuid::Uuid::nil())
    }

    /// Like [`Guard::embedded`], in the network `network` (multitenant deployments).
    #[cfg(feature = "embedded")]
    pub fn embedded_in(service: Arc<talos_core::Service>, network: uuid::Uuid) -> Guard {
        Guard {
            backend: Backend::Embedded(Arc::new(crate::embedded::Embedded { service, network })),
        }
    }

    /// Verification by a Talos server (`apiKeys:verify`): `client` must carry an admin token
    /// with the verify scope. No cache: every request is one verify call, so a revocation is
    /// seen as soon as the server sees it. The server checks IP restrictions against the
    /// guard's address, not the client's.
    #[cfg(feature = "remote")]
    pub fn remote(client: talos_client::Client) -> Guard {
        Guard {
            backend: Backend::Remote(client),
        }
    }

    /// The guard with the scopes a route requires (all of them).
    pub fn require<I, S>(&self, scopes: I) -> Require
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut required: Vec<String> = Vec::new();
        for s in scopes.into_iter().map(Into::into) {
            if !s.is_empty() && !required.contains(&s) {
                required.push(s);
            }
        }
        Require {
            guard: self.clone(),
            scopes: required.into(),
        }
    }

    /// Any valid credential, no scope required.
    pub fn any(&self) -> Require {
        self.require(std::iter::empty::<String>())
    }

    /// Decides one request from its `Authorization` and `X-API-Key` header values (the
    /// credential is the bearer token, else the API key, as at the gateway) and the client's
    /// address; `required` are the scopes the route needs.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        client_ip: Option<IpAddr>,
        required: &[String],
    ) -> Decision {
        let Some(credential) = gateway::credential(None, authorization, api_key) else {
            return decision(gateway::missing_credential(), None);
        };
        let (response, limit) = self.verify(credential, client_ip).await;
        decision(gateway::answer(response, limit, required), limit)
    }

    async fn verify(
        &self,
        credential: &str,
        client_ip: Option<IpAddr>,
    ) -> (VerifyApiKeyResponse<'static>, Option<RateLimitHeaders>) {
        match self.backend {
            #[cfg(feature = "embedded")]
            Backend::Embedded(ref e) => e.verify(credential, client_ip).await,
            #[cfg(feature = "remote")]
            Backend::Remote(ref client) => {
                // The server applies IP restrictions to its own peer, this process.
                let _ = client_ip;
                remote_verify(client, credential).await
            }
        }
    }
}

#[cfg(feature = "remote")]
async fn remote_verify(
    client: &talos_client::Client,
    credential: &str,
) -> (VerifyApiKeyResponse<'static>, Option<RateLimitHeaders>) {
    match client.verify(credential, Default::default()).await {
        // The server's rate-limit headers, so the guard's 429 and 200 carry the same figures.
        Ok(r) => {
            let limit = r.rate_limit;
            (r.body, limit)
        }
        Err(e) => {
            // Fail closed: an unreachable or refusing server never lets a request through.
            tracing::warn!(error = %e, "talos-guard: the Talos server did not verify");
            (internal_failure(talos_api::error::INTERNAL_MESSAGE), None)
        }
    }
}

/// A verify response for a verification that could not be made.
fn internal_failure(message: &'static str) -> VerifyApiKeyResponse<'static> {
    VerifyApiKeyResponse {
        is_valid: Some(false),
        is_active: Some(false),
        error_code: Some(talos_api::VerificationErrorCode::Internal),
        error_message: Some(message.into()),
        ..Default::default()
    }
}

/// The gateway's 500, for a guard that cannot verify at all (e.g. not configured).
#[cfg_attr(not(feature = "actix"), allow(dead_code))]
pub(crate) fn internal_denial(message: &'static str) -> Denial {
    match decision(gateway::answer(internal_failure(message), None, &[]), None) {
        Decision::Denied(d) => d,
        Decision::Allowed(_) => unreachable!("an internal failure is never allowed"),
    }
}

/// The guard's decision from the gateway's answer; `rate_limit` is the limiter's figures the
/// answer was built with, kept for an allowed request's response headers.
fn decision(a: GatewayAnswer<'_>, rate_limit: Option<RateLimitHeaders>) -> Decision {
    match a.body {
        GatewayBody::Valid(v) => Decision::Allowed(VerifiedKey {
            key_id: v.key_id,
            actor_id: v.actor_id,
            scopes: v.scopes,
            metadata: v.metadata,
            expire_time: v.expire_time,
            rate_limit,
        }),
        GatewayBody::Denied(d) => Decision::Denied(Denial {
            status: a.status,
            headers: a.headers,
            // Serialising a struct of strings cannot fail.
            body: serde_json::to_vec(&d).unwrap_or_default(),
            message: d.error_message.into_owned(),
        }),
    }
}

/// A guard and the scopes one route (or scope of routes) requires. With feature `actix` it is
/// an actix-web middleware (`.wrap(guard.require(["a"]))`); with feature `tower` a tower layer
/// (`.route_layer(guard.require(["a"]))`).
#[derive(Debug, Clone)]
pub struct Require {
    pub(crate) guard: Guard,
    pub(crate) scopes: Arc<[String]>,
}

impl Require {
    /// The required scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// See [`Guard::check`].
    pub async fn check(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Decision {
        self.guard
            .check(authorization, api_key, client_ip, &self.scopes)
            .await
    }
}
