//! The server's configuration: talos-core's domain sections, `serve` (talos-http's) and this
//! process's `log` and `tracing`, loaded as one tree (one file, one set of `TALOS_*` variables,
//! unknown keys refused) by talos-core's loader.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use talos_core::config::{ConfigError, Sections, Tree};
use talos_http::SelfServiceConfig;
use talos_http::config::ServeConfig;

/// The whole configuration of `talos-server`.
pub type ServerConfig = Tree<ServerSections>;

/// The sections the server adds to the domain's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSections {
    pub serve: ServeConfig,
    pub self_service: SelfServiceConfig,
    pub log: LogConfig,
    pub tracing: TracingConfig,
}

impl Sections for ServerSections {
    fn validate(&self) -> Result<Vec<String>, ConfigError> {
        self.serve.validate()?;
        self.self_service.validate()?;
        self.log.validate()?;
        self.tracing.validate()?;
        Ok(Vec::new())
    }

    fn describe(path: &str) -> Option<&'static str> {
        ServeConfig::describe(path)
            .or_else(|| SelfServiceConfig::describe(path))
            .or_else(|| describe(path))
    }

    fn redact(tree: &mut Value) {
        ServeConfig::redact(tree);
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl LogConfig {
    /// A level, or a filter whose bare words are levels: `verbose` would otherwise parse as a
    /// target name and silently log nothing.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: "log.level".into(),
            reason,
        };
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map_err(|e| invalid(format!("{:?} is not a log filter: {e}", self.level)))?;
        for d in self.level.split(',').map(str::trim) {
            if !d.contains('=')
                && !d.contains('[')
                && d.parse::<tracing_subscriber::filter::LevelFilter>()
                    .is_err()
            {
                return Err(invalid(format!(
                    "{d:?} is not a level (trace, debug, info, warn, error, off) nor a `target=level` directive"
                )));
            }
        }
        Ok(())
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// OpenTelemetry traces, exported over OTLP (`telemetry.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    pub enabled: bool,
    pub service_name: String,
    /// `otlp` (OTLP over HTTP, protobuf), the one exporter.
    pub exporter: String,
    /// The collector: `host:port`, a base URL (`/v1/traces` is appended), or the full URL;
    /// empty = `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4318`.
    pub endpoint: String,
    /// Share of new traces (requests without a sampled `traceparent`) recorded, 0..=1.
    pub sample_rate: f64,
    pub service_version: String,
    pub environment: String,
}

/// The exporters `tracing.exporter` names.
pub const TRACING_EXPORTERS: &[&str] = &["otlp"];

impl TracingConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.into(),
            reason,
        };
        if !TRACING_EXPORTERS.contains(&self.exporter.as_str()) {
            return Err(invalid(
                "tracing.exporter",
                format!(
                    "unknown exporter {:?}: the supported one is `otlp` (OTLP over HTTP)",
                    self.exporter
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(invalid(
                "tracing.sample_rate",
                format!("{} is not between 0 and 1", self.sample_rate),
            ));
        }
        self.endpoint_url()
            .map_err(|reason| invalid("tracing.endpoint", reason))?;
        Ok(())
    }

    /// The URL spans are posted to; `None` = the OpenTelemetry default.
    pub fn endpoint_url(&self) -> Result<Option<String>, String> {
        let e = self.endpoint.trim();
        if e.is_empty() {
            return Ok(None);
        }
        let with_scheme = if e.contains("://") {
            e.to_string()
        } else {
            format!("http://{e}")
        };
        let mut url = reqwest::Url::parse(&with_scheme)
            .map_err(|err| format!("{e:?} is not a URL or host:port: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{e:?}: use http:// or https://"));
        }
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/v1/traces");
        }
        Ok(Some(url.to_string()))
    }
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enabled: false,
            service_name: "talos".into(),
            exporter: "otlp".into(),
            endpoint: String::new(),
            sample_rate: 0.001,
            service_version: "0.0.0".into(),
            environment: "development".into(),
        }
    }
}

