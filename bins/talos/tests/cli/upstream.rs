//! Upstream's CLI surface (issue 17): `jwk get|generate`, `--format json-pretty|jsonpath|
//! jsonpointer`, a global `--config`, the command aliases, `migrate down|force`.

use super::*;

#[test]
fn jwk_get_and_selecting_formats() {
    let srv = Server::start();
    let set = srv.talos(&["jwk", "get", "--format", "json"]).ok_json();
    assert_eq!(set["keys"][0]["kid"], "docker-dev-001", "{set}");
    assert!(set["keys"][0].get("d").is_none(), "public members only");
    let kid = srv
        .talos(&["jwk", "get", "--format", "jsonpath=$.keys[*].kid"])
        .ok_text();
    assert_eq!(kid, "docker-dev-001\n");

    // Aliases, with the values a script wants.
    let secret = srv
        .talos(&[
            "keys",
            "create",
            "aliased",
            "--actor",
            "u1",
            "--format",
            "jsonpath=$.secret",
        ])
        .ok_text();
    let secret = secret.trim();
    assert!(secret.starts_with("talos_v1_"), "{secret}");
    assert_eq!(
        srv.talos(&[
            "keys",
            "validate",
            secret,
            "--format",
            "jsonpointer=/is_valid"
        ])
        .ok_text(),
        "true\n"
    );
    let pretty = srv
        .talos(&[
            "keys",
            "issued",
            "issue",
            "n2",
            "--actor",
            "u1",
            "--format",
            "json-pretty",
        ])
        .ok_text();
    assert!(pretty.starts_with("{\n  \""), "{pretty}");
    let compact = srv
        .talos(&[
            "keys", "issued", "list", "--actor", "u1", "--format", "json",
        ])
        .ok_text();
    assert_eq!(
        compact.trim_end().lines().count(),
        1,
        "json is one line: {compact}"
    );
    let listed: Value = serde_json::from_str(&compact).unwrap();
    assert_eq!(listed["issued_api_keys"].as_array().unwrap().len(), 2);
    let out = srv.talos_stdin(
        &[
            "keys",
            "imported",
            "import-batch",
            "--file",
            "-",
            "--format",
            "jsonpath=$.success_count",
        ],
        r#"[{"raw_key": "sk_alias_1", "name": "i", "actor_id": "u1", "ttl": "1h"}]"#,
    );
    assert_eq!(out.ok_text(), "1\n");
    // A path that selects nothing prints nothing and says so.
    let out = srv.talos(&["keys", "issued", "list", "--format", "jsonpath=$.nope"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert!(out.stderr.contains("selects nothing"), "{}", out.stderr);
}

#[test]
fn config_names_the_server_for_client_commands() {
    let srv = Server::start();
    let port = srv.url.rsplit(':').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!("serve:\n  http: {{ host: \"0.0.0.0\", port: {port} }}\n"),
    )
    .unwrap();
    for args in [
        &["--config", path(&config), "keys", "verify", "nope"][..],
        &["keys", "verify", "nope", "--config", path(&config)],
    ] {
        let j = run_talos_env(args, &[]).json_with_code(1);
        assert_eq!(j["is_valid"], false, "{j}");
    }
    // -e still wins over the file.
    run_talos_env(
        &[
            "--config",
            path(&config),
            "keys",
            "verify",
            "nope",
            "-e",
            "http://127.0.0.1:9",
        ],
        &[],
    )
    .fails(4);
}

#[test]
fn jwk_generate_kinds_files_and_sets() {
    let dir = tempfile::tempdir().unwrap();
    for (args, kty, alg) in [
        (
            &["jwk", "generate", "ecdsa", "--curve", "P-384"][..],
            "EC",
            "ES384",
        ),
        (
            &["jwk", "generate", "rsa", "--alg", "RS512"],
            "RSA",
            "RS512",
        ),
        (
            &["jwk", "generate", "hmac", "--bits", "384"],
            "oct",
            "HS384",
        ),
    ] {
        let out = run_talos(args, None, None);
        let set = out.ok_json();
        let k = &set["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["alg"].as_str()),
            (Some(kty), Some(alg)),
            "{set}"
        );
        assert_eq!(k["use"], "sig");
        assert_eq!(
            k["kid"].as_str().map(str::len),
            Some(43),
            "RFC 7638 thumbprint: {k}"
        );
        assert!(out.stderr.contains("EdDSA only"), "{}", out.stderr);
    }
    let file = dir.path().join("set.json");
    run_talos(
        &[
            "jwk",
            "generate",
            "eddsa",
            "--kid",
            "old",
            "-o",
            path(&file),
        ],
        None,
        None,
    )
    .ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a private key file is owner-only");
    }
    let merged = run_talos(
        &[
            "jwk",
            "generate",
            "eddsa",
            "--kid",
            "new",
            "--jwks",
            path(&file),
            "--format",
            "json",
        ],
        None,
        None,
    )
    .ok_json();
    let kids: Vec<&str> = merged["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["new", "old"]);
    let public = run_talos(
        &[
            "jwk",
            "generate",
            "ecdsa",
            "--public-only",
            "--use",
            "enc",
            "--format",
            "json",
        ],
        None,
        None,
    )
    .ok_json();
    assert!(public["keys"][0].get("d").is_none() && public["keys"][0]["use"] == "enc");
    run_talos(&["jwk", "generate", "hmac", "--public-only"], None, None).fails(2);
    run_talos(&["jwk", "generate", "rsa", "--bits", "1024"], None, None).fails(2);
}

#[test]
fn migrate_down_and_force_through_talos() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/m.db", dir.path().display());
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, format!("db:\n  dsn: \"{dsn}\"\n")).unwrap();
    let up = run_talos_env(&["--config", path(&config), "migrate", "up"], &[]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    let down = run_talos_env(&["migrate", "down", "--steps", "1"], &[("DB_DSN", &dsn)]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(down.stdout.starts_with("reverted "), "{}", down.stdout);
    let status = run_talos_env(&["migrate", "status"], &[("DSN", &dsn)]);
    assert!(status.stdout.contains("pending"), "{}", status.stdout);
    let newest = status
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    let force = run_talos_env(&["migrate", "force", newest, "--database", &dsn], &[]);
    assert_eq!(force.code, 0, "{}", force.stderr);
    let status = run_talos_env(&["migrate", "status", "--database", &dsn], &[]);
    assert!(!status.stdout.contains("pending"), "{}", status.stdout);
}
