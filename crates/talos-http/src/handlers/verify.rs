//! Verify, batch verify, derive, self-revoke.

use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use talos_core::{
    CacheStatus, DeriveRequest, RevocationReason, TokenAlgorithm, VerifyOutcome, VerifyRequest,
};

use super::State;
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, cache_mode, client_ip, nid};
use crate::wire::{RateLimitOut, de_enum, time, visibility_name};

#[derive(Deserialize, Default)]
#[serde(default)]
struct VerifyIn {
    credential: Option<String>,
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

#[derive(Serialize)]
struct VerifyOut<'a> {
    is_valid: bool,
    is_active: bool,
    key_id: &'a str,
    actor_id: &'a str,
    scopes: &'a [String],
    metadata: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_time: Option<String>,
    issuer: &'a str,
    status: &'static str,
    visibility: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_policy: Option<RateLimitOut>,
    /// int64 as a JSON string; only when the limiter answered for this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_remaining: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_reset_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
}

fn verify_out<'a>(o: &'a VerifyOutcome, issuer: &'a str) -> VerifyOut<'a> {
    let remaining = o.rate_limit.as_ref().map(|r| r.remaining.to_string());
    let reset = o.rate_limit.as_ref().map(|r| time(r.reset_time));
    match &o.result {
        Ok(v) => VerifyOut {
            is_valid: true,
            is_active: true,
            key_id: &v.key_id,
            actor_id: &v.actor_id,
            scopes: &v.scopes,
            metadata: &v.metadata,
            expire_time: v.expire_time.map(time),
            issuer,
            status: "KEY_STATUS_ACTIVE",
            visibility: visibility_name(v.visibility),
            rate_limit_policy: v.rate_limit_policy.as_ref().map(RateLimitOut::from),
            rate_limit_remaining: remaining,
            rate_limit_reset_time: reset,
            error_code: None,
            error_message: None,
        },
        Err(f) => VerifyOut {
            is_valid: false,
            is_active: false,
            key_id: "",
            actor_id: "",
            scopes: &[],
            metadata: &EMPTY,
            expire_time: None,
            issuer,
            status: "KEY_STATUS_UNSPECIFIED",
            visibility: "KEY_VISIBILITY_UNSPECIFIED",
            rate_limit_policy: None,
            rate_limit_remaining: remaining,
            rate_limit_reset_time: reset,
            error_code: Some(f.code.as_str()),
            error_message: Some(&f.message),
        },
    }
}

#[derive(Serialize)]
struct BatchVerifyOut<'a> {
    results: Vec<VerifyOut<'a>>,
}

fn cache_headers(resp: &mut HttpResponseBuilder, status: CacheStatus, no_store: bool) {
    resp.insert_header(("Ory-Talos-Cache", status.as_str()));
    if no_store {
        resp.insert_header(("Cache-Control", "no-store"));
    }
}

/// `RateLimit-Policy`, `RateLimit` and, when refused, `Retry-After` — only when the limiter
/// answered for a key with a policy.
fn rate_limit_headers(resp: &mut HttpResponseBuilder, o: &VerifyOutcome) {
    let Some(r) = &o.rate_limit else { return };
    resp.insert_header((
        "RateLimit-Policy",
        format!(
            "\"default\";q={};w={}",
            r.policy.quota, r.policy.window_secs
        ),
    ));
    resp.insert_header(("RateLimit", format!("\"default\";r={}", r.remaining)));
    if let Some(wait) = r.retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        resp.insert_header(("Retry-After", secs.max(1).to_string()));
    }
}

fn verify_request(req: &HttpRequest, state: &State, credential: String) -> VerifyRequest {
    VerifyRequest {
        credential,
        client_ip: client_ip(req, state.client_ip_source),
        cache: cache_mode(req),
    }
}