fn describe(path: &str) -> Option<&'static str> {
    Some(match path {
        "log.level" => {
            "`trace`, `debug`, `info`, `warn`, `error`, or a tracing filter such as `info,talos::audit=info`."
        }
        "log.format" => "`text` or `json`.",
        "tracing.enabled" => {
            "Export OpenTelemetry traces: a span per request (joining the caller's trace from a W3C `traceparent`), per service call, database query and cache call. Request log lines then carry `trace_id`."
        }
        "tracing.service_name" => "`service.name` of the exported spans.",
        "tracing.service_version" => "`service.version` of the exported spans.",
        "tracing.environment" => "`deployment.environment.name` of the exported spans.",
        "tracing.exporter" => {
            "`otlp`: OTLP over HTTP with protobuf (the OpenTelemetry Collector, Jaeger, Tempo, most vendors). Any other value is a startup error."
        }
        "tracing.endpoint" => {
            "Where spans go: `host:port` or a base URL (`/v1/traces` is appended), or the full URL of the traces endpoint; empty = `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4318`."
        }
        "tracing.sample_rate" => {
            "Share of new traces recorded (0..1). A request whose `traceparent` says the caller records (or not) is followed as the caller decided (parent-based sampling)."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use talos_core::config::{config_hash, load_tree_str, reference_markdown};

    use super::*;

    fn load_str(
        yaml: &str,
        file_name: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        load_tree_str::<ServerSections>(yaml, file_name, env)
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The text above the table of `docs/configuration.md`.
    const REFERENCE_INTRO: &str = "# Configuration reference\n\n\
         Generated from the configuration types (`crates/talos-core/src/config`, `crates/talos-http/src/config.rs`,\n\
         `bins/talos-server/src/config.rs`); a test fails when this file drifts.\n\
         Regenerate with `TALOS_BLESS=1 cargo test -p talos-server config_reference`.\n\n\
         Talos reads one YAML file (`--config`) and then `TALOS_*` environment variables, which win. Each key's\n\
         variable is `TALOS_` + the path upper-cased with `.` → `_`. Lists are comma-separated, or JSON when the\n\
         value starts with `[`; an empty variable counts as unset. Durations take `720h`, `1h30m`, `86400s`, `1d`,\n\
         `1w`, `1mo`, `1y`. Unknown keys in the file are an error. `secrets.default` and `secrets.pagination`\n\
         (from the quickstart) are accepted and ignored with a warning, and so are the upstream keys marked \"no\n\
         effect\" below: each one set logs a startup warning naming it.\n\n\
         Reloaded on file change, as one atomic swap: `secrets.*`, `credentials.*`, `cache.ttl`, `cache.enabled`,\n\
         `rate_limit.enabled`, `quota.*`, `serve.http.admin_auth.tokens`, `serve.http.cors.*`,\n\
         `serve.http.client_ip_source`, `serve.http.request_log.*`, and the network overlays named by\n\
         `multitenancy.networks[].config_path` (each file is watched too). A file that does not load keeps the\n\
         previous settings and logs why; so does an overlay, for its network only. Everything else needs a\n\
         restart; the certificate and key files named by `serve.http.tls.*` are re-read whenever their contents\n\
         change.\n\n";

    const QUICKSTART: &str = include_str!("../../../../shared/conformance/quickstart-config.yaml");

    #[test]
    fn config_reference_is_current() {
        let text = reference_markdown::<ServerSections>(REFERENCE_INTRO)
            .unwrap_or_else(|missing| panic!("describe these keys: {missing:?}"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        if std::env::var_os("TALOS_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/configuration.md is stale: run TALOS_BLESS=1 cargo test -p talos-server config_reference"
        );
    }

    /// `config_hash` covers the server's sections too, and never an admin token's digest.
    #[test]
    fn the_hash_follows_server_settings_and_hides_admin_token_digests() {
        let hash = |port: u16, digest: char| {
            let yaml = format!(
                "serve:\n  http:\n    port: {port}\n    admin_auth:\n      tokens: [{{ name: t, sha256: \"{}\", scopes: [admin] }}]\n",
                digest.to_string().repeat(64)
            );
            config_hash(&load_str(&yaml, "t.yaml", &BTreeMap::new()).unwrap().0)
        };
        assert_eq!(
            hash(80, 'a'),
            hash(80, 'b'),
            "digests do not change the hash"
        );
        assert_ne!(hash(80, 'a'), hash(81, 'a'));
    }

    #[test]
    fn quickstart_loads_with_warnings() {
        let (c, warnings) = load_str(QUICKSTART, "q.yaml", &BTreeMap::new()).unwrap();
        assert_eq!(c.app.serve.http.port, 8080);
        assert_eq!(c.core.credentials.api_keys.prefix.current, "talos");
        assert_eq!(
            c.core
                .credentials
                .api_keys
                .default_ttl
                .unwrap()
                .get()
                .as_secs(),
            720 * 3600
        );
        assert_eq!(
            c.core.secrets.hmac.current.as_ref().unwrap().expose(),
            "preview-hmac-secret-minimum-32-chars-long"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            !format!("{c:?}").contains("preview-hmac-secret"),
            "Debug must redact secrets"
        );
    }

    #[test]
    fn env_overrides_file() {
        let e = env(&[
            ("TALOS_SERVE_HTTP_PORT", "9999"),
            ("TALOS_DB_DSN", "sqlite::memory:"),
            (
                "TALOS_SECRETS_HMAC_CURRENT",
                "0123456789abcdef0123456789abcdef-new",
            ),
            (
                "TALOS_SECRETS_HMAC_RETIRED",
                "old-secret-one-0123456789abcdefgh,old2",
            ),
            ("TALOS_CREDENTIALS_API_KEYS_DEFAULT_TTL", "1h"),
            ("TALOS_CACHE_ENABLED", "false"),
            ("TALOS_URL", "http://ignored"),
        ]);
        let (c, warnings) = load_str(QUICKSTART, "q.yaml", &e).unwrap();
        assert_eq!(c.app.serve.http.port, 9999);
        assert_eq!(c.core.db.dsn, "sqlite::memory:");
        assert_eq!(c.core.secrets.hmac.retired.len(), 2);
        assert_eq!(
            c.core
                .credentials
                .api_keys
                .default_ttl
                .unwrap()
                .get()
                .as_secs(),
            3600
        );
        assert!(!c.core.cache.enabled);
        assert!(warnings.iter().any(|w| w.contains("retired[1]")));
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let cases: &[(&str, &str)] = &[
            ("serve:\n  http:\n    prot: 1\n", "serve.http"),
            ("serve:\n  http:\n    port: \"abc\"\n", "serve.http.port"),
            (
                "credentials:\n  api_keys:\n    default_ttl: \"5 parsecs\"\n",
                "credentials.api_keys.default_ttl",
            ),
            (
                "secrets:\n  hmac:\n    current: \"short-secret-value\"\n",
                "secrets.hmac.current",
            ),
            (
                "credentials:\n  api_keys:\n    prefix: { current: \"bad-prefix\" }\n",
                "prefix",
            ),
            ("log:\n  level: verbose\n", "log.level"),
            ("log:\n  level: \"info,talos=loud\"\n", "log.level"),
            ("tracing:\n  sample_rate: 2\n", "tracing.sample_rate"),
            (
                "tracing:\n  endpoint: \"ftp://collector\"\n",
                "tracing.endpoint",
            ),
        ];
        for (yaml, key) in cases {
            let err = load_str(yaml, "f.yaml", &BTreeMap::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
            assert!(
                !err.contains("short-secret-value"),
                "{err} leaks the secret"
            );
        }
        let err = load_str("", "", &env(&[("TALOS_SERVE_HTTP_PORT", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TALOS_SERVE_HTTP_PORT"), "{err}");
    }

    #[test]
    fn tracing_endpoints() {
        for (endpoint, want) in [
            ("", None),
            ("collector:4318", Some("http://collector:4318/v1/traces")),
            (
                "https://otel.example",
                Some("https://otel.example/v1/traces"),
            ),
            ("http://c:4318/", Some("http://c:4318/v1/traces")),
            (
                "http://c:4318/custom/traces",
                Some("http://c:4318/custom/traces"),
            ),
        ] {
            let t = TracingConfig {
                endpoint: endpoint.into(),
                ..TracingConfig::default()
            };
            assert_eq!(t.endpoint_url().unwrap().as_deref(), want, "{endpoint}");
        }
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let (c, _) = load_str("", "", &BTreeMap::new()).unwrap();
        assert!(!c.app.serve.http.tls.enabled());
        for (vars, names) in [
            (
                &[("TALOS_SERVE_HTTP_TLS_CERT_FILE", "cert.pem")][..],
                "serve.http.tls.key_file",
            ),
            (
                &[("TALOS_SERVE_HTTP_TLS_KEY_FILE", "key.pem")][..],
                "serve.http.tls.cert_file",
            ),
        ] {
            let err = load_str("", "", &env(vars)).unwrap_err().to_string();
            assert!(err.contains(names), "{err} should name {names}");
        }
        let yaml = "serve:\n  http:\n    tls: { cert_file: c.pem, key_file: k.pem }\n";
        let (c, _) = load_str(yaml, "f.yaml", &BTreeMap::new()).unwrap();
        assert!(c.app.serve.http.tls.enabled());
        assert_eq!(c.app.serve.http.tls.key_file, "k.pem");
    }
}
