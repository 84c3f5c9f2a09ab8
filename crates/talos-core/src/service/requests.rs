//! Request types of the service, already decoded from the wire, and their validation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use talos_storage::{
    Credits, KeyStatus, RateLimitPolicy, Refill, RefillInterval, RevocationReason, Visibility,
};

use crate::error::{CoreError, Result};

/// A rate-limit policy as sent: quota and a window duration text (`"60s"`, `"1m"`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitInput {
    pub quota: i64,
    pub window: String,
}

impl RateLimitInput {
    pub(crate) fn to_policy(&self) -> Result<RateLimitPolicy> {
        if self.quota <= 0 {
            return Err(CoreError::bad(
                "rate_limit_policy.quota must be greater than 0",
            ));
        }
        let window = talos_credentials::duration::parse_duration(&self.window)
            .map_err(|e| CoreError::bad(format!("rate_limit_policy.window: {e}")))?;
        if window < Duration::from_secs(1) {
            return Err(CoreError::bad(
                "rate_limit_policy.window must be at least 1s",
            ));
        }
        Ok(RateLimitPolicy {
            quota: self.quota,
            window_secs: window.as_secs() as i64,
        })
    }
}

/// Credits as requested: a balance, and optionally a refill to `refill_amount` at each
/// `refill_interval` boundary (00:00 UTC of each day or of each month's first day). Without
/// `remaining`, a key with a refill starts at the refill amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditsInput {
    pub remaining: Option<i64>,
    pub refill: Option<(i64, RefillInterval)>,
}

impl CreditsInput {
    /// The credits to store, set at `now` (a refill is next due at the first boundary after it).
    pub(crate) fn to_credits(self, now: DateTime<Utc>) -> Result<Credits> {
        let refill = match self.refill {
            Some((amount, _)) if amount <= 0 => {
                return Err(CoreError::bad(
                    "credits.refill.amount must be greater than 0",
                ));
            }
            Some((amount, interval)) => Some(Refill { amount, interval }),
            None => None,
        };
        let remaining = match (self.remaining, refill) {
            (Some(r), _) if r < 0 => {
                return Err(CoreError::bad("credits.remaining must not be negative"));
            }
            (Some(r), _) => r,
            (None, Some(r)) => r.amount,
            (None, None) => return Err(CoreError::bad("credits.remaining is required")),
        };
        Ok(Credits {
            remaining,
            refill,
            refilled_at: now,
        })
    }
}

/// The fields shared by issue and import.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub name: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub metadata: Map<String, Value>,
    /// Duration text; `None` or empty = `credentials.api_keys.default_ttl`.
    pub ttl: Option<String>,
    pub rate_limit_policy: Option<RateLimitInput>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub visibility: Option<Visibility>,
    pub request_id: Option<String>,
    /// Usage credits; `None` = unlimited.
    pub credits: Option<CreditsInput>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    pub raw_key: String,
    pub spec: KeySpec,
}

/// Rotation overrides: an absent field is inherited; a present one (even empty) replaces it.
#[derive(Debug, Clone, Default)]
pub struct RotateRequest {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit_policy: Option<Option<RateLimitInput>>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub visibility: Option<Visibility>,
}

/// A field an update may change (with a mask, exactly the masked fields are written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateField {
    Name,
    Scopes,
    Metadata,
    RateLimitPolicy,
    IpRestriction,
    Credits,
}

/// An update: with a mask, exactly the masked fields are written (empty clears); without one,
/// only the non-empty fields apply.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub mask: Option<Vec<UpdateField>>,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit_policy: Option<RateLimitInput>,
    pub allowed_cidrs: Option<Vec<String>>,
    /// New credits (the balance restarts from them); with the mask and `None`, removed.
    pub credits: Option<CreditsInput>,
}

#[derive(Debug, Clone)]
pub struct RevokeRequest {
    pub reason: RevocationReason,
    pub reason_text: Option<String>,
}

