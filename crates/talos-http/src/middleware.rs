//! Request id, security headers and the one-line request log.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'",
    ),
];

/// Echoes `X-Request-ID` (generated when missing, replaced when over 128 bytes or not visible
/// ASCII), adds the security headers, and logs one line per request inside a span carrying the
/// request id, so errors logged by handlers carry it too.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.path().to_string();
    let state = req.app_data::<actix_web::web::Data<crate::AppState>>();
    let exclude = state.is_some_and(|s| s.exclude_health_from_log) && path.starts_with("/health/");
    let draining = state.is_some_and(|s| s.draining.is_draining());
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.call(req).instrument(span.clone()).await?;
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    for (k, v) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }

    if draining {
        // Shutting down: the client's next request should open a connection elsewhere (actix
        // writes `Connection: close` from the head's connection type, not from the headers).
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    let method_label = method_label(&method);
    metrics::counter!("http_requests_total", "method" => method_label, "route" => route.clone(), "code" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method_label, "route" => route.clone())
        .record(elapsed);
    if let Some(cache) = res
        .headers()
        .get("ory-talos-cache")
        .and_then(|v| v.to_str().ok())
    {
        let result = match cache {
            "HIT" => "hit",
            "MISS" => "miss",
            _ => "skip",
        };
        metrics::counter!("talos_cache_lookups_total", "result" => result).increment(1);
    }
    if !exclude {
        let _g = span.enter();
        tracing::info!(
            event = "http_request",
            method = %method,
            // The route pattern, not the path: paths carry key ids, patterns do not.
            route = %route,
            status = res.status().as_u16(),
            latency_ms = elapsed * 1000.0,
        );
    }
    Ok(res)
}

/// The `method` label: a standard HTTP method, else `OTHER`. Clients choose the method, so using
/// it raw would let them grow the metrics registry without bound.
fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use actix_web::http::Method;

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for raw in ["FOO", "get", "X-RANDOM-1234", "PROPFIND"] {
            assert_eq!(
                method_label(&Method::from_bytes(raw.as_bytes()).unwrap()),
                "OTHER"
            );
        }
    }
}
