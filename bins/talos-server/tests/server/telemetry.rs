//! `tracing.*`: spans reach an OTLP/HTTP collector (a receiver started here that keeps every
//! `POST /v1/traces` body), under the trace of the caller's W3C `traceparent`, sampled per
//! `sample_rate`; the request log line carries the trace id.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use super::server;

/// A minimal OTLP/HTTP collector: keeps the export requests it is sent.
struct Collector {
    url: String,
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn collector() -> Collector {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let kept = requests.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let kept = kept.clone();
        App::new()
            .app_data(web::PayloadConfig::new(16 << 20))
            .route(
                "/v1/traces",
                web::post().to(move |body: web::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let req = ExportTraceServiceRequest::decode(&body[..])
                            .expect("an OTLP protobuf export request");
                        kept.lock().unwrap().push(req);
                        // An empty ExportTraceServiceResponse.
                        HttpResponse::Ok()
                            .content_type("application/x-protobuf")
                            .body(Vec::<u8>::new())
                    }
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Collector {
        url,
        requests,
        handle,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_the_collector_under_the_caller_s_trace() {
    let collector = collector().await;
    let env = [
        ("TALOS_TRACING_ENABLED", "true"),
        ("TALOS_TRACING_ENDPOINT", collector.url.as_str()),
        // New traces are never recorded: only the caller's sampled trace is.
        ("TALOS_TRACING_SAMPLE_RATE", "0"),
        ("TALOS_TRACING_SERVICE_NAME", "talos-under-test"),
        ("TALOS_LOG_FORMAT", "json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let mut s = server().dev().envs(&env).spawn();
    let secret = s.issue().await; // a new trace: not sampled at rate 0
    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let verified: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", s.url))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"credential": secret}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["is_valid"], true, "{verified}");
    // SIGTERM: the server exports what it still holds before it exits.
    assert!(s.terminate().success());
    let stderr = s.log();
    collector.handle.stop(true).await;

    let log_line = stderr
        .lines()
        .find(|l| l.contains("http_request") && l.contains("apiKeys:verify"))
        .unwrap_or_else(|| panic!("no request log line for verify:\n{stderr}"));
    assert!(log_line.contains(trace_id), "{log_line}");

    let requests = collector.requests.lock().unwrap();
    let mut spans: Vec<&Span> = Vec::new();
    for r in requests.iter() {
        for rs in &r.resource_spans {
            let service = rs.resource.as_ref().and_then(|res| {
                res.attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref()?.value.clone())
            });
            assert_eq!(
                service,
                Some(AnyValue::StringValue("talos-under-test".into()))
            );
            spans.extend(rs.scope_spans.iter().flat_map(|ss| &ss.spans));
        }
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(!spans.is_empty(), "no spans exported");
    for span in &spans {
        assert_eq!(
            hex(&span.trace_id),
            trace_id,
            "{}: only the caller's trace is sampled ({names:?})",
            span.name
        );
    }
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v2alpha1/admin/apiKeys:verify")
        .unwrap_or_else(|| panic!("no request span in {names:?}"));
    assert_eq!(
        hex(&request.parent_span_id),
        caller_span,
        "the caller's span is the parent"
    );
    for want in ["talos.verify", "db.get_key", "cache.get"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}
