//! Per-network overlays (`multitenancy.networks[].config_path`, reference.md §11): a YAML file
//! that gives one network its own `credentials.*`, `secrets.*`, `rate_limit.enabled` and
//! `cache.ttl` on top of the main configuration, so that each tenant has its own HMAC secret,
//! key prefixes, issuer and signing keys.
//!
//! `credentials` merges key by key into the main file's (a list replaces the whole list);
//! `secrets`, when present, replaces the main file's whole section, so that a tenant's keyring
//! never silently includes another secret (a main-file `retired` entry, say). The environment is
//! not applied to overlays: it is read once for the main file.

use std::path::Path;

use serde_json::{Map, Value};

use super::load::{deserialize, merge, validate};
use super::{Config, ConfigDuration, ConfigError, CredentialsConfig, SecretsConfig};

/// What an overlay may set: whole sections, or single keys (dotted).
pub const OVERLAY_KEYS: &[&str] = &["credentials", "secrets", "rate_limit.enabled", "cache.ttl"];

/// `base` with the overlay file at `path` applied, validated like a main file; returns it and
/// the warnings to log. A missing, unreadable or invalid file, or a key outside
/// [`OVERLAY_KEYS`], is an error naming the file.
pub fn apply_overlay(base: &Config, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let overlay: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: shown.clone(),
            reason: e.to_string(),
        })?
    };
    let in_file = |key: String, reason: String| ConfigError::Invalid {
        key: format!("{key} (network overlay {shown})"),
        reason,
    };
    let map = match overlay {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err(in_file("(root)".into(), "expected a mapping".into())),
    };
    check_keys(&map).map_err(|key| {
        in_file(
            key,
            format!(
                "a network overlay may only set {}",
                OVERLAY_KEYS
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let mut config = base.clone();
    let prefixed = |e: ConfigError, section: &str| match e {
        ConfigError::Invalid { key, reason } if key == "(root)" => in_file(section.into(), reason),
        ConfigError::Invalid { key, reason } => in_file(format!("{section}.{key}"), reason),
        other => other,
    };
    if let Some(over) = map.get("credentials") {
        let mut tree = serde_json::to_value(&base.credentials).expect("credentials serialize");
        merge(&mut tree, over.clone());
        config.credentials =
            deserialize::<CredentialsConfig>(tree).map_err(|e| prefixed(e, "credentials"))?;
    }
    if let Some(over) = map.get("secrets") {
        config.secrets =
            deserialize::<SecretsConfig>(over.clone()).map_err(|e| prefixed(e, "secrets"))?;
    }
    if let Some(v) = map.get("rate_limit").and_then(|r| r.get("enabled")) {
        config.rate_limit.enabled =
            deserialize::<bool>(v.clone()).map_err(|e| prefixed(e, "rate_limit.enabled"))?;
    }
    if let Some(v) = map.get("cache").and_then(|c| c.get("ttl")) {
        config.cache.ttl =
            deserialize::<ConfigDuration>(v.clone()).map_err(|e| prefixed(e, "cache.ttl"))?;
    }
    let warnings = validate(&config).map_err(|e| match e {
        ConfigError::Invalid { key, reason } => in_file(key, reason),
        other => other,
    })?;
    Ok((config, warnings))
}

/// `Err(key)`: the first key of `map` outside [`OVERLAY_KEYS`].
fn check_keys(map: &Map<String, Value>) -> Result<(), String> {
    for (section, value) in map {
        if OVERLAY_KEYS.contains(&section.as_str()) {
            continue;
        }
        let allowed: Vec<&str> = OVERLAY_KEYS
            .iter()
            .filter_map(|k| k.strip_prefix(section.as_str())?.strip_prefix('.'))
            .collect();
        match value {
            Value::Object(inner) if !allowed.is_empty() => {
                if let Some(k) = inner.keys().find(|k| !allowed.contains(&k.as_str())) {
                    return Err(format!("{section}.{k}"));
                }
            }
            _ => return Err(section.clone()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::load_str;

    const BASE: &str = "credentials:\n  issuer: \"http://base\"\n  api_keys:\n    default_ttl: \"1h\"\n    prefix: { current: base }\nsecrets:\n  hmac:\n    current: \"base-secret-0123456789abcdefghijklmnopq\"\n    retired: [\"base-retired-0123456789abcdefghijklmnop\"]\ncache:\n  ttl: \"5m\"\n";

    fn overlay(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let (base, _) = load_str(BASE, "base.yaml", &BTreeMap::new()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenant.yaml");
        std::fs::write(&path, text).unwrap();
        apply_overlay(&base, &path)
    }

    #[test]
    fn credentials_merge_and_secrets_replace() {
        let (c, _) = overlay(
            "credentials:\n  issuer: \"http://tenant\"\n  api_keys:\n    prefix: { current: tenant }\nsecrets:\n  hmac:\n    current: \"tenant-secret-0123456789abcdefghijklmnop\"\nrate_limit: { enabled: true }\ncache: { ttl: \"30s\" }\n",
        )
        .unwrap();
        assert_eq!(c.credentials.issuer, "http://tenant");
        assert_eq!(c.credentials.api_keys.prefix.current, "tenant");
        assert_eq!(
            c.credentials.api_keys.default_ttl.unwrap().get().as_secs(),
            3600,
            "unset credentials keys come from the main file"
        );
        assert_eq!(
            c.secrets.hmac.current.as_ref().unwrap().expose(),
            "tenant-secret-0123456789abcdefghijklmnop"
        );
        assert!(
            c.secrets.hmac.retired.is_empty(),
            "the main file's retired secrets are not inherited"
        );
        assert!(c.rate_limit.enabled);
        assert_eq!(c.cache.ttl.get().as_secs(), 30);
        let (c, _) = overlay("").unwrap();
        assert_eq!(c.credentials.issuer, "http://base");
        assert_eq!(c.secrets.hmac.retired.len(), 1, "no overlay, no change");
    }

    #[test]
    fn other_keys_and_bad_values_are_refused_naming_the_file() {
        for (text, key) in [
            ("db: { dsn: \"sqlite::memory:\" }\n", "db"),
            ("cache: { enabled: false }\n", "cache.enabled"),
            ("rate_limit: { backend: redis }\n", "rate_limit.backend"),
            ("credentials: { isuer: x }\n", "credentials"),
            (
                "secrets: { hmac: { current: tinyval } }\n",
                "secrets.hmac.current",
            ),
            ("cache: { ttl: soon }\n", "cache.ttl"),
            ("[1, 2]\n", "(root)"),
        ] {
            let err = overlay(text).unwrap_err().to_string();
            assert!(
                err.contains(key) && err.contains("tenant.yaml"),
                "{text}: {err}"
            );
            assert!(!err.contains("tinyval"), "{err} quotes a secret");
        }
        let (base, _) = load_str(BASE, "base.yaml", &BTreeMap::new()).unwrap();
        let err = apply_overlay(&base, Path::new("/nonexistent/tenant.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/tenant.yaml"), "{err}");
    }
}
