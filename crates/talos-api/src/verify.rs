//! Verification, derived tokens, self-revoke and the public key set of derived JWTs.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::{
    de_lenient_object, de_lenient_opt_i64, de_lenient_opt_string, de_lenient_opt_time,
    de_strict_opt_i64, null_default, null_items, ser_opt_i64_str, ser_opt_time,
};
use crate::enums::{
    KeyStatus, KeyVisibility, RevocationReason, TokenAlgorithm, VerificationErrorCode, strict,
};
use crate::keys::{JsonObject, RateLimitPolicy};
use crate::schema;

/// Longest `credential` a verify request may carry, in characters. Longer: 400 naming the field
/// (upstream's request validation); inside a batch, that item's `VERIFICATION_ERROR_INVALID_FORMAT`.
pub const MAX_CREDENTIAL_CHARS: usize = 4096;

/// `POST /v2alpha1/admin/apiKeys:verify` body, and one item of a batch verify.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "VerifyRequest", extend("required" = ["credential"]))]
pub struct VerifyApiKeyRequest {
    /// Issued key, imported raw key, JWT or macaroon.
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(max = 4096))]
    pub credential: String,
    /// Credits this verification spends from a key with credits: default 1, 0 only checks that
    /// some are left (at least 0; a number or a decimal string).
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::int64_input")]
    pub cost: Option<i64>,
}

/// `POST /v2alpha1/admin/apiKeys:batchVerify` body. A `null` item reads as an empty credential.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "BatchVerifyRequest", extend("required" = ["requests"]))]
pub struct BatchVerifyApiKeysRequest {
    /// 1..100 credentials.
    #[serde(deserialize_with = "null_items")]
    #[schemars(with = "Vec<VerifyApiKeyRequest>", length(min = 1, max = 100))]
    pub requests: Option<Vec<VerifyApiKeyRequest>>,
}

/// Verification outcome. The server sends both `is_valid` (upstream) and `is_active` (docs).
///
/// `issuer` and `error_message` borrow where they can (the server answers from its own
/// configuration and static texts without copying); a client decodes them owned
/// (`VerifyApiKeyResponse<'static>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(
    rename = "VerifyResponse",
    extend("required" = [
        "is_valid", "is_active", "key_id", "actor_id", "scopes", "metadata", "issuer", "status",
        "visibility"
    ])
)]
pub struct VerifyApiKeyResponse<'a> {
    /// Upstream's name of the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_valid: Option<bool>,
    /// Docs' name of the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
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
    #[serde(default, deserialize_with = "de_lenient_object")]
    pub metadata: JsonObject,
    /// Expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// The configured issuer.
    #[serde(default, deserialize_with = "null_default")]
    pub issuer: Cow<'a, str>,
    /// Key status (`KEY_STATUS_UNSPECIFIED` on failure).
    #[serde(default)]
    pub status: KeyStatus,
    /// Visibility (`KEY_VISIBILITY_UNSPECIFIED` on failure).
    #[serde(default)]
    pub visibility: KeyVisibility,
    /// The key's rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// Requests left in the window, when the limiter answered for this key (int64 as a string).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_i64",
        serialize_with = "ser_opt_i64_str"
    )]
    #[schemars(with = "Option<schema::Int64>")]
    pub rate_limit_remaining: Option<i64>,
    /// When the window resets (allowed), or when the next request will be allowed (refused).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub rate_limit_reset_time: Option<DateTime<Utc>>,
    /// The key's credits left after this verification, for a key with credits (int64 as a
    /// string; also on `VERIFICATION_ERROR_USAGE_EXCEEDED`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_i64",
        serialize_with = "ser_opt_i64_str"
    )]
    #[schemars(with = "Option<schema::Int64>")]
    pub credits_remaining: Option<i64>,
    /// The actor's remaining balance, when the actor has a quota (int64 as a string).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_i64",
        serialize_with = "ser_opt_i64_str"
    )]
    #[schemars(with = "Option<schema::Int64>")]
    pub balance_remaining: Option<i64>,
    /// The actor's quota, when it has one (int64 as a string).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_i64",
        serialize_with = "ser_opt_i64_str"
    )]
    #[schemars(with = "Option<schema::Int64>")]
    pub balance_quota: Option<i64>,
    /// Why it is not active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<VerificationErrorCode>,
    /// Human-readable reason.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_string"
    )]
    pub error_message: Option<Cow<'a, str>>,
}

impl VerifyApiKeyResponse<'_> {
    /// The verdict, whichever of `is_active` / `is_valid` the server sent.
    pub fn active(&self) -> bool {
        self.is_active.or(self.is_valid).unwrap_or(false)
    }
}

