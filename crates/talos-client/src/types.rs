//! Request and response messages of the Talos `v2alpha1` API, with the field names of the wire format.
//!
//! Responses are decoded leniently (see [`crate::wire`]); requests skip unset fields so that the server applies its
//! own defaults (for instance `ttl` falls back to `credentials.api_keys.default_ttl` only when absent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::wire::{
    de_i64, de_object, de_opt_i64, de_opt_string, de_opt_time, null_default, ser_i64_str, wire_enum,
};

/// A JSON object, as used for `metadata` and `custom_claims`.
pub type JsonObject = Map<String, Value>;

wire_enum! {
    /// Lifecycle state of a key. `EXPIRED` is computed by the server at read time.
    KeyStatus, "KEY_STATUS_" {
        /// The key verifies.
        Active = 1, "ACTIVE";
        /// Revoked by an admin, by rotation or by its holder.
        Revoked = 2, "REVOKED";
        /// Past its `expire_time`.
        Expired = 3, "EXPIRED";
    }
}

wire_enum! {
    /// Whether a key is secret (default) or public.
    KeyVisibility, "KEY_VISIBILITY_" {
        /// A secret key.
        Secret = 1, "SECRET";
        /// A publishable key.
        Public = 2, "PUBLIC";
    }
}

wire_enum! {
    /// Why a key was revoked.
    RevocationReason, "REVOCATION_REASON_" {
        /// The secret leaked.
        KeyCompromise = 1, "KEY_COMPROMISE";
        /// The holder's affiliation changed.
        AffiliationChanged = 2, "AFFILIATION_CHANGED";
        /// Replaced by another key (rotation uses this).
        Superseded = 3, "SUPERSEDED";
        /// Withdrawn by an admin; the only reason that takes a `reason_text`. Not allowed for self-revoke.
        PrivilegeWithdrawn = 4, "PRIVILEGE_WITHDRAWN";
    }
}

wire_enum! {
    /// Derived token kind.
    TokenAlgorithm, "TOKEN_ALGORITHM_" {
        /// EdDSA-signed JWT.
        Jwt = 1, "JWT";
        /// HMAC macaroon (`mc_v1_…`).
        Macaroon = 2, "MACAROON";
    }
}

wire_enum! {
    /// Why a verification failed.
    VerificationErrorCode, "VERIFICATION_ERROR_" {
        /// Not a credential of any known shape.
        InvalidFormat = 1, "INVALID_FORMAT";
        /// Past its expiry.
        Expired = 2, "EXPIRED";
        /// Revoked.
        Revoked = 3, "REVOKED";
        /// Unknown key, bad checksum, or a token for another network.
        NotFound = 4, "NOT_FOUND";
        /// Derived token signature mismatch.
        SignatureInvalid = 5, "SIGNATURE_INVALID";
        /// Server-side failure (e.g. no HMAC secret configured).
        Internal = 6, "INTERNAL";
        /// Client IP outside the key's allowlist.
        IpNotAllowed = 7, "IP_NOT_ALLOWED";
        /// Rate limit exhausted.
        RateLimited = 8, "RATE_LIMITED";
    }
}

wire_enum! {
    /// Per-item error of a batch import.
    BatchImportErrorCode, "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_" {
        /// Validation failed.
        InvalidArgument = 1, "INVALID_ARGUMENT";
        /// Duplicate (already imported, or twice in the batch).
        AlreadyExists = 2, "ALREADY_EXISTS";
        /// Refused raw key shape (issued key, JWT, macaroon).
        FailedPrecondition = 3, "FAILED_PRECONDITION";
        /// Server-side failure.
        Internal = 4, "INTERNAL";
        /// Quota exhausted.
        ResourceExhausted = 5, "RESOURCE_EXHAUSTED";
    }
}

/// Per-key rate limit. `window` is a duration string (`"60s"`, `"1m"`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateLimitPolicy {
    /// Requests allowed per window (int64, sent as a string).
    #[serde(default, deserialize_with = "de_i64", serialize_with = "ser_i64_str")]
    pub quota: i64,
    /// Window length.
    #[serde(default, deserialize_with = "null_default")]
    pub window: String,
    /// Unit; the server always reads back `"requests"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub unit: Option<String>,
}

