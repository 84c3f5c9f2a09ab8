//! The HTTP layer's settings, the `serve` section of the configuration tree: `serve.http` (the
//! API port: listener, workers, TLS, deadlines, load shedding, CORS, allowed hosts, admin tokens,
//! the request log) and `serve.metrics` (the metrics and health port).
//!
//! They are not talos-core's: a program composes them with the domain's sections into one tree
//! (`talos_core::config::Sections`), as talos-server does. The checks, key descriptions and
//! secret redaction of the section are here, next to the types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use talos_core::config::{ConfigDuration, ConfigError, REDACTED};

pub use crate::admin_tokens::{AdminAuthConfig, AdminTokenConfig};

/// The `serve` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub host: String,
    pub port: u16,
    pub trust_forwarded_host: bool,
    /// `CLIENT_IP_SOURCE_*` name; empty or UNSPECIFIED = the TCP peer address.
    pub client_ip_source: String,
    pub request_log: RequestLogConfig,
    pub cors: CorsConfig,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Bearer tokens for `/v2alpha1/admin/*` (reloadable).
    pub admin_auth: AdminAuthConfig,
    /// Accepted `Host` names (421 otherwise); empty = loopback names on a loopback bind, else any.
    pub allowed_hosts: Vec<String>,
    /// Longest a request may take before it is answered 503 `DEADLINE_EXCEEDED`.
    pub request_timeout: ConfigDuration,
    /// Longest the request headers, and separately the body, may take to arrive.
    pub client_timeout: ConfigDuration,
    /// Requests in flight per worker beyond which new ones get 503 `OVERLOADED`; 0 = no limit.
    pub max_inflight: usize,
    /// Event-loop delay of a worker beyond which new requests get 503 `OVERLOADED`; 0 = off.
    pub max_queue_delay: ConfigDuration,
    /// After SIGTERM, how long the server keeps answering (readiness 503, `Connection: close`)
    /// before it stops accepting and finishes what is in flight.
    pub drain_time: ConfigDuration,
    /// HTTPS on the API port (both files or neither).
    pub tls: TlsConfig,
    /// Gateway verify (`/gateway/verify`, forward auth for reverse proxies).
    pub gateway: GatewayConfig,
}

/// `serve.http.gateway`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Failed verifications allowed per client address.
    pub failure_limit: FailureLimitConfig,
}

/// `serve.http.gateway.failure_limit`: `quota` failed gateway verifications per `window` and
/// client address (GCRA: a burst of `quota`, then one per `window / quota`); `quota` 0 = off.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureLimitConfig {
    pub quota: u64,
    pub window: ConfigDuration,
}

impl Default for FailureLimitConfig {
    fn default() -> Self {
        FailureLimitConfig {
            quota: 20,
            window: ConfigDuration::secs(60),
        }
    }
}

/// The API port's certificate pair, PEM files re-read when they change. Empty = plain HTTP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert_file: String,
    /// Private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

impl TlsConfig {
    /// True when both files are set (validation refuses one without the other).
    pub fn enabled(&self) -> bool {
        !self.cert_file.trim().is_empty() && !self.key_file.trim().is_empty()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "0.0.0.0".into(),
            port: 4420,
            trust_forwarded_host: false,
            client_ip_source: String::new(),
            request_log: RequestLogConfig::default(),
            cors: CorsConfig::default(),
            workers: 0,
            admin_auth: AdminAuthConfig::default(),
            allowed_hosts: Vec::new(),
            request_timeout: ConfigDuration::secs(15),
            client_timeout: ConfigDuration::secs(10),
            max_inflight: 1024,
            max_queue_delay: ConfigDuration::millis(200),
            drain_time: ConfigDuration::secs(1),
            tls: TlsConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLogConfig {
    pub exclude_health_endpoints: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    pub enabled: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: u64,
    pub debug: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: false,
            allowed_origins: vec!["*".into()],
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: vec!["Authorization".into(), "Content-Type".into()],
            exposed_headers: vec!["Content-Type".into()],
            allow_credentials: false,
            max_age: 0,
            debug: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub host: String,
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            host: "0.0.0.0".into(),
            port: 4422,
        }
    }
}

