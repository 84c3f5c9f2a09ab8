//! Metering (docs/metering.md): key credits (Unkey-style `credits {remaining, refill}`), actor
//! balances and usage ingestion (the metering fork's `usage:ingest`, `actorBalances:*`), and the
//! self-service bodies (`/v2alpha1/self/*`).
//!
//! int64 fields are written as decimal strings and read as numbers or strings, like every int64
//! of the API.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::codec::{
    de_lenient_i64, de_lenient_opt_time, de_strict_opt_i64, null_default, ser_i64_str,
    ser_opt_i64_str, ser_opt_time,
};
use crate::schema;

/// When credits are refilled: at 00:00 UTC of every day, or of every month's first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefillInterval {
    /// `daily`.
    Daily,
    /// `monthly`.
    Monthly,
}

impl RefillInterval {
    /// Every interval, in the order the documentation lists them.
    pub const ALL: &'static [RefillInterval] = &[RefillInterval::Daily, RefillInterval::Monthly];

    /// The wire name: `daily` or `monthly`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefillInterval::Daily => "daily",
            RefillInterval::Monthly => "monthly",
        }
    }

    /// Parses a wire name, case-insensitively.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|i| i.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown refill interval {s:?}; expected daily or monthly"))
    }
}

impl std::fmt::Display for RefillInterval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RefillInterval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl Serialize for RefillInterval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RefillInterval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Self::parse(&s).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "unknown refill interval {other}; expected daily or monthly"
            ))),
        }
    }
}

impl JsonSchema for RefillInterval {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RefillInterval".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": ["daily", "monthly"] })
    }
}

/// A key's refill as the server reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "CreditsRefill", extend("required" = ["amount", "interval"]))]
pub struct CreditsRefill {
    /// The balance is reset to this at each boundary (int64, as a string).
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub amount: i64,
    /// `daily` or `monthly`.
    pub interval: RefillInterval,
}

/// A key's credits: what is left, and the refill if any.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["remaining"]))]
pub struct Credits {
    /// Credits left as last written (a refill that is due applies at the next verification).
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub remaining: i64,
    /// The refill, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<CreditsRefill>,
    /// The refill boundary last applied, or when the credits were set.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub last_refill_time: Option<DateTime<Utc>>,
}

/// A refill as requested.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "CreditsRefillInput", extend("required" = ["amount", "interval"]))]
pub struct CreditsRefillInput {
    /// Greater than 0 (a number or a decimal string).
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::quota_input")]
    pub amount: Option<i64>,
    /// `daily` or `monthly`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<RefillInterval>,
}

/// Credits as requested on issue, import and update. Without `remaining`, a key with a refill
/// starts at the refill amount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "CreditsInput", extend("required" = []))]
pub struct CreditsInput {
    /// At least 0 (a number or a decimal string).
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::int64_input")]
    pub remaining: Option<i64>,
    /// Reset the balance to `amount` at each `interval` boundary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refill: Option<CreditsRefillInput>,
}

/// `POST /v2alpha1/admin/usage:ingest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "IngestUsageRequest", extend("required" = ["actor_id"]))]
pub struct IngestUsageRequest {
    /// Whose balance is debited (1..255).
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(min = 1, max = 255))]
    pub actor_id: String,
    /// The key the usage was made with, if known.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub key_id: String,
    /// What was used (`tokens`, `requests`, …).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub usage_type: String,
    /// How much of it (int64, at least 0).
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::int64_input")]
    pub usage_amount: Option<i64>,
    /// What it cost, in micro-units of the balance (int64, at least 0).
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::int64_input")]
    pub cost_micros: Option<i64>,
    /// The model used, if any.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub model: String,
    /// Idempotency key (at most 36 characters): a repeat is not debited again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    pub request_id: Option<String>,
    /// The session the usage belongs to, if any.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub session_id: String,
}

/// Response of `usage:ingest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["balance_remaining", "balance_quota", "accepted"]))]
pub struct IngestUsageResponse {
    /// The actor's remaining balance after this event (0 when the actor has no balance).
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub balance_remaining: i64,
    /// The actor's quota; 0 = unlimited.
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub balance_quota: i64,
    /// False when the request id was seen before: nothing was recorded or debited.
    #[serde(default)]
    pub accepted: bool,
}

