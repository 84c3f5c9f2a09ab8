//! Loading: the YAML file, then `TALOS_*` environment variables (env wins), then validation.
//!
//! Environment variable names are generated from the typed tree: `TALOS_` + the path upper-cased
//! with `.` → `_` (`TALOS_SECRETS_HMAC_CURRENT`). A name is never split on `_`: we look up the
//! generated names, so `TALOS_CREDENTIALS_API_KEYS_DEFAULT_TTL` maps to exactly one leaf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use thiserror::Error;

use super::tree::section_names;
use super::{Config, NO_EFFECT, NoSections, Sections, Tree};

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
    /// A value of the right type that cannot be used: a JWK set that cannot be read or decoded,
    /// a CORS origin that does not parse. Found by the part that uses it, after loading.
    #[error("{key}: {reason}")]
    Unusable { key: String, reason: String },
}

/// Where a configuration came from, kept so that a reload reads the same file and re-applies the
/// environment captured at start (and the same base layer, if any).
#[derive(Clone, Default)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// The lowest layer, under the file (the server's `serve --dev` defaults).
    pub base: Option<Value>,
}

impl ConfigSource {
    /// Captures the `TALOS_*` variables of this process now (env is read once, at start).
    pub fn from_process(path: Option<PathBuf>) -> Self {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("TALOS_"))
            .collect();
        ConfigSource {
            path,
            env,
            base: None,
        }
    }

    /// Puts `base` under the file and the environment.
    pub fn with_base(mut self, base: Value) -> Self {
        self.base = Some(base);
        self
    }
}

/// Names the variables but shows no value: the environment and the base hold secrets.
impl std::fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSource")
            .field("path", &self.path)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("base", &self.base.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Loads and validates the domain's configuration; returns it and warnings to log.
pub fn load(source: &ConfigSource) -> Result<(Config, Vec<String>), ConfigError> {
    load_tree::<NoSections>(source).map(|(tree, warnings)| (tree.core, warnings))
}

/// Like [`load`], from YAML text plus an environment map.
pub fn load_str(
    yaml: &str,
    file_name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    load_tree_str::<NoSections>(yaml, file_name, env).map(|(tree, warnings)| (tree.core, warnings))
}

/// Loads and validates the whole tree of a program with sections `S` of its own.
pub fn load_tree<S: Sections>(
    source: &ConfigSource,
) -> Result<(Tree<S>, Vec<String>), ConfigError> {
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
    load_layers(source.base.as_ref(), &text, &name, &source.env)
}

/// Like [`load_tree`], from YAML text plus an environment map.
pub fn load_tree_str<S: Sections>(
    yaml: &str,
    file_name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(Tree<S>, Vec<String>), ConfigError> {
    load_layers(None, yaml, file_name, env)
}

fn load_layers<S: Sections>(
    base: Option<&Value>,
    yaml: &str,
    file_name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(Tree<S>, Vec<String>), ConfigError> {
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
        return Err(root_not_a_mapping());
    }
    if let Some(base) = base {
        let mut merged = base.clone();
        merge(&mut merged, tree);
        tree = merged;
    }
    apply_env(&mut tree, env_var_names::<S>(), env)?;
    let mut warnings = no_effect_warnings(&tree);
    let tree: Tree<S> = split(tree)?;
    warnings.extend(validate(&tree.core)?);
    warnings.extend(tree.app.validate()?);
    Ok((tree, warnings))
}

/// One warning per [`NO_EFFECT`] key that the file, the base or the environment sets.
fn no_effect_warnings(tree: &Value) -> Vec<String> {
    NO_EFFECT
        .iter()
        .filter(|(path, _)| tree.pointer(&format!("/{}", path.replace('.', "/"))).is_some())
        .map(|(path, why)| format!("{path} has no effect in this server ({why}); it is accepted so that upstream configuration files load"))
        .collect()
}

fn root_not_a_mapping() -> ConfigError {
    ConfigError::Invalid {
        key: "(root)".into(),
        reason: "expected a mapping".into(),
    }
}

/// Deserializes the domain's sections and the program's separately (see `tree.rs`), so that each
/// keeps `deny_unknown_fields` and errors keep their key path. A top-level key of neither part is
/// refused here, in serde's words.
fn split<S: Sections>(tree: Value) -> Result<Tree<S>, ConfigError> {
    let Value::Object(map) = tree else {
        return Err(root_not_a_mapping());
    };
    let core_names = section_names::<Config>();
    let app_names = section_names::<S>();
    assert!(
        !app_names.iter().any(|n| core_names.contains(n)),
        "a program's config sections {app_names:?} must not reuse the domain's names"
    );
    let (mut core, mut app) = (Map::new(), Map::new());
    for (key, value) in map {
        if core_names.contains(&key) {
            core.insert(key, value);
        } else if app_names.contains(&key) {
            app.insert(key, value);
        } else {
            let mut known: Vec<&String> = core_names.iter().chain(&app_names).collect();
            known.sort();
            let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            return Err(ConfigError::Invalid {
                reason: format!(
                    "unknown field `{key}`, expected one of {}",
                    known.join(", ")
                ),
                key,
            });
        }
    }
    Ok(Tree {
        core: deserialize(Value::Object(core))?,
        app: deserialize(Value::Object(app))?,
    })
}

pub(super) fn deserialize<T: DeserializeOwned>(tree: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            key: if key == "." { "(root)".into() } else { key },
            reason: e.into_inner().to_string(),
        }
    })
}

