//! Per-request context: network, client IP, cache mode, body and query parsing.

use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::web::{Bytes, Payload};
use futures_util::StreamExt;
use talos_api::Code;
use talos_api::error::reason;
use talos_core::CacheMode;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 4 << 20;

/// Reads the body up to [`MAX_BODY`].
pub async fn read_body(mut payload: Payload) -> Result<Bytes, ApiError> {
    let mut buf = actix_web::web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if crate::limits::is_body_timeout(&e) {
                ApiError::new(
                    actix_web::http::StatusCode::REQUEST_TIMEOUT,
                    Code::DeadlineExceeded,
                    reason::REQUEST_TIMEOUT,
                    crate::limits::BODY_TIMEOUT,
                )
            } else if matches!(e, actix_web::error::PayloadError::Incomplete(_)) {
                // The connection closed before the body was complete: the client went away.
                // Nobody reads this answer; its status is what the log and metrics record.
                ApiError::cancelled(
                    "the client closed the connection before sending the whole body",
                )
            } else {
                ApiError::bad(format!("cannot read request body: {e}"))
            }
        })?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                Code::ResourceExhausted,
                reason::PAYLOAD_TOO_LARGE,
                "request body exceeds the 4 MiB limit",
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads and parses a JSON body.
pub async fn json<T: serde::de::DeserializeOwned>(payload: Payload) -> Result<T, ApiError> {
    let body = read_body(payload).await?;
    crate::wire::parse_body(&body)
}

/// The request's network: the nil network, or the one its host names under multitenancy.
pub fn nid(req: &HttpRequest, state: &AppState) -> Result<Uuid, ApiError> {
    let networks = state.service.networks();
    if !networks.enabled() {
        return Ok(Uuid::nil());
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = if state.trust_forwarded_host {
        header("x-forwarded-host").or_else(|| header("host"))
    } else {
        header("host")
    };
    let host = host.map(|h| h.split(',').next().unwrap_or(h).trim());
    networks
        .resolve(host)
        .ok_or_else(|| ApiError::not_found("network not found"))
}

/// Where the client's IP address comes from (`serve.http.client_ip_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    RemoteAddr,
    CfConnectingIp,
    XForwardedFor,
    XRealIp,
    TrueClientIp,
}

impl ClientIpSource {
    pub fn parse(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        Ok(
            match upper.strip_prefix("CLIENT_IP_SOURCE_").unwrap_or(&upper) {
                "" | "UNSPECIFIED" | "REMOTE_ADDR" => ClientIpSource::RemoteAddr,
                "CF_CONNECTING_IP" => ClientIpSource::CfConnectingIp,
                "X_FORWARDED_FOR" => ClientIpSource::XForwardedFor,
                "X_REAL_IP" => ClientIpSource::XRealIp,
                "TRUE_CLIENT_IP" => ClientIpSource::TrueClientIp,
                _ => return Err(format!("serve.http.client_ip_source: unknown value {s:?}")),
            },
        )
    }
}

/// The client's IP address; `None` when it cannot be resolved (IP restrictions then fail closed).
pub fn client_ip(req: &HttpRequest, source: ClientIpSource) -> Option<IpAddr> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let from_header = match source {
        ClientIpSource::RemoteAddr => None,
        ClientIpSource::CfConnectingIp => header("cf-connecting-ip"),
        ClientIpSource::XForwardedFor => {
            header("x-forwarded-for").map(|v| v.split(',').next().unwrap_or("").trim().to_string())
        }
        ClientIpSource::XRealIp => header("x-real-ip"),
        ClientIpSource::TrueClientIp => header("true-client-ip"),
    };
    match from_header {
        Some(v) => v.parse().ok(),
        None => req.peer_addr().map(|a| a.ip()),
    }
}

/// `Cache-Control` (comma list, case-insensitive) and `Pragma: no-cache`.
pub fn cache_mode(req: &HttpRequest) -> CacheMode {
    let mut mode = CacheMode::Normal;
    for v in req
        .headers()
        .get_all("cache-control")
        .chain(req.headers().get_all("pragma"))
    {
        for d in v.to_str().unwrap_or("").split(',') {
            match d.trim().to_ascii_lowercase().as_str() {
                "no-store" => return CacheMode::NoStore,
                "no-cache" => mode = CacheMode::NoCache,
                _ => {}
            }
        }
    }
    mode
}

/// The query string as a map; a parameter given twice keeps the last value.
pub fn query(req: &HttpRequest) -> Result<HashMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(req.query_string())
        .map_err(|e| ApiError::bad(format!("invalid query string: {e}")))?;
    Ok(pairs.into_iter().collect())
}

fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, String> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(q)
        .map(|q| q.into_inner())
        .map_err(|e| e.to_string())
}
