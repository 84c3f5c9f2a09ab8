//! Issued keys: issue, list, get, update, rotate, revoke; the unified revoke.

use actix_web::web::{Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use talos_api as api;
use talos_core::{KeyKind, ListRequest, RevokeRequest, RotateRequest, UpdateField, UpdateRequest};

use super::{State, created};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, nid, query};
use crate::wire::{self, api_key};

const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";

pub async fn issue(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let spec = wire::issue_spec(extract::json(body).await?)?;
    let issued = state.service.issue(nid, spec).await?;
    let location = format!("{ISSUED}/{}", issued.key.key_id);
    Ok(created(
        location,
        &api::IssueApiKeyResponse {
            issued_api_key: api_key(issued.key),
            secret: issued.secret,
        },
    ))
}

/// Parses list parameters and the filter; shared by both kinds.
pub fn list_request(req: &HttpRequest) -> ApiResult<ListRequest> {
    let q = query(req)?;
    let params = api::ListParams::from_pairs(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(ApiError::bad)?;
    let filter = params.list_filter().map_err(ApiError::bad)?;
    Ok(ListRequest {
        page_size: params.page_size.unwrap_or(0),
        page_token: params.page_token,
        actor_id: filter.actor_id,
        status: filter.status.and_then(wire::key_status_in),
    })
}

pub async fn list(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    list_kind(req, state, KeyKind::Issued).await
}

pub async fn list_kind(req: HttpRequest, state: State, kind: KeyKind) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let page = state.service.list(nid, kind, list_request(&req)?).await?;
    let keys: Vec<api::ApiKey> = page.keys.into_iter().map(api_key).collect();
    let next_page_token = page.next_page_token;
    Ok(match kind {
        KeyKind::Issued => HttpResponse::Ok().json(api::ListIssuedApiKeysResponse {
            issued_api_keys: keys,
            next_page_token,
        }),
        KeyKind::Imported => HttpResponse::Ok().json(api::ListImportedApiKeysResponse {
            imported_api_keys: keys,
            next_page_token,
        }),
    })
}

pub async fn get(req: HttpRequest, state: State, key_id: Path<String>) -> ApiResult<HttpResponse> {
    get_kind(req, state, KeyKind::Issued, &key_id).await
}

pub async fn get_kind(
    req: HttpRequest,
    state: State,
    kind: KeyKind,
    key_id: &str,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let key = state.service.get_key(nid, kind, key_id).await?;
    Ok(HttpResponse::Ok().json(api_key(key)))
}

fn update_field(p: api::UpdatePath) -> UpdateField {
    match p {
        api::UpdatePath::Name => UpdateField::Name,
        api::UpdatePath::Scopes => UpdateField::Scopes,
        api::UpdatePath::Metadata => UpdateField::Metadata,
        api::UpdatePath::RateLimitPolicy => UpdateField::RateLimitPolicy,
        api::UpdatePath::IpRestriction => UpdateField::IpRestriction,
        api::UpdatePath::Credits => UpdateField::Credits,
    }
}

