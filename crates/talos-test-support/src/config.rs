//! The configuration a test deployment runs with, built up from a few settings every test needs
//! (issuer, default TTL, secret, database, cache, admin tokens, the dev JWKS) plus YAML pieces
//! merged over them, so that a test states only what it is about. One [`Builder`] serves every
//! way a test runs the service: as YAML for `talos_core::config::load_str` ([`Builder::yaml`]),
//! as the actix application in-process (`Builder::state`) and as the real binary
//! (`Builder::spawn`).

use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};

/// The HMAC secret of a test deployment unless the test chooses its own.
pub const TEST_SECRET: &str = "talos-test-secret-0123456789abcdefghijklmnop";
const DEFAULT_ISSUER: &str = "http://talos.test";
const DEFAULT_TTL: &str = "720h";

/// Where the configuration starts before the settings and merges apply.
#[derive(Clone)]
pub(crate) enum Base {
    /// The builder's settings, with defaults for the issuer, default TTL and secret.
    Settings,
    /// A whole configuration file the test brings (the quickstart's, say).
    File(String),
    /// `serve --dev`: the development defaults; a file only when something is added.
    #[cfg_attr(not(feature = "process"), allow(dead_code))]
    Dev,
}

/// The database of the deployment.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// In-process: SQLite in memory. A spawned server: a fresh SQLite file, unless the base is a
    /// file or `--dev` (then whatever that says).
    Auto,
    /// A fresh SQLite database even over a file base (in memory in-process).
    Sqlite,
    /// A fresh, migrated database on the PostgreSQL of this admin DSN (spawned servers only).
    Postgres(String),
}

/// The configuration of a test deployment, and how to run it: see the crate docs.
#[derive(Clone)]
pub struct Builder {
    pub(crate) base: Base,
    issuer: Option<String>,
    /// `None`: the default; `Some(None)`: left out.
    default_ttl: Option<Option<String>>,
    secret: Option<Option<String>>,
    jwks: bool,
    cache: Option<String>,
    tokens: Vec<AdminToken>,
    redis: Option<String>,
    layers: Vec<String>,
    pub(crate) database: Database,
    #[cfg(feature = "process")]
    pub(crate) process: crate::process::Options,
}

#[derive(Clone)]
pub(crate) struct AdminToken {
    pub name: String,
    pub token: String,
    pub scopes: Vec<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Issuer `http://talos.test`, default TTL 720h, [`TEST_SECRET`], a fresh SQLite database.
    pub fn new() -> Builder {
        Builder {
            base: Base::Settings,
            issuer: None,
            default_ttl: None,
            secret: None,
            jwks: false,
            cache: None,
            tokens: Vec::new(),
            redis: None,
            layers: Vec::new(),
            database: Database::Auto,
            #[cfg(feature = "process")]
            process: Default::default(),
        }
    }

    /// `credentials.issuer`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// `credentials.api_keys.default_ttl`.
    pub fn default_ttl(mut self, ttl: &str) -> Self {
        self.default_ttl = Some(Some(ttl.into()));
        self
    }

    /// No `credentials.api_keys.default_ttl`: requests must name their TTL.
    pub fn without_default_ttl(mut self) -> Self {
        self.default_ttl = Some(None);
        self
    }

