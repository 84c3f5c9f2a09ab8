//! Issued keys: issue, list, get, update, rotate, revoke; the unified revoke.

use actix_web::web::{Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use talos_core::{
    KeyKind, ListRequest, RevocationReason, RevokeRequest, RotateRequest, UpdateField,
    UpdateRequest, Visibility,
};

use super::{State, created};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, nid, query};
use crate::wire::{self, IpRestrictionIn, KeySpecIn, RateLimitIn, de_enum, key_json};

const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";

pub async fn issue(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let (_, spec) = extract::json::<KeySpecIn>(body).await?.into_spec()?;
    let issued = state.service.issue(nid, spec).await?;
    let body = json!({ "issued_api_key": key_json(&issued.key), "secret": issued.secret });
    Ok(created(format!("{ISSUED}/{}", issued.key.key_id), body))
}

/// Parses list parameters; shared by both kinds.
pub fn list_request(req: &HttpRequest) -> ApiResult<ListRequest> {
    let q = query(req)?;
    let page_size = match q
        .get("page_size")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad(format!("page_size must be an integer, got {s:?}")))?,
    };
    Ok(ListRequest {
        page_size,
        page_token: q.get("page_token").cloned(),
        filter: q.get("filter").cloned(),
        actor_id: q.get("actor_id").cloned(),
        status: q.get("status").cloned(),
    })
}

pub async fn list(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    list_kind(req, state, KeyKind::Issued, "issued_api_keys").await
}

pub async fn list_kind(
    req: HttpRequest,
    state: State,
    kind: KeyKind,
    field: &str,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let page = state.service.list(nid, kind, list_request(&req)?).await?;
    let keys: Vec<Value> = page.keys.iter().map(key_json).collect();
    Ok(HttpResponse::Ok().json(json!({ field: keys, "next_page_token": page.next_page_token })))
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
    Ok(HttpResponse::Ok().json(key_json(&key)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateFields {
    key_id: Option<String>,
    name: Option<String>,
    scopes: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    rate_limit_policy: Option<RateLimitIn>,
    ip_restriction: Option<IpRestrictionIn>,
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
    let resource = match root.remove(wrapper) {
        Some(Value::Object(inner)) => inner,
        Some(Value::Null) | None => root,
        Some(_) => return Err(ApiError::bad(format!("{wrapper} must be an object"))),
    };
    let fields: UpdateFields =
        wire::parse_body(&serde_json::to_vec(&resource).unwrap_or_default())?;
    if fields
        .key_id
        .as_deref()
        .is_some_and(|id| !id.is_empty() && id != path_id)
    {
        return Err(ApiError::bad(
            "key_id in the body does not match the key_id in the path",
        ));
    }
    let query_mask = query(req)?
        .get("update_mask")
        .cloned()
        .filter(|m| !m.is_empty());
    let body_mask: Option<Vec<String>> = match body_mask {
        None | Some(Value::Null) => None,
        // The JSON form of an empty FieldMask.
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.split(',').map(str::to_string).collect()),
        Some(Value::Object(o)) => match o.get("paths") {
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|p| p.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| ApiError::bad("update_mask.paths must be a list of strings"))?,
            ),
            None | Some(Value::Null) => Some(Vec::new()),
            _ => return Err(ApiError::bad("update_mask.paths must be a list of strings")),
        },
        Some(_) => {
            return Err(ApiError::bad(
                "update_mask must be a string or {\"paths\": [...]}",
            ));
        }
    };
    let query_mask: Option<Vec<String>> =
        query_mask.map(|m| m.split(',').map(str::to_string).collect());
    let mask = match (query_mask, body_mask) {
        (Some(q), Some(b)) if q != b => {
            return Err(ApiError::bad(
                "update_mask given in the query and the body, and they differ",
            ));
        }
        (q, b) => q.or(b).filter(|m| !m.is_empty()),
    };
    // Every path must name a field: an empty one (`,,,`, `name,`) is a malformed mask, not "no
    // mask" (which would apply every non-empty field instead of the ones meant).
    let mask = mask
        .map(|m| m.iter().map(|p| UpdateField::parse(p)).collect())
        .transpose()?;
    Ok(UpdateRequest {
        mask,
        name: fields.name,
        scopes: fields.scopes,
        metadata: fields.metadata,
        rate_limit_policy: match fields.rate_limit_policy {
            // An all-empty policy in the body means "clear".
            Some(p) if p.quota.is_none() && p.window.as_deref().unwrap_or("").is_empty() => None,
            Some(p) => Some(p.into_input()?),
            None => None,
        },
        allowed_cidrs: fields.ip_restriction.and_then(|r| r.allowed_cidrs),
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
    Ok(HttpResponse::Ok().json(key_json(&key)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RotateIn {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    rate_limit_policy: Option<Value>,
    ip_restriction: Option<IpRestrictionIn>,
    #[serde(deserialize_with = "de_enum")]
    visibility: Option<Visibility>,
}

pub async fn rotate(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: RotateIn = extract::json(body).await?;
    let rate_limit_policy = match b.rate_limit_policy {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let p: RateLimitIn = wire::parse_body(&serde_json::to_vec(&v).unwrap_or_default())?;
            Some(Some(p.into_input()?))
        }
    };
    let r = RotateRequest {
        name: b.name,
        scopes: b.scopes,
        metadata: b.metadata,
        rate_limit_policy,
        allowed_cidrs: b
            .ip_restriction
            .map(|r| r.allowed_cidrs.unwrap_or_default()),
        visibility: b.visibility,
    };
    let rotated = state.service.rotate(nid, &key_id, r).await?;
    let body = json!({
        "issued_api_key": key_json(&rotated.new.key),
        "secret": rotated.new.secret,
        "old_issued_api_key": key_json(&rotated.old),
    });
    Ok(created(
        format!("{ISSUED}/{}", rotated.new.key.key_id),
        body,
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeIn {
    #[serde(deserialize_with = "de_enum")]
    reason: Option<RevocationReason>,
    reason_text: Option<String>,
    description: Option<String>,
}

/// Parses `{reason, reason_text}`; `description` is an alias of `reason_text`.
pub async fn revoke_request(body: Payload) -> ApiResult<RevokeRequest> {
    let b: RevokeIn = extract::json(body).await?;
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
        reason: b.reason.unwrap_or(RevocationReason::Unspecified),
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
