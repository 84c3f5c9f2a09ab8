//! Deriving short-lived JWTs and macaroons from a key, and the public JWKS.
//!
//! [`Service::derive`] runs four steps: the request's own checks, the parent key (verified fresh,
//! never from the cache), the token's expiry and scopes, then minting and the audit event.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use talos_credentials::claims::{DerivedClaims, strip_reserved};
use talos_secrets::KeyEntry;
use talos_storage::Visibility;
use uuid::Uuid;

use super::requests::{DeriveRequest, TokenAlgorithm, check_custom_claims};
use super::verify::{CacheMode, Verified, VerifyErrorCode, VerifyRequest};
use super::{
    CachedKey, Service,
    keys::{add_ttl, check_ttl_floor},
};
use crate::error::{CoreError, Result};
use crate::runtime::Runtime;

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
    #[tracing::instrument(level = "debug", name = "talos.derive", skip_all, fields(network = %nid))]
    pub async fn derive(&self, nid: Uuid, req: DeriveRequest) -> Result<DerivedToken> {
        if req.credential.is_empty() {
            return Err(CoreError::CredentialRequired);
        }
        check_custom_claims(&req.custom_claims)?;
        let rt = self.runtime(nid);
        let entry = rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        if req.algorithm == TokenAlgorithm::Jwt
            && rt
                .jwks
                .signing_key(rt.jwt_signing_key_id.as_deref())
                .is_err()
        {
            return Err(CoreError::NoSigningKey);
        }
        let (parent, record) = self.derive_parent(nid, &req).await?;
        let now = self.now();
        let expire = token_expiry(&rt, req.ttl.as_deref(), &parent, now)?;
        let scopes = token_scopes(&req.scopes, &parent)?;
        let custom = strip_reserved(req.custom_claims);
        let claims = DerivedClaims {
            jti: Uuid::new_v4().to_string(),
            sub: parent.key_id.clone(),
            iss: rt.issuer.to_string(),
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
        let token = mint(&rt, entry, req.algorithm, &claims)?;
        crate::domain_metrics::domain().token_minted();
        let mut merged = parent.metadata;
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

    /// The parent key, verified fresh and without counting against its rate limit: a revocation
    /// must stop derivation at once. Derived tokens cannot be parents.
    async fn derive_parent(&self, nid: Uuid, req: &DeriveRequest) -> Result<(Verified, CachedKey)> {
        let outcome = self
            .verify_uncounted(
                nid,
                &VerifyRequest {
                    credential: req.credential.clone(),
                    client_ip: req.client_ip,
                    cache: CacheMode::NoStore,
                    cost: None,
                },
            )
            .await;
        let parent = outcome.result.map_err(|f| match f.code {
            VerifyErrorCode::Revoked => CoreError::ParentKeyRevoked,
            VerifyErrorCode::Expired => CoreError::ParentKeyExpired,
            VerifyErrorCode::NoHmacKey => CoreError::NoHmacKey,
            VerifyErrorCode::Internal => CoreError::Internal(f.message.to_string()),
            _ => CoreError::ParentKeyInvalid,
        })?;
        let record = parent
            .record
            .clone()
            .ok_or(CoreError::ParentIsDerivedToken)?;
        Ok((parent, record))
    }

    /// The public JWK set of network `nid` (no private members).
    pub fn jwks(&self, nid: Uuid) -> Value {
        self.runtime(nid).jwks.public_jwks()
    }
}

/// The token's expiry: `ttl` (else `derived_tokens.default_ttl`) from `now`, within `max_ttl`. A
/// requested TTL past the parent's expiry is refused; the default is capped by it instead.
fn token_expiry(
    rt: &Runtime,
    ttl: Option<&str>,
    parent: &Verified,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>> {
    let requested = ttl.filter(|t| !t.is_empty());
    let ttl = match requested {
        Some(t) => talos_credentials::duration::parse_duration(t)
            .map_err(|e| CoreError::bad(format!("ttl: {e}")))?,
        None => rt.derived_default_ttl,
    };
    check_ttl_floor(ttl)?;
    if ttl > rt.max_ttl {
        return Err(CoreError::bad("ttl exceeds credentials.api_keys.max_ttl"));
    }
    let expire = add_ttl(now, ttl)?;
    match parent.expire_time {
        Some(parent_exp) if expire > parent_exp => {
            if requested.is_some() {
                return Err(CoreError::bad(
                    "ttl exceeds the remaining lifetime of the parent key",
                ));
            }
            Ok(parent_exp)
        }
        _ => Ok(expire),
    }
}

/// The token's scopes: the requested ones, each granted to the parent; none requested: all of
/// the parent's.
fn token_scopes(requested: &[String], parent: &Verified) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(parent.scopes.clone());
    }
    match requested.iter().find(|s| !parent.scopes.contains(s)) {
        Some(extra) => Err(CoreError::ScopeNotGranted(extra.clone())),
        None => Ok(requested.to_vec()),
    }
}

/// Signs the claims as a JWT, or derives a macaroon from the current secret `entry`.
fn mint(
    rt: &Runtime,
    entry: &KeyEntry,
    algorithm: TokenAlgorithm,
    claims: &DerivedClaims,
) -> Result<String> {
    match algorithm {
        TokenAlgorithm::Jwt => {
            let key = rt
                .jwks
                .signing_key(rt.jwt_signing_key_id.as_deref())
                .map_err(|_| CoreError::NoSigningKey)?;
            rt.jwks
                .sign(key, claims)
                .map_err(|e| CoreError::Internal(e.to_string()))
        }
        TokenAlgorithm::Macaroon => Ok(talos_credentials::macaroon::derive_macaroon(
            entry,
            &rt.macaroon_prefix,
            claims,
        )),
    }
}
