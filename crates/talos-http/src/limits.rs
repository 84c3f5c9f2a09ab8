//! Bounded answers (decisions.md "Resilience"): a deadline per request, a deadline for the request
//! body, and load shedding beyond a number of requests in flight per worker. Each is a small
//! `from_fn` middleware reading its settings from [`crate::AppState::limits`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpMessage, ResponseError};
use futures_util::Stream;

use crate::AppState;
use crate::error::ApiError;

/// `serve.http.request_timeout`, `client_timeout` and `max_inflight`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a request may take before it is answered 503 `DEADLINE_EXCEEDED`.
    pub request_timeout: Duration,
    /// Longest the request headers (actix) or body (here) may take to arrive.
    pub client_timeout: Duration,
    /// Requests in flight per worker beyond which new ones are answered 503 `OVERLOADED`.
    pub max_inflight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(15),
            client_timeout: Duration::from_secs(10),
            max_inflight: 1024,
        }
    }
}

impl Limits {
    pub fn from_config(c: &talos_core::config::HttpConfig) -> Self {
        Limits {
            request_timeout: c.request_timeout.get(),
            client_timeout: c.client_timeout.get(),
            max_inflight: c.max_inflight,
        }
    }
}

fn limits(req: &ServiceRequest) -> Limits {
    req.app_data::<Data<AppState>>()
        .map(|s| s.limits)
        .unwrap_or_default()
}

/// Answers 503 `DEADLINE_EXCEEDED` once `request_timeout` has passed. The request is not
/// cancelled but left to finish in the background: dropping it midway could leave a mutation
/// half done (say, a revoke committed but its cache eviction never sent). Its log line and
/// metrics are recorded when it finishes.
///
/// This is the outermost layer, and the answer is an `Err` that actix renders with the error
/// envelope: an `HttpRequest` for a `ServiceResponse` cannot be kept here (cloning it before
/// routing makes actix's router panic), so the 503 carries no request id header.
pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = limits(&req).request_timeout;
    if timeout.is_zero() {
        return next.call(req).await;
    }
    let mut fut = next.call(req);
    match tokio::time::timeout(timeout, &mut fut).await {
        Ok(res) => res,
        Err(_) => {
            actix_web::rt::spawn(async move {
                let _ = fut.await;
            });
            metrics::counter!("talos_http_deadline_exceeded_total").increment(1);
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DEADLINE_EXCEEDED",
                "DEADLINE_EXCEEDED",
                "the request did not complete within serve.http.request_timeout",
            )
            .into())
        }
    }
}

/// Bounds the arrival of the request body by `client_timeout` (actix's `client_request_timeout`
/// covers only the head): a body still arriving then ends with an error, which the body reader
/// answers with 408, and the connection is closed rather than kept for a slow sender.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = limits(&req).client_timeout;
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body || timeout.is_zero() {
        return next.call(req).await;
    }
    let inner = req.take_payload();
    let bounded = BodyDeadline {
        inner,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        expired: false,
    };
    req.set_payload(Payload::from(
        Box::pin(bounded) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let mut res = next.call(req).await?;
    if res.status() == StatusCode::REQUEST_TIMEOUT {
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res)
}

struct BodyDeadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for BodyDeadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                BODY_TIMEOUT,
            )))));
        }
        Poll::Pending
    }
}

/// The message of a body that did not arrive within `client_timeout`.
pub(crate) const BODY_TIMEOUT: &str =
    "the request body did not arrive within serve.http.client_timeout";

/// Whether a body read failed because of [`body_deadline`].
pub(crate) fn is_body_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

/// Requests in flight on one worker (each worker builds its own `App`, so its own counter).
#[derive(Debug, Default)]
pub(crate) struct Inflight(AtomicUsize);

/// Decrements the in-flight count when the request's future completes or is dropped.
struct Admitted(Data<Inflight>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Beyond `max_inflight` requests in flight on this worker, answers at once with 503
/// `OVERLOADED` and `Retry-After: 1` instead of queueing. Runs inside [`deadline`], so a request
/// finishing in the background after its deadline still counts.
pub async fn shed(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let max = limits(&req).max_inflight;
    let counter = req.app_data::<Data<Inflight>>().cloned();
    let (Some(counter), true) = (counter, max > 0) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if counter.0.fetch_add(1, Ordering::AcqRel) >= max {
        counter.0.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("talos_http_shed_total").increment(1);
        let mut res = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "OVERLOADED",
            "too many requests in flight; retry shortly",
        )
        .error_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return Ok(req.into_response(res).map_into_right_body());
    }
    let _admitted = Admitted(counter);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
