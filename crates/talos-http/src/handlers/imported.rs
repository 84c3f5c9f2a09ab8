//! Imported keys: import, batch import, list, get, update, revoke, delete.

use actix_web::web::{Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;
use talos_api::{self as api, BatchImportErrorCode, Code};
use talos_core::{CoreError, ImportRequest, KeyKind};

use super::issued::{get_kind, list_kind, revoke_kind, update_kind};
use super::{State, created};
use crate::error::{ApiError, ApiResult, classify};
use crate::extract::{self, nid};
use crate::wire::{self, api_key};

const IMPORTED: &str = "/v2alpha1/admin/importedApiKeys";

pub async fn import(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let r = wire::import_request(extract::json(body).await?)?;
    let key = state.service.import(nid, r).await?;
    let location = format!("{IMPORTED}/{}", key.key_id);
    // Both shapes: the fields at the top level (upstream) and under `imported_api_key` (docs).
    Ok(created(
        location,
        &api::ImportApiKeyResponse {
            imported_api_key: api_key(key),
        },
    ))
}

/// The per-item error code of a refused item: its status name's counterpart.
fn batch_code(e: &CoreError) -> BatchImportErrorCode {
    match classify(e).1 {
        Code::InvalidArgument => BatchImportErrorCode::InvalidArgument,
        Code::AlreadyExists => BatchImportErrorCode::AlreadyExists,
        Code::FailedPrecondition => BatchImportErrorCode::FailedPrecondition,
        _ if matches!(e, CoreError::QuotaExceeded { .. }) => {
            BatchImportErrorCode::ResourceExhausted
        }
        _ => BatchImportErrorCode::Internal,
    }
}

/// `:batchImport` (docs) and `:batchCreate` (upstream).
pub async fn batch_import(
    req: HttpRequest,
    state: State,
    body: Payload,
) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let b: api::BatchImportRequest = extract::json(body).await?;
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
        .map(wire::import_request)
        .collect::<ApiResult<Vec<ImportRequest>>>()?;
    let items = state.service.batch_import(nid, reqs).await?;
    let mut codes = Vec::new();
    let results: Vec<api::BatchImportResult> = items
        .into_iter()
        .map(|item| {
            let index = item.index as i64;
            match item.result {
                Ok(k) => api::BatchImportResult {
                    index,
                    imported_api_key: Some(api_key(k)),
                    ..Default::default()
                },
                Err(e) => {
                    let code = batch_code(&e);
                    codes.push(code);
                    api::BatchImportResult {
                        index,
                        imported_api_key: None,
                        error_code: Some(code),
                        error_message: Some(e.to_string()),
                    }
                }
            }
        })
        .collect();
    crate::http_metrics::batch_import(results.len(), &codes);
    let failed = codes.len();
    let response = api::BatchImportResponse {
        success_count: (results.len() - failed) as i64,
        failure_count: failed as i64,
        results,
    };
    if failed < response.results.len() {
        return Ok(HttpResponse::Ok().json(response));
    }
    Err(all_failed(&codes, response))
}

/// Every item failed: the dominant code decides the status; the per-item results ride along.
fn all_failed(codes: &[BatchImportErrorCode], response: api::BatchImportResponse) -> ApiError {
    use BatchImportErrorCode as B;
    use actix_web::http::StatusCode as S;
    use api::error::reason;
    let dominant = [
        B::AlreadyExists,
        B::InvalidArgument,
        B::FailedPrecondition,
        B::ResourceExhausted,
        B::Internal,
    ]
    .into_iter()
    .max_by_key(|c| codes.iter().filter(|x| *x == c).count())
    .unwrap_or(B::Internal);
    const MESSAGE: &str = "all keys failed to import";
    let mut err = match dominant {
        B::AlreadyExists => ApiError::new(
            S::CONFLICT,
            Code::AlreadyExists,
            reason::API_KEY_EXISTS,
            MESSAGE,
        ),
        B::InvalidArgument => ApiError::new(
            S::BAD_REQUEST,
            Code::InvalidArgument,
            reason::BAD_REQUEST,
            MESSAGE,
        ),
        B::FailedPrecondition => ApiError::new(
            S::CONFLICT,
            Code::FailedPrecondition,
            reason::FAILED_PRECONDITION,
            MESSAGE,
        ),
        B::ResourceExhausted => ApiError::new(
            S::PAYMENT_REQUIRED,
            Code::PermissionDenied,
            reason::API_KEY_QUOTA_EXCEEDED,
            MESSAGE,
        ),
        _ => ApiError::internal(),
    };
    if let Ok(Value::Object(fields)) = serde_json::to_value(response) {
        err.extra = fields;
    }
    err
}

pub async fn list(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    list_kind(req, state, KeyKind::Imported).await
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
