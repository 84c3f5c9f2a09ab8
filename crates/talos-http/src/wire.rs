//! The JSON wire format: snake_case, enums by name (accepted by name or number), int64 as
//! strings (accepted as number or string), RFC 3339 times, unset optional fields omitted.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use talos_core::{
    KeyRecord, KeySpec, RateLimitInput, RateLimitPolicy, RevocationReason, StoredStatus, Visibility,
};

use crate::error::ApiError;

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

// ---------------------------------------------------------------- enums

/// A protobuf enum: its names in number order.
pub trait ProtoEnum: Sized {
    const NAMES: &'static [&'static str];
    fn from_index(i: usize) -> Self;
}

/// Parses an enum given by name or by number; unknown names are an error naming the accepted ones.
pub fn enum_from_value<T: ProtoEnum>(v: &Value) -> Result<Option<T>, String> {
    let idx = match v {
        Value::Null => return Ok(None),
        Value::String(s) => T::NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)),
        Value::Number(n) => n
            .as_u64()
            .map(|n| n as usize)
            .filter(|n| *n < T::NAMES.len()),
        _ => None,
    };
    idx.map(|i| Some(T::from_index(i))).ok_or_else(|| {
        format!(
            "unknown enum value {v}; expected one of {}",
            T::NAMES.join(", ")
        )
    })
}

/// `#[serde(deserialize_with)]` helper for optional enums.
pub fn de_enum<'de, D: Deserializer<'de>, T: ProtoEnum>(d: D) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    enum_from_value(&v).map_err(D::Error::custom)
}

impl ProtoEnum for Visibility {
    const NAMES: &'static [&'static str] = &[
        "KEY_VISIBILITY_UNSPECIFIED",
        "KEY_VISIBILITY_SECRET",
        "KEY_VISIBILITY_PUBLIC",
    ];
    fn from_index(i: usize) -> Self {
        [
            Visibility::Unspecified,
            Visibility::Secret,
            Visibility::Public,
        ][i]
    }
}

impl ProtoEnum for RevocationReason {
    const NAMES: &'static [&'static str] = &[
        "REVOCATION_REASON_UNSPECIFIED",
        "REVOCATION_REASON_KEY_COMPROMISE",
        "REVOCATION_REASON_AFFILIATION_CHANGED",
        "REVOCATION_REASON_SUPERSEDED",
        "REVOCATION_REASON_PRIVILEGE_WITHDRAWN",
    ];
    fn from_index(i: usize) -> Self {
        RevocationReason::from_i16(i as i16)
    }
}

impl ProtoEnum for talos_core::TokenAlgorithm {
    const NAMES: &'static [&'static str] = &[
        "TOKEN_ALGORITHM_UNSPECIFIED",
        "TOKEN_ALGORITHM_JWT",
        "TOKEN_ALGORITHM_MACAROON",
    ];
    fn from_index(i: usize) -> Self {
        if i == 2 {
            talos_core::TokenAlgorithm::Macaroon
        } else {
            talos_core::TokenAlgorithm::Jwt
        }
    }
}

pub fn visibility_name(v: Visibility) -> &'static str {
    Visibility::NAMES[match v {
        Visibility::Unspecified => 0,
        Visibility::Secret => 1,
        Visibility::Public => 2,
    }]
}

pub fn status_name(s: talos_core::KeyStatus) -> &'static str {
    match s {
        talos_core::KeyStatus::Active => "KEY_STATUS_ACTIVE",
        talos_core::KeyStatus::Revoked => "KEY_STATUS_REVOKED",
        talos_core::KeyStatus::Expired => "KEY_STATUS_EXPIRED",
    }
}

// ---------------------------------------------------------------- scalars

/// int64: a JSON number or a decimal string.
pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom("expected a 64-bit integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
        other => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

// ---------------------------------------------------------------- key output

#[derive(Serialize)]
pub struct RateLimitOut {
    pub quota: String,
    pub window: String,
    pub unit: &'static str,
}

impl From<&RateLimitPolicy> for RateLimitOut {
    fn from(p: &RateLimitPolicy) -> Self {
        RateLimitOut {
            quota: p.quota.to_string(),
            window: format!("{}s", p.window_secs),
            unit: "requests",
        }
    }
}

#[derive(Serialize)]
pub struct IpRestrictionOut<'a> {
    pub allowed_cidrs: &'a [String],
}

#[derive(Serialize)]
pub struct KeyOut<'a> {
    pub key_id: &'a str,
    pub name: &'a str,
    pub actor_id: &'a str,
    pub scopes: &'a [String],
    pub metadata: &'a Map<String, Value>,
    pub status: &'static str,
    pub create_time: String,
    pub update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_restriction: Option<IpRestrictionOut<'a>>,
    pub visibility: &'static str,
}

