//! `serve`: load config, derive what runs from it (`plan.rs`), set up logs and traces
//! (`telemetry.rs`), prepare the database, run the API and health servers, reload the config
//! file on change (`reload.rs`), and shut down gracefully on SIGTERM/SIGINT. [`serve`] reads as
//! the list of those steps; each is a function below.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::{Context, bail};
use talos_core::Service;
use talos_core::config::{ConfigSource, load_tree};
use talos_http::config::TlsConfig;
use talos_http::{AppState, BuildInfo};
use talos_storage::Backend;

use crate::config::{LogFormat, ServerConfig, ServerSections};
use crate::plan::{HttpPlan, Listen, ServerPlan};
use crate::{ServeArgs, dev};

/// Installs the Prometheus recorder (once per process) and returns its renderer.
fn install_metrics() -> Option<talos_http::MetricsRender> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const LATENCY: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    // Upstream's histograms with upstream's buckets (reference.md §13), so its dashboards'
    // `histogram_quantile` queries work unchanged.
    const VERIFY_LATENCY: &[f64] = &[
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    const BATCH_SIZE: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
    const KEY_LOAD: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            LATENCY,
        )
        .ok()?
        .set_buckets_for_metric(
            Matcher::Full("talos_verification_duration_seconds".into()),
            VERIFY_LATENCY,
        )
        .ok()?
        .set_buckets_for_metric(
            Matcher::Full("talos_batch_import_key_count".into()),
            BATCH_SIZE,
        )
        .ok()?
        .set_buckets_for_metric(
            Matcher::Full("talos_keyservice_load_duration_seconds".into()),
            KEY_LOAD,
        )
        .ok()?
        .install_recorder()
        .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
        .ok()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    metrics::gauge!("talos_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Some(Arc::new(move || handle.render()))
}

/// Whether a `sqlite://PATH` database cannot be written: the file is read-only, or its directory
/// refuses new files (the journal). Only used to explain a failed startup.
fn sqlite_read_only(dsn: &str) -> bool {
    let Some(path) = ["sqlite3://", "sqlite://"]
        .iter()
        .find_map(|p| dsn.strip_prefix(p))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.starts_with(':'))
    else {
        return false;
    };
    let path = std::path::Path::new(path);
    let file_ro = std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let probe = dir.join(format!(".talos-write-probe-{}", std::process::id()));
    let dir_ro = match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => {
            e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
                || e.kind() == std::io::ErrorKind::PermissionDenied
        }
    };
    file_ro || dir_ro
}

