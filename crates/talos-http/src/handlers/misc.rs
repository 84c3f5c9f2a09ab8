//! JWKS, health, version, and the envelope for unknown routes and methods.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};
use talos_api::{self as api, Code};

use super::State;
use crate::error::{ApiError, ApiResult};
use crate::extract::nid;

/// The public keys of network `nid`'s JWK set.
fn public_keys(state: &State, nid: uuid::Uuid) -> Vec<Value> {
    match state.service.jwks(nid).get_mut("keys").map(Value::take) {
        Some(Value::Array(keys)) => keys,
        _ => Vec::new(),
    }
}

pub async fn jwks(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    let keys = public_keys(&state, nid);
    Ok(HttpResponse::Ok().json(api::JwksResponse {
        jwks: Some(api::Jwks { keys: keys.clone() }),
        keys,
    }))
}

pub async fn well_known_jwks(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    let nid = nid(&req, &state)?;
    Ok(HttpResponse::Ok().json(api::Jwks {
        keys: public_keys(&state, nid),
    }))
}

pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(api::HealthStatus::ok())
}

pub async fn ready(state: State) -> HttpResponse {
    if state.draining.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "errors": { "server": "shutting down" } }));
    }
    match state.service.ready().await {
        Ok(()) => HttpResponse::Ok().json(api::HealthStatus::ok()),
        // The body names the dependency only: error text can carry hosts, users or paths.
        Err(e) => {
            tracing::warn!(dependency = e.dependency, detail = %e.detail, "not ready");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "errors": { e.dependency: "not ready" } }))
        }
    }
}

pub async fn version(state: State) -> HttpResponse {
    HttpResponse::Ok().json(&state.build)
}

pub async fn not_found() -> ApiResult<HttpResponse> {
    Err(ApiError::not_found("no such route"))
}

pub async fn method_not_allowed() -> ApiResult<HttpResponse> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        api::error::reason::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    ))
}

pub async fn metrics(state: State) -> HttpResponse {
    match &state.metrics {
        Some(render) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(render()),
        None => {
            HttpResponse::NotFound().json(ApiError::not_found("metrics are not enabled").body())
        }
    }
}

static OPENAPI: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(crate::openapi::document);

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(&*OPENAPI)
}