impl<'a> KeyOut<'a> {
    pub fn new(k: &'a KeyRecord) -> Self {
        let now = Utc::now();
        KeyOut {
            key_id: &k.key_id,
            name: &k.name,
            actor_id: &k.actor_id,
            scopes: &k.scopes,
            metadata: &k.metadata,
            status: status_name(k.status_at(now)),
            create_time: time(k.create_time),
            update_time: time(k.update_time),
            expire_time: k.expire_time.map(time),
            last_used_time: k.last_used_time.map(time),
            rate_limit_policy: k.rate_limit_policy.as_ref().map(RateLimitOut::from),
            revocation_reason: (k.status == StoredStatus::Revoked).then(|| {
                RevocationReason::NAMES[k
                    .revocation_reason
                    .unwrap_or(RevocationReason::Unspecified)
                    .to_i16() as usize]
            }),
            revocation_description: k.revocation_description.as_deref(),
            ip_restriction: k
                .allowed_cidrs
                .as_deref()
                .map(|c| IpRestrictionOut { allowed_cidrs: c }),
            visibility: visibility_name(k.visibility),
        }
    }
}

pub fn key_json(k: &KeyRecord) -> Value {
    serde_json::to_value(KeyOut::new(k)).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------- key input

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct RateLimitIn {
    #[serde(deserialize_with = "de_i64")]
    pub quota: Option<i64>,
    pub window: Option<String>,
    pub unit: Option<String>,
}

impl RateLimitIn {
    pub fn into_input(self) -> Result<RateLimitInput, ApiError> {
        if let Some(u) = self.unit.as_deref().filter(|u| !u.is_empty())
            && !["requests", "content-bytes", "concurrent-requests"].contains(&u)
        {
            return Err(ApiError::bad(format!(
                "rate_limit_policy.unit {u:?} is not supported"
            )));
        }
        Ok(RateLimitInput {
            quota: self.quota.unwrap_or(0),
            window: self
                .window
                .filter(|w| !w.is_empty())
                .ok_or_else(|| ApiError::bad("rate_limit_policy.window is required"))?,
        })
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct IpRestrictionIn {
    pub allowed_cidrs: Option<Vec<String>>,
}

/// Issue and import bodies (import adds `raw_key`).
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct KeySpecIn {
    pub raw_key: Option<String>,
    pub name: Option<String>,
    pub actor_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub ttl: Option<String>,
    pub rate_limit_policy: Option<RateLimitIn>,
    pub ip_restriction: Option<IpRestrictionIn>,
    #[serde(deserialize_with = "de_enum")]
    pub visibility: Option<Visibility>,
    pub request_id: Option<String>,
}

impl KeySpecIn {
    pub fn into_spec(self) -> Result<(Option<String>, KeySpec), ApiError> {
        let spec = KeySpec {
            name: self.name.unwrap_or_default(),
            actor_id: self.actor_id.unwrap_or_default(),
            scopes: self.scopes.unwrap_or_default(),
            metadata: self.metadata.unwrap_or_default(),
            ttl: self.ttl,
            rate_limit_policy: self
                .rate_limit_policy
                .map(RateLimitIn::into_input)
                .transpose()?,
            allowed_cidrs: self.ip_restriction.and_then(|r| r.allowed_cidrs),
            visibility: self.visibility,
            request_id: self.request_id,
        };
        Ok((self.raw_key, spec))
    }
}

/// Parses a JSON body into `T`; errors name the offending field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // Every body is an object; serde would otherwise accept an array for a struct.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ApiError::bad("invalid request body: expected a JSON object"),
                Err(e) => ApiError::bad(format!("request body is not valid JSON: {e}")),
            },
        );
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad(format!("request body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::bad(format!("invalid request body: {inner}"))
        } else {
            ApiError::bad(format!("invalid value for field {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_by_name_or_number() {
        let cases: &[(Value, Option<Option<Visibility>>)] = &[
            (
                Value::from("KEY_VISIBILITY_PUBLIC"),
                Some(Some(Visibility::Public)),
            ),
            (Value::from(1), Some(Some(Visibility::Secret))),
            (Value::Null, Some(None)),
            (Value::from("PUBLIC"), None),
            (Value::from(7), None),
            (Value::from(true), None),
        ];
        for (v, want) in cases {
            assert_eq!(enum_from_value::<Visibility>(v).ok(), *want, "{v}");
        }
    }

    #[test]
    fn bodies_name_the_bad_field() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not valid JSON"),
            (br#"{"scopes": "a"}"#, "scopes"),
            (br#"{"ttl": 3600}"#, "ttl"),
            (br#"{"visibility": "NOPE"}"#, "visibility"),
            (
                br#"{"rate_limit_policy": {"quota": "x"}}"#,
                "rate_limit_policy.quota",
            ),
            (b"[]", "invalid request body"),
        ];
        for (body, want) in cases {
            let err = parse_body::<KeySpecIn>(body).expect_err(std::str::from_utf8(body).unwrap());
            assert_eq!(err.status.as_u16(), 400);
            assert!(
                err.message.contains(want),
                "{} should mention {want}",
                err.message
            );
        }
        let ok: KeySpecIn = parse_body(b"").unwrap();
        assert!(ok.name.is_none());
        let ok: KeySpecIn =
            parse_body(br#"{"rate_limit_policy": {"quota": "5", "window": "60s"}, "unknown": 1}"#)
                .unwrap();
        assert_eq!(ok.rate_limit_policy.unwrap().quota, Some(5));
    }
}
