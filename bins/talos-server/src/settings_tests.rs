//! Every configuration key does something (decisions.md, "Settings"): for each key of the
//! generated list (the one `docs/configuration.md` and the `TALOS_*` names come from), the table
//! below sets a non-default value and the test checks that it changes what `serve` runs (its
//! [`ServerPlan`]), or that it is refused when the key takes one value only, or, for the upstream
//! keys that mean nothing here, that the plan is unchanged and a warning names the key. A key
//! added to the configuration without a row here fails the test, so a new key cannot be accepted
//! and silently ignored.
//!
//! Behaviour behind the plan (that the running server does what each part is configured to do)
//! is tested where each part lives; this test closes the gap between a key and its part.

use std::collections::BTreeMap;

use talos_core::config::{NO_EFFECT, env_var_names, load_tree_str};

use crate::config::ServerSections;
use crate::plan::ServerPlan;

/// What setting a key must do.
enum Expect {
    /// This value changes the plan.
    Changes(&'static str),
    /// The key takes one value; this other one is refused with an error naming the key.
    Refused(&'static str),
    /// An upstream key without meaning here: this value leaves the plan as it is and a startup
    /// warning names the key.
    Warns(&'static str),
}

use Expect::{Changes, Refused, Warns};

/// A key, what it must do, and other keys set on both sides of the comparison (a key that only
/// matters when another is on, such as `cache.redis.*` with `cache.type: redis`).
type Row = (
    &'static str,
    Expect,
    &'static [(&'static str, &'static str)],
);

const JWKS: &str = include_str!("../../../testdata/quickstart-jwks.url");
const SECRET_A: &str = "settings-test-secret-aaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_B: &str = "settings-test-secret-bbbbbbbbbbbbbbbbbbbbbbb";
const REDIS: &[(&str, &str)] = &[("cache.type", "redis")];
const CORS: &[(&str, &str)] = &[("serve.http.cors.enabled", "true")];
const TLS: &[(&str, &str)] = &[
    ("serve.http.tls.cert_file", "a.pem"),
    ("serve.http.tls.key_file", "b.pem"),
];
const TRACING: &[(&str, &str)] = &[("tracing.enabled", "true")];

const ROWS: &[Row] = &[
    ("cache.enabled", Changes("false"), &[]),
    ("cache.memory.max_size", Changes("1MiB"), &[]),
    ("cache.memory.num_counters", Warns("5"), &[]),
    (
        "cache.redis.addrs",
        Changes("redis-a:6379,redis-b:6379"),
        REDIS,
    ),
    ("cache.redis.conn_max_idle_time", Warns("1m"), REDIS),
    ("cache.redis.conn_max_lifetime", Warns("1h"), REDIS),
    ("cache.redis.db", Changes("3"), REDIS),
    ("cache.redis.key_prefix", Changes("other"), REDIS),
    ("cache.redis.local.enabled", Changes("true"), REDIS),
    (
        "cache.redis.local.ttl",
        Changes("20s"),
        &[
            ("cache.type", "redis"),
            ("cache.redis.local.enabled", "true"),
        ],
    ),
    ("cache.redis.master_name", Changes("primary"), REDIS),
    ("cache.redis.min_idle_conns", Warns("5"), REDIS),
    ("cache.redis.mode", Changes("cluster"), REDIS),
    ("cache.redis.password", Changes("redis-pass"), REDIS),
    ("cache.redis.pool_size", Warns("10"), REDIS),
    (
        "cache.redis.sentinel_password",
        Changes("sentinel-pass"),
        REDIS,
    ),
    ("cache.redis.timeout", Changes("1s"), REDIS),
    ("cache.redis.tls.enabled", Changes("true"), REDIS),
    ("cache.redis.wait_replicas", Changes("1"), REDIS),
    ("cache.ttl", Changes("1m"), &[]),
    ("cache.type", Changes("memory"), &[]),
    ("credentials.api_keys.default_ttl", Changes("2h"), &[]),
    ("credentials.api_keys.max_ttl", Changes("100h"), &[]),
    ("credentials.api_keys.prefix.current", Changes("other"), &[]),
    (
        "credentials.api_keys.prefix.public_current",
        Changes("pub"),
        &[],
    ),
    (
        "credentials.api_keys.prefix.public_retired",
        Changes("oldpub"),
        &[],
    ),
    ("credentials.api_keys.prefix.retired", Changes("old"), &[]),
    ("credentials.clock_skew", Changes("1m"), &[]),
    (
        "credentials.derived_tokens.default_ttl",
        Changes("10m"),
        &[],
    ),
    (
        "credentials.derived_tokens.jwt.signing_key_id",
        Changes("k1"),
        &[],
    ),
    (
        "credentials.derived_tokens.jwt.signing_keys.urls",
        Changes(JWKS),
        &[],
    ),
    (
        "credentials.derived_tokens.macaroon.prefix.current",
        Changes("mac"),
        &[],
    ),
    (
        "credentials.derived_tokens.macaroon.prefix.retired",
        Changes("oldmac"),
        &[],
    ),
    ("credentials.issuer", Changes("http://other.test"), &[]),
    (
        "credentials.issuer_retired",
        Changes("http://old.test"),
        &[],
    ),
    ("db.connect_timeout", Changes("2s"), &[]),
    ("db.dsn", Changes("sqlite://other.db"), &[]),
    ("db.max_conns", Changes("3"), &[]),
    ("db.pool_timeout", Changes("2s"), &[]),
    ("db.statement_timeout", Changes("2s"), &[]),
    ("last_used.flush_interval", Changes("5s"), &[]),
    ("last_used.flush_size", Changes("7"), &[]),
    ("last_used.num_workers", Changes("2"), &[]),
    ("last_used.queue_size", Changes("9"), &[]),
    ("log.format", Changes("json"), &[]),
    ("log.level", Changes("debug"), &[]),
    ("multitenancy.enabled", Changes("true"), &[]),
    (
        "multitenancy.networks",
        Changes(r#"[{"hostname":"a.example","id":"6f9619ff-8b86-d011-b42d-00c04fc964ff"}]"#),
        &[("multitenancy.enabled", "true")],
    ),
    ("quota.api_keys_max", Changes("5"), &[]),
    ("rate_limit.backend", Changes("redis"), &[]),
    ("rate_limit.enabled", Changes("true"), &[]),
    ("rate_limit.fail_closed", Changes("true"), &[]),
    ("secrets.hmac.current", Changes(SECRET_B), &[]),
    ("secrets.hmac.retired", Changes(SECRET_B), &[]),
    (
        "self_service.enabled",
        Changes("true"),
        &[("self_service.trusted_proxies", "10.0.0.0/8")],
    ),
    ("self_service.trusted_proxies", Changes("10.0.0.0/8"), &[]),
    ("self_service.user_id_header", Changes("X-Actor"), &[]),
    ("serve.http.gateway.failure_limit.quota", Changes("7"), &[]),
    (
        "serve.http.gateway.failure_limit.window",
        Changes("2m"),
        &[],
    ),
    (
        "serve.http.admin_auth.tokens",
        Changes(
            r#"[{"name":"ops","sha256":"0000000000000000000000000000000000000000000000000000000000000001","scopes":["admin"]}]"#,
        ),
        &[],
    ),
    ("serve.http.allowed_hosts", Changes("api.example"), &[]),
    ("serve.http.client_ip_source", Changes("X_REAL_IP"), &[]),
    ("serve.http.client_timeout", Changes("3s"), &[]),
    ("serve.http.cors.allow_credentials", Changes("true"), CORS),
    ("serve.http.cors.allowed_headers", Changes("X-Custom"), CORS),
    ("serve.http.cors.allowed_methods", Changes("GET"), CORS),
    (
        "serve.http.cors.allowed_origins",
        Changes("https://app.example"),
        CORS,
    ),
    ("serve.http.cors.debug", Changes("true"), CORS),
    ("serve.http.cors.enabled", Changes("true"), &[]),
    ("serve.http.cors.exposed_headers", Changes("X-Out"), CORS),
    ("serve.http.cors.max_age", Changes("60"), CORS),
    ("serve.http.drain_time", Changes("3s"), &[]),
    ("serve.http.host", Changes("127.0.0.1"), &[]),
    ("serve.http.max_inflight", Changes("5"), &[]),
    ("serve.http.max_queue_delay", Changes("1s"), &[]),
    ("serve.http.port", Changes("9999"), &[]),
    (
        "serve.http.request_log.exclude_health_endpoints",
        Changes("true"),
        &[],
    ),
    ("serve.http.request_timeout", Changes("3s"), &[]),
    ("serve.http.tls.cert_file", Changes("c.pem"), TLS),
    ("serve.http.tls.key_file", Changes("c.pem"), TLS),
    ("serve.http.trust_forwarded_host", Changes("true"), &[]),
    ("serve.http.workers", Changes("3"), &[]),
    ("serve.metrics.host", Changes("127.0.0.1"), &[]),
    ("serve.metrics.port", Changes("9998"), &[]),
    ("tracing.enabled", Changes("true"), &[]),
    ("tracing.endpoint", Changes("collector:4318"), TRACING),
    ("tracing.environment", Changes("production"), TRACING),
    ("tracing.exporter", Refused("zipkin"), TRACING),
    ("tracing.sample_rate", Changes("0.5"), TRACING),
    ("tracing.service_name", Changes("talos-eu"), TRACING),
    ("tracing.service_version", Changes("1.2.3"), TRACING),
];

/// `TALOS_*` name of each key.
fn var_names() -> BTreeMap<String, String> {
    env_var_names::<ServerSections>()
        .into_iter()
        .map(|(path, var, _)| (path, var))
        .collect()
}

/// The plan (as text) and the warnings of a configuration given as `key = value` pairs on top
/// of the minimum a server starts with.
fn load(pairs: &[(&str, &str)]) -> Result<(String, Vec<String>), String> {
    let vars = var_names();
    let mut env: BTreeMap<String, String> = [
        ("TALOS_CREDENTIALS_ISSUER", "http://base.test"),
        ("TALOS_SECRETS_HMAC_CURRENT", SECRET_A),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in pairs {
        let var = vars
            .get(*key)
            .unwrap_or_else(|| panic!("no such key {key}"));
        env.insert(var.clone(), value.to_string());
    }
    let (config, warnings) =
        load_tree_str::<ServerSections>("", "", &env).map_err(|e| e.to_string())?;
    let plan = ServerPlan::new(&config).map_err(|e| format!("{e:#}"))?;
    Ok((format!("{plan:?}"), warnings))
}

#[test]
fn the_table_covers_every_key() {
    let keys: Vec<String> = var_names().into_keys().collect();
    let rows: Vec<&str> = ROWS.iter().map(|r| r.0).collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !rows.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "configuration keys without a row in settings_tests.rs (what does each do?): {missing:?}"
    );
    let unknown: Vec<&&str> = rows
        .iter()
        .filter(|r| !keys.iter().any(|k| k == *r))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows for keys that do not exist: {unknown:?}"
    );
    let warned: Vec<&str> = ROWS
        .iter()
        .filter(|r| matches!(r.1, Warns(_)))
        .map(|r| r.0)
        .collect();
    let mut no_effect: Vec<&str> = NO_EFFECT.iter().map(|(k, _)| *k).collect();
    no_effect.sort();
    assert_eq!(
        warned, no_effect,
        "the Warns rows are exactly the NO_EFFECT keys"
    );
}

#[test]
fn every_key_has_an_effect_or_its_warning() {
    let mut failures = Vec::new();
    for (key, expect, context) in ROWS {
        let (before, _) = load(context).unwrap_or_else(|e| panic!("{key}: context: {e}"));
        let with = |value: &'static str| {
            let mut pairs = context.to_vec();
            pairs.push((key, value));
            load(&pairs)
        };
        let verdict = match expect {
            Changes(v) => match with(v) {
                Ok((after, _)) if after != before => Ok(()),
                Ok(_) => Err(format!(
                    "setting it to {v:?} changes nothing the server runs"
                )),
                Err(e) => Err(format!("{v:?} does not load: {e}")),
            },
            Refused(v) => match with(v) {
                Err(e) if e.contains(key) => Ok(()),
                Err(e) => Err(format!("{v:?} is refused without naming the key: {e}")),
                Ok(_) => Err(format!("{v:?} is accepted")),
            },
            Warns(v) => match with(v) {
                Ok((after, warnings)) if after == before => {
                    if warnings
                        .iter()
                        .any(|w| w.contains(key) && w.contains("no effect"))
                    {
                        Ok(())
                    } else {
                        Err(format!("no warning names it: {warnings:?}"))
                    }
                }
                Ok(_) => {
                    Err("it is documented as having no effect, but it changes the plan".into())
                }
                Err(e) => Err(format!("{v:?} does not load: {e}")),
            },
        };
        if let Err(why) = verdict {
            failures.push(format!("{key}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `multitenancy.networks[].config_path` is inside a list, so it has no row of its own: a
/// network with an overlay runs with the overlay's settings, and a missing one stops the start.
#[test]
fn a_network_overlay_changes_its_network() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("tenant.yaml");
    std::fs::write(&overlay, "credentials:\n  issuer: \"http://tenant.test\"\n").unwrap();
    let network = |path: Option<&std::path::Path>| {
        let path = path.map_or(String::new(), |p| format!(",\"config_path\":{:?}", p));
        format!(r#"[{{"hostname":"a.example","id":"6f9619ff-8b86-d011-b42d-00c04fc964ff"{path}}}]"#)
    };
    let plain = network(None);
    let with = network(Some(&overlay));
    let missing = network(Some(&dir.path().join("missing.yaml")));
    let on = ("multitenancy.enabled", "true");
    let (before, _) = load(&[on, ("multitenancy.networks", plain.as_str())]).unwrap();
    let (after, _) = load(&[on, ("multitenancy.networks", with.as_str())]).unwrap();
    assert_ne!(before, after);
    assert!(after.contains("http://tenant.test"), "{after}");
    let err = load(&[on, ("multitenancy.networks", missing.as_str())]).unwrap_err();
    assert!(err.contains("missing.yaml"), "{err}");
}