    /// `secrets.hmac.current`.
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = Some(Some(secret.into()));
        self
    }

    /// No `secrets.hmac` in the file (a test that sets it through the environment, or tests the
    /// missing secret).
    pub fn without_secret(mut self) -> Self {
        self.secret = Some(None);
        self
    }

    /// Signs derived JWTs with the dev key of [`QUICKSTART_JWKS`](crate::QUICKSTART_JWKS).
    pub fn quickstart_jwks(mut self) -> Self {
        self.jwks = true;
        self
    }

    /// `cache.type` (`noop`, `memory`, `redis`); the service's default (`noop`) when not called.
    pub fn cache(mut self, kind: &str) -> Self {
        self.cache = Some(kind.into());
        self
    }

    /// An entry of `serve.http.admin_auth.tokens` (its SHA-256 digest; the token itself is what
    /// a client sends). A spawned [`TestApp`](crate::TestApp) sends the first one on every
    /// request (`admin_token`).
    pub fn admin_token(mut self, name: &str, token: &str, scopes: &[&str]) -> Self {
        self.tokens.push(AdminToken {
            name: name.into(),
            token: token.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// The shared cache on the Redis of `url` (`redis://host:port`), in a key prefix of its own
    /// so that tests running in parallel never see each other's entries.
    pub fn redis(mut self, url: &str) -> Self {
        self.redis = Some(url.into());
        self
    }

    /// A fresh SQLite database, also over a [`config_file`](Self::config_file) that names
    /// another one.
    pub fn sqlite(mut self) -> Self {
        self.database = Database::Sqlite;
        self
    }

    /// A fresh database on the PostgreSQL of the admin DSN `admin_url` (see
    /// [`database_url`](crate::database_url)), migrated before the server starts and dropped
    /// after the last node stops. Spawned servers only.
    pub fn postgres(mut self, admin_url: &str) -> Self {
        self.database = Database::Postgres(admin_url.into());
        self
    }

    /// Starts from this whole configuration file instead of the builder's settings.
    pub fn config_file(mut self, yaml: &str) -> Self {
        self.base = Base::File(yaml.into());
        self
    }

    /// YAML merged over everything else, key by key (mappings merge, anything else replaces):
    /// `"serve:\n  http:\n    max_inflight: 2\n"`. Later pieces win.
    pub fn config(mut self, yaml: &str) -> Self {
        self.layers.push(yaml.into());
        self
    }

    /// The configuration as YAML. In-process (no file to name): `db.dsn` is SQLite in memory
    /// unless the base says otherwise.
    pub fn yaml(&self) -> String {
        assert!(
            !matches!(self.database, Database::Postgres(_)),
            "a PostgreSQL database is made for spawned servers only"
        );
        let dsn = match (&self.base, &self.database) {
            (Base::Settings, _) | (_, Database::Sqlite) => Some("sqlite::memory:"),
            _ => None,
        };
        self.render(dsn)
    }

    /// The admin token sent by default: the first one configured.
    #[cfg(feature = "process")]
    pub(crate) fn first_token(&self) -> Option<String> {
        self.tokens.first().map(|t| t.token.clone())
    }

    /// Whether `--dev` provides the configuration and nothing is added to it.
    #[cfg(feature = "process")]
    pub(crate) fn dev_without_file(&self) -> bool {
        matches!(self.base, Base::Dev)
            && self.layers.is_empty()
            && self.tokens.is_empty()
            && self.redis.is_none()
            && self.cache.is_none()
            && !self.jwks
            && self.issuer.is_none()
            && self.default_ttl.is_none()
            && self.secret.is_none()
    }

    /// The configuration with `db.dsn` set to `dsn` when given.
    pub(crate) fn render(&self, dsn: Option<&str>) -> String {
        let mut v = match &self.base {
            Base::File(text) => serde_yaml_ng::from_str(text)
                .unwrap_or_else(|e| panic!("the test's configuration file is not YAML: {e}")),
            Base::Settings | Base::Dev => Value::Mapping(Mapping::new()),
        };
        let settings = matches!(self.base, Base::Settings);
        let pick = |given: &Option<String>, default: &str| match given {
            Some(g) => Some(g.clone()),
            None => settings.then(|| default.to_string()),
        };
        if let Some(issuer) = pick(&self.issuer, DEFAULT_ISSUER) {
            set(&mut v, &["credentials", "issuer"], issuer.into());
        }
        let ttl = self
            .default_ttl
            .clone()
            .unwrap_or_else(|| settings.then(|| DEFAULT_TTL.into()));
        if let Some(ttl) = ttl {
            set(
                &mut v,
                &["credentials", "api_keys", "default_ttl"],
                ttl.into(),
            );
        }
        if self.jwks {
            let urls = Value::Sequence(vec![crate::QUICKSTART_JWKS.into()]);
            let path = [
                "credentials",
                "derived_tokens",
                "jwt",
                "signing_keys",
                "urls",
            ];
            set(&mut v, &path, urls);
        }
        let secret = self
            .secret
            .clone()
            .unwrap_or_else(|| settings.then(|| TEST_SECRET.into()));
        if let Some(secret) = secret {
            set(&mut v, &["secrets", "hmac", "current"], secret.into());
        }
        if let Some(dsn) = dsn {
            set(&mut v, &["db", "dsn"], dsn.into());
        }
        if let Some(kind) = &self.cache {
            set(&mut v, &["cache", "type"], kind.as_str().into());
        }
        if let Some(url) = &self.redis {
            set(&mut v, &["cache", "type"], "redis".into());
            let addrs = Value::Sequence(vec![redis_addr(url).into()]);
            set(&mut v, &["cache", "redis", "addrs"], addrs);
            let prefix = format!("talos-test-{}", crate::unique());
            set(&mut v, &["cache", "redis", "key_prefix"], prefix.into());
        }
        if !self.tokens.is_empty() {
            let tokens = self.tokens.iter().map(token_entry).collect();
            let path = ["serve", "http", "admin_auth", "tokens"];
            set(&mut v, &path, Value::Sequence(tokens));
        }
        for layer in &self.layers {
            let piece: Value = serde_yaml_ng::from_str(layer)
                .unwrap_or_else(|e| panic!("the test's configuration piece is not YAML: {e}"));
            merge(&mut v, piece);
        }
        serde_yaml_ng::to_string(&v).expect("a YAML value serializes")
    }
}

/// `{name, sha256, scopes}`: the server keeps only the token's digest.
fn token_entry(t: &AdminToken) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), t.name.as_str().into());
    m.insert(
        "sha256".into(),
        hex::encode(Sha256::digest(t.token.as_bytes())).into(),
    );
    let scopes = t.scopes.iter().map(|s| s.as_str().into()).collect();
    m.insert("scopes".into(), Value::Sequence(scopes));
    Value::Mapping(m)
}

