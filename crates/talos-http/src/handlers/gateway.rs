//! Gateway verify: forward auth for reverse proxies (nginx `auth_request`, Traefik `forwardAuth`,
//! Envoy `ext_authz`, Caddy `forward_auth`). `GET|POST /gateway/verify`, and any method on
//! `/gateway/verify/{path}`: Envoy's HTTP `ext_authz` sends the original request's method and
//! appends its path to the configured `path_prefix`.
//!
//! The verification is `apiKeys:verify`'s (`Service::verify`: cache, `Cache-Control`, rate
//! limits, IP restrictions); the status, headers and body come from `talos_api::gateway::answer`,
//! which the embeddable guards use too. Before verifying, the client address's budget of failed
//! verifications is checked (`crate::gateway_limit`).

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse};
use talos_api::gateway::{self, GatewayAnswer, GatewayVerifyRequest};
use talos_api::headers;
use talos_core::{CacheStatus, VerifyRequest};

use super::State;
use super::verify::{cache_headers, no_store, rate_limit_of, verify_response};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, cache_mode, client_ip, nid};

/// `GET|POST /gateway/verify`: the credential from the JSON body, else the headers; required
/// scopes from the `scope` query parameters and `X-Talos-Required-Scopes`.
pub async fn verify(req: HttpRequest, state: State, body: Payload) -> ApiResult<HttpResponse> {
    let body = extract::read_body(body).await?;
    let query = actix_web::web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad(format!("invalid query string: {e}")))?
        .into_inner();
    let scopes = query
        .iter()
        .filter(|(k, _)| k == headers::SCOPE_PARAM)
        .map(|(_, v)| v.as_str());
    let required = gateway::required_scopes(scopes, header(&req, headers::REQUIRED_SCOPES));
    answer(&req, &state, body_credential(&body), &required).await
}

/// Any method on `/gateway/verify/{path}` (Envoy's form): the credential from the headers only
/// (a body would be the client's, meant for the upstream), required scopes from
/// `X-Talos-Required-Scopes` only (the query string is the client's too).
pub async fn verify_forwarded(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    let required =
        gateway::required_scopes(std::iter::empty(), header(&req, headers::REQUIRED_SCOPES));
    answer(&req, &state, None, &required).await
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The body's `credential`, when the body is a JSON object naming one; anything else (empty, not
/// JSON, no credential) leaves the credential to the headers, as the metering fork does.
fn body_credential(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice::<GatewayVerifyRequest>(body)
        .ok()?
        .credential
        .filter(|c| !c.is_empty())
}

async fn answer(
    req: &HttpRequest,
    state: &State,
    body_credential: Option<String>,
    required: &[String],
) -> ApiResult<HttpResponse> {
    let nid = nid(req, state)?;
    let ip = client_ip(req, state.client_ip_source.value());
    let credential = gateway::credential(
        body_credential.as_deref(),
        header(req, AUTHORIZATION.as_str()),
        header(req, headers::API_KEY),
    );
    let Some(credential) = credential else {
        return Ok(respond(
            gateway::missing_credential(),
            CacheStatus::Skip,
            false,
        ));
    };
    if let Some(wait) = state.gateway_failures.blocked(ip) {
        metrics::counter!("talos_gateway_failure_limited_total").increment(1);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Ok(respond(
            gateway::too_many_failures(secs),
            CacheStatus::Skip,
            false,
        ));
    }
    let request = VerifyRequest {
        credential: credential.to_string(),
        client_ip: ip,
        cache: cache_mode(req),
        // Gateway verify is metered like verify: one credit per request.
        cost: None,
    };
    let outcome = state.service.verify(nid, &request).await;
    let (cache, no_store) = (outcome.cache, no_store(&outcome));
    let limit = rate_limit_of(&outcome);
    let issuer = state.service.issuer(nid);
    let a = gateway::answer(verify_response(outcome, &issuer), limit, required);
    if a.verdict.is_failed_guess() {
        state.gateway_failures.record_failure(ip);
    }
    Ok(respond(a, cache, no_store))
}

fn respond(a: GatewayAnswer<'_>, cache: CacheStatus, no_store: bool) -> HttpResponse {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    cache_headers(&mut resp, cache, no_store);
    for h in a.headers {
        resp.insert_header(h);
    }
    resp.json(a.body)
}
