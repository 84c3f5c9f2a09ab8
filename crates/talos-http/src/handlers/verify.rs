//! Verify, batch verify, derive, self-revoke.

use std::borrow::Cow;

use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use talos_api::headers::{self, CacheResult};
use talos_api::{self as api, VerificationErrorCode};
use talos_core::{
    CacheStatus, DeriveRequest, TokenAlgorithm, VerifyErrorCode, VerifyOutcome, VerifyRequest,
};

use super::State;
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, cache_mode, client_ip, nid};
use crate::wire;

fn error_code(c: VerifyErrorCode) -> VerificationErrorCode {
    match c {
        VerifyErrorCode::InvalidFormat => VerificationErrorCode::InvalidFormat,
        VerifyErrorCode::Expired => VerificationErrorCode::Expired,
        VerifyErrorCode::Revoked => VerificationErrorCode::Revoked,
        VerifyErrorCode::NotFound => VerificationErrorCode::NotFound,
        VerifyErrorCode::SignatureInvalid => VerificationErrorCode::SignatureInvalid,
        VerifyErrorCode::NoHmacKey | VerifyErrorCode::Internal => VerificationErrorCode::Internal,
        VerifyErrorCode::IpNotAllowed => VerificationErrorCode::IpNotAllowed,
        VerifyErrorCode::RateLimited => VerificationErrorCode::RateLimited,
        VerifyErrorCode::BalanceExhausted => VerificationErrorCode::BalanceExhausted,
        VerifyErrorCode::UsageExceeded => VerificationErrorCode::UsageExceeded,
    }
}

fn cache_result(s: CacheStatus) -> CacheResult {
    match s {
        CacheStatus::Hit => CacheResult::Hit,
        CacheStatus::Miss => CacheResult::Miss,
        CacheStatus::Skip => CacheResult::Skip,
    }
}

/// The answer for one outcome; moves the identity out of it and borrows the issuer.
pub(crate) fn verify_response(o: VerifyOutcome, issuer: &str) -> api::VerifyApiKeyResponse<'_> {
    let (remaining, reset) = o
        .rate_limit
        .as_ref()
        .map(|r| (i64::try_from(r.remaining).unwrap_or(i64::MAX), r.reset_time))
        .unzip();
    let m = o.metering;
    let base = api::VerifyApiKeyResponse {
        issuer: Cow::Borrowed(issuer),
        rate_limit_remaining: remaining,
        rate_limit_reset_time: reset,
        credits_remaining: m.credits_remaining,
        balance_remaining: m.balance.map(|b| b.remaining_micros),
        balance_quota: m.balance.map(|b| b.quota_micros),
        ..Default::default()
    };
    match o.result {
        Ok(v) => api::VerifyApiKeyResponse {
            is_valid: Some(true),
            is_active: Some(true),
            key_id: v.key_id,
            actor_id: v.actor_id,
            scopes: v.scopes,
            metadata: v.metadata,
            expire_time: v.expire_time,
            status: api::KeyStatus::Active,
            visibility: wire::visibility(v.visibility),
            rate_limit_policy: v.rate_limit_policy.as_ref().map(wire::rate_limit_policy),
            ..base
        },
        Err(f) => api::VerifyApiKeyResponse {
            is_valid: Some(false),
            is_active: Some(false),
            error_code: Some(error_code(f.code)),
            // A storage failure's cause is logged; the client sees the generic text.
            error_message: Some(Cow::Borrowed(match f.code {
                VerifyErrorCode::Internal => api::error::INTERNAL_MESSAGE,
                _ => f.message,
            })),
            ..base
        },
    }
}

pub(crate) fn cache_headers(resp: &mut HttpResponseBuilder, status: CacheStatus, no_store: bool) {
    resp.insert_header((headers::CACHE, cache_result(status).as_str()));
    if no_store {
        resp.insert_header(("Cache-Control", "no-store"));
    }
}

/// The limiter's answer for the outcome's key, when it answered for a key with a policy.
pub(crate) fn rate_limit_of(o: &VerifyOutcome) -> Option<headers::RateLimitHeaders> {
    let r = o.rate_limit.as_ref()?;
    Some(headers::RateLimitHeaders {
        quota: r.policy.quota,
        window_secs: r.policy.window_secs,
        remaining: r.remaining,
        retry_after_secs: r
            .retry_after
            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
    })
}