/// CIDR allowlist of a key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpRestriction {
    /// IPv4/IPv6 networks, e.g. `10.0.0.0/8`.
    #[serde(default, deserialize_with = "null_default")]
    pub allowed_cidrs: Vec<String>,
}

/// An issued or imported key's metadata (`IssuedApiKey` / `ImportedApiKey` on the wire; same fields).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApiKey {
    /// UUID for issued keys, 64 hex characters for imported keys.
    #[serde(default, deserialize_with = "null_default")]
    pub key_id: String,
    /// Human-readable label.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Who holds the key.
    #[serde(default, deserialize_with = "null_default")]
    pub actor_id: String,
    /// Scopes, in the order they were given.
    #[serde(default, deserialize_with = "null_default")]
    pub scopes: Vec<String>,
    /// Free-form metadata object.
    #[serde(default, deserialize_with = "de_object")]
    pub metadata: JsonObject,
    /// Current status.
    #[serde(default)]
    pub status: KeyStatus,
    /// Creation time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub create_time: Option<DateTime<Utc>>,
    /// Last modification time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub update_time: Option<DateTime<Utc>>,
    /// Expiry, if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// Last successful verification (updated at most daily).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub last_used_time: Option<DateTime<Utc>>,
    /// Rate limit, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// Set once revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<RevocationReason>,
    /// Free text given with `PRIVILEGE_WITHDRAWN`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub revocation_description: Option<String>,
    /// CIDR allowlist, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// Secret or public.
    #[serde(default)]
    pub visibility: KeyVisibility,
}

/// An issued key (`IssuedApiKey`).
pub type IssuedApiKey = ApiKey;
/// An imported key (`ImportedApiKey`).
pub type ImportedApiKey = ApiKey;

/// `POST /v2alpha1/admin/issuedApiKeys`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IssueApiKeyRequest {
    /// Label (1..255); required by the server.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Holder (1..255); required by the server.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub actor_id: String,
    /// Scopes (≤100).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Lifetime (`720h`, `1h30m`, `1y6mo`, …); absent → the server's default TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Metadata object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// CIDR allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// Idempotency key (≤36): a repeat returns the existing key with an empty secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Secret or public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<KeyVisibility>,
}

/// Response of issue: the key and its secret (shown once).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IssueApiKeyResponse {
    /// The new key.
    #[serde(default, deserialize_with = "null_default")]
    pub issued_api_key: ApiKey,
    /// The credential; empty when an idempotent `request_id` replay returned an existing key.
    #[serde(default, deserialize_with = "null_default")]
    pub secret: String,
}

/// `POST /v2alpha1/admin/importedApiKeys`, and one item of a batch import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportApiKeyRequest {
    /// The existing credential (1..4096); only its HMAC is stored.
    #[serde(default)]
    pub raw_key: String,
    /// Label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Holder.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor_id: String,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Lifetime; absent → the server's default TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Metadata object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// CIDR allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Secret or public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<KeyVisibility>,
}

/// Response of import. The server sends the key both at the top level (upstream) and under `imported_api_key`
/// (the docs); either shape decodes.
#[derive(Debug, Clone, Default)]
pub struct ImportApiKeyResponse {
    /// The imported key (never includes the raw key).
    pub imported_api_key: ApiKey,
}

impl<'de> Deserialize<'de> for ImportApiKeyResponse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = Value::deserialize(d)?;
        let inner = match v.get_mut("imported_api_key") {
            Some(obj @ Value::Object(_)) => obj.take(),
            _ => v,
        };
        let imported_api_key = serde_json::from_value(inner).map_err(serde::de::Error::custom)?;
        Ok(Self { imported_api_key })
    }
}

