//! Logs and traces (`log.*`, `tracing.*`): one `tracing` subscriber with the log output (text or
//! JSON on stderr, filtered by `log.level`) and, with `tracing.enabled`, the OpenTelemetry layer
//! that exports spans over OTLP/HTTP (protobuf) from a batch processor.
//!
//! Exported: the spans of this workspace's crates down to `debug` (a request, each service call,
//! database query and cache call), whatever `log.level` says, and their events as span events.
//! Sampling is parent-based: a request whose W3C `traceparent` carries the caller's decision
//! follows it; a new trace is recorded with probability `tracing.sample_rate`. The request spans
//! join the caller's trace through `talos_http::trace`.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, ServerConfig};

/// What logging and tracing are set up with.
#[derive(Debug, Clone)]
pub(crate) struct TelemetryPlan {
    /// The `log.level` filter (actix-server's per-worker lines turned down).
    pub(crate) log_filter: String,
    pub(crate) log_format: LogFormat,
    /// `None` = no traces exported.
    pub(crate) traces: Option<TracesPlan>,
}

/// The OTLP exporter's settings.
#[derive(Debug, Clone)]
pub(crate) struct TracesPlan {
    /// `None` = `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4318/v1/traces`.
    pub(crate) endpoint: Option<String>,
    pub(crate) sample_rate: f64,
    pub(crate) service_name: String,
    pub(crate) service_version: String,
    pub(crate) environment: String,
}

impl TelemetryPlan {
    pub(crate) fn new(c: &ServerConfig) -> anyhow::Result<TelemetryPlan> {
        let t = &c.app.tracing;
        let traces = if t.enabled {
            Some(TracesPlan {
                endpoint: t.endpoint_url().map_err(anyhow::Error::msg)?,
                sample_rate: t.sample_rate,
                service_name: t.service_name.clone(),
                service_version: t.service_version.clone(),
                environment: t.environment.clone(),
            })
        } else {
            None
        };
        Ok(TelemetryPlan {
            log_filter: log_filter(&c.app.log.level),
            log_format: c.app.log.format,
            traces,
        })
    }
}

/// `log.level`, with actix-server's per-worker start and stop lines ("starting service:
/// actix-web-service-…", "starting N workers") turned down to warnings: they name no URL a user
/// can open and bury the startup block. A level that mentions actix itself is taken as given.
fn log_filter(level: &str) -> String {
    if level.contains("actix") {
        level.to_owned()
    } else {
        format!("{level},actix_server=warn")
    }
}

/// The running exporter, flushed on shutdown.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the subscriber (once per process; later calls leave the first in place) and, with
/// traces, the exporter and the W3C trace-context propagator.
pub(crate) fn init(plan: &TelemetryPlan) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_new(&plan.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter("info")));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match plan.log_format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
    };
    let provider = plan.traces.as_ref().map(provider).transpose()?;
    let traces = provider.as_ref().map(|p| {
        // Our spans and their events only: the exporter's own HTTP client must not trace itself.
        let ours = Targets::new()
            .with_target("talos", LevelFilter::DEBUG)
            .with_default(LevelFilter::OFF);
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("talos-server"))
            .with_filter(ours)
    });
    let installed = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init()
        .is_ok();
    if provider.is_some() && installed {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        talos_http::trace::enable();
    }
    Ok(Telemetry { provider })
}

fn provider(t: &TracesPlan) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = &t.endpoint {
        exporter = exporter.with_endpoint(endpoint.clone());
    }
    let exporter = exporter
        .build()
        .context("tracing: building the OTLP exporter")?;
    let resource = Resource::builder()
        .with_service_name(t.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", t.service_version.clone()),
            KeyValue::new("deployment.environment.name", t.environment.clone()),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            t.sample_rate,
        ))))
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

impl Telemetry {
    /// Exports the spans still buffered (waits at most 3 s for the collector, so that a slow one
    /// cannot hold up a shutdown).
    pub(crate) async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(Duration::from_secs(3))
        })
        .await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "tracing: spans not exported at shutdown");
        }
    }
}
