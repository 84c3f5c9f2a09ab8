//! Between the wire types of `talos-api` and the domain types of `talos-core`: request bodies
//! into service requests, keys and outcomes into response bodies, and JSON body parsing with
//! errors that name the offending field.

use serde_json::Map;
use talos_api as api;
use talos_core::{
    Credits, CreditsInput, ImportRequest, KeyRecord, KeySpec, KeyStatus, RateLimitInput,
    RateLimitPolicy, RefillInterval, RevocationReason, StoredStatus, Visibility,
};

use crate::error::ApiError;

pub fn key_status(s: KeyStatus) -> api::KeyStatus {
    match s {
        KeyStatus::Active => api::KeyStatus::Active,
        KeyStatus::Revoked => api::KeyStatus::Revoked,
        KeyStatus::Expired => api::KeyStatus::Expired,
    }
}

/// A status filter: `Unspecified` never reaches here (the filter grammar refuses it).
pub fn key_status_in(s: api::KeyStatus) -> Option<KeyStatus> {
    match s {
        api::KeyStatus::Active => Some(KeyStatus::Active),
        api::KeyStatus::Revoked => Some(KeyStatus::Revoked),
        api::KeyStatus::Expired => Some(KeyStatus::Expired),
        api::KeyStatus::Unspecified => None,
    }
}

pub fn visibility(v: Visibility) -> api::KeyVisibility {
    match v {
        Visibility::Unspecified => api::KeyVisibility::Unspecified,
        Visibility::Secret => api::KeyVisibility::Secret,
        Visibility::Public => api::KeyVisibility::Public,
    }
}

pub fn visibility_in(v: api::KeyVisibility) -> Visibility {
    match v {
        api::KeyVisibility::Unspecified => Visibility::Unspecified,
        api::KeyVisibility::Secret => Visibility::Secret,
        api::KeyVisibility::Public => Visibility::Public,
    }
}

pub fn revocation_reason(r: RevocationReason) -> api::RevocationReason {
    match r {
        RevocationReason::Unspecified => api::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => api::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => api::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => api::RevocationReason::Superseded,
        RevocationReason::PrivilegeWithdrawn => api::RevocationReason::PrivilegeWithdrawn,
    }
}

pub fn revocation_reason_in(r: api::RevocationReason) -> RevocationReason {
    match r {
        api::RevocationReason::Unspecified => RevocationReason::Unspecified,
        api::RevocationReason::KeyCompromise => RevocationReason::KeyCompromise,
        api::RevocationReason::AffiliationChanged => RevocationReason::AffiliationChanged,
        api::RevocationReason::Superseded => RevocationReason::Superseded,
        api::RevocationReason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
    }
}

pub fn rate_limit_policy(p: &RateLimitPolicy) -> api::RateLimitPolicy {
    api::RateLimitPolicy {
        quota: p.quota,
        window: format!("{}s", p.window_secs),
        unit: Some(api::enums::RATE_LIMIT_UNIT_REQUESTS.to_string()),
    }
}

/// A key as the wire shows it; `status` is computed now (`EXPIRED` past the expiry).
pub fn api_key(k: KeyRecord) -> api::ApiKey {
    let status = key_status(k.status_at(chrono::Utc::now()));
    let revocation_reason = (k.status == StoredStatus::Revoked)
        .then(|| revocation_reason(k.revocation_reason.unwrap_or(RevocationReason::Unspecified)));
    api::ApiKey {
        status,
        create_time: Some(k.create_time),
        update_time: Some(k.update_time),
        expire_time: k.expire_time,
        last_used_time: k.last_used_time,
        rate_limit_policy: k.rate_limit_policy.as_ref().map(rate_limit_policy),
        revocation_reason,
        revocation_description: k.revocation_description,
        ip_restriction: k
            .allowed_cidrs
            .map(|allowed_cidrs| api::IpRestriction { allowed_cidrs }),
        visibility: visibility(k.visibility),
        credits: k.credits.as_ref().map(credits),
        key_id: k.key_id,
        name: k.name,
        actor_id: k.actor_id,
        scopes: k.scopes,
        metadata: k.metadata,
    }
}

pub fn refill_interval(i: RefillInterval) -> api::RefillInterval {
    match i {
        RefillInterval::Daily => api::RefillInterval::Daily,
        RefillInterval::Monthly => api::RefillInterval::Monthly,
    }
}

pub fn credits(c: &Credits) -> api::Credits {
    api::Credits {
        remaining: c.remaining,
        refill: c.refill.map(|r| api::CreditsRefill {
            amount: r.amount,
            interval: refill_interval(r.interval),
        }),
        last_refill_time: Some(c.refilled_at),
    }
}