/// One item result of a batch import. `index` is the position within the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchImportResult {
    /// Position in the request's `requests` array.
    #[serde(default, deserialize_with = "de_i64")]
    pub index: i64,
    /// Set on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_api_key: Option<ApiKey>,
    /// Set on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<BatchImportErrorCode>,
    /// Set on failure.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub error_message: Option<String>,
}

impl BatchImportResult {
    /// True when the item was imported.
    pub fn is_success(&self) -> bool {
        self.imported_api_key.is_some()
            && matches!(
                self.error_code,
                None | Some(BatchImportErrorCode::Unspecified)
            )
            && self.error_message.as_deref().unwrap_or("").is_empty()
    }
}

/// Response of a batch import (also decoded from an all-failed error response, which carries the same fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchImportResponse {
    /// Per-item outcomes, in request order.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<BatchImportResult>,
    /// Items imported.
    #[serde(default, deserialize_with = "de_i64")]
    pub success_count: i64,
    /// Items refused.
    #[serde(default, deserialize_with = "de_i64")]
    pub failure_count: i64,
}

/// Fields of a PATCH (issued or imported). With an explicit mask, a masked field left `None` is cleared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateApiKeyRequest {
    /// New label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New scopes (replace the old list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// New metadata (replaces the old object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// New rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// New CIDR allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
}

impl UpdateApiKeyRequest {
    /// The `update_mask` paths implied by the fields that are set.
    pub fn implied_mask(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.name.is_some() {
            m.push("name");
        }
        if self.scopes.is_some() {
            m.push("scopes");
        }
        if self.metadata.is_some() {
            m.push("metadata");
        }
        if self.rate_limit_policy.is_some() {
            m.push("rate_limit_policy");
        }
        if self.ip_restriction.is_some() {
            m.push("ip_restriction");
        }
        m
    }
}

/// Body of `:rotate`. An absent field is inherited from the old key; a present one (even empty) overrides it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotateApiKeyRequest {
    /// New label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// New metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// New rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// New CIDR allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// New visibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<KeyVisibility>,
}

/// Response of `:rotate`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RotateApiKeyResponse {
    /// The replacement key.
    #[serde(default, deserialize_with = "null_default")]
    pub issued_api_key: ApiKey,
    /// Its secret (shown once).
    #[serde(default, deserialize_with = "null_default")]
    pub secret: String,
    /// The old key, now `KEY_STATUS_REVOKED` with reason `SUPERSEDED`.
    #[serde(default)]
    pub old_issued_api_key: Option<ApiKey>,
}

/// Body of an admin revoke.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RevokeApiKeyRequest {
    /// Reason; absent is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
    /// Free text, only with `PRIVILEGE_WITHDRAWN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
}

/// Query parameters of both list endpoints. All filters are ANDed by the server.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// 1..1000 (≤0 means 50).
    pub page_size: Option<i64>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// AIP-160 filter: `actor_id="x"`, `status=KEY_STATUS_ACTIVE`, joined by `AND`.
    pub filter: Option<String>,
    /// Only this actor's keys.
    pub actor_id: Option<String>,
    /// `active|revoked|expired` or `KEY_STATUS_*`; needs `actor_id`.
    pub status: Option<String>,
}

/// Response of `GET /v2alpha1/admin/issuedApiKeys`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListIssuedApiKeysResponse {
    /// This page.
    #[serde(default, deserialize_with = "null_default")]
    pub issued_api_keys: Vec<ApiKey>,
    /// Non-empty exactly when more keys match.
    #[serde(default, deserialize_with = "null_default")]
    pub next_page_token: String,
}

/// Response of `GET /v2alpha1/admin/importedApiKeys`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListImportedApiKeysResponse {
    /// This page.
    #[serde(default, deserialize_with = "null_default")]
    pub imported_api_keys: Vec<ApiKey>,
    /// Non-empty exactly when more keys match.
    #[serde(default, deserialize_with = "null_default")]
    pub next_page_token: String,
}

/// `POST /v2alpha1/admin/apiKeys:verify` body.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyApiKeyRequest {
    /// Issued key, imported raw key, JWT or macaroon.
    pub credential: String,
}

