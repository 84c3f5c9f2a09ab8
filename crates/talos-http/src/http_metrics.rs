//! The request metrics (`http_requests_total{method,route,code}`,
//! `http_request_duration_seconds{method,route}`, `talos_cache_lookups_total{result}`) and
//! upstream's batch import metrics, through kept handles.
//!
//! `metrics::counter!` with labels looks the series up in the registry on every call (2–5% of
//! the server's CPU under a cache-hit verify load, docs/benchmarks.md). Here each worker thread
//! keeps the handles it has used, keyed by route pattern, method and status: label values are
//! bounded (decisions.md "Metrics"), so the map stops growing after warm-up. Handles are made on
//! first use, after the binary installed its recorder.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use metrics::{Counter, Histogram, counter, histogram};
use talos_api::BatchImportErrorCode;
use talos_api::headers::CacheResult;

/// The methods a `method` label may name, in [`method_index`] order; anything else is `OTHER`.
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

/// The `method` label: a standard HTTP method, else `OTHER`. Clients choose the method, so using
/// it raw would let them grow the metrics registry without bound.
pub(crate) fn method_label(m: &actix_web::http::Method) -> &'static str {
    METHODS[method_index(m)]
}

fn method_index(m: &actix_web::http::Method) -> usize {
    use actix_web::http::Method;
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// One route's series for one method: its latency histogram and a counter per status.
struct MethodSeries {
    duration: Histogram,
    by_status: HashMap<u16, Counter>,
}

thread_local! {
    /// Route pattern → per method → series.
    static SERIES: RefCell<HashMap<Box<str>, [Option<MethodSeries>; METHODS.len()]>> =
        RefCell::new(HashMap::new());
}

/// Counts one answered (or abandoned: 499) request and records its latency.
pub(crate) fn request(method: &actix_web::http::Method, route: &str, status: u16, secs: f64) {
    let m = method_index(method);
    SERIES.with(|series| {
        let mut series = series.borrow_mut();
        if !series.contains_key(route) {
            series.insert(route.into(), Default::default());
        }
        let Some(by_method) = series.get_mut(route) else {
            return;
        };
        let s = by_method[m].get_or_insert_with(|| MethodSeries {
            duration: histogram!("http_request_duration_seconds", "method" => METHODS[m], "route" => route.to_owned()),
            by_status: HashMap::new(),
        });
        s.duration.record(secs);
        s.by_status
            .entry(status)
            .or_insert_with(|| {
                counter!("http_requests_total", "method" => METHODS[m], "route" => route.to_owned(), "code" => status.to_string())
            })
            .increment(1);
    });
}

/// Upstream's batch import metrics, and our cache lookup counter.
struct Shared {
    /// `talos_cache_lookups_total{result}`: `[hit, miss, skip]`.
    cache_lookups: [Counter; 3],
    batch_requests: Counter,
    batch_partial_failures: Counter,
    batch_keys_succeeded: Counter,
    /// `talos_batch_import_keys_failed_total{error_code}`, in [`BATCH_CODES`] order.
    batch_keys_failed: [Counter; 5],
    batch_key_count: Histogram,
}

/// The per-item error codes, labelled as upstream does: the status name (`ALREADY_EXISTS`).
const BATCH_CODES: [(BatchImportErrorCode, talos_api::Code); 5] = [
    (
        BatchImportErrorCode::InvalidArgument,
        talos_api::Code::InvalidArgument,
    ),
    (
        BatchImportErrorCode::AlreadyExists,
        talos_api::Code::AlreadyExists,
    ),
    (
        BatchImportErrorCode::FailedPrecondition,
        talos_api::Code::FailedPrecondition,
    ),
    (BatchImportErrorCode::Internal, talos_api::Code::Internal),
    (
        BatchImportErrorCode::ResourceExhausted,
        talos_api::Code::ResourceExhausted,
    ),
];

static SHARED: LazyLock<Shared> = LazyLock::new(|| Shared {
    cache_lookups: ["hit", "miss", "skip"]
        .map(|r| counter!("talos_cache_lookups_total", "result" => r)),
    batch_requests: counter!("talos_batch_import_requests_total"),
    batch_partial_failures: counter!("talos_batch_import_partial_failures_total"),
    batch_keys_succeeded: counter!("talos_batch_import_keys_succeeded_total"),
    batch_keys_failed: BATCH_CODES.map(
        |(_, code)| counter!("talos_batch_import_keys_failed_total", "error_code" => code.as_str()),
    ),
    batch_key_count: histogram!("talos_batch_import_key_count"),
});

/// A verification answered with an `Ory-Talos-Cache` header.
pub(crate) fn cache_lookup(result: CacheResult) {
    let i = match result {
        CacheResult::Hit => 0,
        CacheResult::Miss => 1,
        CacheResult::Skip => 2,
    };
    SHARED.cache_lookups[i].increment(1);
}

/// One batch import request of `keys` items, of which the listed ones failed.
pub(crate) fn batch_import(keys: usize, failed: &[BatchImportErrorCode]) {
    let s = &*SHARED;
    s.batch_requests.increment(1);
    s.batch_key_count.record(keys as f64);
    let succeeded = keys.saturating_sub(failed.len());
    s.batch_keys_succeeded.increment(succeeded as u64);
    if succeeded > 0 && !failed.is_empty() {
        s.batch_partial_failures.increment(1);
    }
    for f in failed {
        if let Some(i) = BATCH_CODES.iter().position(|(c, _)| c == f) {
            s.batch_keys_failed[i].increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
