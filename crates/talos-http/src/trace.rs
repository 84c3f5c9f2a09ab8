//! The request's place in a distributed trace (`tracing.*`). The program that exports traces
//! (talos-server) installs the OpenTelemetry layer and the W3C trace-context propagator, then
//! calls [`enable`]. From then on each request span takes its parent from the request's
//! `traceparent`/`tracestate` (so the service, database and cache spans below it join the
//! caller's trace), is named after the route pattern, and records its `trace_id`, which every
//! log line of the request (the request log line included) then carries.
//!
//! Without [`enable`] nothing here runs: no header is parsed and no route is matched twice.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns trace context on for every request of this process (see the module docs).
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// The request headers as an OpenTelemetry carrier.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Names `span` (`<METHOD> <route pattern>`, a server span), gives it the caller's trace as
/// parent, and records its trace id. Must run before the span is first entered: the name and
/// the parent are fixed when it starts.
pub(crate) fn start(span: &tracing::Span, req: &ServiceRequest) {
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    span.record("otel.name", format!("{} {route}", req.method()));
    span.record("otel.kind", "server");
    span.set_attribute("http.request.method", req.method().to_string());
    span.set_attribute("http.route", route);
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let sc = context.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
    }
}

/// Records the response status on the span (an error status for 5xx).
pub(crate) fn finish(span: &tracing::Span, status: u16) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}
