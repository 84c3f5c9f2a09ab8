//! Deriving short-lived JWTs and macaroons from a key, and the public JWKS.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use talos_credentials::claims::{DerivedClaims, strip_reserved};
use talos_storage::Visibility;
use uuid::Uuid;

use super::requests::{DeriveRequest, TokenAlgorithm};
use super::verify::{CacheMode, VerifyErrorCode, VerifyRequest};
use super::{
    Service,
    keys::{add_ttl, check_ttl_floor},
};
use crate::error::{CoreError, Result};

/// A derived token and what it carries.
#[derive(Debug, Clone)]
pub struct DerivedToken {
    pub token: String,
    pub expire_time: DateTime<Utc>,
    pub scopes: Vec<String>,
    /// The parent's metadata merged with the custom claims (not the JWT payload).
    pub claims: Map<String, Value>,
}

impl Service {
    pub async fn derive(&self, nid: Uuid, req: DeriveRequest) -> Result<DerivedToken> {
        let rt = self.runtime();
        let entry = rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        if req.algorithm == TokenAlgorithm::Jwt
            && rt
                .jwks
                .signing_key(rt.jwt_signing_key_id.as_deref())
                .is_err()
        {
            return Err(CoreError::NoSigningKey);
        }
        // The parent is verified fresh: a revocation must stop derivation at once.
        let outcome = self
            .verify_uncounted(
                nid,
                &VerifyRequest {
                    credential: req.credential.clone(),
                    client_ip: req.client_ip,
                    cache: CacheMode::NoStore,
                },
            )
            .await;
        let parent = match outcome.result {
            Ok(v) => v,
            Err(f) => {
                return Err(match f.code {
                    VerifyErrorCode::Revoked => CoreError::PermissionDenied {
                        reason: "API_KEY_REVOKED",
                        message: "key is revoked".into(),
                    },
                    VerifyErrorCode::Expired => CoreError::FailedPrecondition {
                        reason: "API_KEY_EXPIRED",
                        message: "parent key has expired".into(),
                    },
                    VerifyErrorCode::Internal => CoreError::Internal(f.message),
                    _ => CoreError::Unauthenticated {
                        reason: "PARENT_KEY_INVALID",
                        message: "verify API key".into(),
                    },
                });
            }
        };
        let record = parent
            .record
            .clone()
            .ok_or_else(|| CoreError::InvalidArgument {
                reason: "INVALID_TOKEN_TYPE",
                message: "tokens can only be derived from API keys, not from derived tokens".into(),
            })?;
        let now = Utc::now();
        let ttl = match req.ttl.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => talos_credentials::duration::parse_duration(t)
                .map_err(|e| CoreError::bad(format!("ttl: {e}")))?,
            None => rt.derived_default_ttl,
        };
        check_ttl_floor(ttl)?;
        if ttl > rt.max_ttl {
            return Err(CoreError::bad("ttl exceeds credentials.api_keys.max_ttl"));
        }
        let mut expire = add_ttl(now, ttl)?;
        if let Some(parent_exp) = parent.expire_time
            && expire > parent_exp
        {
            if req.ttl.as_deref().is_some_and(|t| !t.is_empty()) {
                return Err(CoreError::bad(
                    "ttl exceeds the remaining lifetime of the parent key",
                ));
            }
            // The default TTL is capped by the parent's remaining life rather than refused.
            expire = parent_exp;
        }
        let scopes = if req.scopes.is_empty() {
            parent.scopes.clone()
        } else {
            if let Some(extra) = req.scopes.iter().find(|s| !parent.scopes.contains(s)) {
                return Err(CoreError::PermissionDenied {
                    reason: "FORBIDDEN",
                    message: format!("scope {extra:?} is not granted to the parent key"),
                });
            }
            req.scopes.clone()
        };
        let custom = strip_reserved(req.custom_claims);
        let claims = DerivedClaims {
            jti: Uuid::new_v4().to_string(),
            sub: parent.key_id.clone(),
            iss: rt.issuer.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expire.timestamp(),
            act: parent.actor_id.clone(),
            nid,
            scp: scopes.clone(),
            meta: parent.metadata.clone(),
            vis: if record.visibility == Visibility::Public {
                talos_credentials::claims::Visibility::Public
            } else {
                talos_credentials::claims::Visibility::Secret
            },
            acl: record.allowed_cidrs.clone().unwrap_or_default(),
            custom: custom.clone(),
        };
        let token = match req.algorithm {
            TokenAlgorithm::Jwt => {
                let key = rt
                    .jwks
                    .signing_key(rt.jwt_signing_key_id.as_deref())
                    .map_err(|_| CoreError::NoSigningKey)?;
                rt.jwks
                    .sign(key, &claims)
                    .map_err(|e| CoreError::Internal(e.to_string()))?
            }
            TokenAlgorithm::Macaroon => {
                talos_credentials::macaroon::derive_macaroon(entry, &rt.macaroon_prefix, &claims)
            }
        };
        let mut merged = parent.metadata.clone();
        merged.extend(custom);
        tracing::info!(
            target: "talos::audit",
            event = crate::audit::names::DERIVED_TOKEN,
            nid = %nid,
            key_id = %parent.key_id,
            actor_id = %parent.actor_id,
            algorithm = ?req.algorithm,
            admin_token = %crate::audit::admin_token(),
            "audit"
        );
        Ok(DerivedToken {
            token,
            expire_time: expire,
            scopes,
            claims: merged,
        })
    }

    /// The public JWK set (no private members).
    pub fn jwks(&self) -> Value {
        self.runtime().jwks.public_jwks()
    }
}
