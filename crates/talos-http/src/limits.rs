//! Bounded answers (decisions.md "Resilience"): a deadline per request, a deadline for the request
//! body, and load shedding, beyond a number of requests in flight per worker or when a worker's
//! event loop runs late. Each is one step of [`crate::surface`], with its settings from
//! [`crate::AppState::limits`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpMessage, ResponseError};
use futures_util::Stream;

use crate::error::ApiError;
use talos_api::Code;
use talos_api::error::reason;

/// `serve.http.request_timeout`, `client_timeout`, `max_inflight` and `max_queue_delay`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a request may take before it is answered 503 `DEADLINE_EXCEEDED`.
    pub request_timeout: Duration,
    /// Longest the request headers (actix) or body (here) may take to arrive.
    pub client_timeout: Duration,
    /// Requests in flight per worker beyond which new ones are answered 503 `OVERLOADED`.
    pub max_inflight: usize,
    /// Event-loop delay beyond which new requests are answered 503 `OVERLOADED`; zero = off.
    pub max_queue_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(15),
            client_timeout: Duration::from_secs(10),
            max_inflight: 1024,
            max_queue_delay: Duration::from_millis(200),
        }
    }
}

impl Limits {
    pub fn from_config(c: &crate::config::HttpConfig) -> Self {
        Limits {
            request_timeout: c.request_timeout.get(),
            client_timeout: c.client_timeout.get(),
            max_inflight: c.max_inflight,
            max_queue_delay: c.max_queue_delay.get(),
        }
    }
}

/// Runs `fut` within `timeout` (zero: no bound): once it has passed, answers 503
/// `DEADLINE_EXCEEDED`. The request is not cancelled but left to finish in the background:
/// dropping it midway could leave a mutation half done (say, a revoke committed but its cache
/// eviction never sent). Its log line and metrics are recorded when it finishes.
///
/// This is the outermost step of [`crate::surface`], and the answer is an `Err` that actix
/// renders with the error envelope: an `HttpRequest` for a `ServiceResponse` cannot be kept
/// there (cloning it before routing makes actix's router panic), so the 503 carries no request
/// id header.
pub(crate) async fn within_deadline<T: 'static>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, actix_web::Error>> + 'static,
) -> Result<T, actix_web::Error> {
    if timeout.is_zero() {
        return fut.await;
    }
    // Boxed so that it can be handed to the background if the deadline passes.
    let mut fut = Box::pin(fut);
    match tokio::time::timeout(timeout, &mut fut).await {
        Ok(res) => res,
        Err(_) => {
            actix_web::rt::spawn(async move {
                let _ = fut.await;
            });
            metrics::counter!("talos_http_deadline_exceeded_total").increment(1);
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::DeadlineExceeded,
                reason::DEADLINE_EXCEEDED,
                "the request did not complete within serve.http.request_timeout",
            )
            .into())
        }
    }
}