/// `redis://[..@]host:port[/db]` → `host:port`.
fn redis_addr(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Sets `path` in `v`, creating (or replacing non-mapping values by) mappings on the way.
fn set(v: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = value;
        return;
    };
    let mut at = v;
    for key in parents {
        if !at.is_mapping() {
            *at = Value::Mapping(Mapping::new());
        }
        let map = at.as_mapping_mut().expect("a mapping");
        at = map
            .entry((*key).into())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    if !at.is_mapping() {
        *at = Value::Mapping(Mapping::new());
    }
    at.as_mapping_mut()
        .expect("a mapping")
        .insert((*last).into(), value);
}

/// Merges `from` into `into`: mappings key by key, anything else replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        // An empty piece (`""`) changes nothing.
        (_, Value::Null) => {}
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn settings_then_pieces_merged_key_by_key() {
        let yaml = Builder::new()
            .quickstart_jwks()
            .cache("memory")
            .config("serve:\n  http:\n    max_inflight: 2\n")
            .config("cache: { ttl: 5m }\n")
            .config("")
            .yaml();
        let v = parse(&yaml);
        assert_eq!(v["credentials"]["issuer"], "http://talos.test");
        assert_eq!(v["credentials"]["api_keys"]["default_ttl"], "720h");
        assert_eq!(v["secrets"]["hmac"]["current"], TEST_SECRET);
        assert_eq!(v["db"]["dsn"], "sqlite::memory:");
        assert_eq!(v["cache"]["type"], "memory", "kept under the merged ttl");
        assert_eq!(v["cache"]["ttl"], "5m");
        assert_eq!(v["serve"]["http"]["max_inflight"], 2);
        assert_eq!(
            v["credentials"]["derived_tokens"]["jwt"]["signing_keys"]["urls"][0],
            crate::QUICKSTART_JWKS
        );
    }

    #[test]
    fn left_out_settings_and_tokens() {
        let v = parse(
            &Builder::new()
                .without_secret()
                .without_default_ttl()
                .admin_token("ops", "talos_admin_x", &["admin"])
                .yaml(),
        );
        assert!(v["secrets"].is_null() && v["credentials"]["api_keys"].is_null());
        let t = &v["serve"]["http"]["admin_auth"]["tokens"][0];
        assert_eq!(t["name"], "ops");
        assert_eq!(t["scopes"][0], "admin");
        assert_eq!(
            t["sha256"],
            hex::encode(Sha256::digest(b"talos_admin_x")).as_str()
        );
    }

    #[test]
    fn a_file_base_keeps_what_it_says() {
        let b =
            Builder::new().config_file("db: { dsn: \"postgres://h/x\" }\nlog: { level: info }\n");
        let v = parse(&b.yaml());
        assert_eq!(v["db"]["dsn"], "postgres://h/x");
        assert!(v["credentials"].is_null(), "no defaults over a file");
        let v = parse(&b.sqlite().redis("redis://:pw@127.0.0.1:6379/0").yaml());
        assert_eq!(v["db"]["dsn"], "sqlite::memory:");
        assert_eq!(v["cache"]["redis"]["addrs"][0], "127.0.0.1:6379");
        assert!(
            v["cache"]["redis"]["key_prefix"]
                .as_str()
                .unwrap()
                .starts_with("talos-test-")
        );
    }
}
