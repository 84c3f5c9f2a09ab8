//! `serve --dev`: an embedded SQLite database and generated secrets in the working directory,
//! created once and reused, so keys survive restarts.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use serde_json::{Value, json};

pub const DB_FILE: &str = "talos-dev.db";
pub const SECRETS_FILE: &str = "talos-dev.secrets.json";

fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..64)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Reads the dev secrets file, creating it (mode 0600) on first use.
fn secrets(dir: &Path) -> anyhow::Result<Value> {
    let path = dir.join(SECRETS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON; delete it to start over",
                path.display()
            )
        });
    }
    let value = json!({
        "hmac_secret": random_secret(),
        "jwks": talos_credentials::jwt::generate_eddsa_jwk("talos-dev"),
    });
    let text = serde_json::to_string_pretty(&value)?;
    write_private(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(value)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Creates the dev database file owner-only before SQLite opens it (SQLite gives its `-wal` and
/// `-shm` files the database's mode), and tightens one created by an older version.
fn private_database(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let p = path.with_file_name(format!("{DB_FILE}{suffix}"));
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("restricting {}", p.display()))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The development defaults, as the lowest configuration layer.
pub fn base_config(dir: &Path) -> anyhow::Result<Value> {
    let s = secrets(dir)?;
    private_database(&dir.join(DB_FILE))?;
    let hmac = s["hmac_secret"]
        .as_str()
        .context("hmac_secret missing from the dev secrets file")?;
    let jwks = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&s["jwks"])?);
    Ok(json!({
        "serve": { "http": { "host": "127.0.0.1", "port": 4420 }, "metrics": { "host": "127.0.0.1", "port": 4422 } },
        "credentials": {
            "issuer": "http://127.0.0.1:4420",
            "api_keys": { "default_ttl": "720h" },
            "derived_tokens": { "jwt": { "signing_keys": { "urls": [format!("base64://{jwks}")] } } },
        },
        "secrets": { "hmac": { "current": hmac } },
        "db": { "dsn": format!("sqlite://{DB_FILE}") },
        "cache": { "type": "memory" },
        "log": { "format": "text" },
    }))
}

pub const BANNER: &str = "\
================================================================================
  DEVELOPMENT SETUP (serve --dev): embedded SQLite in ./talos-dev.db and a
  generated secret in ./talos-dev.secrets.json. Do not use in production.
================================================================================";
