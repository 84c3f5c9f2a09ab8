//! `talos serve …` / `talos migrate …`: run `talos-server` with the same arguments, so the docs' single-binary
//! commands work. The server is looked up beside this executable first (a release ships both together), then
//! on `PATH`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::exit::CliError;

const SERVER: &str = "talos-server";

/// If the command line's first word (after global flags) is `serve` or `migrate`, the arguments for
/// `talos-server` from that word on. Done before clap so every flag reaches the server untouched.
/// A `--config FILE` among the global flags before the word is passed on after it (talos-server
/// takes it there).
pub fn passthrough(args: &[OsString]) -> Option<Vec<OsString>> {
    let mut i = 1;
    let mut config: Vec<OsString> = Vec::new();
    while i < args.len() {
        let a = args[i].to_str()?;
        match a {
            "--config" => {
                config = args.get(i..i + 2)?.to_vec();
                i += 2;
            }
            _ if a.starts_with("--config=") => {
                config = vec![args[i].clone()];
                i += 1;
            }
            "-e" | "--endpoint" | "--format" | "--token" | "--ca-cert" => i += 2,
            "-q" | "--quiet" => i += 1,
            _ if ["--endpoint=", "--format=", "--token=", "--ca-cert="]
                .iter()
                .any(|p| a.starts_with(p)) =>
            {
                i += 1
            }
            _ if a.starts_with("-e") && a.len() > 2 => i += 1,
            "serve" | "migrate" => {
                let mut out = args[i..].to_vec();
                out.extend(config);
                return Some(out);
            }
            _ => return None,
        }
    }
    None
}

/// The API address a server configuration file serves on (`serve.http.host`, `port`, and `tls`
/// for https), for client commands given `--config` but no endpoint. A wildcard host (`0.0.0.0`,
/// `::`) is reached on loopback.
pub fn endpoint_from_config(path: &std::path::Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read --config {}: {e}", path.display())))?;
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| CliError::Usage(format!("--config {}: {e}", path.display())))?;
    let http = &doc["serve"]["http"];
    let host = match http["host"].as_str().map(str::trim) {
        None | Some("" | "0.0.0.0") => "127.0.0.1".to_owned(),
        Some("::" | "[::]") => "[::1]".to_owned(),
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        Some(h) => h.to_owned(),
    };
    let port = match &http["port"] {
        serde_json::Value::Null => 4420,
        v => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--config {}: serve.http.port is not a port number",
                    path.display()
                ))
            })?,
    };
    let tls = http["tls"]["cert_file"]
        .as_str()
        .is_some_and(|c| !c.trim().is_empty());
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}:{port}"))
}

fn find_server() -> Option<PathBuf> {
    let name = format!("{SERVER}{}", std::env::consts::EXE_SUFFIX);
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        let beside = dir.join(&name);
        if beside.is_file() {
            return Some(beside);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
}

/// What `talos serve|migrate --help` prints when there is no `talos-server` to ask: help must not
/// need the thing it explains how to install.
fn fallback_help(sub: &str) -> String {
    let usage = match sub {
        "migrate" => {
            "Usage: talos migrate <up|down|status|force> [--database DSN] [--config FILE]\n\n\
             \x20 up                 apply every pending migration (PostgreSQL; SQLite migrates itself on serve)\n\
             \x20 down [--steps N]   revert the newest N applied migrations (default 1)\n\
             \x20 status             list the migrations and whether each is applied\n\
             \x20 force VERSION      record the migrations up to VERSION as applied, running none\n\
             \x20     --database DSN postgres://USER:PASSWORD@HOST:5432/DB or sqlite://PATH\n\
             \x20                    (else TALOS_DB_DSN, DB_DSN, DSN)\n\
             \x20 -c, --config FILE  read db.dsn from this configuration file"
        }
        _ => {
            "Usage: talos serve [--config FILE] [--dev]\n\n\
             \x20 -c, --config FILE  YAML configuration file (watched: secrets and credentials reload on change)\n\
             \x20     --dev          development setup: SQLite and a generated secret in the working directory,\n\
             \x20                    on http://127.0.0.1:4420 (metrics and health on :4422)"
        }
    };
    format!(
        "Runs `{SERVER} {sub} …` with the same arguments ({SERVER} is looked up beside this executable, then on PATH).\n\n\
         {usage}\n\n\
         Every setting also comes from TALOS_* environment variables (TALOS_ + the key path upper-cased, . -> _,\n\
         e.g. TALOS_DB_DSN, TALOS_SECRETS_HMAC_CURRENT); see docs/configuration.md. Default ports: API 4420, metrics 4422.\n\n\
         note: {SERVER} was not found beside this executable or on PATH, so this is talos's summary of its\n\
         help; install it (e.g. `cargo build --bin {SERVER}`) for the full text.\n"
    )
}

fn wants_help(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .any(|a| a == "--help" || a == "-h" || a == "help")
}

/// Replaces this process with `talos-server ARGS` (on Unix; elsewhere runs it and returns its exit code).
pub fn exec(args: Vec<OsString>) -> Result<i32, CliError> {
    let Some(path) = find_server() else {
        if wants_help(&args) {
            let sub = args.first().and_then(|a| a.to_str()).unwrap_or("serve");
            print!("{}", fallback_help(sub));
            return Ok(crate::exit::OK);
        }
        return Err(CliError::Failed(format!(
            "{SERVER} not found beside this executable or on PATH; install it to run the server"
        )));
    };
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&args);
    run(cmd).map_err(|e| CliError::Failed(format!("cannot run {}: {e}", path.display())))
}