/// Requested credits: a refill needs both its amount and its interval.
pub fn credits_input(c: api::CreditsInput) -> Result<CreditsInput, ApiError> {
    let refill = match c.refill {
        None => None,
        Some(api::CreditsRefillInput {
            amount: Some(amount),
            interval: Some(interval),
        }) => Some((
            amount,
            match interval {
                api::RefillInterval::Daily => RefillInterval::Daily,
                api::RefillInterval::Monthly => RefillInterval::Monthly,
            },
        )),
        Some(api::CreditsRefillInput { amount: None, .. }) => {
            return Err(ApiError::bad("credits.refill.amount is required"));
        }
        Some(api::CreditsRefillInput { interval: None, .. }) => {
            return Err(ApiError::bad(
                "credits.refill.interval is required (daily or monthly)",
            ));
        }
    };
    Ok(CreditsInput {
        remaining: c.remaining,
        refill,
    })
}

pub fn actor_balance(b: talos_core::ActorBalance) -> api::ActorBalance {
    api::ActorBalance {
        actor_id: b.actor_id,
        quota_micros: b.quota_micros,
        remaining_micros: b.remaining_micros,
    }
}

pub fn usage_record(r: talos_core::UsageRecord) -> api::UsageRecord {
    api::UsageRecord {
        actor_id: r.actor_id,
        key_id: r.key_id,
        usage_type: r.usage_type,
        usage_amount: r.usage_amount,
        cost_micros: r.cost_micros,
        model: r.model,
        request_id: r.request_id,
        session_id: r.session_id,
        create_time: Some(r.create_time),
    }
}

/// A requested rate limit: the unit must be one the API names, and a window is required.
pub fn rate_limit_input(p: api::RateLimitPolicyInput) -> Result<RateLimitInput, ApiError> {
    if let Some(u) = p.unit.as_deref().filter(|u| !u.is_empty())
        && !api::enums::RATE_LIMIT_UNITS.contains(&u)
    {
        return Err(ApiError::bad(format!(
            "rate_limit_policy.unit {u:?} is not supported"
        )));
    }
    if p.window.is_empty() {
        return Err(ApiError::bad("rate_limit_policy.window is required"));
    }
    Ok(RateLimitInput {
        quota: p.quota.unwrap_or(0),
        window: p.window,
    })
}

/// The fields issue and import share.
#[allow(clippy::too_many_arguments)]
fn key_spec(
    name: String,
    actor_id: String,
    scopes: Vec<String>,
    metadata: Option<api::JsonObject>,
    ttl: Option<String>,
    rate_limit_policy: Option<api::RateLimitPolicyInput>,
    ip_restriction: Option<api::IpRestriction>,
    visibility: Option<api::KeyVisibility>,
    request_id: Option<String>,
    credits: Option<api::CreditsInput>,
) -> Result<KeySpec, ApiError> {
    Ok(KeySpec {
        name,
        actor_id,
        scopes,
        metadata: metadata.unwrap_or_default(),
        ttl,
        rate_limit_policy: rate_limit_policy.map(rate_limit_input).transpose()?,
        allowed_cidrs: ip_restriction.map(|r| r.allowed_cidrs),
        visibility: visibility.map(visibility_in),
        request_id,
        credits: credits.map(credits_input).transpose()?,
    })
}

pub fn issue_spec(b: api::IssueApiKeyRequest) -> Result<KeySpec, ApiError> {
    key_spec(
        b.name,
        b.actor_id,
        b.scopes,
        b.metadata,
        b.ttl,
        b.rate_limit_policy,
        b.ip_restriction,
        b.visibility,
        b.request_id,
        b.credits,
    )
}

pub fn import_request(b: api::ImportApiKeyRequest) -> Result<ImportRequest, ApiError> {
    Ok(ImportRequest {
        raw_key: b.raw_key,
        spec: key_spec(
            b.name,
            b.actor_id,
            b.scopes,
            b.metadata,
            b.ttl,
            b.rate_limit_policy,
            b.ip_restriction,
            b.visibility,
            b.request_id,
            b.credits,
        )?,
    })
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

/// Parses a JSON object already read (a part of a body) into `T`, as [`parse_body`] would.
pub fn parse_object<T: serde::de::DeserializeOwned>(
    object: Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    parse_body(&serde_json::to_vec(&object).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let err = parse_body::<api::ImportApiKeyRequest>(body)
                .expect_err(std::str::from_utf8(body).unwrap());
            assert_eq!(err.status.as_u16(), 400);
            assert!(
                err.message.contains(want),
                "{} should mention {want}",
                err.message
            );
        }
        let ok: api::ImportApiKeyRequest = parse_body(b"").unwrap();
        assert!(ok.name.is_empty());
        let ok: api::ImportApiKeyRequest =
            parse_body(br#"{"rate_limit_policy": {"quota": "5", "window": "60s"}, "unknown": 1}"#)
                .unwrap();
        assert_eq!(ok.rate_limit_policy.unwrap().quota, Some(5));
    }

    #[test]
    fn enum_errors_name_the_accepted_values() {
        let err = parse_body::<api::RevokeApiKeyRequest>(br#"{"reason": "PUBLIC"}"#).unwrap_err();
        assert!(
            err.message
                .contains("expected one of REVOCATION_REASON_UNSPECIFIED"),
            "{}",
            err.message
        );
    }
}