/// A page of a list: at most `page_size` keys (≤ 0: 50; capped at 1000) after the page token's
/// position, restricted to `actor_id` and `status` when given (`status` needs `actor_id`).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub page_size: i64,
    pub page_token: Option<String>,
    pub actor_id: Option<String>,
    pub status: Option<KeyStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAlgorithm {
    Jwt,
    Macaroon,
}

/// A token to derive from the key `credential`: `scopes` (a subset of the key's; empty: all of
/// them) and `custom_claims` (at most 4096 bytes serialized) for `ttl` (default
/// `derived_tokens.default_ttl`).
#[derive(Debug, Clone)]
pub struct DeriveRequest {
    pub credential: String,
    pub algorithm: TokenAlgorithm,
    pub ttl: Option<String>,
    pub scopes: Vec<String>,
    pub custom_claims: Map<String, Value>,
    pub client_ip: Option<std::net::IpAddr>,
}

// ---- validation, shared by issue, import, rotate and update

pub(crate) fn check_len(field: &str, v: &str, min: usize, max: usize) -> Result<()> {
    // PostgreSQL text cannot hold NUL; refuse it everywhere so both backends behave alike.
    if v.contains('\0') {
        return Err(CoreError::bad(format!(
            "{field} must not contain NUL characters"
        )));
    }
    let n = v.chars().count();
    if n < min || n > max {
        return Err(CoreError::bad(if min > 0 && n == 0 {
            format!("{field} is required (1..{max} characters)")
        } else {
            format!("{field} must be {min}..{max} characters (got {n})")
        }));
    }
    Ok(())
}

pub(crate) fn check_scopes(scopes: &[String]) -> Result<()> {
    if scopes.len() > 100 {
        return Err(CoreError::bad(format!(
            "scopes must have at most 100 items (got {})",
            scopes.len()
        )));
    }
    for s in scopes {
        check_len("scopes[]", s, 1, 100)?;
    }
    Ok(())
}

/// The most `custom_claims` a derived token carries, serialized.
pub(crate) const MAX_CUSTOM_CLAIMS: usize = 4096;

pub(crate) fn check_custom_claims(m: &Map<String, Value>) -> Result<()> {
    if serde_json::to_vec(m).map(|v| v.len()).unwrap_or(0) > MAX_CUSTOM_CLAIMS {
        return Err(CoreError::bad(format!(
            "custom_claims must be at most {MAX_CUSTOM_CLAIMS} bytes serialized"
        )));
    }
    Ok(())
}

pub(crate) fn check_metadata(m: &Map<String, Value>) -> Result<()> {
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > 65_536 {
        return Err(CoreError::bad(format!(
            "metadata must be at most 65536 bytes serialized (got {size})"
        )));
    }
    Ok(())
}

pub(crate) fn check_cidrs(cidrs: &[String]) -> Result<()> {
    if cidrs.len() > 50 {
        return Err(CoreError::bad(format!(
            "ip_restriction.allowed_cidrs must have at most 50 items (got {})",
            cidrs.len()
        )));
    }
    for c in cidrs {
        check_len("ip_restriction.allowed_cidrs[]", c, 1, 50)?;
    }
    talos_credentials::cidr::parse_cidrs(cidrs)
        .map_err(|e| CoreError::bad(format!("ip_restriction.allowed_cidrs: {e}")))?;
    Ok(())
}

pub(crate) fn check_spec(s: &KeySpec) -> Result<()> {
    check_len("name", &s.name, 1, 255)?;
    check_len("actor_id", &s.actor_id, 1, 255)?;
    check_scopes(&s.scopes)?;
    check_metadata(&s.metadata)?;
    if let Some(c) = &s.allowed_cidrs {
        check_cidrs(c)?;
    }
    if let Some(r) = &s.request_id
        && r.chars().count() > 36
    {
        return Err(CoreError::bad("request_id must be at most 36 characters"));
    }
    Ok(())
}

/// Normalises an optional CIDR list: empty = no restriction.
pub(crate) fn cidrs_or_none(c: Option<Vec<String>>) -> Option<Vec<String>> {
    c.filter(|v| !v.is_empty())
}