/// Verification outcome. The server sends both `is_active` (docs) and `is_valid` (upstream).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyApiKeyResponse {
    /// Docs' name of the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    /// Upstream's name of the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_valid: Option<bool>,
    /// Key (or parent key, for derived tokens).
    #[serde(default, deserialize_with = "null_default")]
    pub key_id: String,
    /// Holder.
    #[serde(default, deserialize_with = "null_default")]
    pub actor_id: String,
    /// Scopes.
    #[serde(default, deserialize_with = "null_default")]
    pub scopes: Vec<String>,
    /// Metadata.
    #[serde(default, deserialize_with = "de_object")]
    pub metadata: JsonObject,
    /// Expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// The configured issuer.
    #[serde(default, deserialize_with = "null_default")]
    pub issuer: String,
    /// Key status.
    #[serde(default)]
    pub status: KeyStatus,
    /// Visibility.
    #[serde(default)]
    pub visibility: KeyVisibility,
    /// Why it is not active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<VerificationErrorCode>,
    /// Human-readable reason.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub error_message: Option<String>,
    /// The key's rate limit, when the limiter answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// Requests left in the window.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_i64"
    )]
    pub rate_limit_remaining: Option<i64>,
    /// When the window resets.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub rate_limit_reset_time: Option<DateTime<Utc>>,
}

impl VerifyApiKeyResponse {
    /// The verdict, whichever of `is_active` / `is_valid` the server sent.
    pub fn active(&self) -> bool {
        self.is_active.or(self.is_valid).unwrap_or(false)
    }
}

/// Response of `:batchVerify`: one result per credential, in request order.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchVerifyApiKeysResponse {
    /// Outcomes.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<VerifyApiKeyResponse>,
}

/// `POST /v2alpha1/admin/apiKeys:derive` body.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeriveTokenRequest {
    /// Parent credential.
    pub credential: String,
    /// JWT (default) or macaroon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<TokenAlgorithm>,
    /// Token lifetime; absent → `derived_tokens.default_ttl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Subset of the parent's scopes; empty inherits them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Extra top-level claims (reserved names are dropped by the server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_claims: Option<JsonObject>,
}

/// A derived token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Token {
    /// The JWT or macaroon.
    #[serde(default, deserialize_with = "null_default")]
    pub token: String,
    /// Expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// Effective scopes.
    #[serde(default, deserialize_with = "null_default")]
    pub scopes: Vec<String>,
    /// Parent metadata merged with the custom claims.
    #[serde(default, deserialize_with = "de_object")]
    pub claims: JsonObject,
}

/// Response of derive.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeriveTokenResponse {
    /// The token.
    #[serde(default, deserialize_with = "null_default")]
    pub token: Token,
}

/// `POST /v2alpha1/apiKeys:selfRevoke` body (proof of possession).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SelfRevokeApiKeyRequest {
    /// The key's own secret.
    pub credential: String,
    /// Reason (not `PRIVILEGE_WITHDRAWN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
}

/// Public JSON Web Key Set for derived JWTs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JwksResponse {
    /// Keys at the top level (RFC 7517 shape).
    #[serde(default, deserialize_with = "null_default")]
    keys: Vec<Value>,
    /// Keys wrapped in `jwks` (upstream's proto shape).
    #[serde(default)]
    jwks: Option<JwkSet>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct JwkSet {
    #[serde(default, deserialize_with = "null_default")]
    keys: Vec<Value>,
}

impl JwksResponse {
    /// The public keys, from whichever shape the server used.
    pub fn keys(&self) -> &[Value] {
        match &self.jwks {
            Some(set) if self.keys.is_empty() => &set.keys,
            _ => &self.keys,
        }
    }
}

