//! CORS from `serve.http.cors`, read per request so that it reloads with the configuration (like
//! upstream; actix-cors fixes its settings when each worker starts).
//!
//! Origins that the settings do not allow never get here: the guard refuses them first (403
//! `ORIGIN_NOT_ALLOWED`, `guard.rs`), except `GET` of the public JWKS, which is answered without
//! a CORS grant. For an allowed origin:
//! - a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, 200 with the
//!   grant when the method and every requested header are allowed, 200 without one otherwise
//!   (the browser then refuses the request);
//! - any other request is served and its response carries `Access-Control-Allow-Origin` (the
//!   origin itself), `Vary: Origin`, `Access-Control-Expose-Headers` and, when configured,
//!   `Access-Control-Allow-Credentials`.
//!
//! With `debug: true` every CORS decision is logged (target `talos::cors`), as upstream's
//! `cors.debug` does.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};

use crate::AppState;
use crate::config::CorsConfig;
use crate::guard::origin_allowed;

/// Logs one CORS decision when `debug` is set.
fn debug(c: &CorsConfig, origin: &str, method: &Method, decision: &str) {
    if c.debug {
        tracing::info!(target: "talos::cors", origin, method = %method, decision, "CORS");
    }
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// Whether every header a preflight asks for (`Access-Control-Request-Headers`) is allowed.
fn headers_allowed(c: &CorsConfig, requested: &str) -> Result<(), String> {
    if c.allowed_headers.iter().any(|h| h == "*") {
        return Ok(());
    }
    for h in requested
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        if !c.allowed_headers.iter().any(|a| a.eq_ignore_ascii_case(h)) {
            return Err(format!("header {h:?} is not in allowed_headers"));
        }
    }
    Ok(())
}

/// The grant headers every allowed response carries.
fn grant(c: &CorsConfig, origin: &str, h: &mut HeaderMap) {
    if let Some(v) = value(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if c.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// The answer to a preflight from an allowed origin.
fn preflight(c: &CorsConfig, origin: &str, req: &ServiceRequest) -> HttpResponse {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let method = header(header::ACCESS_CONTROL_REQUEST_METHOD).unwrap_or_default();
    let requested = header(header::ACCESS_CONTROL_REQUEST_HEADERS).unwrap_or_default();
    let verdict = if !c
        .allowed_methods
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
    {
        Err(format!("method {method:?} is not in allowed_methods"))
    } else {
        headers_allowed(c, requested)
    };
    let mut resp = HttpResponse::build(StatusCode::OK).finish();
    let h = resp.headers_mut();
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    match verdict {
        Err(why) => debug(
            c,
            origin,
            req.method(),
            &format!("preflight refused: {why}"),
        ),
        Ok(()) => {
            debug(c, origin, req.method(), "preflight allowed");
            grant(c, origin, h);
            if let Some(v) = value(&c.allowed_methods.join(", ")) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            let allow_headers = if c.allowed_headers.iter().any(|a| a == "*") {
                requested.to_string()
            } else {
                c.allowed_headers.join(", ")
            };
            if let Some(v) = value(&allow_headers).filter(|_| !allow_headers.is_empty()) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            if c.max_age > 0
                && let Some(v) = value(&c.max_age.to_string())
            {
                h.insert(header::ACCESS_CONTROL_MAX_AGE, v);
            }
        }
    }
    resp
}

/// What CORS does with one request (see the module docs).
pub(crate) enum Cors {
    /// Not a CORS request, or CORS is off, or the origin gets no grant: served as it is.
    Pass,
    /// A preflight from an allowed origin, answered here.
    Preflight(HttpResponse),
    /// Served, and the response carries the grant for this origin ([`Cors::apply`]).
    Grant(Arc<CorsConfig>, String),
}

impl Cors {
    /// Decides for `req` before it is routed.
    pub(crate) fn check(req: &ServiceRequest, state: Option<&AppState>) -> Cors {
        let Some(c) = state.map(|s| s.cors.get()).filter(|c| c.enabled) else {
            return Cors::Pass;
        };
        let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return Cors::Pass;
        };
        if !origin_allowed(&c, &origin) {
            // Only the public JWKS reaches this far with a foreign origin (see the guard).
            debug(&c, &origin, req.method(), "origin not allowed: no grant");
            return Cors::Pass;
        }
        if req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Cors::Preflight(preflight(&c, &origin, req));
        }
        debug(&c, &origin, req.method(), "allowed");
        Cors::Grant(c, origin)
    }

    /// Adds the grant to a served response's headers.
    pub(crate) fn apply(&self, h: &mut HeaderMap) {
        let Cors::Grant(c, origin) = self else {
            return;
        };
        grant(c, origin, h);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if !c.exposed_headers.is_empty()
            && let Some(v) = value(&c.exposed_headers.join(", "))
        {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_headers() {
        let mut c = CorsConfig::default();
        assert!(headers_allowed(&c, "content-type, Authorization").is_ok());
        assert!(headers_allowed(&c, "").is_ok());
        assert!(headers_allowed(&c, "x-other").is_err());
        c.allowed_headers = vec!["*".into()];
        assert!(headers_allowed(&c, "x-other").is_ok());
    }
}
