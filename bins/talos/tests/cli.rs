//! End to end: the real `talos` binary against a real `talos-server` (SQLite, the quickstart config).
//!
//! Each test starts its own server on free loopback ports (a guard kills it on drop, also when the test panics),
//! so tests stay independent and can run in parallel. The server binary is expected at
//! `target/<profile>/talos-server`, next to `talos`; when it is missing the tests fail and say so: they must
//! not pass without having talked to a server.

use serde_json::{Value, json};

mod support;
use support::*;

// Batch import has its own file to keep modules small; it is part of this one test binary.
#[path = "cli/batch_import.rs"]
mod batch_import;
#[path = "cli/first_hour.rs"]
mod first_hour;
#[path = "cli/metering.rs"]
mod metering;
#[path = "cli/upstream.rs"]
mod upstream;

// ------------------------------------------------------------------ docs: issue-and-verify.txt

#[test]
fn docs_issue_and_verify() {
    let srv = Server::start();
    let out = srv.talos(&[
        "keys",
        "issue",
        "backend-service",
        "--actor",
        "user_42",
        "--scopes",
        "read:orders,write:orders",
        "--ttl",
        "720h",
        "--metadata",
        r#"{"team": "payments", "environment": "staging"}"#,
        "--format",
        "json",
    ]);
    let j = out.ok_json();
    let secret = j["secret"].as_str().expect("secret").to_owned();
    let kid = j["issued_api_key"]["key_id"]
        .as_str()
        .expect("key_id")
        .to_owned();
    assert!(secret.starts_with("talos_v1_"), "{j}");
    assert_eq!(
        j["issued_api_key"]["scopes"],
        json!(["read:orders", "write:orders"])
    );
    assert_eq!(
        j["issued_api_key"]["metadata"],
        json!({"team": "payments", "environment": "staging"})
    );
    assert_eq!(j["issued_api_key"]["status"], "KEY_STATUS_ACTIVE");

    // No --format: stdout is not a terminal, so JSON, exactly the server's document.
    let v = srv.talos(&["keys", "verify", &secret]).ok_json();
    assert_eq!(v["is_active"], true, "{v}");
    assert_eq!(v["key_id"], kid.as_str());
    assert_eq!(v["actor_id"], "user_42");

    let g = srv.talos(&["keys", "issued", "get", &kid]).ok_json();
    assert_eq!(g["key_id"], kid.as_str());
    assert!(g.get("secret").is_none());

    let l = srv
        .talos(&[
            "keys",
            "issued",
            "list",
            "--actor",
            "user_42",
            "--page-size",
            "10",
        ])
        .ok_json();
    let ids: Vec<&str> = l["issued_api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["key_id"].as_str())
        .collect();
    assert!(ids.contains(&kid.as_str()), "{l}");
    assert!(l.get("next_page_token").is_some(), "{l}");

    // Table format is for people: columns and a verdict.
    let t = srv
        .talos(&[
            "keys", "issued", "list", "--actor", "user_42", "--format", "table",
        ])
        .ok_text();
    assert!(
        t.starts_with("KEY_ID") && t.contains("backend-service") && t.contains("active"),
        "{t}"
    );
    let t = srv
        .talos(&["keys", "verify", &secret, "--format", "table"])
        .ok_text();
    assert!(t.contains("active") && t.contains(&kid), "{t}");
}

// ------------------------------------------------------------------ docs: key-lifecycle.txt

#[test]
fn docs_key_lifecycle() {
    let srv = Server::start();
    // No --ttl: the server's default_ttl (720h) applies.
    let j = srv
        .talos(&[
            "keys",
            "issue",
            "lifecycle-test",
            "--actor",
            "user_1",
            "--scopes",
            "read,write",
            "--metadata",
            r#"{"team":"backend"}"#,
            "--format",
            "json",
        ])
        .ok_json();
    let kid = j["issued_api_key"]["key_id"].as_str().unwrap().to_owned();
    assert!(j["issued_api_key"]["expire_time"].is_string(), "{j}");

    let u = srv
        .talos(&[
            "keys",
            "issued",
            "update",
            &kid,
            "--name",
            "lifecycle-test-updated",
            "--scopes",
            "read",
            "--metadata",
            r#"{"team": "backend", "tier": "premium"}"#,
        ])
        .ok_json();
    assert_eq!(u["name"], "lifecycle-test-updated");
    assert_eq!(u["scopes"], json!(["read"]));
    assert_eq!(u["metadata"]["tier"], "premium");
    let g = srv.talos(&["keys", "issued", "get", &kid]).ok_json();
    assert_eq!(g["name"], "lifecycle-test-updated", "update persisted");

    // An explicit mask clears a masked field that is not given.
    let u = srv
        .talos(&[
            "keys",
            "issued",
            "update",
            &kid,
            "--update-mask",
            "metadata",
        ])
        .ok_json();
    assert_eq!(u["metadata"], json!({}), "{u}");
    assert_eq!(
        u["name"], "lifecycle-test-updated",
        "unmasked fields untouched"
    );

    let r = srv
        .talos(&[
            "keys",
            "issued",
            "rotate",
            &kid,
            "--scopes",
            "read,write,admin",
            "--format",
            "json",
        ])
        .ok_json();
    let secret = r["secret"].as_str().unwrap().to_owned();
    let new_kid = r["issued_api_key"]["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, kid);
    assert_eq!(
        r["issued_api_key"]["scopes"],
        json!(["read", "write", "admin"])
    );
    assert_eq!(r["old_issued_api_key"]["status"], "KEY_STATUS_REVOKED");
    // Rotating the old (revoked) key again is a server error.
    srv.talos(&["keys", "issued", "rotate", &kid]).fails(3);

    let d = srv
        .talos(&[
            "keys",
            "derive-token",
            &secret,
            "--algorithm",
            "jwt",
            "--ttl",
            "1h",
            "--claims",
            r#"{"role":"preview-user","environment":"demo"}"#,
            "--format",
            "json",
        ])
        .ok_json();
    let jwt = d["token"]["token"].as_str().unwrap().to_owned();
    assert_eq!(jwt.matches('.').count(), 2, "{d}");
    let v = srv.talos(&["keys", "verify", &jwt]).ok_json();
    assert_eq!(
        v["key_id"],
        new_kid.as_str(),
        "a derived JWT verifies as its parent"
    );
    let m = srv
        .talos(&[
            "keys",
            "derive-token",
            &secret,
            "--algorithm",
            "macaroon",
            "--scopes",
            "read",
        ])
        .ok_json();
    assert!(
        m["token"]["token"].as_str().unwrap().starts_with("mc_v1_"),
        "{m}"
    );
    assert_eq!(m["token"]["scopes"], json!(["read"]));

    srv.talos(&["keys", "revoke", &new_kid, "--reason", "superseded"])
        .ok();
    let out = srv.talos(&["keys", "verify", &secret, "--no-cache"]);
    let v = out.json_with_code(1);
    assert_eq!(v["is_active"], false);
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_REVOKED", "{v}");
    assert!(out.stderr.contains("not active"), "{}", out.stderr);
    // The docs' `|| true` form relies on a non-zero exit; table format says why.
    let t = srv.talos(&["keys", "verify", &secret, "--no-cache", "--format", "table"]);
    assert_eq!(t.code, 1);
    assert!(
        t.stdout.contains("inactive") && t.stdout.contains("REVOKED"),
        "{}",
        t.stdout
    );

    // Revoking twice: 409 from the server → exit 3, message and reason on stderr.
    let again = srv
        .talos(&["keys", "revoke", &new_kid, "--reason", "superseded"])
        .fails(3);
    assert!(again.stderr.contains("409"), "{}", again.stderr);
}

// ------------------------------------------------------------------ docs: import-keys.txt

#[test]
fn docs_import_keys() {
    let srv = Server::start();
    let raw = format!("sk_live_test_{}", unique());
    let j = srv
        .talos(&[
            "keys",
            "imported",
            "import",
            "Stripe production key",
            "--raw-key",
            &raw,
            "--actor",
            "payment-service",
            "--scopes",
            "payments:read,payments:write",
            "--ttl",
            "8760h",
            "--metadata",
            r#"{"source": "stripe", "environment": "production"}"#,
            "--format",
            "json",
        ])
        .ok_json();
    let ikid = j["imported_api_key"]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(ikid.len(), 64, "{j}");
    assert!(!j.to_string().contains(&raw), "the raw key is never echoed");

    let v = srv.talos(&["keys", "verify", &raw]).ok_json();
    assert_eq!(v["is_active"], true);
    assert_eq!(v["key_id"], ikid.as_str());

    // The docs' heredoc form.
    let (a, b) = (
        format!("ghp_batch_{}", unique()),
        format!("ghp_batch_{}", unique()),
    );
    let doc = format!(
        "[\n{{\"raw_key\": \"{a}\", \"name\": \"GitHub PAT 1\", \"actor_id\": \"dev-team\"}},\n\
         {{\"raw_key\": \"{b}\", \"name\": \"GitHub PAT 2\", \"actor_id\": \"dev-team\"}}\n]\n"
    );
    let bi = srv
        .talos_stdin(&["keys", "imported", "batch-import", "--file", "-"], &doc)
        .ok_json();
    assert_eq!(
        (bi["success_count"].as_u64(), bi["failure_count"].as_u64()),
        (Some(2), Some(0)),
        "{bi}"
    );
    assert_eq!(bi["results"][1]["index"], 1);
    assert!(bi["results"][0]["imported_api_key"]["key_id"].is_string());

    let l = srv.talos(&["keys", "imported", "list"]).ok_json();
    assert!(
        l["imported_api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == ikid.as_str()),
        "{l}"
    );
    let g = srv.talos(&["keys", "imported", "get", &ikid]).ok_json();
    assert_eq!(g["name"], "Stripe production key");
    let u = srv
        .talos(&["keys", "imported", "update", &ikid, "--name", "renamed"])
        .ok_json();
    assert_eq!(u["name"], "renamed");

    srv.talos(&["keys", "revoke", &ikid, "--reason", "superseded"])
        .ok();
    assert_eq!(
        srv.talos(&["keys", "imported", "get", &ikid]).ok_json()["status"],
        "KEY_STATUS_REVOKED"
    );
    srv.talos(&["keys", "verify", &raw, "--no-cache"]).fails(1);
    srv.talos(&["keys", "imported", "delete", &ikid]).ok();
    let gone = srv.talos(&["keys", "imported", "get", &ikid]).fails(3);
    assert!(gone.stderr.contains("404"), "{}", gone.stderr);

    // Per-kind revoke of the batch-imported key, with the text only PRIVILEGE_WITHDRAWN allows.
    let bkid = bi["results"][0]["imported_api_key"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    srv.talos(&[
        "keys",
        "imported",
        "revoke",
        &bkid,
        "--reason",
        "superseded",
        "--reason-text",
        "x",
    ])
    .fails(3);
    srv.talos(&[
        "keys",
        "imported",
        "revoke",
        &bkid,
        "--reason",
        "privilege_withdrawn",
        "--reason-text",
        "left",
    ])
    .ok();
    let g = srv.talos(&["keys", "imported", "get", &bkid]).ok_json();
    assert_eq!(
        g["revocation_reason"], "REVOCATION_REASON_PRIVILEGE_WITHDRAWN",
        "{g}"
    );
}

// ------------------------------------------------------------------ error paths

#[test]
fn server_errors_exit_3_with_message_and_reason() {
    let srv = Server::start();
    let missing = "00000000-0000-4000-8000-000000000000";
    for args in [
        &["keys", "issued", "get", missing][..],
        &[
            "keys",
            "issued",
            "revoke",
            missing,
            "--reason",
            "key_compromise",
        ],
        &["keys", "revoke", missing],
        &["keys", "issued", "update", missing, "--name", "x"],
    ] {
        let out = srv.talos(args).fails(3);
        assert!(
            out.stderr.contains("API_KEY_NOT_FOUND") && out.stderr.contains("404"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: errors never go to stdout: {}",
            out.stdout
        );
    }
    // Validation errors from the server (400) name the problem.
    let out = srv
        .talos(&["keys", "issue", "n", "--actor", "a", "--ttl", "0"])
        .fails(3);
    assert!(
        out.stderr.contains("ttl") && out.stderr.contains("400"),
        "{}",
        out.stderr
    );
    let out = srv
        .talos(&["keys", "issued", "list", "--status", "active"])
        .fails(3);
    assert!(out.stderr.contains("actor_id"), "{}", out.stderr);
    srv.talos(&["keys", "issued", "list", "--page-token", "not-a-token"])
        .fails(3);
    srv.talos(&["keys", "self-revoke", "talos_v1_nope_nope"])
        .fails(3);

    // Local usage errors never reach the server.
    srv.talos(&["keys", "issued", "update", missing]).fails(2);
    srv.talos(&["keys", "issue", "--actor"]).fails(2);
    srv.talos(&["keys", "revoke", missing, "--reason", "whatever"])
        .fails(2);
    srv.talos(&[
        "keys",
        "imported",
        "batch-import",
        "--file",
        "/definitely/not/here.json",
    ])
    .fails(2);
}

#[test]
fn unreachable_endpoint_exits_4_and_is_named() {
    let port = free_port(); // nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        &["keys", "verify", "x"][..],
        &["keys", "issued", "list"],
        &["version", "--server"],
    ] {
        let out = run_talos(args, Some(&url), None);
        assert_eq!(out.code, 4, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&url),
            "{args:?} names the endpoint: {}",
            out.stderr
        );
    }
    // The endpoint also comes from TALOS_URL.
    let out = run_talos_env(&["keys", "issued", "list"], &[("TALOS_URL", &url)]);
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains(&url), "{}", out.stderr);
}

#[test]
fn https_endpoint_trusts_the_ca_cert_given() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(pki.path());
    let srv = Server::start_with(
        &[
            ("TALOS_SERVE_HTTP_TLS_CERT_FILE", path(&cert)),
            ("TALOS_SERVE_HTTP_TLS_KEY_FILE", path(&key)),
        ],
        Some(&ca),
    );
    assert!(srv.url.starts_with("https://"), "{}", srv.url);

    // Without the CA the certificate is refused, and the message says what to do.
    let out = srv.talos(&["keys", "verify", "x"]).fails(4);
    assert!(
        out.stderr.contains("certificate") && out.stderr.contains("--ca-cert"),
        "{}",
        out.stderr
    );

    let j = srv
        .talos(&[
            "keys",
            "issue",
            "tls-key",
            "--actor",
            "a",
            "--ttl",
            "1h",
            "--format",
            "json",
            "--ca-cert",
            path(&ca),
        ])
        .ok_json();
    let secret = j["secret"].as_str().expect("secret").to_owned();
    let out = run_talos_env(
        &["keys", "verify", &secret, "--format", "json"],
        &[("TALOS_URL", &srv.url), ("TALOS_CA_CERT", path(&ca))],
    );
    assert_eq!(out.json_with_code(0)["is_valid"], json!(true));

    // A CA file that cannot be read, or holds no certificate, is a usage error naming it.
    let out = srv
        .talos(&[
            "keys",
            "verify",
            "x",
            "--ca-cert",
            "/definitely/not/here.pem",
        ])
        .fails(2);
    assert!(out.stderr.contains("--ca-cert"), "{}", out.stderr);
    let out = srv
        .talos(&["keys", "verify", "x", "--ca-cert", path(&key)])
        .fails(2);
    assert!(out.stderr.contains("CA certificate"), "{}", out.stderr);

    // Plain HTTP to the HTTPS port fails with a hint.
    let plain = srv.url.replacen("https://", "http://", 1);
    let out = run_talos(&["keys", "verify", "x"], Some(&plain), None).fails(4);
    assert!(out.stderr.contains("https://"), "{}", out.stderr);
}

#[test]
fn bad_command_lines_exit_2() {
    for args in [
        &["keys", "issue", "name"][..],
        &["keys", "verify"],
        &["keys", "frobnicate"],
        &["--format", "xml", "keys", "verify", "x"],
        &[
            "keys",
            "issue",
            "n",
            "--actor",
            "a",
            "--metadata",
            "not json",
        ],
    ] {
        let out = run_talos(args, Some("http://127.0.0.1:9"), None);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.is_empty());
    }
}

