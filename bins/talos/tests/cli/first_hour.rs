//! Issue 14: exit codes that tell "refused" (4xx) from "failed" (5xx), help that documents them
//! and shows defaults, help without a server present, and a private failures file.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::support::*;

/// A one-request HTTP server answering `status` with the error envelope.
fn answer_once(status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = format!(
                r#"{{"error":{{"code":{status},"status":"INTERNAL","message":"boom from the test server","details":[]}}}}"#
            );
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn exit_codes_distinguish_refused_failed_and_unreachable() {
    let srv = Server::start();
    // 4xx: the server refused the request.
    let raw = format!("legacy_{}", unique());
    let import = [
        "keys",
        "imported",
        "import",
        "n",
        "--raw-key",
        &raw,
        "--actor",
        "a",
    ];
    srv.talos(&import).ok();
    let dup = srv.talos(&import).fails(3);
    assert!(dup.stderr.contains("409"), "{}", dup.stderr);
    srv.talos(&[
        "keys",
        "issued",
        "get",
        "00000000-0000-4000-8000-000000000000",
    ])
    .fails(3);
    // 5xx: the server failed.
    let url = answer_once(500);
    let out = run_talos(
        &[
            "keys",
            "issued",
            "get",
            "00000000-0000-4000-8000-000000000000",
        ],
        Some(&url),
        None,
    )
    .fails(5);
    assert!(out.stderr.contains("500"), "{}", out.stderr);
    let url = answer_once(503);
    run_talos(&["keys", "verify", "x"], Some(&url), None).fails(5);
    // Nothing listening.
    let url = format!("http://127.0.0.1:{}", free_port());
    run_talos(&["keys", "verify", "x"], Some(&url), None).fails(4);
    // Usage.
    run_talos(&["keys", "issue"], None, None).fails(2);
}

#[test]
fn help_documents_exit_codes_and_defaults_and_only_applicable_flags() {
    let top = run_talos(&["--help"], None, None);
    let top = top.ok_text();
    for want in [
        "3 the server refused the request (4xx",
        "4 endpoint unreachable",
        "5 the server failed (5xx)",
    ] {
        assert!(top.contains(want), "{want:?} missing:\n{top}");
    }
    let issue = run_talos(&["keys", "issue", "--help"], None, None).ok_text();
    assert!(
        issue.contains("[default: http://localhost:4420]"),
        "{issue}"
    );
    assert!(issue.contains("5 the server failed (5xx)"), "{issue}");
    for args in [
        &["jwk", "generate", "--help"][..],
        &["jwk", "generate", "eddsa", "--help"],
        &["completion", "--help"],
    ] {
        let help = run_talos(args, None, None).ok_text();
        assert!(
            !help.contains("--endpoint") && !help.contains("--quiet"),
            "{args:?} lists flags that do not apply:\n{help}"
        );
    }
    let eddsa = run_talos(&["jwk", "generate", "eddsa", "--help"], None, None).ok_text();
    assert!(
        eddsa.contains("--kid") && eddsa.contains("--format"),
        "{eddsa}"
    );
    // The hidden global flags are still accepted there.
    run_talos(
        &["jwk", "generate", "eddsa", "--kid", "k", "-q"],
        Some("http://x"),
        None,
    )
    .ok();
}

#[test]
fn serve_help_works_with_and_without_talos_server() {
    // With the server beside talos: its own help, which names the settings and ports.
    let help = run_talos(&["serve", "--help"], None, None).ok_text();
    for want in ["--dev", "TALOS_", "docs/configuration.md", "4420", "4422"] {
        assert!(help.contains(want), "{want:?} missing:\n{help}");
    }
    let top = std::process::Command::new(server_binary())
        .arg("--help")
        .output()
        .unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.contains("TALOS_") && top.contains("docs/configuration.md"),
        "{top}"
    );

    // A lone talos (no talos-server beside it or on PATH) still prints help, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("talos");
    std::fs::copy(env!("CARGO_BIN_EXE_talos"), &lone).unwrap();
    for sub in ["serve", "migrate"] {
        let out = std::process::Command::new(&lone)
            .args([sub, "--help"])
            .env("PATH", dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("Usage: talos {sub}")), "{stdout}");
        assert!(
            stdout.contains("TALOS_") && stdout.contains("not found"),
            "{stdout}"
        );
    }
    // Running it (not help) still says what is missing.
    let out = std::process::Command::new(&lone)
        .args(["serve", "--dev"])
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("talos-server not found"));
}

#[cfg(unix)]
#[test]
fn the_failures_file_holding_raw_keys_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let srv = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("keys.jsonl");
    // An invalid row (no actor) fails, so its raw key lands in the failures file.
    std::fs::write(
        &input,
        format!("{{\"raw_key\":\"raw_{}\",\"name\":\"n\"}}\n", unique()),
    )
    .unwrap();
    let failures = dir.path().join("failed.jsonl");
    // An existing, world-readable file is narrowed too.
    std::fs::write(&failures, "old").unwrap();
    std::fs::set_permissions(&failures, std::fs::Permissions::from_mode(0o644)).unwrap();
    srv.talos(&[
        "keys",
        "imported",
        "batch-import",
        "--file",
        path(&input),
        "--failures",
        path(&failures),
    ])
    .fails(1);
    let mode = std::fs::metadata(&failures).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "failures file mode {mode:o}");
    assert!(std::fs::read_to_string(&failures).unwrap().contains("raw_"));
}