async fn prepare_database(c: &ServerConfig) -> anyhow::Result<()> {
    let dsn = &c.core.db.dsn;
    match Backend::from_dsn(dsn)? {
        Backend::Sqlite => {
            let applied = talos_storage::migrate_up(dsn).await;
            let applied = match applied {
                Err(e) if sqlite_read_only(dsn) => {
                    return Err(anyhow::Error::new(e).context(
                        "applying SQLite migrations: the database file or its directory is read-only \
                         (SQLite needs to write the file and its -wal/-shm companions beside it)",
                    ));
                }
                other => other.context("applying SQLite migrations")?,
            };
            for name in applied {
                tracing::info!(migration = %name, "applied migration");
            }
        }
        Backend::Postgres => {
            let pending = talos_storage::pending_migrations(dsn)
                .await
                .context("checking PostgreSQL migrations")?;
            if !pending.is_empty() {
                bail!(
                    "{} database migration(s) pending ({}); run `talos-server migrate up --database <DSN>` first",
                    pending.len(),
                    pending.join(", ")
                );
            }
        }
    }
    Ok(())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let plane = talos_http::Plane::from(args.plane);
    // First: the metric handles the service keeps are registered with the recorder installed
    // at that moment, and deriving the plan already loads JWK sets (a counted key load).
    let metrics = install_metrics();
    let Loaded {
        source,
        config,
        warnings,
        plan,
    } = load_config(&args)?;
    let ServerPlan {
        service,
        http,
        telemetry,
    } = plan;
    let telemetry = crate::telemetry::init(&telemetry)?;
    if args.dev {
        eprintln!("{}", dev::BANNER);
        tracing::warn!("running the development setup (serve --dev); not for production");
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
    // Early: a missing or broken pair is a startup error naming the file.
    let tls = load_tls(&http.tls)?;
    prepare_database(&config).await?;
    let service = start_service(service).await?;
    let (drain, listen) = (http.drain_time, http.listen.clone());
    let state = app_state(&config, plane, service.clone(), http, metrics);
    if state.metrics.is_some() {
        spawn_pool_gauges(service.clone());
    }
    let servers = bind(&listen, &state, tls)?;
    announce(&config, plane, &servers)?;
    crate::reload::watch(service.clone(), state.clone(), source, &config);
    run_until_shutdown(servers, &state, drain).await;
    // After the last request: what verification queued, then the spans.
    service.shutdown().await;
    telemetry.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The loaded configuration and what runs from it.
struct Loaded {
    /// Kept for reloads.
    source: ConfigSource,
    config: ServerConfig,
    /// The loader's warnings, logged once logging is set up.
    warnings: Vec<String>,
    plan: ServerPlan,
}

/// Loads the configuration (`--dev` adds its defaults under the file) and derives what runs from
/// it; either failing stops the start before anything is set up.
fn load_config(args: &ServeArgs) -> anyhow::Result<Loaded> {
    let mut source = ConfigSource::from_process(args.config.clone());
    if args.dev {
        source = source.with_base(dev::base_config(&std::env::current_dir()?)?);
    }
    let (config, warnings) = load_tree::<ServerSections>(&source)?;
    let plan = ServerPlan::new(&config)?;
    Ok(Loaded {
        source,
        config,
        warnings,
        plan,
    })
}

/// The API port's TLS configuration, following certificate rotation; `None` = plain HTTP.
fn load_tls(tls: &TlsConfig) -> anyhow::Result<Option<rustls::ServerConfig>> {
    if !tls.enabled() {
        return Ok(None);
    }
    let store = crate::tls::CertStore::load(tls)?;
    let server_config = store.server_config()?;
    store.watch();
    Ok(Some(server_config))
}

/// Builds the service and logs what would make it fail later: no current secret, imported keys
/// that no configured secret can verify.
async fn start_service(plan: talos_core::Plan) -> anyhow::Result<Arc<Service>> {
    let service = Arc::new(
        Service::from_plan(plan)
            .await
            .context("starting the service")?,
    );
    if !service.has_current_secret() {
        tracing::error!(
            "secrets.hmac.current is not set: issue and verify will fail with \"project has no HMAC key configured\""
        );
    }
    match service.count_imported_with_unknown_secret().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            rows = n,
            "imported keys hashed under a secret that is no longer configured will not verify"
        ),
        Err(e) => tracing::warn!(error = %e, "could not check imported keys' secrets"),
    }
    Ok(service)
}

fn app_state(
    config: &ServerConfig,
    plane: talos_http::Plane,
    service: Arc<Service>,
    http: HttpPlan,
    metrics: Option<talos_http::MetricsRender>,
) -> web::Data<AppState> {
    web::Data::new(AppState {
        service,
        build: BuildInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            commit: option_env!("TALOS_COMMIT").unwrap_or("unknown").into(),
            build_time: option_env!("TALOS_BUILD_TIME").unwrap_or("unknown").into(),
            config_hash: talos_core::config::config_hash(config),
        },
        client_ip_source: http.live.client_ip_source.into(),
        trust_forwarded_host: http.trust_forwarded_host,
        exclude_health_from_log: http.live.exclude_health_from_log.into(),
        metrics,
        cors: http.live.cors.into(),
        access: talos_http::Access::new(plane)
            .with_hosts(http.hosts)
            .with_admin_tokens(http.admin_tokens)
            .with_self_service(http.self_service),
        limits: http.limits,
        gateway_failures: http.gateway_failures,
        draining: Default::default(),
    })
}

