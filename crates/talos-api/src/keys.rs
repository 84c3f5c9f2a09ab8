//! Keys: the key resource, and the requests and responses of issue, import, batch import, get,
//! list, update, rotate and revoke.
//!
//! Responses decode leniently (unknown fields ignored, `null` read as the zero value, unknown
//! enum values as `…_UNSPECIFIED`); requests skip unset fields when written, so that the server
//! applies its own defaults (`ttl` falls back to `credentials.api_keys.default_ttl` only when
//! absent), and decode strictly where the server must refuse what it cannot interpret.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codec::{
    de_lenient_i64, de_lenient_object, de_lenient_opt_string, de_lenient_opt_time, de_present,
    de_strict_opt_i64, null_default, null_items, ser_i64_str, ser_opt_i64_str, ser_opt_time,
    ser_present,
};
use crate::enums::{BatchImportErrorCode, KeyStatus, KeyVisibility, RevocationReason, strict};
use crate::mask::UpdateMask;
use crate::metering::{Credits, CreditsInput};
use crate::schema;

/// A JSON object, as used for `metadata` and `custom_claims`.
pub type JsonObject = Map<String, Value>;

/// A key's rate limit as the server reads it back. `window` is a duration string (`"60s"`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["quota", "window"]))]
pub struct RateLimitPolicy {
    /// Requests allowed per window (int64, sent as a string).
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub quota: i64,
    /// Window length.
    #[serde(default, deserialize_with = "null_default")]
    pub window: String,
    /// Unit; the server always reads back `"requests"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_string"
    )]
    pub unit: Option<String>,
}

/// A rate limit as requested: `quota` requests per `window` (at least 1s, e.g. `60s` or `1m`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(extend("required" = ["quota", "window"]))]
pub struct RateLimitPolicyInput {
    /// Requests per window, greater than 0 (int64: a number or a decimal string).
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::quota_input")]
    pub quota: Option<i64>,
    /// at least 1s, e.g. 60s or 1m
    #[serde(deserialize_with = "null_default")]
    pub window: String,
    /// Unit; only `requests` is enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::rate_limit_unit")]
    pub unit: Option<String>,
}

/// CIDR allowlist of a key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = []))]
pub struct IpRestriction {
    /// IPv4/IPv6 networks, e.g. `10.0.0.0/8`.
    #[serde(default, deserialize_with = "null_default")]
    #[schemars(length(max = 50), inner(length(max = 50)))]
    pub allowed_cidrs: Vec<String>,
}

/// An issued or imported key's metadata (`IssuedApiKey` / `ImportedApiKey` on the wire; same
/// fields). Never carries the secret.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = [
    "key_id", "name", "actor_id", "scopes", "metadata", "status", "create_time", "update_time",
    "visibility"
]))]
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
    #[serde(default, deserialize_with = "de_lenient_object")]
    pub metadata: JsonObject,
    /// Current status (`EXPIRED` is computed at read time).
    #[serde(default)]
    pub status: KeyStatus,
    /// Creation time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub create_time: Option<DateTime<Utc>>,
    /// Last modification time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub update_time: Option<DateTime<Utc>>,
    /// Expiry, if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// Last successful verification (updated at most daily).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
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
        deserialize_with = "de_lenient_opt_string"
    )]
    pub revocation_description: Option<String>,
    /// CIDR allowlist, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// Secret or public.
    #[serde(default)]
    pub visibility: KeyVisibility,
    /// Usage credits, if the key has any (metering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<Credits>,
}

/// An issued key (`IssuedApiKey`).
pub type IssuedApiKey = ApiKey;
/// An imported key (`ImportedApiKey`).
pub type ImportedApiKey = ApiKey;

/// `POST /v2alpha1/admin/issuedApiKeys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "IssueRequest", extend("required" = ["name", "actor_id"]))]
pub struct IssueApiKeyRequest {
    /// Label (1..255); required by the server.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Holder (1..255); required by the server.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(min = 1, max = 255))]
    pub actor_id: String,
    /// Scopes (at most 100, each 1..100 characters).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(max = 100), inner(length(min = 1, max = 100)))]
    pub scopes: Vec<String>,
    /// Lifetime: 720h, 1h30m, 86400s, 1d, 1w, 1mo, 1y, 1y6mo; absent: the server's default TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Metadata object (at most 64 KiB serialized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Rate limit, enforced on verify only while the server runs with `rate_limit.enabled: true`;
    /// off (the default), it is stored and returned but not enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicyInput>,
    /// CIDR allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// Idempotency key (at most 36 characters): a repeat returns the existing key with an empty
    /// secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    pub request_id: Option<String>,
    /// Secret or public.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "strict")]
    pub visibility: Option<KeyVisibility>,
    /// Usage credits (metering); absent = unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsInput>,
}

/// Response of issue: the key and its secret (shown once).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IssueResponse", extend("required" = ["issued_api_key", "secret"]))]
pub struct IssueApiKeyResponse {
    /// The new key.
    #[serde(default, deserialize_with = "null_default")]
    pub issued_api_key: ApiKey,
    /// The credential; empty when an idempotent `request_id` replay returned an existing key.
    #[serde(default, deserialize_with = "null_default")]
    pub secret: String,
}

