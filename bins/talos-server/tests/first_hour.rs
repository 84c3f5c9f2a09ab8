//! The first hour with the real `talos-server` binary (issue 14): the startup block says where
//! to go, and dependency failures name what was tried and what to do, never a secret.

use std::process::Command;
use std::time::Duration;

use talos_test_support::{TestApp, database_url, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_talos-server");

/// Starts `serve --dev` and returns its log up to the end of the startup block, with the API and
/// metrics ports.
fn startup_output(extra_env: &[(&str, &str)]) -> (String, u16, u16) {
    // Spawned once `/health/alive` answered 200.
    let app = TestApp::builder().binary(BIN).dev().envs(extra_env).spawn();
    // actix starts its workers once the server runs, after the block: read on until the request
    // log shows that readiness request served, so every startup line is in the log. The wait
    // only guards against a hang; nothing is asserted about time.
    let served = |log: &str| {
        log.split_once("stop with Ctrl-C")
            .is_some_and(|(_, after)| after.contains("/health/alive"))
    };
    let out = app.wait_for_log(Duration::from_secs(60), served);
    (out, app.port(), app.metrics_port())
}

#[test]
fn dev_startup_prints_where_to_go_and_hides_actix_worker_noise() {
    let (out, port, metrics_port) = startup_output(&[]);
    let api = format!("http://127.0.0.1:{port}");
    for want in [
        format!("API      {api}"),
        format!("OpenAPI  {api}/openapi.json"),
        format!("Metrics  http://127.0.0.1:{metrics_port}/metrics"),
        format!("curl -s -X POST {api}/v2alpha1/admin/issuedApiKeys"),
        format!("talos keys issue first-key --actor me -e {api}"),
        "docs/configuration.md".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} missing from:\n{out}");
    }
    assert!(
        !out.contains("actix-web-service"),
        "actix's worker lines are hidden below warn:\n{out}"
    );
}

#[test]
fn an_explicit_actix_log_level_is_respected() {
    let (out, _, _) = startup_output(&[("TALOS_LOG_LEVEL", "info,actix_server=info")]);
    assert!(out.contains("actix-web-service"), "{out}");
}

fn failing(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("TALOS_DB_DSN")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_wrong_postgres_port_names_the_target_the_os_error_and_a_hint() {
    let port = free_port(); // bound and released: nothing listens there
    let dsn =
        format!("postgres://talos:pw-not-for-logs@127.0.0.1:{port}/talos_keys?sslmode=disable");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("credentials: {{ issuer: \"x\" }}\ndb: {{ dsn: \"{dsn}\" }}\n"),
    )
    .unwrap();
    for err in [
        failing(&["migrate", "up", "--database", &dsn]),
        failing(&["serve", "--config", cfg.to_str().unwrap()]),
    ] {
        for want in [
            format!("postgres://talos@127.0.0.1:{port}/talos_keys"),
            format!("port {port}"),
            "database talos_keys".to_string(),
            "os error".to_string(),
            "hint:".to_string(),
            "pg_isready".to_string(),
        ] {
            assert!(err.contains(&want), "{want:?} missing from:\n{err}");
        }
        assert!(!err.contains("pw-not-for-logs"), "password leaked:\n{err}");
    }
}

#[test]
fn a_missing_postgres_database_suggests_createdb() {
    let Some(admin) = database_url() else { return };
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    let db = format!("talos_missing_{}", std::process::id());
    let err = failing(&["migrate", "status", "--database", &format!("{base}/{db}")]);
    for want in [
        format!("database {db}"),
        "does not exist".to_string(),
        format!("createdb -h 127.0.0.1 -p 5432 -U postgres {db}"),
    ] {
        assert!(err.contains(&want), "{want:?} missing from:\n{err}");
    }
}

#[test]
fn an_unreachable_redis_is_a_startup_warning_naming_the_address() {
    let addr = format!("127.0.0.1:{}", free_port());
    let (out, _, _) = startup_output(&[
        ("TALOS_CACHE_TYPE", "redis"),
        ("TALOS_CACHE_REDIS_ADDRS", addr.as_str()),
        ("TALOS_CACHE_REDIS_PASSWORD", "redis-pw-not-for-logs"),
    ]);
    let warning = out
        .lines()
        .find(|l| l.contains("Redis is not reachable at startup"))
        .unwrap_or_else(|| panic!("no Redis warning:\n{out}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(&addr), "{warning}");
    assert!(!out.contains("redis-pw-not-for-logs"), "{out}");
}