pub async fn verify(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: VerifyIn = extract::json(body).await?;
    let outcome = state
        .service
        .verify(
            nid,
            &verify_request(&req, &state, b.credential.unwrap_or_default()),
        )
        .await;
    let runtime = state.service.runtime();
    let mut resp = HttpResponse::Ok();
    cache_headers(
        &mut resp,
        outcome.cache,
        outcome.ip_restricted || outcome.rate_limited_key,
    );
    rate_limit_headers(&mut resp, &outcome);
    Ok(resp.json(verify_out(&outcome, &runtime.issuer)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchVerifyIn {
    requests: Option<Vec<Option<VerifyIn>>>,
}

/// Batch verify. Rate-limit counters appear per item in the body (`rate_limit_remaining`,
/// `rate_limit_reset_time`); the `RateLimit*` and `Retry-After` headers describe one key and are
/// therefore only sent by the single verify.
pub async fn batch_verify(
    req: HttpRequest,
    state: State,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: BatchVerifyIn = extract::json(body).await?;
    let items = b.requests.unwrap_or_default();
    if items.is_empty() || items.len() > 100 {
        return Err(ApiError::bad(format!(
            "requests must contain 1..100 items (got {})",
            items.len()
        )));
    }
    let runtime = state.service.runtime();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut statuses = Vec::with_capacity(items.len());
    let mut no_store = false;
    for item in items {
        let credential = item.and_then(|i| i.credential).unwrap_or_default();
        let outcome = state
            .service
            .verify(nid, &verify_request(&req, &state, credential))
            .await;
        no_store |= outcome.ip_restricted || outcome.rate_limited_key;
        statuses.push(outcome.cache);
        outcomes.push(outcome);
    }
    // One header for the batch: HIT only if every item hit, SKIP if none was looked up.
    let status = if statuses.iter().all(|s| *s == CacheStatus::Hit) {
        CacheStatus::Hit
    } else if statuses.iter().all(|s| *s == CacheStatus::Skip) {
        CacheStatus::Skip
    } else {
        CacheStatus::Miss
    };
    let mut resp = HttpResponse::Ok();
    cache_headers(&mut resp, status, no_store);
    let results = outcomes
        .iter()
        .map(|o| verify_out(o, &runtime.issuer))
        .collect();
    Ok(resp.json(BatchVerifyOut { results }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeriveIn {
    credential: Option<String>,
    #[serde(deserialize_with = "de_enum")]
    algorithm: Option<TokenAlgorithm>,
    ttl: Option<String>,
    scopes: Option<Vec<String>>,
    custom_claims: Option<Map<String, Value>>,
}

pub async fn derive(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: DeriveIn = extract::json(body).await?;
    let credential = b.credential.unwrap_or_default();
    if credential.is_empty() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "CREDENTIAL_REQUIRED",
            "credential is required",
        ));
    }
    let custom_claims = b.custom_claims.unwrap_or_default();
    if serde_json::to_vec(&custom_claims)
        .map(|v| v.len())
        .unwrap_or(0)
        > 4096
    {
        return Err(ApiError::bad(
            "custom_claims must be at most 4096 bytes serialized",
        ));
    }
    let r = DeriveRequest {
        credential,
        algorithm: b.algorithm.unwrap_or(TokenAlgorithm::Jwt),
        ttl: b.ttl,
        scopes: b.scopes.unwrap_or_default(),
        custom_claims,
        client_ip: client_ip(&req, state.client_ip_source),
    };
    let t = state.service.derive(nid, r).await?;
    Ok(HttpResponse::Ok().json(json!({
        "token": { "token": t.token, "expire_time": time(t.expire_time), "scopes": t.scopes, "claims": t.claims }
    })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SelfRevokeIn {
    credential: Option<String>,
    #[serde(deserialize_with = "de_enum")]
    reason: Option<RevocationReason>,
}

pub async fn self_revoke(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: SelfRevokeIn = extract::json(body).await?;
    let credential = b.credential.unwrap_or_default();
    if credential.is_empty() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "CREDENTIAL_REQUIRED",
            "credential is required",
        ));
    }
    state
        .service
        .self_revoke(
            nid,
            &credential,
            b.reason.unwrap_or(RevocationReason::Unspecified),
        )
        .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}