impl ServeConfig {
    /// What serde cannot check: the admin token list and the TLS pair.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::admin_tokens::validate(&self.http.admin_auth.tokens)?;
        let tls = &self.http.tls;
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        };
        let limit = self.http.gateway.failure_limit;
        if limit.quota > 0 && limit.window.get() < std::time::Duration::from_secs(1) {
            return Err(invalid(
                "serve.http.gateway.failure_limit.window",
                "must be at least 1s when serve.http.gateway.failure_limit.quota is set",
            ));
        }
        match (
            tls.cert_file.trim().is_empty(),
            tls.key_file.trim().is_empty(),
        ) {
            (false, true) => Err(invalid(
                "serve.http.tls.key_file",
                "is required when serve.http.tls.cert_file is set",
            )),
            (true, false) => Err(invalid(
                "serve.http.tls.cert_file",
                "is required when serve.http.tls.key_file is set",
            )),
            _ => Ok(()),
        }
    }

    /// Replaces the admin token digests in the tree's JSON form (for `config_hash`): a digest
    /// would let whoever reads `/version` test guesses of a weak token offline.
    pub fn redact(tree: &mut Value) {
        if let Some(tokens) = tree
            .pointer_mut("/serve/http/admin_auth/tokens")
            .and_then(Value::as_array_mut)
        {
            for t in tokens {
                if let Some(d) = t.get_mut("sha256") {
                    *d = Value::String(REDACTED.into());
                }
            }
        }
    }

    /// One line of prose per `serve.*` key, for the configuration reference.
    pub fn describe(path: &str) -> Option<&'static str> {
        Some(match path {
            "serve.http.host" => "Address the API listens on.",
            "serve.http.port" => "Port of the API (the quickstart uses 8080).",
            "serve.http.trust_forwarded_host" => {
                "Take the network's hostname from `X-Forwarded-Host` (behind a trusted proxy)."
            }
            "serve.http.client_ip_source" => {
                "Where the client IP (for keys' IP restrictions) comes from: empty/`REMOTE_ADDR`, `CF_CONNECTING_IP`, `X_FORWARDED_FOR` (leftmost), `X_REAL_IP`, `TRUE_CLIENT_IP`. Reloadable."
            }
            "serve.http.request_log.exclude_health_endpoints" => {
                "Leave `/health/*` out of the request log. Reloadable."
            }
            "serve.http.cors.enabled" => {
                "Browser access: when false, any request carrying an `Origin` is refused (403 `ORIGIN_NOT_ALLOWED`) except `GET` of the JWKS; when true, only `allowed_origins`. Every `serve.http.cors.*` key reloads with the file; an enabled CORS section with an origin that is not `scheme://host[:port]`, a bad method or a bad header name is a startup error (on reload: the old settings stay)."
            }
            "serve.http.cors.allowed_origins" => {
                "Origins (`scheme://host[:port]`) allowed to call the API from a browser; `*` = any."
            }
            "serve.http.cors.allowed_methods" => {
                "Methods a preflight may ask for (`Access-Control-Allow-Methods`)."
            }
            "serve.http.cors.allowed_headers" => {
                "Request headers a preflight may ask for (`Access-Control-Allow-Headers`); `*` = any."
            }
            "serve.http.cors.exposed_headers" => {
                "Response headers a page may read (`Access-Control-Expose-Headers`)."
            }
            "serve.http.cors.allow_credentials" => {
                "Send `Access-Control-Allow-Credentials: true` (cookies, HTTP authentication)."
            }
            "serve.http.cors.max_age" => {
                "Seconds a browser may cache a preflight answer (`Access-Control-Max-Age`); 0 = not sent."
            }
            "serve.http.cors.debug" => {
                "Log every CORS decision (origin, method, granted or why not) at `info`, target `talos::cors`."
            }
            "serve.http.admin_auth.tokens" => {
                "Admin API bearer tokens `[{name, sha256, scopes}]` (as env, a JSON list); empty = the admin API is open. Scopes: `admin`, `keys:read`, `keys:write`, `keys:verify`, `usage:write`. Reloadable."
            }
            "serve.http.allowed_hosts" => {
                "`Host` names the API answers (with or without `:port`); others get 421 `HOST_NOT_ALLOWED`. Unset: on a loopback bind only `localhost`, `127.0.0.1`, `[::1]` (any port), else any host. Multitenancy hostnames are always allowed."
            }
            "serve.http.tls.cert_file" => {
                "PEM certificate chain (leaf first) of the API port (a relative path is taken from the working directory); with `key_file`, the API serves HTTPS only (rustls, TLS 1.2 and 1.3). Both or neither. Re-read within about a second when the file changes; a broken new pair keeps the old one. The metrics port stays plain HTTP."
            }
            "serve.http.tls.key_file" => {
                "PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1; unencrypted). Re-read with the certificate."
            }
            "serve.http.workers" => "HTTP worker threads; 0 = one per CPU core.",
            "serve.http.request_timeout" => {
                "Longest a request may take: after it the client gets 503 with reason `DEADLINE_EXCEEDED` (the work still finishes in the background, so a mutation is never half done)."
            }
            "serve.http.client_timeout" => {
                "Longest the request headers may take to arrive, and separately the request body (counted from when the handler starts reading). A late head closes the connection; a late body is answered 408 with reason `REQUEST_TIMEOUT` and the connection is closed."
            }
            "serve.http.drain_time" => {
                "After SIGTERM/SIGINT: how long the server keeps serving while `/health/ready` answers 503 and every response carries `Connection: close`, so load balancers and keep-alive clients move away before it stops accepting connections and finishes the requests in flight. At that point new handshakes are held back for 100 ms while the connections already queued are accepted and served, so a late client is refused at connect, never reset mid-request."
            }
            "serve.http.max_inflight" => {
                "Requests in flight per HTTP worker beyond which a new request is answered at once with 503, reason `OVERLOADED` and `Retry-After: 1`, instead of queueing. The metrics port (`/metrics`, `/health/*`) is never shed. `0` = no limit."
            }
            "serve.http.max_queue_delay" => {
                "How late a worker's event loop may run before new requests are answered at once with 503, reason `OVERLOADED` and `Retry-After: 1`: requests waiting to be read count toward no in-flight limit, so this is what bounds their queueing. Measured by a 10 ms ticker per worker; shedding starts after two consecutive late ticks and stops at the first punctual one. The metrics port is never shed. `0` = off."
            }
            "serve.http.gateway.failure_limit.quota" => {
                "Failed gateway verifications (`/gateway/verify`: an invalid, unknown, expired or revoked credential, or a client IP outside the key's allowlist) allowed per client address and `window`; beyond them the gateway answers 429 with `Retry-After` without verifying, so keys cannot be guessed through the public route. GCRA: a burst of `quota`, then one more per `window / quota`. The address is the client IP of `client_ip_source` (an IPv6 address counts by its /64). Counted per node, in memory (with N nodes an address gets up to N times the budget). `0` = no limit. Read at start."
            }
            "serve.http.gateway.failure_limit.window" => {
                "The window of `failure_limit.quota` (at least 1s)."
            }
            "serve.metrics.host" => "Address of the metrics port (`/metrics`, `/health/*`).",
            "serve.metrics.port" => "Port of `/metrics` and the health endpoints.",
            _ => return None,
        })
    }
}
