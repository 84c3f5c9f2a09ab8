//! Request id, security headers and the one-line request log, inside the request span (which
//! joins the caller's trace when tracing is on: `trace.rs`).

use std::future::Future;
use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;

/// A request in flight. Dropped before [`InFlight::done`], the client went away before the
/// answer: the connection was seen closed (`disconnect`), or the request's future was dropped.
/// That is logged and counted as 499 `CANCELLED`, upstream's code for it, so abandoned requests
/// show in the metrics instead of vanishing.
struct InFlight {
    start: Instant,
    method: actix_web::http::Method,
    /// The request's URI (a reference-counted clone): the route is only looked up if the
    /// request is abandoned.
    uri: actix_web::http::Uri,
    span: tracing::Span,
    log: bool,
    done: bool,
}

impl InFlight {
    fn done(&mut self) {
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let route =
            crate::endpoints::route_of(self.uri.path()).unwrap_or_else(|| "unmatched".into());
        let status = talos_api::error::CLIENT_CLOSED_REQUEST;
        crate::http_metrics::request(&self.method, &route, status, elapsed);
        if self.log {
            let _g = self.span.enter();
            tracing::info!(
                event = "http_request",
                method = crate::http_metrics::method_label(&self.method),
                route = %route,
                status,
                code = talos_api::Code::Cancelled.as_str(),
                latency_ms = elapsed * 1000.0,
                "client closed the connection before the answer"
            );
        }
    }
}

/// One request's context: echoes `X-Request-ID` (generated when missing, replaced when over 128
/// bytes or not visible ASCII), adds the security headers, and logs one line per request inside
/// a span carrying the request id, so errors logged by handlers carry it too. Counts every
/// request, including the ones the client abandons (499, see [`InFlight`]).
pub(crate) struct RequestContext {
    id: HeaderValue,
    span: tracing::Span,
    in_flight: InFlight,
    peer: Option<crate::disconnect::Peer>,
    draining: bool,
}

impl RequestContext {
    /// Opens the context of `req`, before anything else looks at it.
    pub(crate) fn begin(req: &ServiceRequest, state: Option<&crate::AppState>) -> Self {
        let start = Instant::now();
        let id = request_id(req.headers().get("x-request-id"));
        let exclude = state.is_some_and(|s| s.exclude_health_from_log.value())
            && req.path().starts_with("/health/");
        let span = tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            trace_id = tracing::field::Empty,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if crate::trace::enabled() {
            crate::trace::start(&span, req);
        }
        RequestContext {
            in_flight: InFlight {
                start,
                method: req.method().clone(),
                uri: req.uri().clone(),
                span: span.clone(),
                log: !exclude,
                done: false,
            },
            id,
            span,
            peer: req.conn_data::<crate::disconnect::Peer>().cloned(),
            draining: state.is_some_and(|s| s.draining.is_draining()),
        }
    }

    /// Runs `handler` (the rest of the request) in the span; answers 499 if the client goes
    /// away first, else adds the headers, counts and logs the answer.
    pub(crate) async fn run<B>(
        mut self,
        handler: impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static,
    ) -> Result<ServiceResponse<B>, actix_web::Error>
    where
        B: 'static,
    {
        // Boxed so that it can be handed to the background if the client goes away.
        let mut handler = Box::pin(handler.instrument(self.span.clone()));
        let res = tokio::select! {
            biased;
            res = &mut handler => res,
            () = crate::disconnect::client_gone(self.peer.take()) => {
                // Left to finish: see `disconnect`. `in_flight`, not done, logs and counts the 499.
                actix_web::rt::spawn(async move {
                    let _ = handler.await;
                });
                return Err(crate::ApiError::cancelled(
                    "the client closed the connection before the answer",
                )
                .into());
            }
        };
        self.in_flight.done();
        let mut res = res?;
        if crate::trace::enabled() {
            crate::trace::finish(&self.span, res.status().as_u16());
        }
        let headers = res.headers_mut();
        headers.insert(HeaderName::from_static("x-request-id"), self.id);
        for (k, v) in talos_api::headers::SECURITY {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }

        if self.draining {
            // Shutting down: the client's next request should open a connection elsewhere (actix
            // writes `Connection: close` from the head's connection type, not from the headers).
            res.response_mut()
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        let route = crate::endpoints::pattern_of(res.request());
        let status = res.status().as_u16();
        let elapsed = self.in_flight.start.elapsed().as_secs_f64();
        let method = &self.in_flight.method;
        crate::http_metrics::request(method, &route, status, elapsed);
        if let Some(cache) = res
            .headers()
            .get(talos_api::headers::CACHE)
            .and_then(|v| v.to_str().ok())
            .and_then(talos_api::headers::CacheResult::parse)
        {
            crate::http_metrics::cache_lookup(cache);
        }
        if self.in_flight.log {
            let _g = self.span.enter();
            tracing::info!(
                event = "http_request",
                method = crate::http_metrics::method_label(method),
                // The route pattern, not the path: paths carry key ids, patterns do not.
                route = %route,
                status,
                latency_ms = elapsed * 1000.0,
            );
        }
        Ok(res)
    }
}

/// The caller's `X-Request-ID` when it is 1..=128 visible ASCII characters, else a new UUID v4.
/// The header value is reused as it came (no copy), and a new id is drawn from the thread's
/// RNG (uuid's `fast-rng`), not from a `getrandom` system call per request.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = given
        && !v.is_empty()
        && v.len() <= 128
        && v.as_bytes().iter().all(|b| (0x21..0x7f).contains(b))
    {
        return v.clone();
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests;
