//! Loading: the YAML file, then `TALOS_*` environment variables (env wins), then validation.
//!
//! Environment variable names are generated from the typed tree: `TALOS_` + the path upper-cased
//! with `.` → `_` (`TALOS_SECRETS_HMAC_CURRENT`). A name is never split on `_`: we look up the
//! generated names, so `TALOS_CREDENTIALS_API_KEYS_DEFAULT_TTL` maps to exactly one leaf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use thiserror::Error;

use super::Config;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path} is not valid YAML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("invalid config at `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("invalid environment variable {var}: {reason}")]
    Env { var: String, reason: String },
}

/// Where a configuration came from, kept so that a reload reads the same file and re-applies the
/// environment captured at start.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
}

impl ConfigSource {
    /// Captures the `TALOS_*` variables of this process now (env is read once, at start).
    pub fn from_process(path: Option<PathBuf>) -> Self {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("TALOS_"))
            .collect();
        ConfigSource { path, env }
    }
}

/// Loads and validates; returns the config and warnings to log.
pub fn load(source: &ConfigSource) -> Result<(Config, Vec<String>), ConfigError> {
    load_with_base(source, None)
}

/// Like [`load`], with `base` as the lowest layer under the file (`serve --dev` defaults).
pub fn load_with_base(
    source: &ConfigSource,
    base: Option<&Value>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let text = match &source.path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?,
        None => String::new(),
    };
    let name = source
        .path
        .as_deref()
        .map(Path::display)
        .map(|d| d.to_string())
        .unwrap_or_default();
    load_layers(base, &text, &name, &source.env)
}

/// Loads from YAML text plus an environment map.
pub fn load_str(
    yaml: &str,
    file_name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    load_layers(None, yaml, file_name, env)
}

fn load_layers(
    base: Option<&Value>,
    yaml: &str,
    file_name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut tree: Value = if yaml.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_yaml_ng::from_str(yaml).map_err(|e| ConfigError::Syntax {
            path: file_name.to_string(),
            reason: e.to_string(),
        })?
    };
    if tree.is_null() {
        tree = Value::Object(Map::new());
    }
    if !tree.is_object() {
        return Err(ConfigError::Invalid {
            key: "(root)".into(),
            reason: "expected a mapping".into(),
        });
    }
    if let Some(base) = base {
        let mut merged = base.clone();
        merge(&mut merged, tree);
        tree = merged;
    }
    apply_env(&mut tree, env)?;
    let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            key: if key == "." { "(root)".into() } else { key },
            reason: e.into_inner().to_string(),
        }
    })?;
    let warnings = validate(&config)?;
    Ok((config, warnings))
}

/// Every leaf of the tree with its environment variable name and default value.
pub fn env_var_names() -> Vec<(String, String, Value)> {
    let defaults = serde_json::to_value(Config::default()).expect("the default config serializes");
    let mut out = Vec::new();
    walk(&defaults, &mut Vec::new(), &mut out);
    out
}

fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(String, String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(k.clone());
                walk(child, path, out);
                path.pop();
            }
        }
        leaf => {
            let dotted = path.join(".");
            let var = format!("TALOS_{}", dotted.to_ascii_uppercase().replace('.', "_"));
            out.push((dotted, var, leaf.clone()));
        }
    }
}

fn apply_env(tree: &mut Value, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (path, var, default) in env_var_names() {
        let Some(raw) = env.get(&var) else { continue };
        if raw.is_empty() {
            continue; // empty = unset
        }
        let value = env_value(raw, &default).map_err(|reason| ConfigError::Env {
            var: var.clone(),
            reason,
        })?;
        set_path(tree, &path, value);
    }
    Ok(())
}

fn env_value(raw: &str, default: &Value) -> Result<Value, String> {
    match default {
        Value::Array(_) => {
            if raw.trim_start().starts_with('[') {
                serde_json::from_str(raw).map_err(|e| format!("not a JSON list: {e}"))
            } else {
                Ok(Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                ))
            }
        }
        Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Value::Number(_) => serde_json::from_str::<serde_json::Number>(raw.trim())
            .map(Value::Number)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        _ => Ok(Value::String(raw.to_string())),
    }
}