/// Response of `:batchVerify`: one result per credential, in request order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "BatchVerifyResponse", extend("required" = ["results"]))]
pub struct BatchVerifyApiKeysResponse<'a> {
    /// Outcomes.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<VerifyApiKeyResponse<'a>>,
}

/// `POST /v2alpha1/admin/apiKeys:derive` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "DeriveRequest", extend("required" = ["credential"]))]
pub struct DeriveTokenRequest {
    /// Parent credential (an issued or imported key).
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(min = 1, max = 4096))]
    pub credential: String,
    /// JWT (default) or macaroon.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "strict")]
    pub algorithm: Option<TokenAlgorithm>,
    /// Token lifetime; absent: `derived_tokens.default_ttl`, capped by the parent's expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Subset of the parent's scopes; empty inherits them.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub scopes: Vec<String>,
    /// Extra top-level claims (at most 4096 bytes serialized; reserved names are dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_claims: Option<JsonObject>,
}

/// A derived token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(inline, extend("required" = ["token", "expire_time", "scopes", "claims"]))]
pub struct Token {
    /// The JWT or macaroon.
    #[serde(default, deserialize_with = "null_default")]
    pub token: String,
    /// Expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// Effective scopes.
    #[serde(default, deserialize_with = "null_default")]
    pub scopes: Vec<String>,
    /// Parent metadata merged with the custom claims.
    #[serde(default, deserialize_with = "de_lenient_object")]
    pub claims: JsonObject,
}

/// Response of derive.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DeriveResponse", extend("required" = ["token"]))]
pub struct DeriveTokenResponse {
    /// The token.
    #[serde(default, deserialize_with = "null_default")]
    pub token: Token,
}

/// `POST /v2alpha1/apiKeys:selfRevoke` body (proof of possession).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "SelfRevokeRequest", extend("required" = ["credential"]))]
pub struct SelfRevokeApiKeyRequest {
    /// The key's own secret.
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(min = 1))]
    pub credential: String,
    /// Reason (not `PRIVILEGE_WITHDRAWN`).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "strict")]
    pub reason: Option<RevocationReason>,
}

/// An empty message (`{}`), the answer of self-revoke.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("properties" = {}, "required" = []))]
pub struct Empty {}

/// A JSON Web Key Set in the RFC 7517 shape (`/.well-known/jwks.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["keys"]))]
pub struct Jwks {
    /// Public keys (Ed25519 `OKP` keys; no private members).
    #[serde(default, deserialize_with = "null_default")]
    #[schemars(schema_with = "schema::jwk_list")]
    pub keys: Vec<Value>,
}

/// Public keys of derived JWTs (`/v2alpha1/derivedKeys/jwks.json`): the set both wrapped in
/// `jwks` (upstream's proto shape) and at the top level (RFC 7517 shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["jwks", "keys"]))]
pub struct JwksResponse {
    /// The set wrapped (upstream's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Jwks>,
    /// The keys at the top level (RFC 7517 shape).
    #[serde(default, deserialize_with = "null_default")]
    #[schemars(schema_with = "schema::jwk_list")]
    pub keys: Vec<Value>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verify_verdict_from_either_field() {
        let v: VerifyApiKeyResponse<'static> =
            serde_json::from_value(json!({"is_valid": true})).unwrap();
        assert!(v.active());
        let v: VerifyApiKeyResponse<'static> = serde_json::from_value(
            json!({"is_active": false, "error_code": "VERIFICATION_ERROR_REVOKED", "error_message": "revoked"}),
        )
        .unwrap();
        assert!(!v.active());
        assert_eq!(v.error_code, Some(VerificationErrorCode::Revoked));
        assert_eq!(v.error_message.as_deref(), Some("revoked"));
    }

    #[test]
    fn verify_response_as_the_server_writes_it() {
        let v = VerifyApiKeyResponse {
            is_valid: Some(false),
            is_active: Some(false),
            issuer: Cow::Borrowed("iss"),
            rate_limit_remaining: Some(3),
            error_code: Some(VerificationErrorCode::NotFound),
            error_message: Some(Cow::Borrowed("API key not found")),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"is_valid":false,"is_active":false,"key_id":"","actor_id":"","scopes":[],"metadata":{},"issuer":"iss","status":"KEY_STATUS_UNSPECIFIED","visibility":"KEY_VISIBILITY_UNSPECIFIED","rate_limit_remaining":"3","error_code":"VERIFICATION_ERROR_NOT_FOUND","error_message":"API key not found"}"#
        );
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

    #[test]
    fn batch_verify_items_may_be_null() {
        let b: BatchVerifyApiKeysRequest =
            serde_json::from_value(json!({"requests": [null, {"credential": "c"}]})).unwrap();
        let items = b.requests.unwrap();
        assert_eq!(
            (items[0].credential.as_str(), items[1].credential.as_str()),
            ("", "c")
        );
    }
}
