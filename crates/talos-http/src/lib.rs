#![doc = include_str!("../README.md")]
#![recursion_limit = "512"]

pub mod admin_tokens;
pub mod auth;
pub mod config;
mod cors;
mod cors_check;
mod disconnect;
pub mod endpoints;
mod error;
pub mod extract;
mod gateway_limit;
pub mod guard;
mod handlers;
mod http_metrics;
mod limits;
mod live;
mod middleware;
pub mod openapi;
pub mod planes;
pub mod self_service;
mod surface;
pub mod trace;
pub mod wire;

pub use auth::Access;
pub use cors_check::check_cors;
pub use error::{ApiError, ApiResult};
pub use extract::ClientIpSource;
pub use gateway_limit::FailureLimit;
pub use guard::HostPolicy;
pub use limits::Limits;
pub use live::Live;
pub use planes::Plane;
pub use self_service::{SelfService, SelfServiceConfig};

use std::sync::Arc;

use actix_web::web::{self, ServiceConfig};
use actix_web::{App, HttpServer, Route};
use talos_core::Service;

use handlers::misc;

/// Build metadata served at `/version`.
pub type BuildInfo = talos_api::VersionInfo;

/// Everything handlers share. [`Live`] fields reload with the configuration file.
pub struct AppState {
    pub service: Arc<Service>,
    pub build: BuildInfo,
    pub client_ip_source: Live<ClientIpSource>,
    pub trust_forwarded_host: bool,
    /// `serve.http.request_log.exclude_health_endpoints`.
    pub exclude_health_from_log: Live<bool>,
    /// Renders the Prometheus exposition (the recorder lives in the binary); `None` = no `/metrics`.
    pub metrics: Option<MetricsRender>,
    /// `serve.http.cors`: browser access to the API (off by default); check a new value with
    /// [`check_cors`] before setting it.
    pub cors: Live<crate::config::CorsConfig>,
    /// Access control: admin-token failure logging (tokens themselves live in the runtime snapshot).
    pub access: Access,
    /// Request and body deadlines, load shedding.
    pub limits: Limits,
    /// Failed gateway verifications per client address (`serve.http.gateway.failure_limit`).
    pub gateway_failures: FailureLimit,
    /// Set on shutdown: readiness fails and connections are not kept alive.
    pub draining: Draining,
}

/// The server is shutting down: `/health/ready` answers 503 and responses carry
/// `Connection: close`, while requests are still served (see `serve.http.drain_time`).
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Renders the metrics registry in the Prometheus text format.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

fn resource(path: &str, routes: Vec<Route>) -> actix_web::Resource {
    let mut r = web::resource(path);
    for route in routes {
        r = r.route(route);
    }
    r.default_service(web::to(misc::method_not_allowed))
}

/// The API routes (health, version and the OpenAPI document included).
pub fn routes(cfg: &mut ServiceConfig) {
    plane_routes(Plane::All, cfg);
}

/// The routes `plane` serves.
pub fn plane_routes(plane: Plane, cfg: &mut ServiceConfig) {
    endpoints::register(cfg, endpoints::ENDPOINTS.iter().filter(|e| plane.serves(e)));
}

/// `/health/alive`, `/health/ready`, `/version`, `/openapi.json` (also served on the metrics port).
pub fn health_routes(cfg: &mut ServiceConfig) {
    endpoints::register(
        cfg,
        endpoints::ENDPOINTS
            .iter()
            .filter(|e| endpoints::is_health(e)),
    );
}

/// The complete actix application for `state`.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let plane = state.access.plane;
    App::new()
        .app_data(state)
        .app_data(web::Data::new(limits::Inflight::default()))
        .configure(|cfg| plane_routes(plane, cfg))
        .default_service(web::to(misc::not_found))
        .wrap(surface::Surface)
}

/// The API server on an already-bound listener (port 0 works for tests). Signals are handled by
/// the caller, which stops the returned server gracefully.
///
/// With `tls`, the port speaks HTTPS only (the caller's config picks certificates, e.g. a resolver
/// that follows certificate rotation).
pub fn server(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    check_cors(&state.cors.get())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // `serve.http.client_timeout` bounds the request head too (actix answers a late head with
    // 408 and closes the connection); actix's own default would be 5 s whatever the setting.
    let head_timeout = state.limits.client_timeout;
    // The connection hook before `listen`, which takes it as it is then.
    let s = HttpServer::new(move || app(state.clone()))
        .client_request_timeout(head_timeout)
        .on_connect(disconnect::on_connect);
    let s = match tls {
        Some(config) => s.listen_rustls_0_23(listener, config)?,
        None => s.listen(listener)?,
    };
    let mut s = s.disable_signals().shutdown_timeout(10);
    if workers > 0 {
        s = s.workers(workers);
    }
    Ok(s.run())
}

/// The metrics port: `/metrics` (and `/metrics/prometheus`, upstream's path for the same
/// document), `/health/alive`, `/health/ready`, `/version`.
pub fn health_server(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(health_routes)
            .service(resource("/metrics", vec![web::get().to(misc::metrics)]))
            .service(resource(
                "/metrics/prometheus",
                vec![web::get().to(misc::metrics)],
            ))
            .default_service(web::to(misc::not_found))
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .run())
}
