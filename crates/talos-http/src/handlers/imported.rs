//! Imported keys: import, batch import, list, get, update, revoke, delete.

use actix_web::http::StatusCode;
use actix_web::web::{Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use talos_core::{BatchErrorCode, ImportRequest, KeyKind};

use super::issued::{get_kind, list_kind, revoke_kind, update_kind};
use super::{State, created};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, nid};
use crate::wire::{KeySpecIn, key_json};

const IMPORTED: &str = "/v2alpha1/admin/importedApiKeys";

fn import_request(b: KeySpecIn) -> ApiResult<ImportRequest> {
    let (raw_key, spec) = b.into_spec()?;
    Ok(ImportRequest {
        raw_key: raw_key.unwrap_or_default(),
        spec,
    })
}

pub async fn import(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let r = import_request(extract::json::<KeySpecIn>(body).await?)?;
    let key = state.service.import(nid, r).await?;
    // Both shapes: the fields at the top level (upstream) and under `imported_api_key` (docs).
    let mut out = match key_json(&key) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    out.insert("imported_api_key".into(), key_json(&key));
    Ok(created(
        format!("{IMPORTED}/{}", key.key_id),
        Value::Object(out),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchIn {
    requests: Option<Vec<Option<KeySpecIn>>>,
    keys: Option<Vec<Option<KeySpecIn>>>,
}

fn code_name(c: BatchErrorCode) -> &'static str {
    match c {
        BatchErrorCode::InvalidArgument => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT",
        BatchErrorCode::AlreadyExists => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS",
        BatchErrorCode::FailedPrecondition => {
            "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_FAILED_PRECONDITION"
        }
        BatchErrorCode::Internal => "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INTERNAL",
        BatchErrorCode::ResourceExhausted => {
            "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_RESOURCE_EXHAUSTED"
        }
    }
}

/// `:batchImport` (docs) and `:batchCreate` (upstream).
pub async fn batch_import(
    req: HttpRequest,
    state: State,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: BatchIn = extract::json(body).await?;
    let items = match (b.requests, b.keys) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "give the items under either requests or keys, not both",
            ));
        }
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => Vec::new(),
    };
    let reqs = items
        .into_iter()
        .map(|i| match i {
            Some(spec) => import_request(spec),
            None => Ok(ImportRequest::default()),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let results = state.service.batch_import(nid, reqs).await?;
    let mut ok = 0usize;
    let mut codes = Vec::new();
    let out: Vec<Value> = results
        .iter()
        .map(|item| match &item.result {
            Ok(k) => {
                ok += 1;
                json!({ "index": item.index, "imported_api_key": key_json(k) })
            }
            Err((code, msg)) => {
                codes.push(*code);
                json!({ "index": item.index, "error_code": code_name(*code), "error_message": msg })
            }
        })
        .collect();
    let failed = results.len() - ok;
    if ok > 0 {
        return Ok(HttpResponse::Ok()
            .json(json!({ "results": out, "success_count": ok, "failure_count": failed })));
    }
    // All failed: the dominant code decides the status.
    let dominant = [
        BatchErrorCode::AlreadyExists,
        BatchErrorCode::InvalidArgument,
        BatchErrorCode::FailedPrecondition,
        BatchErrorCode::ResourceExhausted,
        BatchErrorCode::Internal,
    ]
    .into_iter()
    .max_by_key(|c| codes.iter().filter(|x| *x == c).count())
    .unwrap_or(BatchErrorCode::Internal);
    let mut err = match dominant {
        BatchErrorCode::AlreadyExists => ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            "API_KEY_EXISTS",
            "all keys failed to import",
        ),
        BatchErrorCode::InvalidArgument => ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "BAD_REQUEST",
            "all keys failed to import",
        ),
        BatchErrorCode::FailedPrecondition => ApiError::new(
            StatusCode::CONFLICT,
            "FAILED_PRECONDITION",
            "FAILED_PRECONDITION",
            "all keys failed to import",
        ),
        BatchErrorCode::ResourceExhausted => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "PERMISSION_DENIED",
            "API_KEY_QUOTA_EXCEEDED",
            "all keys failed to import",
        ),
        BatchErrorCode::Internal => ApiError::internal(),
    };
    err.extra.insert("results".into(), Value::Array(out));
    err.extra.insert("success_count".into(), 0.into());
    err.extra.insert("failure_count".into(), failed.into());
    Err(err)
}

pub async fn list(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    list_kind(req, state, KeyKind::Imported, "imported_api_keys").await
}

pub async fn get(req: HttpRequest, state: State, key_id: Path<String>) -> ApiResult<HttpResponse> {
    get_kind(req, state, KeyKind::Imported, &key_id).await
}

pub async fn update(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    update_kind(req, state, KeyKind::Imported, &key_id, body).await
}

pub async fn revoke(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
    body: Payload,
) -> ApiResult<HttpResponse> {
    revoke_kind(req, state, Some(KeyKind::Imported), &key_id, body).await
}

pub async fn delete(
    req: HttpRequest,
    state: State,
    key_id: Path<String>,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    state.service.delete_imported(nid, &key_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
