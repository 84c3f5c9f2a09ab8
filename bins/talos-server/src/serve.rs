//! `serve`: load config, prepare the database, run the API and health servers, reload the config
//! file on change, and shut down gracefully on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::{Context, bail};
use talos_core::Service;
use talos_core::config::{Config, ConfigSource, LogFormat, load_with_base};
use talos_http::{AppState, BuildInfo, ClientIpSource};
use talos_storage::Backend;

use crate::{ServeArgs, dev};

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

fn init_logging(c: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(&c.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match c.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Installs the Prometheus recorder (once per process) and returns its renderer.
fn install_metrics() -> Option<talos_http::MetricsRender> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const LATENCY: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            LATENCY,
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

pub(crate) fn file_fingerprint(path: Option<&std::path::Path>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path?).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// `serve.http.allowed_hosts`, or loopback names on a loopback bind; plus the networks' hostnames.
fn host_policy(c: &Config) -> talos_http::HostPolicy {
    let host = c.serve.http.host.trim();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let networks: Vec<String> = if c.multitenancy.enabled {
        c.multitenancy
            .networks
            .iter()
            .map(|n| n.hostname.clone())
            .collect()
    } else {
        Vec::new()
    };
    talos_http::HostPolicy::new(&c.serve.http.allowed_hosts, &networks, loopback)
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

async fn prepare_database(c: &Config) -> anyhow::Result<()> {
    match Backend::from_dsn(&c.db.dsn)? {
        Backend::Sqlite => {
            let applied = talos_storage::migrate_up(&c.db.dsn).await;
            let applied = match applied {
                Err(e) if sqlite_read_only(&c.db.dsn) => {
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
            let pending = talos_storage::pending_migrations(&c.db.dsn)
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
    let source = ConfigSource::from_process(args.config.clone());
    let base = if args.dev {
        Some(dev::base_config(&std::env::current_dir()?)?)
    } else {
        None
    };
    let (config, warnings) = load_with_base(&source, base.as_ref())?;
    init_logging(&config);
    if args.dev {
        eprintln!("{}", dev::BANNER);
        tracing::warn!("running the development setup (serve --dev); not for production");
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
    if config.credentials.issuer.is_empty() {
        bail!(
            "credentials.issuer is required (set it in --config or TALOS_CREDENTIALS_ISSUER, or use `serve --dev` for a development setup)"
        );
    }
    let client_ip_source =
        ClientIpSource::parse(&config.serve.http.client_ip_source).map_err(anyhow::Error::msg)?;
    talos_http::check_cors(&config.serve.http.cors).map_err(anyhow::Error::msg)?;
    // Early: a missing or broken pair is a startup error naming the file.
    let tls = if config.serve.http.tls.enabled() {
        let store = crate::tls::CertStore::load(&config.serve.http.tls)?;
        let server_config = store.server_config()?;
        store.watch();
        Some(server_config)
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    prepare_database(&config).await?;
    let service = Arc::new(
        Service::from_config(&config)
            .await
            .context("starting the service")?,
    );
    let runtime = service.runtime();
    if runtime.keyring.current().is_err() {
        tracing::error!(
            "secrets.hmac.current is not set: issue and verify will fail with \"project has no HMAC key configured\""
        );
    }
    let known: Vec<String> = runtime.keyring.iter().map(|e| e.id().to_string()).collect();
    match service
        .store()
        .count_imported_with_unknown_secret(&known)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            rows = n,
            "imported keys hashed under a secret that is no longer configured will not verify"
        ),
        Err(e) => tracing::warn!(error = %e, "could not check imported keys' secrets"),
    }

    let state = web::Data::new(AppState {
        service: service.clone(),
        build: BuildInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            commit: option_env!("TALOS_COMMIT").unwrap_or("unknown").into(),
            build_time: option_env!("TALOS_BUILD_TIME").unwrap_or("unknown").into(),
            config_hash: talos_core::config::config_hash(&config),
        },
        client_ip_source,
        trust_forwarded_host: config.serve.http.trust_forwarded_host,
        exclude_health_from_log: config.serve.http.request_log.exclude_health_endpoints,
        metrics: install_metrics(),
        cors: config.serve.http.cors.clone(),
        access: talos_http::Access::new(plane).with_hosts(host_policy(&config)),
        limits: talos_http::Limits::from_config(&config.serve.http),
        draining: Default::default(),
    });
    if state.metrics.is_some() {
        // Pool gauges, sampled: cheap, and enough for dashboards and alerts.
        let service = service.clone();
        tokio::spawn(async move {
            loop {
                if let Some(p) = service.store().pool_status() {
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
    let http = &config.serve.http;
    let listener = std::net::TcpListener::bind((http.host.as_str(), http.port))
        .with_context(|| format!("cannot listen on {}:{}", http.host, http.port))?;
    let addr = listener.local_addr()?;
    if plane.has_admin() && service.runtime().admin_tokens.is_empty() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the admin API is open to anyone who can reach {addr}: set serve.http.admin_auth.tokens (see `talos-server admin-token generate`) or bind to a loopback address"
        );
    }
    let api = talos_http::server(state.clone(), listener, http.workers, tls)?;
    let m = &config.serve.metrics;
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
    tracing::info!(
        api = %urls.api,
        scheme,
        plane = plane.as_str(),
        metrics = %urls.metrics.as_deref().unwrap_or("not served"),
        openapi = %urls.openapi(),
        dsn_backend = ?Backend::from_dsn(&config.db.dsn)?,
        "talos-server listening"
    );
    if config.log.format == LogFormat::Text {
        // For people: where to go and what to try. JSON logs get the event above only, so the
        // stream stays parseable.
        eprintln!("{}", urls.block());
    }

    // Reload: poll the file (cheap, and it follows symlink swaps of the file or its directory).
    if source.path.is_some() {
        let service = service.clone();
        let source = source.clone();
        tokio::spawn(async move {
            let mut last = file_fingerprint(source.path.as_deref());
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = file_fingerprint(source.path.as_deref());
                if now.is_none() || now == last {
                    continue;
                }
                last = now;
                match service.reload_from(&source) {
                    Ok(warnings) => {
                        for w in warnings {
                            tracing::warn!("{w}");
                        }
                        metrics::counter!("talos_config_reloads_total", "result" => "success")
                            .increment(1);
                        tracing::info!(event = "config_reloaded", "configuration reloaded");
                    }
                    Err(e) => {
                        metrics::counter!("talos_config_reloads_total", "result" => "failure")
                            .increment(1);
                        tracing::error!(event = "config_reload_failed", error = %e, "configuration reload failed; keeping the previous configuration")
                    }
                }
            }
        });
    }

    let api_handle = api.handle();
    let health_handle = health.as_ref().map(|h| h.handle());
    let api_task = tokio::spawn(api);
    if let Some(h) = health {
        tokio::spawn(h);
    }
    shutdown_signal().await;
    // Keep serving for a moment while readiness fails and responses close their connections, so
    // load balancers and keep-alive clients move on before the listener closes: connections that
    // are queued when it closes are reset, not answered.
    let drain = config.serve.http.drain_time.get();
    tracing::info!(
        ?drain,
        "shutting down: draining, then finishing in-flight requests"
    );
    state.draining.start();
    tokio::time::sleep(drain).await;
    if let Some(h) = health_handle {
        h.stop(true).await;
    }
    api_handle.stop(true).await;
    let _ = api_task.await;
    tracing::info!("stopped");
    Ok(())
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