// ------------------------------------------------------------------ other commands

#[test]
fn lists_batch_verify_self_revoke_and_formats() {
    let srv = Server::start();
    let actor = format!("actor_{}", unique());
    let mut secrets = Vec::new();
    for i in 0..5 {
        let j = srv
            .talos(&[
                "keys",
                "issue",
                &format!("k{i}"),
                "--actor",
                &actor,
                "--ttl",
                "1h",
            ])
            .ok_json();
        secrets.push(j["secret"].as_str().unwrap().to_owned());
    }
    let page = srv
        .talos(&[
            "keys",
            "issued",
            "list",
            "--actor",
            &actor,
            "--page-size",
            "2",
        ])
        .ok_json();
    assert_eq!(page["issued_api_keys"].as_array().unwrap().len(), 2);
    let token = page["next_page_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let next = srv
        .talos(&[
            "keys",
            "issued",
            "list",
            "--actor",
            &actor,
            "--page-size",
            "2",
            "--page-token",
            &token,
        ])
        .ok_json();
    assert_eq!(next["issued_api_keys"].as_array().unwrap().len(), 2);
    let all = srv
        .talos(&[
            "keys",
            "issued",
            "list",
            "--actor",
            &actor,
            "--page-size",
            "2",
            "--all",
        ])
        .ok_json();
    assert_eq!(all["issued_api_keys"].as_array().unwrap().len(), 5, "{all}");
    let active = srv
        .talos(&[
            "keys", "issued", "list", "--actor", &actor, "--status", "active", "--all",
        ])
        .ok_json();
    assert_eq!(active["issued_api_keys"].as_array().unwrap().len(), 5);

    // Batch verify: order kept, one bad credential → exit 1.
    let out = srv.talos(&[
        "keys",
        "batch-verify",
        &secrets[0],
        "not-a-key",
        &secrets[1],
    ]);
    let doc = out.json_with_code(1);
    let r = doc["results"].as_array().unwrap();
    assert_eq!(
        r.iter()
            .map(|x| x["is_active"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, false, true]
    );
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("creds.txt");
    std::fs::write(&list, format!("{}\n\n{}\n", secrets[2], secrets[3])).unwrap();
    let doc = srv
        .talos(&["keys", "batch-verify", "--file", path(&list), "--no-cache"])
        .ok_json();
    assert_eq!(doc["results"].as_array().unwrap().len(), 2);

    // Self-revoke by proof of possession; idempotent; then the key no longer verifies.
    srv.talos(&[
        "keys",
        "self-revoke",
        &secrets[4],
        "--reason",
        "key_compromise",
    ])
    .ok();
    srv.talos(&["keys", "self-revoke", &secrets[4]]).ok();
    srv.talos(&["keys", "verify", &secrets[4], "--no-cache"])
        .fails(1);
    srv.talos(&[
        "keys",
        "self-revoke",
        &secrets[3],
        "--reason",
        "privilege_withdrawn",
    ])
    .fails(3);

    // YAML carries the same document.
    let y = srv.talos(&["keys", "verify", &secrets[0], "--format", "yaml"]);
    assert_eq!(y.code, 0, "{}", y.stderr);
    let yv: Value = serde_yaml_ng::from_str(&y.stdout).unwrap();
    assert_eq!(yv["is_active"], true);

    // -q in table format prints only the essential value.
    let q = srv
        .talos(&[
            "keys", "issue", "quiet", "--actor", &actor, "--format", "table", "-q",
        ])
        .ok_text();
    assert!(
        q.trim().starts_with("talos_v1_") && q.trim().lines().count() == 1,
        "{q}"
    );

    // Rate limit and CIDRs round-trip; clearing through the mask.
    let j = srv
        .talos(&[
            "keys",
            "issue",
            "limited",
            "--actor",
            &actor,
            "--rate-limit-quota",
            "100",
            "--rate-limit-window",
            "60s",
            "--allowed-cidrs",
            "127.0.0.0/8,::1/128",
        ])
        .ok_json();
    let k = &j["issued_api_key"];
    assert_eq!(k["rate_limit_policy"]["quota"], "100", "{k}");
    assert_eq!(k["rate_limit_policy"]["window"], "60s");
    assert_eq!(
        k["ip_restriction"]["allowed_cidrs"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    let kid = k["key_id"].as_str().unwrap();
    let u = srv
        .talos(&[
            "keys",
            "issued",
            "update",
            kid,
            "--update-mask",
            "ip_restriction,rate_limit_policy",
        ])
        .ok_json();
    assert!(u["rate_limit_policy"].is_null(), "{u}");
    assert!(
        u["ip_restriction"].is_null() || u["ip_restriction"]["allowed_cidrs"] == json!([]),
        "{u}"
    );
    // Allowed CIDRs are enforced: this key only verifies from loopback, which we are.
    assert_eq!(
        srv.talos(&["keys", "verify", j["secret"].as_str().unwrap()])
            .ok_json()["is_active"],
        true
    );
}

#[test]
fn local_commands_and_server_passthrough() {
    let srv = Server::start();
    let j = run_talos(&["jwk", "generate", "eddsa", "--kid", "k1"], None, None).ok_json();
    assert_eq!(j["keys"][0]["kid"], "k1");
    assert_eq!(j["keys"][0]["crv"], "Ed25519");
    let url = run_talos(&["jwk", "generate", "eddsa", "--base64-url"], None, None).ok_text();
    assert!(url.trim().starts_with("base64://"), "{url}");
    for shell in ["bash", "zsh", "fish"] {
        let c = run_talos(&["completion", shell], None, None).ok_text();
        assert!(c.contains("batch-import"), "{shell}");
    }
    let v = run_talos(&["version"], None, None).ok_json();
    assert_eq!(v["client"]["version"], env!("CARGO_PKG_VERSION"));
    let v = srv.talos(&["version", "--server"]).ok_json();
    assert!(v["server"]["version"].is_string(), "{v}");
    let jwks = srv.jwks();
    assert!(jwks.contains("docker-dev-001"), "{jwks}");

    // `talos migrate …` runs talos-server beside it with the same arguments (idempotent on the live database).
    let out = run_talos_env(&["migrate", "up", "--database", srv.dsn()], &[]);
    assert_eq!(out.code, 0, "talos migrate up: {}", out.stderr);
    let out = run_talos_env(&["migrate", "status", "--database", srv.dsn()], &[]);
    assert_eq!(out.code, 0, "talos migrate status: {}", out.stderr);
}