/// `POST /v2alpha1/admin/importedApiKeys`, and one item of a batch import.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "ImportRequest", extend("required" = ["raw_key", "name", "actor_id"]))]
pub struct ImportApiKeyRequest {
    /// The existing credential (1..4096); only its keyed hash is stored.
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(min = 1, max = 4096))]
    pub raw_key: String,
    /// Label (1..255).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Holder (1..255).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(min = 1, max = 255))]
    pub actor_id: String,
    /// Scopes (at most 100, each 1..100 characters).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(max = 100), inner(length(min = 1, max = 100)))]
    pub scopes: Vec<String>,
    /// Lifetime: 720h, 1h30m, 86400s, 1d, 1w, 1mo, 1y, 1y6mo; absent: the server's default TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Metadata object (at most 64 KiB serialized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Rate limit, enforced on verify only while the server runs with `rate_limit.enabled: true`;
    /// off (the default), it is stored and returned but not enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicyInput>,
    /// CIDR allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// Idempotency key (at most 36 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    pub request_id: Option<String>,
    /// Secret or public.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "strict")]
    pub visibility: Option<KeyVisibility>,
    /// Usage credits (metering); absent = unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsInput>,
}

/// Response of import. The server sends the key both at the top level (upstream) and under
/// `imported_api_key` (the docs); either shape decodes.
#[derive(Debug, Clone, Default)]
pub struct ImportApiKeyResponse {
    /// The imported key (never includes the raw key).
    pub imported_api_key: ApiKey,
}

impl Serialize for ImportApiKeyResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct BothShapes<'a> {
            #[serde(flatten)]
            top: &'a ApiKey,
            imported_api_key: &'a ApiKey,
        }
        BothShapes {
            top: &self.imported_api_key,
            imported_api_key: &self.imported_api_key,
        }
        .serialize(s)
    }
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

impl JsonSchema for ImportApiKeyResponse {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ImportResponse".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The key's own properties at the top level, plus the key again under `imported_api_key`.
        let mut schema = ApiKey::json_schema(generator);
        let key_ref = generator.subschema_for::<ApiKey>();
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("imported_api_key".into(), key_ref.to_value());
        }
        schema.insert(
            "required".into(),
            serde_json::json!(["key_id", "imported_api_key"]),
        );
        schema.remove("description");
        schema
    }
}

/// One item result of a batch import. `index` is the position within the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["index"]))]
pub struct BatchImportResult {
    /// Position in the request's `requests` array.
    #[serde(default, deserialize_with = "de_lenient_i64")]
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
        deserialize_with = "de_lenient_opt_string"
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

/// `POST /v2alpha1/admin/importedApiKeys:batchImport` (and `:batchCreate`): the items under
/// `requests` (upstream) or `keys` (the docs), not both. A `null` item reads as an empty one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "BatchImportRequest", extend("required" = []))]
pub struct BatchImportRequest {
    /// 1..1000 keys to import.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "null_items"
    )]
    #[schemars(length(min = 1, max = 1000))]
    pub requests: Option<Vec<ImportApiKeyRequest>>,
    /// Alias of `requests`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "null_items"
    )]
    #[schemars(length(min = 1, max = 1000))]
    pub keys: Option<Vec<ImportApiKeyRequest>>,
}

/// Response of a batch import (also the extra fields of an all-failed error response).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["results", "success_count", "failure_count"]))]
pub struct BatchImportResponse {
    /// Per-item outcomes, in request order.
    #[serde(default, deserialize_with = "null_default")]
    pub results: Vec<BatchImportResult>,
    /// Items imported.
    #[serde(default, deserialize_with = "de_lenient_i64")]
    pub success_count: i64,
    /// Items refused.
    #[serde(default, deserialize_with = "de_lenient_i64")]
    pub failure_count: i64,
}

/// Fields of a PATCH (issued or imported). With an explicit mask, a masked field left `None` is
/// cleared. The server also accepts the resource wrapped in `issued_api_key`/`imported_api_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "UpdateRequest", extend("required" = []))]
pub struct UpdateApiKeyRequest {
    /// Must match the path's key id when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub key_id: Option<String>,
    /// New label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New scopes (replace the old list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// New metadata (replaces the old object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// New rate limit; all fields empty clears it. It is enforced on verify only while the
    /// server runs with `rate_limit.enabled: true`; off (the default), it is stored and returned
    /// but not enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicyInput>,
    /// New CIDR allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// New credits (the balance restarts from them); masked and absent, removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsInput>,
    /// The fields to write (also accepted as the `update_mask` query parameter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_mask: Option<UpdateMask>,
}

impl UpdateApiKeyRequest {
    /// The `update_mask` paths implied by the fields that are set.
    pub fn implied_mask(&self) -> Vec<&'static str> {
        use crate::mask::UpdatePath as P;
        [
            (self.name.is_some(), P::Name),
            (self.scopes.is_some(), P::Scopes),
            (self.metadata.is_some(), P::Metadata),
            (self.rate_limit_policy.is_some(), P::RateLimitPolicy),
            (self.ip_restriction.is_some(), P::IpRestriction),
            (self.credits.is_some(), P::Credits),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, p)| p.as_str())
        .collect()
    }
}