/// Parses a PATCH: the mask from `?update_mask=` or the body, the resource bare or wrapped.
pub fn update_request(
    req: &HttpRequest,
    body: &[u8],
    wrapper: &str,
    path_id: &str,
) -> ApiResult<UpdateRequest> {
    let mut root: Map<String, Value> = wire::parse_body(body)?;
    let body_mask = root.remove("update_mask");
    let mut resource = match root.remove(wrapper) {
        Some(Value::Object(inner)) => inner,
        Some(Value::Null) | None => root,
        Some(_) => return Err(ApiError::bad(format!("{wrapper} must be an object"))),
    };
    // The mask counts at the top level only (inside a wrapper it is ignored).
    resource.remove("update_mask");
    let fields: api::UpdateApiKeyRequest = wire::parse_object(resource)?;
    if fields
        .key_id
        .as_deref()
        .is_some_and(|id| !id.is_empty() && id != path_id)
    {
        return Err(ApiError::bad(
            "key_id in the body does not match the key_id in the path",
        ));
    }
    let query_mask = query(req)?.remove("update_mask");
    let body_mask = body_mask
        .as_ref()
        .map(api::UpdateMask::from_value)
        .transpose()
        .map_err(ApiError::bad)?
        .flatten();
    let mask = api::mask::resolve(query_mask.as_deref(), body_mask.as_ref())
        .map_err(ApiError::bad)?
        .map(|paths| paths.into_iter().map(update_field).collect());
    Ok(UpdateRequest {
        mask,
        name: fields.name,
        scopes: fields.scopes,
        metadata: fields.metadata,
        rate_limit_policy: match fields.rate_limit_policy {
            // An all-empty policy in the body means "clear".
            Some(p) if p.quota.is_none() && p.window.is_empty() => None,
            Some(p) => Some(wire::rate_limit_input(p)?),
            None => None,
        },
        allowed_cidrs: fields.ip_restriction.map(|r| r.allowed_cidrs),
        credits: fields.credits.map(wire::credits_input).transpose()?,
    })
}

pub async fn update(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    update_kind(req, state, KeyKind::Issued, &key_id, body).await
}

/// PATCH for either kind; the body may wrap the resource in `issued_api_key`/`imported_api_key`.
pub async fn update_kind(
    req: HttpRequest,
    state: State,
    kind: KeyKind,
    key_id: &str,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let body = extract::read_body(body).await?;
    let wrapper = if kind == KeyKind::Issued {
        "issued_api_key"
    } else {
        "imported_api_key"
    };
    let update = update_request(&req, &body, wrapper, key_id)?;
    let key = state.service.update_key(nid, kind, key_id, update).await?;
    Ok(HttpResponse::Ok().json(api_key(key)))
}

pub async fn rotate(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::RotateApiKeyRequest = extract::json(body).await?;
    let rate_limit_policy = match b.rate_limit_policy {
        None => None,
        Some(None) => Some(None),
        Some(Some(p)) => Some(Some(wire::rate_limit_input(p)?)),
    };
    let r = RotateRequest {
        name: b.name,
        scopes: b.scopes,
        metadata: b.metadata,
        rate_limit_policy,
        allowed_cidrs: b.ip_restriction.map(|r| r.allowed_cidrs),
        visibility: b.visibility.map(wire::visibility_in),
    };
    let rotated = state.service.rotate(nid, &key_id, r).await?;
    let location = format!("{ISSUED}/{}", rotated.new.key.key_id);
    Ok(created(
        location,
        &api::RotateApiKeyResponse {
            issued_api_key: api_key(rotated.new.key),
            secret: rotated.new.secret,
            old_issued_api_key: Some(api_key(rotated.old)),
        },
    ))
}

/// Parses `{reason, reason_text}`; `description` is an alias of `reason_text`.
pub async fn revoke_request(body: Payload) -> ApiResult<RevokeRequest> {
    let b: api::RevokeApiKeyRequest = extract::json(body).await?;
    let text = b.reason_text.filter(|t| !t.is_empty());
    let desc = b.description.filter(|t| !t.is_empty());
    if let (Some(t), Some(d)) = (&text, &desc)
        && t != d
    {
        return Err(ApiError::bad(
            "reason_text and description are aliases and differ",
        ));
    }
    Ok(RevokeRequest {
        reason: wire::revocation_reason_in(b.reason.unwrap_or_default()),
        reason_text: text.or(desc),
    })
}

pub async fn revoke_kind(
    req: HttpRequest,
    state: State,
    kind: Option<KeyKind>,
    key_id: &str,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let r = revoke_request(body).await?;
    state.service.revoke(nid, kind, key_id, r).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn revoke(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    revoke_kind(req, state, Some(KeyKind::Issued), &key_id, body).await
}

/// `POST /v2alpha1/admin/apiKeys/{key_id}:revoke`: either kind, by the id's shape.
pub async fn revoke_any(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    revoke_kind(req, state, None, &key_id, body).await
}