/// `GET /health/alive` and `/health/ready`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HealthStatus {
    /// `"ok"`.
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Release version.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Source commit.
    #[serde(default, deserialize_with = "null_default")]
    pub commit: String,
    /// Build time.
    #[serde(default, deserialize_with = "null_default")]
    pub build_time: String,
    /// Hash of the effective configuration.
    #[serde(default, deserialize_with = "null_default")]
    pub config_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_parse_names_short_names_and_numbers() {
        assert_eq!(KeyStatus::from_name("active"), Some(KeyStatus::Active));
        assert_eq!(
            KeyStatus::from_name("KEY_STATUS_REVOKED"),
            Some(KeyStatus::Revoked)
        );
        assert_eq!(
            RevocationReason::from_name("key-compromise"),
            Some(RevocationReason::KeyCompromise)
        );
        let s: KeyStatus = serde_json::from_value(json!(3)).unwrap();
        assert_eq!(s, KeyStatus::Expired);
        let s: KeyStatus = serde_json::from_value(json!("KEY_STATUS_FROM_THE_FUTURE")).unwrap();
        assert_eq!(s, KeyStatus::Unspecified);
        assert_eq!(
            serde_json::to_value(TokenAlgorithm::Jwt).unwrap(),
            json!("TOKEN_ALGORITHM_JWT")
        );
        assert_eq!(
            RevocationReason::PrivilegeWithdrawn.short_name(),
            "privilege_withdrawn"
        );
    }

    #[test]
    fn api_key_decodes_protojson_and_nulls() {
        let k: ApiKey = serde_json::from_value(json!({
            "key_id": "abc", "name": "n", "actor_id": "a", "scopes": ["b", "a"], "metadata": null,
            "status": "KEY_STATUS_ACTIVE", "create_time": "2026-01-01T00:00:00Z",
            "rate_limit_policy": {"quota": "100", "window": "60s", "unit": "requests"},
            "ip_restriction": null, "visibility": "KEY_VISIBILITY_SECRET", "unknown_field": 1
        }))
        .unwrap();
        assert_eq!(k.scopes, ["b", "a"]);
        assert!(k.metadata.is_empty());
        assert_eq!(k.rate_limit_policy.unwrap().quota, 100);
        assert!(k.ip_restriction.is_none());
    }

    #[test]
    fn import_response_either_shape() {
        let wrapped: ImportApiKeyResponse = serde_json::from_value(
            json!({"key_id": "top", "imported_api_key": {"key_id": "inner"}}),
        )
        .unwrap();
        assert_eq!(wrapped.imported_api_key.key_id, "inner");
        let bare: ImportApiKeyResponse = serde_json::from_value(json!({"key_id": "top"})).unwrap();
        assert_eq!(bare.imported_api_key.key_id, "top");
    }

    #[test]
    fn update_mask_follows_set_fields_and_requests_skip_unset() {
        let u = UpdateApiKeyRequest {
            name: Some("x".into()),
            scopes: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(u.implied_mask(), ["name", "scopes"]);
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"name": "x", "scopes": []})
        );
        let i = IssueApiKeyRequest {
            name: "n".into(),
            actor_id: "a".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&i).unwrap(),
            json!({"name": "n", "actor_id": "a"})
        );
        let p = RateLimitPolicy {
            quota: 5,
            window: "60s".into(),
            unit: None,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"quota": "5", "window": "60s"})
        );
    }

    #[test]
    fn verify_verdict_from_either_field() {
        let v: VerifyApiKeyResponse = serde_json::from_value(json!({"is_valid": true})).unwrap();
        assert!(v.active());
        let v: VerifyApiKeyResponse = serde_json::from_value(
            json!({"is_active": false, "error_code": "VERIFICATION_ERROR_REVOKED", "error_message": "revoked"}),
        )
        .unwrap();
        assert!(!v.active());
        assert_eq!(v.error_code, Some(VerificationErrorCode::Revoked));
    }

    #[test]
    fn jwks_either_shape() {
        let a: JwksResponse =
            serde_json::from_value(json!({"jwks": {"keys": [{"kid": "a"}]}})).unwrap();
        assert_eq!(a.keys().len(), 1);
        let b: JwksResponse =
            serde_json::from_value(json!({"keys": [{"kid": "b"}], "jwks": {"keys": []}})).unwrap();
        assert_eq!(b.keys()[0]["kid"], "b");
    }
}
