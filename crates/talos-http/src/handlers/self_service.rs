//! Self-service (public plane, `self_service.enabled`): the actor named by a trusted proxy
//! (`crate::self_service`) issues, lists and revokes its own issued keys and reads its balance
//! and usage history. Nothing here names another actor.

use actix_web::web::{Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use talos_api as api;
use talos_core::SelfIssueRequest;

use super::{State, created};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, nid, query};
use crate::wire::{self, api_key};

const SELF_ISSUED: &str = "/v2alpha1/self/issuedApiKeys";

/// The network and the calling actor; the actor is checked before the body is read.
fn caller(req: &HttpRequest, state: &State) -> ApiResult<(uuid::Uuid, String)> {
    let actor = state.access.self_service.actor(req)?;
    Ok((nid(req, state)?, actor))
}

/// An integer query parameter; absent: 0 (the default).
fn int_param(req: &HttpRequest, name: &str) -> ApiResult<i64> {
    match query(req)?.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad(format!("{name} must be an integer"))),
    }
}

pub async fn issue(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let (nid, actor) = caller(&req, &state)?;
    let b: api::SelfIssueApiKeyRequest = extract::json(body).await?;
    let r = SelfIssueRequest {
        name: Some(b.name),
        ttl: b.ttl,
        request_id: b.request_id,
    };
    let issued = state.service.self_issue(nid, &actor, r).await?;
    let location = format!("{SELF_ISSUED}/{}", issued.key.key_id);
    Ok(created(
        location,
        &api::IssueApiKeyResponse {
            issued_api_key: api_key(issued.key),
            secret: issued.secret,
        },
    ))
}

pub async fn list(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    let (nid, actor) = caller(&req, &state)?;
    let page_size = int_param(&req, "page_size")?;
    let token = query(&req)?.remove("page_token").filter(|t| !t.is_empty());
    let page = state
        .service
        .self_list(nid, &actor, page_size, token)
        .await?;
    Ok(HttpResponse::Ok().json(api::ListIssuedApiKeysResponse {
        issued_api_keys: page.keys.into_iter().map(api_key).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub async fn revoke(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let (nid, actor) = caller(&req, &state)?;
    let r = super::issued::revoke_request(body).await?;
    state
        .service
        .self_revoke_key(nid, &actor, &key_id, r.reason, r.reason_text)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn balance(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    let (nid, actor) = caller(&req, &state)?;
    let balance = state.service.actor_balance(nid, &actor).await?;
    Ok(HttpResponse::Ok().json(wire::actor_balance(balance)))
}

pub async fn usage_history(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    let (nid, actor) = caller(&req, &state)?;
    let limit = int_param(&req, "limit")?;
    let records = state.service.usage_history(nid, &actor, limit).await?;
    Ok(HttpResponse::Ok().json(api::UsageHistoryResponse {
        usage_records: records.into_iter().map(wire::usage_record).collect(),
    }))
}