/// Every leaf of the tree with sections `S` (of the domain's alone, with [`NoSections`]): its
/// dotted path, its environment variable name and its default value.
pub fn env_var_names<S: Sections>() -> Vec<(String, String, Value)> {
    let defaults =
        serde_json::to_value(Tree::<S>::default()).expect("the default config serializes");
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

fn apply_env(
    tree: &mut Value,
    leaves: Vec<(String, String, Value)>,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (path, var, default) in leaves {
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
pub(super) fn merge(into: &mut Value, over: Value) {
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

pub(super) fn validate(c: &Config) -> Result<Vec<String>, ConfigError> {
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
    let lu = &c.last_used;
    for (key, n) in [
        ("last_used.queue_size", lu.queue_size),
        ("last_used.flush_size", lu.flush_size),
        ("last_used.num_workers", lu.num_workers),
    ] {
        if n == 0 {
            return Err(invalid(key, "must be at least 1".into()));
        }
    }
    if lu.flush_interval.get().is_zero() {
        return Err(invalid(
            "last_used.flush_interval",
            "must be greater than 0".into(),
        ));
    }
    if !c.multitenancy.enabled && !c.multitenancy.networks.is_empty() {
        warnings.push(
            "multitenancy.networks is set but multitenancy.enabled is false: the networks (and their config_path overlays) are not used; every request belongs to the default network".into(),
        );
    }
    let mut hosts = std::collections::HashSet::new();
    let mut overlays = std::collections::HashMap::new();
    for n in &c.multitenancy.networks {
        if !hosts.insert(n.hostname.to_ascii_lowercase()) {
            return Err(invalid(
                "multitenancy.networks",
                format!("duplicate hostname {:?}", n.hostname),
            ));
        }
        // Several hostnames may name one network, but it has one overlay.
        if overlays
            .insert(n.id, &n.config_path)
            .is_some_and(|p| *p != n.config_path)
        {
            return Err(invalid(
                "multitenancy.networks",
                format!("network {} has different config_path values", n.id),
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A program's own sections, as the server declares `serve`, `log` and `tracing`.
    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct App {
        web: Web,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Web {
        port: u16,
        names: Vec<String>,
    }

    impl Default for Web {
        fn default() -> Self {
            Web {
                port: 80,
                names: Vec::new(),
            }
        }
    }

    impl Sections for App {
        fn validate(&self) -> Result<Vec<String>, ConfigError> {
            if self.web.port == 1 {
                return Err(ConfigError::Invalid {
                    key: "web.port".into(),
                    reason: "must not be 1".into(),
                });
            }
            Ok(vec!["web checked".into()])
        }
    }

    #[test]
    fn a_program_s_sections_load_with_the_domain_s_from_one_file_and_env() {
        let yaml = "web:\n  port: 8080\ndb:\n  dsn: \"sqlite::memory:\"\n";
        let e = env(&[("TALOS_WEB_NAMES", "a, b"), ("TALOS_DB_MAX_CONNS", "3")]);
        let (t, warnings) = load_tree_str::<App>(yaml, "f.yaml", &e).unwrap();
        assert_eq!(t.app.web.port, 8080);
        assert_eq!(t.app.web.names, ["a", "b"]);
        assert_eq!(t.core.db.dsn, "sqlite::memory:");
        assert_eq!(t.core.db.max_conns, 3);
        assert_eq!(warnings, ["web checked"]);
        let names: Vec<String> = env_var_names::<App>()
            .into_iter()
            .map(|(_, v, _)| v)
            .collect();
        assert!(names.iter().any(|n| n == "TALOS_WEB_PORT"));
        assert!(names.iter().any(|n| n == "TALOS_DB_DSN"));
        let err = load_tree_str::<App>("web: { port: 1 }\n", "f.yaml", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("web.port") && err.contains("must not be 1"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_in_either_part_with_their_path() {
        for (yaml, key, words) in [
            ("wbe: {}\n", "`wbe`", "expected one of `cache`, "),
            ("web: { prot: 1 }\n", "`web.prot`", "unknown field `prot`"),
            ("db: { dns: x }\n", "`db.dns`", "unknown field `dns`"),
            ("web: { port: x }\n", "`web.port`", "invalid"),
        ] {
            let err = load_tree_str::<App>(yaml, "f.yaml", &BTreeMap::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(words), "{err}");
        }
        let err = load_tree_str::<App>("wbe: {}\n", "f.yaml", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`web`") && err.contains("`credentials`"),
            "{err}"
        );
        // The domain alone knows none of a program's sections.
        let err = load_str("web: { port: 8080 }\n", "f.yaml", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        let (found, expected) = err.split_once("expected one of").unwrap();
        assert!(found.contains("unknown field `web`"), "{err}");
        assert!(!expected.contains("`web`"), "{err}");
    }

    #[test]
    fn the_base_lies_under_the_file_and_the_environment() {
        let base = serde_json::json!({"web": {"port": 1000, "names": ["base"]}, "db": {"dsn": "sqlite::memory:"}});
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "web: { port: 2000 }\n").unwrap();
        let mut source = ConfigSource::from_process(Some(file)).with_base(base);
        source.env = env(&[("TALOS_WEB_NAMES", "from-env")]);
        let (t, _) = load_tree::<App>(&source).unwrap();
        assert_eq!(t.app.web.port, 2000);
        assert_eq!(t.app.web.names, ["from-env"]);
        assert_eq!(t.core.db.dsn, "sqlite::memory:");
        let shown = format!("{source:?}");
        assert!(shown.contains("TALOS_WEB_NAMES"), "{shown}");
        assert!(
            !shown.contains("from-env") && !shown.contains("1000"),
            "{shown}"
        );
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
    fn env_names_are_generated_from_the_tree() {
        let names: Vec<String> = env_var_names::<NoSections>()
            .into_iter()
            .map(|(_, v, _)| v)
            .collect();
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