/// Database pool gauges, sampled: cheap, and enough for dashboards and alerts.
fn spawn_pool_gauges(service: Arc<Service>) {
    tokio::spawn(async move {
        loop {
            if let Some(p) = service.pool_status() {
                metrics::gauge!("talos_db_pool_max_size").set(p.max_size as f64);
                metrics::gauge!("talos_db_pool_size").set(p.size as f64);
                metrics::gauge!("talos_db_pool_in_use")
                    .set(p.size.saturating_sub(p.available) as f64);
                metrics::gauge!("talos_db_pool_waiting").set(p.waiting as f64);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
}

/// The API server, the metrics port's server if its port could be bound, and their URLs.
struct Servers {
    /// A second handle on the API listener, to close it without resetting queued connections.
    gate: crate::listener::Gate,
    api: actix_web::dev::Server,
    health: Option<actix_web::dev::Server>,
    urls: crate::banner::Urls,
    scheme: &'static str,
}

fn bind(
    http: &Listen,
    state: &web::Data<AppState>,
    tls: Option<rustls::ServerConfig>,
) -> anyhow::Result<Servers> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = std::net::TcpListener::bind((http.host.as_str(), http.port))
        .with_context(|| format!("cannot listen on {}:{}", http.host, http.port))?;
    let addr = listener.local_addr()?;
    if state.access.plane.has_admin() && state.access.admin_api_open() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the admin API is open to anyone who can reach {addr}: set serve.http.admin_auth.tokens (see `talos-server admin-token generate`) or bind to a loopback address"
        );
    }
    let gate = crate::listener::Gate::new(&listener);
    let api = talos_http::server(state.clone(), listener, http.workers, tls)?;
    let m = &http.metrics;
    let mut metrics_addr = None;
    let health = match std::net::TcpListener::bind((m.host.as_str(), m.port)) {
        Ok(l) => {
            metrics_addr = l.local_addr().ok();
            Some(talos_http::health_server(state.clone(), l)?)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen on the metrics port {}:{}; health is still served on the API port", m.host, m.port);
            None
        }
    };
    let mut urls = crate::banner::Urls::new(addr, metrics_addr);
    if scheme == "https" {
        // The API port speaks HTTPS; the metrics port stays plain HTTP.
        urls.api = urls.api.replacen("http://", "https://", 1);
    }
    Ok(Servers {
        gate,
        api,
        health,
        urls,
        scheme,
    })
}

/// The "listening" event, and for text logs the startup block.
fn announce(
    config: &ServerConfig,
    plane: talos_http::Plane,
    servers: &Servers,
) -> anyhow::Result<()> {
    let urls = &servers.urls;
    tracing::info!(
        api = %urls.api,
        scheme = servers.scheme,
        plane = plane.as_str(),
        metrics = %urls.metrics.as_deref().unwrap_or("not served"),
        openapi = %urls.openapi(),
        dsn_backend = ?Backend::from_dsn(&config.core.db.dsn)?,
        "talos-server listening"
    );
    if config.app.log.format == LogFormat::Text {
        // For people: where to go and what to try. JSON logs get the event above only, so the
        // stream stays parseable.
        eprintln!("{}", urls.block());
    }
    Ok(())
}

/// Serves until SIGTERM/SIGINT, then shuts down gracefully.
async fn run_until_shutdown(servers: Servers, state: &AppState, drain: Duration) {
    let gate = servers.gate;
    let api_handle = servers.api.handle();
    let health_handle = servers.health.as_ref().map(|h| h.handle());
    let api_task = tokio::spawn(servers.api);
    if let Some(h) = servers.health {
        tokio::spawn(h);
    }
    shutdown_signal().await;
    // Keep serving for a moment while readiness fails and responses close their connections, so
    // load balancers and keep-alive clients move on before the listener closes: connections that
    // are queued when it closes are reset, not answered.
    tracing::info!(
        ?drain,
        "shutting down: draining, then finishing in-flight requests"
    );
    state.draining.start();
    tokio::time::sleep(drain).await;
    // Hold back new connections and let the accept loop take the queued ones before the
    // listener closes (closing resets whatever is still queued; see `listener`).
    gate.hold_new_connections();
    tokio::time::sleep(crate::listener::QUEUE_DRAIN).await;
    if let Some(h) = health_handle {
        h.stop(true).await;
    }
    api_handle.stop(true).await;
    drop(gate);
    let _ = api_task.await;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