/// `RateLimit-Policy`, `RateLimit` and, when refused, `Retry-After` — only when the limiter
/// answered for a key with a policy.
fn rate_limit_headers(resp: &mut HttpResponseBuilder, o: &VerifyOutcome) {
    for h in rate_limit_of(o).map(|r| r.pairs()).unwrap_or_default() {
        resp.insert_header(h);
    }
}

/// A request's `cost`: at least 0 (absent: the default, 1).
fn cost(cost: Option<i64>) -> ApiResult<Option<u64>> {
    cost.map(|c| u64::try_from(c).map_err(|_| ApiError::bad("cost must not be negative")))
        .transpose()
}

fn verify_request(
    req: &HttpRequest,
    state: &State,
    body: api::VerifyApiKeyRequest,
) -> ApiResult<VerifyRequest> {
    Ok(VerifyRequest {
        credential: body.credential,
        client_ip: client_ip(req, state.client_ip_source.value()),
        cache: cache_mode(req),
        cost: cost(body.cost)?,
    })
}

/// Answers that depend on per-request state must not be cached downstream.
pub(crate) fn no_store(o: &VerifyOutcome) -> bool {
    o.ip_restricted || o.rate_limited_key || o.metering.is_metered()
}

pub async fn verify(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::VerifyApiKeyRequest = extract::json(body).await?;
    // A malformed request, not a credential that fails: 400 like upstream's request validation
    // (the core would answer 200 with VERIFICATION_ERROR_INVALID_FORMAT).
    let chars = b.credential.chars().count();
    if chars > api::MAX_CREDENTIAL_CHARS {
        return Err(ApiError::bad(format!(
            "credential must be at most {} characters (got {chars})",
            api::MAX_CREDENTIAL_CHARS
        )));
    }
    let outcome = state
        .service
        .verify(nid, &verify_request(&req, &state, b)?)
        .await;
    let issuer = state.service.issuer(nid);
    let mut resp = HttpResponse::Ok();
    cache_headers(&mut resp, outcome.cache, no_store(&outcome));
    rate_limit_headers(&mut resp, &outcome);
    Ok(resp.json(verify_response(outcome, &issuer)))
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
    let b: api::BatchVerifyApiKeysRequest = extract::json(body).await?;
    let reqs: Vec<VerifyRequest> = b
        .requests
        .unwrap_or_default()
        .into_iter()
        .map(|item| verify_request(&req, &state, item))
        .collect::<ApiResult<_>>()?;
    let outcomes = state.service.verify_batch(nid, &reqs).await?;
    let no_store = outcomes.iter().any(no_store);
    // One header for the batch: HIT only if every item hit, SKIP if none was looked up.
    let status = if outcomes.iter().all(|o| o.cache == CacheStatus::Hit) {
        CacheStatus::Hit
    } else if outcomes.iter().all(|o| o.cache == CacheStatus::Skip) {
        CacheStatus::Skip
    } else {
        CacheStatus::Miss
    };
    let issuer = state.service.issuer(nid);
    let mut resp = HttpResponse::Ok();
    cache_headers(&mut resp, status, no_store);
    let results = outcomes
        .into_iter()
        .map(|o| verify_response(o, &issuer))
        .collect();
    Ok(resp.json(api::BatchVerifyApiKeysResponse { results }))
}

pub async fn derive(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::DeriveTokenRequest = extract::json(body).await?;
    let r = DeriveRequest {
        credential: b.credential,
        algorithm: match b.algorithm {
            Some(api::TokenAlgorithm::Macaroon) => TokenAlgorithm::Macaroon,
            _ => TokenAlgorithm::Jwt,
        },
        ttl: b.ttl,
        scopes: b.scopes,
        custom_claims: b.custom_claims.unwrap_or_default(),
        client_ip: client_ip(&req, state.client_ip_source.value()),
    };
    let t = state.service.derive(nid, r).await?;
    Ok(HttpResponse::Ok().json(api::DeriveTokenResponse {
        token: api::Token {
            token: t.token,
            expire_time: Some(t.expire_time),
            scopes: t.scopes,
            claims: t.claims,
        },
    }))
}

pub async fn self_revoke(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::SelfRevokeApiKeyRequest = extract::json(body).await?;
    let reason = wire::revocation_reason_in(b.reason.unwrap_or_default());
    state
        .service
        .self_revoke(nid, &b.credential, reason)
        .await?;
    Ok(HttpResponse::Ok().json(api::Empty {}))
}