/// `POST /v2alpha1/admin/actorBalances:setQuota`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "SetQuotaRequest", extend("required" = ["actor_id", "quota_micros"]))]
pub struct SetQuotaRequest {
    /// The actor (1..255).
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(min = 1, max = 255))]
    pub actor_id: String,
    /// The quota in micro-units, at least 0; 0 = unlimited.
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::int64_input")]
    pub quota_micros: Option<i64>,
}

/// `POST /v2alpha1/admin/actorBalances:topUp`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "TopUpRequest", extend("required" = ["actor_id", "amount_micros"]))]
pub struct TopUpRequest {
    /// The actor (1..255).
    #[serde(deserialize_with = "null_default")]
    #[schemars(length(min = 1, max = 255))]
    pub actor_id: String,
    /// Added to the remaining balance; greater than 0.
    #[serde(
        deserialize_with = "de_strict_opt_i64",
        serialize_with = "ser_opt_i64_str",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::quota_input")]
    pub amount_micros: Option<i64>,
}

/// An actor's balance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["actor_id", "quota_micros", "remaining_micros"]))]
pub struct ActorBalance {
    /// The actor.
    #[serde(default, deserialize_with = "null_default")]
    pub actor_id: String,
    /// The quota; 0 = unlimited (verification is not refused).
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub quota_micros: i64,
    /// What is left; with a quota, verification is refused at 0 or below.
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub remaining_micros: i64,
}

/// One ingested usage event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = [
    "actor_id", "key_id", "usage_type", "usage_amount", "cost_micros", "model", "session_id"
]))]
pub struct UsageRecord {
    /// The actor.
    #[serde(default, deserialize_with = "null_default")]
    pub actor_id: String,
    /// The key, if given.
    #[serde(default, deserialize_with = "null_default")]
    pub key_id: String,
    /// What was used.
    #[serde(default, deserialize_with = "null_default")]
    pub usage_type: String,
    /// How much.
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub usage_amount: i64,
    /// What it cost, in micro-units.
    #[serde(
        default,
        deserialize_with = "de_lenient_i64",
        serialize_with = "ser_i64_str"
    )]
    #[schemars(with = "schema::Int64")]
    pub cost_micros: i64,
    /// The model, if given.
    #[serde(default, deserialize_with = "null_default")]
    pub model: String,
    /// The idempotency key, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The session, if given.
    #[serde(default, deserialize_with = "null_default")]
    pub session_id: String,
    /// When it was ingested.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub create_time: Option<DateTime<Utc>>,
}

/// Response of `GET /v2alpha1/self/usageHistory`: newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["usage_records"]))]
pub struct UsageHistoryResponse {
    /// At most `limit` records (default 50, at most 1000).
    #[serde(default, deserialize_with = "null_default")]
    pub usage_records: Vec<UsageRecord>,
}

/// `POST /v2alpha1/self/issuedApiKeys`: a key for the calling actor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "SelfIssueRequest", extend("required" = []))]
pub struct SelfIssueApiKeyRequest {
    /// Label (at most 255); default `self-issued`.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    #[schemars(length(max = 255))]
    pub name: String,
    /// Lifetime, as for issue; absent: the server's default TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Idempotency key (at most 36 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credits_written_with_int64_strings_and_read_leniently() {
        let c = Credits {
            remaining: 5,
            refill: Some(CreditsRefill {
                amount: 10,
                interval: RefillInterval::Monthly,
            }),
            last_refill_time: None,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"remaining": "5", "refill": {"amount": "10", "interval": "monthly"}})
        );
        let back: Credits = serde_json::from_value(json!({"remaining": 5})).unwrap();
        assert_eq!(back.remaining, 5);
    }

    #[test]
    fn inputs_decode_strictly() {
        let c: CreditsInput = serde_json::from_value(
            json!({"remaining": "50", "refill": {"amount": 10, "interval": "Daily"}}),
        )
        .unwrap();
        assert_eq!(c.remaining, Some(50));
        let refill = c.refill.unwrap();
        assert_eq!(
            (refill.amount, refill.interval),
            (Some(10), Some(RefillInterval::Daily))
        );
        for bad in [
            json!({"remaining": "x"}),
            json!({"refill": {"interval": "hourly"}}),
            json!({"refill": {"interval": 1}}),
        ] {
            assert!(
                serde_json::from_value::<CreditsInput>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let r: IngestUsageRequest =
            serde_json::from_value(json!({"actor_id": "a", "cost_micros": "7"})).unwrap();
        assert_eq!((r.cost_micros, r.usage_amount), (Some(7), None));
    }
}