/// Unix: `exec` keeps the pid, so signals (Ctrl-C, SIGTERM from a supervisor) reach the server directly.
#[cfg(unix)]
fn run(mut cmd: std::process::Command) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec())
}

#[cfg(not(unix))]
fn run(mut cmd: std::process::Command) -> std::io::Result<i32> {
    Ok(cmd.status()?.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn config_names_the_api_address() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "serve:\n  http: { host: \"0.0.0.0\", port: 8080 }\n",
                "http://127.0.0.1:8080",
            ),
            ("credentials: { issuer: x }\n", "http://127.0.0.1:4420"),
            (
                "serve:\n  http:\n    host: \"::\"\n    port: \"9000\"\n",
                "http://[::1]:9000",
            ),
            (
                "serve:\n  http:\n    host: talos.internal\n    tls: { cert_file: c.pem, key_file: k.pem }\n",
                "https://talos.internal:4420",
            ),
        ];
        for (yaml, want) in cases {
            let p = dir.path().join("c.yaml");
            std::fs::write(&p, yaml).unwrap();
            assert_eq!(endpoint_from_config(&p).unwrap(), want, "{yaml}");
        }
        std::fs::write(
            dir.path().join("bad.yaml"),
            "serve: { http: { port: nope } }",
        )
        .unwrap();
        assert!(matches!(
            endpoint_from_config(&dir.path().join("bad.yaml")),
            Err(CliError::Usage(_))
        ));
        assert!(endpoint_from_config(&dir.path().join("missing.yaml")).is_err());
    }

    #[test]
    fn serve_and_migrate_pass_through_after_global_flags() {
        for (line, want) in [
            (
                &["talos", "serve", "--config", "c.yaml"][..],
                Some(&["serve", "--config", "c.yaml"][..]),
            ),
            (
                &[
                    "talos",
                    "-e",
                    "http://x",
                    "-q",
                    "migrate",
                    "up",
                    "--database",
                    "sqlite://t.db",
                ],
                Some(&["migrate", "up", "--database", "sqlite://t.db"]),
            ),
            (
                &["talos", "--format=json", "serve", "--help"],
                Some(&["serve", "--help"]),
            ),
            (
                &["talos", "--token", "t", "serve", "admin"][..],
                Some(&["serve", "admin"][..]),
            ),
            (
                &["talos", "--config", "c.yaml", "serve", "admin"][..],
                Some(&["serve", "admin", "--config", "c.yaml"][..]),
            ),
            (
                &["talos", "--config=c.yaml", "-q", "migrate", "status"][..],
                Some(&["migrate", "status", "--config=c.yaml"][..]),
            ),
            (
                &["talos", "migrate", "up", "--config", "c.yaml"][..],
                Some(&["migrate", "up", "--config", "c.yaml"][..]),
            ),
            (&["talos", "keys", "serve"], None),
            (&["talos", "--config"], None),
            (&["talos", "--help"], None),
            (&["talos"], None),
        ] {
            assert_eq!(passthrough(&os(line)), want.map(os), "{line:?}");
        }
    }
}
