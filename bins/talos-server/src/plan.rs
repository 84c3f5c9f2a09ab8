//! What `serve` runs, derived from the configuration before anything starts: the service's plan
//! (talos-core), the HTTP listeners and their settings, logging and tracing. `serve` builds the
//! server from it and nothing else, so a test can check that every configuration key changes
//! what runs (`settings_tests.rs`).

use std::time::Duration;

use anyhow::bail;
use talos_core::config::ConfigError;
use talos_http::admin_tokens::AdminTokens;
use talos_http::config::{CorsConfig, HttpConfig, MetricsConfig, TlsConfig};
use talos_http::{ClientIpSource, FailureLimit, HostPolicy, Limits, SelfService};

use crate::config::ServerConfig;
use crate::telemetry::TelemetryPlan;

#[derive(Debug)]
pub(crate) struct ServerPlan {
    pub(crate) service: talos_core::Plan,
    pub(crate) http: HttpPlan,
    pub(crate) telemetry: TelemetryPlan,
}

/// The API and metrics listeners and the HTTP layer's settings.
#[derive(Debug)]
pub(crate) struct HttpPlan {
    pub(crate) listen: Listen,
    pub(crate) tls: TlsConfig,
    pub(crate) drain_time: Duration,
    pub(crate) trust_forwarded_host: bool,
    pub(crate) limits: Limits,
    pub(crate) hosts: HostPolicy,
    pub(crate) admin_tokens: AdminTokens,
    pub(crate) self_service: SelfService,
    pub(crate) gateway_failures: FailureLimit,
    pub(crate) live: LiveSettings,
}

/// Where the API and the metrics port listen.
#[derive(Debug, Clone)]
pub(crate) struct Listen {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) workers: usize,
    pub(crate) metrics: MetricsConfig,
}

/// The HTTP settings that reload with the file (like upstream).
#[derive(Debug, Clone)]
pub(crate) struct LiveSettings {
    pub(crate) cors: CorsConfig,
    pub(crate) client_ip_source: ClientIpSource,
    pub(crate) exclude_health_from_log: bool,
}

impl LiveSettings {
    /// Checked as at startup: a reload that fails here changes nothing.
    pub(crate) fn new(http: &HttpConfig) -> Result<LiveSettings, ConfigError> {
        let client_ip_source = ClientIpSource::parse(&http.client_ip_source).map_err(|reason| {
            ConfigError::Invalid {
                key: "serve.http.client_ip_source".into(),
                reason,
            }
        })?;
        talos_http::check_cors(&http.cors)?;
        Ok(LiveSettings {
            cors: http.cors.clone(),
            client_ip_source,
            exclude_health_from_log: http.request_log.exclude_health_endpoints,
        })
    }

    /// Swaps them into a running server.
    pub(crate) fn apply(self, state: &talos_http::AppState) {
        state.cors.set(self.cors);
        state.client_ip_source.set(self.client_ip_source);
        state
            .exclude_health_from_log
            .set(self.exclude_health_from_log);
    }
}

impl ServerPlan {
    /// Derives the plan; reads the files the configuration names (JWK sets, network overlays).
    pub(crate) fn new(c: &ServerConfig) -> anyhow::Result<ServerPlan> {
        if c.core.credentials.issuer.is_empty() {
            bail!(
                "credentials.issuer is required (set it in --config or TALOS_CREDENTIALS_ISSUER, or use `serve --dev` for a development setup)"
            );
        }
        let http = &c.app.serve.http;
        Ok(ServerPlan {
            service: talos_core::Plan::new(&c.core)?,
            http: HttpPlan {
                listen: Listen {
                    host: http.host.clone(),
                    port: http.port,
                    workers: http.workers,
                    metrics: c.app.serve.metrics.clone(),
                },
                tls: http.tls.clone(),
                drain_time: http.drain_time.get(),
                trust_forwarded_host: http.trust_forwarded_host,
                limits: Limits::from_config(http),
                hosts: host_policy(c),
                admin_tokens: AdminTokens::new(&http.admin_auth.tokens),
                self_service: SelfService::from_config(&c.app.self_service),
                gateway_failures: FailureLimit::from_config(&http.gateway.failure_limit),
                live: LiveSettings::new(http)?,
            },
            telemetry: TelemetryPlan::new(c)?,
        })
    }
}

/// `serve.http.allowed_hosts`, or loopback names on a loopback bind; plus the networks' hostnames.
fn host_policy(c: &ServerConfig) -> HostPolicy {
    let host = c.app.serve.http.host.trim();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let networks: Vec<String> = if c.core.multitenancy.enabled {
        c.core
            .multitenancy
            .networks
            .iter()
            .map(|n| n.hostname.clone())
            .collect()
    } else {
        Vec::new()
    };
    HostPolicy::new(&c.app.serve.http.allowed_hosts, &networks, loopback)
}
