//! Usage metering (admin plane, scope `usage:write`): ingest usage, set an actor's quota, top a
//! balance up, read a balance.

use actix_web::web::{Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use talos_api as api;
use talos_core::UsageInput;

use super::State;
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, nid};
use crate::wire;

pub async fn ingest(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::IngestUsageRequest = extract::json(body).await?;
    let input = UsageInput {
        actor_id: b.actor_id,
        key_id: b.key_id,
        usage_type: b.usage_type,
        usage_amount: b.usage_amount.unwrap_or(0),
        cost_micros: b.cost_micros.unwrap_or(0),
        model: b.model,
        request_id: b.request_id,
        session_id: b.session_id,
    };
    let out = state.service.ingest_usage(nid, input).await?;
    Ok(HttpResponse::Ok().json(api::IngestUsageResponse {
        balance_remaining: out.balance.as_ref().map_or(0, |b| b.remaining_micros),
        balance_quota: out.balance.as_ref().map_or(0, |b| b.quota_micros),
        accepted: out.accepted,
    }))
}

pub async fn set_quota(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::SetQuotaRequest = extract::json(body).await?;
    let quota = b
        .quota_micros
        .ok_or_else(|| ApiError::bad("quota_micros is required (0 = unlimited)"))?;
    let balance = state
        .service
        .set_actor_quota(nid, &b.actor_id, quota)
        .await?;
    Ok(HttpResponse::Ok().json(wire::actor_balance(balance)))
}

pub async fn top_up(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::TopUpRequest = extract::json(body).await?;
    let amount = b
        .amount_micros
        .ok_or_else(|| ApiError::bad("amount_micros is required"))?;
    let balance = state.service.top_up_actor(nid, &b.actor_id, amount).await?;
    Ok(HttpResponse::Ok().json(wire::actor_balance(balance)))
}

pub async fn get_balance(
    req: HttpRequest,
    state: State,
    actor_id: Path<String>,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let balance = state.service.actor_balance(nid, &actor_id).await?;
    Ok(HttpResponse::Ok().json(wire::actor_balance(balance)))
}