/// Bounds the arrival of the request body by `timeout` (actix's `client_request_timeout` covers
/// only the head): a body still arriving then ends with an error, which the body reader answers
/// with 408, and the connection is closed ([`close_after_body_timeout`]) rather than kept for a
/// slow sender. Requests without a body are left alone.
pub(crate) fn bound_body(req: &mut ServiceRequest, timeout: Duration) {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body || timeout.is_zero() {
        return;
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
}

/// A 408 (the body did not arrive in time) closes the connection.
pub(crate) fn close_after_body_timeout<B>(res: &mut ServiceResponse<B>) {
    if res.status() == StatusCode::REQUEST_TIMEOUT {
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
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

/// Whether a body read failed because of [`bound_body`].
pub(crate) fn is_body_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

/// Load on one worker (each worker builds its own `App`, so its own copy): requests in flight,
/// and how late its event loop runs.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    count: AtomicUsize,
    lag: Arc<LoopLag>,
}

/// How often the lag ticker wakes. Short enough to notice overload within a few of its periods,
/// long enough to cost nothing measurable (100 wake-ups a second per worker).
const TICK: Duration = Duration::from_millis(10);

/// A worker's event-loop delay, measured by a ticker task on that worker.
///
/// Why: requests waiting to be read sit in socket buffers and connection queues, where no
/// in-flight counter sees them. On a cheap request (a cached verify) the worker never has many
/// requests *inside* the app, yet each one waits for a full pass over every ready connection.
/// A task that asks to wake every [`TICK`] waits in the same run queue, so how late it wakes is
/// the queueing delay every request sees (the signal Node's `under-pressure` and Envoy's overload
/// manager use). Two consecutive late ticks turn shedding on, so one long poll or one moment the
/// process was not scheduled sheds nothing; the first punctual tick turns it off.
#[derive(Debug, Default)]
pub(crate) struct LoopLag {
    started: AtomicBool,
    /// The last tick's delay, in microseconds.
    last_us: AtomicU64,
    /// Consecutive ticks later than the threshold.
    late_ticks: AtomicU64,
    threshold_us: AtomicU64,
}

impl LoopLag {
    /// Starts the ticker on the current worker the first time it is called.
    fn ensure_started(self: &Arc<Self>, threshold: Duration) {
        // Once per worker: the threshold comes from settings that do not change while it runs.
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.threshold_us
            .store(threshold.as_micros() as u64, Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut due = Instant::now() + TICK;
            loop {
                tokio::time::sleep_until(due.into()).await;
                let now = Instant::now();
                let Some(lag) = weak.upgrade() else { return };
                lag.record(now.saturating_duration_since(due));
                due = now + TICK;
            }
        });
    }

    fn record(&self, late: Duration) {
        let us = late.as_micros() as u64;
        self.last_us.store(us, Ordering::Relaxed);
        if us > self.threshold_us.load(Ordering::Relaxed) {
            self.late_ticks.fetch_add(1, Ordering::Relaxed);
        } else {
            self.late_ticks.store(0, Ordering::Relaxed);
        }
    }

    /// True while the worker's loop runs later than the threshold (two late ticks in a row).
    fn overloaded(&self) -> bool {
        self.late_ticks.load(Ordering::Relaxed) >= 2
    }
}

/// Decrements the in-flight count when the request's future completes or is dropped.
pub(crate) struct Admitted(Data<Inflight>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The 503 `OVERLOADED` answer (with `Retry-After: 1`) for a request [`admit`] refused.
pub(crate) fn overloaded(message: &'static str) -> actix_web::HttpResponse {
    metrics::counter!("talos_http_shed_total").increment(1);
    let mut res = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Unavailable,
        reason::OVERLOADED,
        message,
    )
    .error_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    res
}

/// Load shedding: `Err` says why the request is answered at once with 503 `OVERLOADED`
/// ([`overloaded`]) instead of queueing, beyond `max_inflight` requests in flight on this worker or while its event loop
/// runs later than `max_queue_delay`. `Ok` holds the request's place in flight until dropped:
/// keep it until the answer is produced, including by a request finishing in the background
/// after its deadline.
pub(crate) fn admit(
    req: &ServiceRequest,
    limits: &Limits,
) -> Result<Option<Admitted>, &'static str> {
    let Some(load) = req.app_data::<Data<Inflight>>() else {
        return Ok(None);
    };
    if !limits.max_queue_delay.is_zero() {
        load.lag.ensure_started(limits.max_queue_delay);
        if load.lag.overloaded() {
            return Err("the server is behind on its queue; retry shortly");
        }
    }
    if limits.max_inflight == 0 {
        return Ok(None);
    }
    if load.count.fetch_add(1, Ordering::AcqRel) >= limits.max_inflight {
        load.count.fetch_sub(1, Ordering::AcqRel);
        return Err("too many requests in flight; retry shortly");
    }
    Ok(Some(Admitted(load.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker whose loop is blocked (here by a task that sleeps the thread) reports overload
    /// after two late ticks, and recovers at the first punctual one.
    #[actix_web::test]
    async fn a_blocked_event_loop_is_overloaded_and_recovers() {
        let lag = Arc::new(LoopLag::default());
        lag.ensure_started(Duration::from_millis(30));
        tokio::time::sleep(TICK * 5).await;
        assert!(!lag.overloaded(), "an idle loop is punctual");
        // Block the loop three times in a row, yielding between, as a busy worker would.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(80));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(
            lag.overloaded(),
            "late by {} us",
            lag.last_us.load(Ordering::Relaxed)
        );
        tokio::time::sleep(TICK * 5).await;
        assert!(!lag.overloaded(), "recovers once punctual");
    }

    /// One long poll is not overload: a single late tick sheds nothing.
    #[actix_web::test]
    async fn one_late_tick_is_not_overload() {
        let lag = Arc::new(LoopLag::default());
        lag.ensure_started(Duration::from_millis(30));
        tokio::time::sleep(TICK * 3).await;
        std::thread::sleep(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!lag.overloaded());
    }
}
