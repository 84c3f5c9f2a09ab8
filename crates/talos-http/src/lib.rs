#![doc = include_str!("../README.md")]
#![recursion_limit = "512"]

pub mod auth;
mod cors_check;
pub mod endpoints;
mod error;
pub mod extract;
pub mod guard;
mod handlers;
mod limits;
mod middleware;
pub mod openapi;
pub mod planes;
pub mod wire;

pub use auth::Access;
pub use cors_check::check_cors;
pub use error::{ApiError, ApiResult};
pub use extract::ClientIpSource;
pub use guard::HostPolicy;
pub use limits::Limits;
pub use planes::Plane;

use std::sync::Arc;

use actix_web::web::{self, ServiceConfig};
use actix_web::{App, HttpServer, Route};
use serde::Serialize;
use talos_core::Service;

use handlers::misc;

/// Build metadata served at `/version`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    pub version: String,
    pub commit: String,
    pub build_time: String,
    pub config_hash: String,
}

/// Everything handlers share.
pub struct AppState {
    pub service: Arc<Service>,
    pub build: BuildInfo,
    pub client_ip_source: ClientIpSource,
    pub trust_forwarded_host: bool,
    pub exclude_health_from_log: bool,
    /// Renders the Prometheus exposition (the recorder lives in the binary); `None` = no `/metrics`.
    pub metrics: Option<MetricsRender>,
    /// `serve.http.cors`: browser access to the API (off by default).
    pub cors: talos_core::config::CorsConfig,
    /// Access control: admin-token failure logging (tokens themselves live in the runtime snapshot).
    pub access: Access,
    /// Request and body deadlines, load shedding.
    pub limits: Limits,
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

/// CORS from `serve.http.cors` (applied only when `enabled`).
fn cors(c: &talos_core::config::CorsConfig) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default();
    if c.allowed_origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for o in &c.allowed_origins {
            cors = cors.allowed_origin(o);
        }
    }
    let methods: Vec<actix_web::http::Method> = c
        .allowed_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    cors = cors.allowed_methods(methods);
    let headers: Vec<actix_web::http::header::HeaderName> = c
        .allowed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    cors = cors.allowed_headers(headers);
    let exposed: Vec<actix_web::http::header::HeaderName> = c
        .exposed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    cors = cors.expose_headers(exposed);
    if c.allow_credentials {
        cors = cors.supports_credentials();
    }
    if c.max_age > 0 {
        cors = cors.max_age(c.max_age as usize);
    }
    cors
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
    let cors = actix_web::middleware::Condition::new(state.cors.enabled, cors(&state.cors));
    let plane = state.access.plane;
    App::new()
        .app_data(state)
        .app_data(web::Data::new(limits::Inflight::default()))
        .configure(|cfg| plane_routes(plane, cfg))
        .default_service(web::to(misc::not_found))
        .wrap(actix_web::middleware::from_fn(limits::body_deadline))
        .wrap(cors)
        .wrap(actix_web::middleware::from_fn(guard::browser_and_host))
        .wrap(actix_web::middleware::from_fn(middleware::request_context))
        .wrap(actix_web::middleware::from_fn(limits::shed))
        .wrap(actix_web::middleware::from_fn(limits::deadline))
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
    check_cors(&state.cors)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let s = HttpServer::new(move || app(state.clone()));
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

/// The metrics port: `/metrics`, `/health/alive`, `/health/ready`, `/version`.
pub fn health_server(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(health_routes)
            .service(resource("/metrics", vec![web::get().to(misc::metrics)]))
            .default_service(web::to(misc::not_found))
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .run())
}