/// Deep-merges `over` into `into`: objects merge key by key, anything else replaces.
fn merge(into: &mut Value, over: Value) {
    match (into, over) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set_path(tree: &mut Value, dotted: &str, value: Value) {
    let mut cur = tree;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("just made an object");
        if i == parts.len() - 1 {
            map.insert((*part).to_string(), value);
            return;
        }
        cur = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn is_prefix(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn validate(c: &Config) -> Result<Vec<String>, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: key.into(),
        reason,
    };
    let mut warnings = Vec::new();
    if let Some(cur) = &c.secrets.hmac.current {
        cur.validate("secrets.hmac.current", 32)
            .map_err(|e| invalid("secrets.hmac.current", e.to_string()))?;
    }
    for (i, r) in c.secrets.hmac.retired.iter().enumerate() {
        if r.secret.expose().chars().count() < 32 {
            warnings.push(format!("secrets.hmac.retired[{i}] is shorter than 32 characters; accepted for verification only"));
        }
    }
    if c.secrets.default.is_some() {
        warnings.push("secrets.default is not used by this server and is ignored; secrets.hmac is the only secret".into());
    }
    if c.secrets.pagination.is_some() {
        warnings.push(
            "secrets.pagination is not used: page tokens are keyed from secrets.hmac; ignored"
                .into(),
        );
    }
    if c.credentials.clock_skew.get().as_secs() > 600 {
        return Err(invalid(
            "credentials.clock_skew",
            format!("{} exceeds the maximum of 600s", c.credentials.clock_skew),
        ));
    }
    let p = &c.credentials.api_keys.prefix;
    for (key, v) in std::iter::once(("credentials.api_keys.prefix.current", &p.current))
        .chain(
            p.public_current
                .iter()
                .map(|v| ("credentials.api_keys.prefix.public_current", v)),
        )
        .chain(
            p.retired
                .iter()
                .map(|v| ("credentials.api_keys.prefix.retired", v)),
        )
        .chain(
            p.public_retired
                .iter()
                .map(|v| ("credentials.api_keys.prefix.public_retired", v)),
        )
    {
        if !is_prefix(v, 16) {
            return Err(invalid(
                key,
                format!("{v:?} must match ^[a-zA-Z0-9_]{{1,16}}$"),
            ));
        }
    }
    let m = &c.credentials.derived_tokens.macaroon.prefix;
    for v in std::iter::once(&m.current).chain(m.retired.iter()) {
        if !is_prefix(v, 8) {
            return Err(invalid(
                "credentials.derived_tokens.macaroon.prefix",
                format!("{v:?} must match ^[a-zA-Z0-9_]{{1,8}}$"),
            ));
        }
    }
    if let Some(d) = c.credentials.api_keys.default_ttl
        && d > c.credentials.api_keys.max_ttl
    {
        return Err(invalid(
            "credentials.api_keys.default_ttl",
            format!(
                "{d} exceeds api_keys.max_ttl {}",
                c.credentials.api_keys.max_ttl
            ),
        ));
    }
    if c.db.max_conns == 0 {
        return Err(invalid("db.max_conns", "must be at least 1".into()));
    }
    crate::admin_auth::validate(&c.serve.http.admin_auth.tokens)
        .map_err(|e| invalid("serve.http.admin_auth.tokens", e))?;
    let tls = &c.serve.http.tls;
    match (
        tls.cert_file.trim().is_empty(),
        tls.key_file.trim().is_empty(),
    ) {
        (false, true) => {
            return Err(invalid(
                "serve.http.tls.key_file",
                "is required when serve.http.tls.cert_file is set".into(),
            ));
        }
        (true, false) => {
            return Err(invalid(
                "serve.http.tls.cert_file",
                "is required when serve.http.tls.key_file is set".into(),
            ));
        }
        _ => {}
    }
    let mut hosts = std::collections::HashSet::new();
    for n in &c.multitenancy.networks {
        if !hosts.insert(n.hostname.to_ascii_lowercase()) {
            return Err(invalid(
                "multitenancy.networks",
                format!("duplicate hostname {:?}", n.hostname),
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const QUICKSTART: &str =
        include_str!("../../../../../shared/conformance/quickstart-config.yaml");

    #[test]
    fn quickstart_loads_with_warnings() {
        let (c, warnings) = load_str(QUICKSTART, "q.yaml", &BTreeMap::new()).unwrap();
        assert_eq!(c.serve.http.port, 8080);
        assert_eq!(c.credentials.api_keys.prefix.current, "talos");
        assert_eq!(
            c.credentials.api_keys.default_ttl.unwrap().get().as_secs(),
            720 * 3600
        );
        assert_eq!(
            c.secrets.hmac.current.as_ref().unwrap().expose(),
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
        assert_eq!(c.serve.http.port, 9999);
        assert_eq!(c.db.dsn, "sqlite::memory:");
        assert_eq!(c.secrets.hmac.retired.len(), 2);
        assert_eq!(
            c.credentials.api_keys.default_ttl.unwrap().get().as_secs(),
            3600
        );
        assert!(!c.cache.enabled);
        assert!(warnings.iter().any(|w| w.contains("retired[1]")));
    }

    #[test]
    fn retired_secrets_as_json_with_expiry() {
        let e = env(&[(
            "TALOS_SECRETS_HMAC_RETIRED",
            r#"[{"value":"old-secret-one-0123456789abcdefgh","expires_at":"2030-01-01T00:00:00Z"}]"#,
        )]);
        let (c, _) = load_str("", "", &e).unwrap();
        assert!(c.secrets.hmac.retired[0].expires_at.is_some());
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
    fn tls_needs_both_files_or_neither() {
        let (c, _) = load_str("", "", &BTreeMap::new()).unwrap();
        assert!(!c.serve.http.tls.enabled());
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
        assert!(c.serve.http.tls.enabled());
        assert_eq!(c.serve.http.tls.key_file, "k.pem");
    }

    #[test]
    fn env_names_are_generated_from_the_tree() {
        let names: Vec<String> = env_var_names().into_iter().map(|(_, v, _)| v).collect();
        for want in [
            "TALOS_SECRETS_HMAC_CURRENT",
            "TALOS_CREDENTIALS_API_KEYS_DEFAULT_TTL",
            "TALOS_DB_DSN",
            "TALOS_CACHE_TYPE",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing");
        }
        assert!(!names.iter().any(|n| n == "TALOS_SECRETS_DEFAULT"));
    }
}