/// Body of `:rotate`. An absent field is inherited from the old key; a present one (even empty)
/// overrides it; `rate_limit_policy: null` clears the policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "RotateRequest", extend("required" = []))]
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
    /// New rate limit: absent inherits, `null` clears. It is enforced on verify only while the
    /// server runs with `rate_limit.enabled: true`; off (the default), it is stored and returned
    /// but not enforced.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_present",
        serialize_with = "ser_present"
    )]
    #[schemars(with = "Option<RateLimitPolicyInput>")]
    pub rate_limit_policy: Option<Option<RateLimitPolicyInput>>,
    /// New CIDR allowlist (present and empty removes the restriction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestriction>,
    /// New visibility.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "strict")]
    pub visibility: Option<KeyVisibility>,
}

/// Response of `:rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(
    rename = "RotateResponse",
    extend("required" = ["issued_api_key", "secret", "old_issued_api_key"])
)]
pub struct RotateApiKeyResponse {
    /// The replacement key.
    #[serde(default, deserialize_with = "null_default")]
    pub issued_api_key: ApiKey,
    /// Its secret (shown once).
    #[serde(default, deserialize_with = "null_default")]
    pub secret: String,
    /// The old key, now `KEY_STATUS_REVOKED` with reason `SUPERSEDED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_issued_api_key: Option<ApiKey>,
}

/// Body of an admin revoke. `description` is an alias of `reason_text` (upstream's per-kind
/// routes use it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "RevokeRequest", extend("required" = []))]
pub struct RevokeApiKeyRequest {
    /// Reason; absent is accepted.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "strict")]
    pub reason: Option<RevocationReason>,
    /// Free text, only with `PRIVILEGE_WITHDRAWN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// Alias of `reason_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Response of `GET /v2alpha1/admin/issuedApiKeys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["issued_api_keys", "next_page_token"]))]
pub struct ListIssuedApiKeysResponse {
    /// This page.
    #[serde(default, deserialize_with = "null_default")]
    pub issued_api_keys: Vec<ApiKey>,
    /// Non-empty exactly when more keys match.
    #[serde(default, deserialize_with = "null_default")]
    pub next_page_token: String,
}

/// Response of `GET /v2alpha1/admin/importedApiKeys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["imported_api_keys", "next_page_token"]))]
pub struct ListImportedApiKeysResponse {
    /// This page.
    #[serde(default, deserialize_with = "null_default")]
    pub imported_api_keys: Vec<ApiKey>,
    /// Non-empty exactly when more keys match.
    #[serde(default, deserialize_with = "null_default")]
    pub next_page_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn import_response_either_shape_and_both_written() {
        let wrapped: ImportApiKeyResponse = serde_json::from_value(
            json!({"key_id": "top", "imported_api_key": {"key_id": "inner"}}),
        )
        .unwrap();
        assert_eq!(wrapped.imported_api_key.key_id, "inner");
        let bare: ImportApiKeyResponse = serde_json::from_value(json!({"key_id": "top"})).unwrap();
        assert_eq!(bare.imported_api_key.key_id, "top");
        let out = serde_json::to_value(&bare).unwrap();
        assert_eq!(out["key_id"], "top");
        assert_eq!(out["imported_api_key"]["key_id"], "top");
    }

    #[test]
    fn requests_skip_unset_fields() {
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
        let p = RateLimitPolicyInput {
            quota: Some(5),
            window: "60s".into(),
            unit: None,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"quota": "5", "window": "60s"})
        );
        let r = RotateApiKeyRequest {
            rate_limit_policy: Some(None),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"rate_limit_policy": null})
        );
    }

    #[test]
    fn requests_decode_strictly() {
        let r: RotateApiKeyRequest =
            serde_json::from_value(json!({"rate_limit_policy": null})).unwrap();
        assert_eq!(r.rate_limit_policy, Some(None));
        let r: RotateApiKeyRequest = serde_json::from_value(json!({})).unwrap();
        assert_eq!(r.rate_limit_policy, None);
        let i: IssueApiKeyRequest =
            serde_json::from_value(json!({"name": null, "scopes": null, "visibility": 2})).unwrap();
        assert_eq!(
            (i.name.as_str(), i.visibility),
            ("", Some(KeyVisibility::Public))
        );
        for bad in [
            json!({"visibility": "PUBLIC"}),
            json!({"scopes": "a"}),
            json!({"rate_limit_policy": {"quota": "x"}}),
        ] {
            assert!(
                serde_json::from_value::<IssueApiKeyRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let b: BatchImportRequest =
            serde_json::from_value(json!({"requests": [null, {"raw_key": "k"}]})).unwrap();
        let items = b.requests.unwrap();
        assert_eq!(
            (items[0].raw_key.as_str(), items[1].raw_key.as_str()),
            ("", "k")
        );
    }
}
