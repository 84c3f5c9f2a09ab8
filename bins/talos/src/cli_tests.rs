//! Argument parsing: every documented command line parses, bad ones are usage errors (exit 2).

use clap::Parser;
use serde_json::json;

use crate::cli::*;

fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("talos").chain(line.iter().copied()))
}

fn ok(line: &[&str]) -> Cli {
    parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn docs_command_lines_parse() {
    let docs: &[&[&str]] = &[
        &[
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
            "-e",
            "http://h",
        ],
        &["keys", "verify", "talos_v1_x_y", "-e", "http://h"],
        &["keys", "issued", "get", "k", "-e", "http://h"],
        &[
            "keys",
            "issued",
            "list",
            "--actor",
            "user_42",
            "--page-size",
            "10",
            "-e",
            "http://h",
        ],
        &[
            "keys",
            "issued",
            "update",
            "k",
            "--name",
            "lifecycle-test-updated",
            "--scopes",
            "read",
            "--metadata",
            r#"{"team": "backend", "tier": "premium"}"#,
            "-e",
            "http://h",
        ],
        &[
            "keys",
            "issued",
            "rotate",
            "k",
            "--scopes",
            "read,write,admin",
            "--format",
            "json",
            "-e",
            "http://h",
        ],
        &[
            "keys",
            "revoke",
            "k",
            "--reason",
            "superseded",
            "-e",
            "http://h",
        ],
        &["keys", "verify", "s", "--no-cache", "-e", "http://h"],
        &[
            "keys",
            "derive-token",
            "s",
            "--algorithm",
            "jwt",
            "--ttl",
            "1h",
            "--claims",
            r#"{"role":"preview-user","environment":"demo"}"#,
            "--format",
            "json",
            "-e",
            "http://talos:8080",
        ],
        &[
            "keys",
            "imported",
            "import",
            "Stripe production key",
            "--raw-key",
            "sk_live_test_51OxAM2Qly",
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
            "-e",
            "http://h",
        ],
        &[
            "keys",
            "imported",
            "batch-import",
            "--file",
            "-",
            "-e",
            "http://h",
        ],
        &["keys", "imported", "list", "-e", "http://h"],
        &["keys", "imported", "delete", "abc", "-e", "http://h"],
    ];
    for line in docs {
        let cli = ok(line);
        assert_eq!(
            cli.endpoint.as_deref().map(|e| e.starts_with("http://")),
            Some(true),
            "{line:?}"
        );
    }
}

#[test]
fn issue_fields_are_typed() {
    let cli = ok(&[
        "keys",
        "issue",
        "n",
        "--actor",
        "a",
        "--scopes",
        " a, b ,,",
        "--metadata",
        r#"{"t":1}"#,
        "--rate-limit-quota",
        "100",
        "--allowed-cidrs",
        "10.0.0.0/8,::1/128",
        "--request-id",
        "r1",
    ]);
    let Command::Keys {
        command: KeysCommand::Issue(a),
    } = cli.command
    else {
        panic!("{cli:?}")
    };
    assert_eq!(a.name.as_deref(), Some("n"));
    assert_eq!(a.fields.scopes_list().unwrap(), ["a", "b"]);
    assert_eq!(
        serde_json::Value::Object(a.fields.metadata.clone().unwrap()),
        json!({"t": 1})
    );
    let p = a.fields.policy().unwrap();
    assert_eq!((p.quota, p.window.as_str()), (Some(100), "60s"));
    assert_eq!(
        a.fields.ip_restriction().unwrap().allowed_cidrs,
        ["10.0.0.0/8", "::1/128"]
    );
    assert!(a.ttl.is_none(), "--ttl is only sent when given");
}

#[test]
fn global_flags_anywhere() {
    for line in [
        &[
            "-e", "http://a", "--format", "yaml", "-q", "keys", "verify", "x",
        ][..],
        &[
            "keys", "-e", "http://a", "verify", "--format", "yaml", "x", "-q",
        ],
        &[
            "keys",
            "verify",
            "x",
            "--endpoint=http://a",
            "--format=yaml",
            "--quiet",
        ],
    ] {
        let cli = ok(line);
        assert_eq!(cli.endpoint.as_deref(), Some("http://a"), "{line:?}");
        assert_eq!(cli.format, Some(Format::Yaml));
        assert!(cli.quiet);
    }
}

#[test]
fn upstreams_formats_config_and_aliases() {
    for (line, want) in [
        (
            &["keys", "verify", "x", "--format", "jsonpath=$.is_valid"][..],
            Some(Format::JsonPath("$.is_valid".into())),
        ),
        (
            &[
                "--format=jsonpointer=/secret",
                "keys",
                "issue",
                "n",
                "--actor",
                "a",
            ],
            Some(Format::JsonPointer("/secret".into())),
        ),
        (
            &["keys", "verify", "x", "--format", "json-pretty"],
            Some(Format::JsonPretty),
        ),
    ] {
        assert_eq!(ok(line).format, want, "{line:?}");
    }
    for line in [
        &["--config", "c.yaml", "keys", "verify", "x"][..],
        &["keys", "verify", "--config", "c.yaml", "x"],
        &["keys", "verify", "x", "--config=c.yaml"],
        &["jwk", "get", "--config", "c.yaml"],
    ] {
        assert_eq!(
            ok(line).config.as_deref(),
            Some(std::path::Path::new("c.yaml")),
            "{line:?}"
        );
    }
    let is_issue = |cli: Cli| {
        matches!(
            cli.command,
            Command::Keys {
                command: KeysCommand::Issue(_)
                    | KeysCommand::Issued {
                        command: IssuedCommand::Issue(_)
                    }
            }
        )
    };
    assert!(is_issue(ok(&["keys", "create", "n", "--actor", "a"])));
    assert!(is_issue(ok(&[
        "keys", "issued", "issue", "n", "--actor", "a"
    ])));
    assert!(matches!(
        ok(&["keys", "validate", "x"]).command,
        Command::Keys {
            command: KeysCommand::Verify(_)
        }
    ));
    assert!(matches!(
        ok(&["keys", "imported", "import-batch", "--file", "-"]).command,
        Command::Keys {
            command: KeysCommand::Imported {
                command: ImportedCommand::BatchImport(_)
            }
        }
    ));
}

#[test]
fn jwk_command_lines() {
    for line in [
        &["jwk", "get", "-e", "http://h"][..],
        &["jwk", "generate", "eddsa"],
        &[
            "jwk", "generate", "ecdsa", "--curve", "P-384", "--kid", "k", "--use", "sig",
        ],
        &[
            "jwk",
            "generate",
            "ecdsa",
            "--curve",
            "P-521",
            "--public-only",
            "-o",
            "pub.json",
        ],
        &[
            "jwk", "generate", "rsa", "--bits", "3072", "--alg", "PS256", "--jwks", "old.json",
        ],
        &["jwk", "generate", "hmac", "--bits", "512", "--jwks"],
        &[
            "jwk",
            "generate",
            "eddsa",
            "--use",
            "enc",
            "--output",
            "k.json",
            "--base64-url",
        ],
    ] {
        ok(line);
    }
    for bad in [
        &["jwk", "generate", "ecdsa", "--curve", "P-224"][..],
        &["jwk", "generate", "rsa", "--alg", "ES256"],
        &["jwk", "generate", "eddsa", "--use", "both"],
        &["jwk", "generate", "dsa"],
    ] {
        assert_eq!(parse(bad).err().map(|e| e.exit_code()), Some(2), "{bad:?}");
    }
}

#[test]
fn reasons_accept_snake_kebab_and_wire_names() {
    for (given, want) in [
        ("key_compromise", ReasonArg::KeyCompromise),
        ("affiliation-changed", ReasonArg::AffiliationChanged),
        ("REVOCATION_REASON_SUPERSEDED", ReasonArg::Superseded),
        ("privilege_withdrawn", ReasonArg::PrivilegeWithdrawn),
    ] {
        let cli = ok(&["keys", "issued", "revoke", "k", "--reason", given]);
        let Command::Keys {
            command:
                KeysCommand::Issued {
                    command: IssuedCommand::Revoke(a),
                },
        } = cli.command
        else {
            panic!()
        };
        assert_eq!(a.reason, Some(want));
    }
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let bad: &[&[&str]] = &[
        &[],
        &["keys"],
        &["keys", "issue", "n"], // --actor missing
        &["keys", "issue", "n", "--actor", "a", "--metadata", "[1]"], // not an object
        &["keys", "issue", "n", "--actor", "a", "--metadata", "{"],
        &[
            "keys",
            "issue",
            "n",
            "--actor",
            "a",
            "--rate-limit-quota",
            "0",
        ],
        &[
            "keys",
            "issue",
            "n",
            "--actor",
            "a",
            "--rate-limit-window",
            "60s",
        ], // window without quota
        &["keys", "revoke", "k", "--reason", "bored"],
        &["keys", "derive-token", "s", "--algorithm", "rsa"],
        &["keys", "imported", "import", "n", "--actor", "a"], // --raw-key missing
        &["keys", "imported", "batch-import"],                // --file missing
        &["keys", "batch-verify"],
        &["keys", "verify"],
        &["--format", "xml", "keys", "verify", "x"],
        &["--format", "jsonpath", "keys", "verify", "x"],
        &["--format", "jsonpath=$[", "keys", "verify", "x"],
        &["--format", "jsonpointer=secret", "keys", "verify", "x"],
        &["keys", "issued", "list", "--page-size", "ten"],
        &["completion", "tcsh"],
        &["nope"],
    ];
    for line in bad {
        let e = parse(line)
            .err()
            .unwrap_or_else(|| panic!("{line:?} parsed"));
        assert_eq!(e.exit_code(), 2, "{line:?}: {e}");
    }
}

#[test]
fn help_and_version_exit_zero() {
    for line in [
        &["--help"][..],
        &["--version"],
        &["keys", "issue", "--help"],
    ] {
        let e = parse(line).err().unwrap();
        assert_eq!(e.exit_code(), 0, "{line:?}");
    }
}

#[test]
fn run_maps_usage_errors_to_2() {
    assert_eq!(crate::run(["talos", "keys", "issue"]), 2);
    assert_eq!(
        crate::run([
            "talos",
            "keys",
            "issued",
            "update",
            "k",
            "-e",
            "http://127.0.0.1:9"
        ]),
        2,
        "nothing to update"
    );
    assert_eq!(
        crate::run(["talos", "keys", "verify", "x", "-e", "ftp://nope"]),
        2,
        "bad endpoint URL"
    );
}

#[test]
fn run_maps_unreachable_to_4() {
    assert_eq!(
        crate::run(["talos", "keys", "verify", "x", "-e", "http://127.0.0.1:9"]),
        4
    );
}

#[test]
fn command_tree_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
