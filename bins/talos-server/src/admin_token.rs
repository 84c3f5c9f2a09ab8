//! `admin-token generate`: a new admin API token and its config entry.

use anyhow::bail;
use base64::Engine;
use talos_core::config::ConfigError;
use talos_http::admin_tokens::{AdminTokenConfig, token_digest, validate};

/// `talos_admin_` + 32 random bytes (256 bits) in unpadded base64url.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "talos_admin_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The YAML list entry for `serve.http.admin_auth.tokens`.
fn entry_yaml(entry: &AdminTokenConfig) -> String {
    let scopes: Vec<String> = entry
        .scopes
        .iter()
        .map(|s| serde_json::Value::String(s.clone()).to_string())
        .collect();
    format!(
        "- name: {}\n  sha256: \"{}\"\n  scopes: [{}]\n",
        serde_json::Value::String(entry.name.clone()),
        entry.sha256,
        scopes.join(", ")
    )
}

/// Prints the token on stdout (for a secret store) and the entry on stderr (for the config).
pub fn generate(name: &str, scopes: &[String]) -> anyhow::Result<()> {
    let token = new_token();
    let entry = AdminTokenConfig {
        name: name.to_string(),
        sha256: token_digest(&token),
        scopes: scopes
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    if let Err(e) = validate(std::slice::from_ref(&entry)) {
        let reason = match e {
            ConfigError::Invalid { reason, .. } => reason,
            other => other.to_string(),
        };
        bail!(
            "{}",
            reason.replace("serve.http.admin_auth.tokens[0].", "--")
        );
    }
    println!("{token}");
    eprintln!(
        "# Add under serve.http.admin_auth.tokens (the server keeps only the digest):\n{}",
        entry_yaml(&entry)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_the_entry_parses() {
        let a = new_token();
        assert!(a.starts_with("talos_admin_"));
        assert_eq!(a.len(), "talos_admin_".len() + 43, "32 bytes of entropy");
        assert_ne!(a, new_token());
        let entry = AdminTokenConfig {
            name: "ci: deploy".into(),
            sha256: token_digest(&a),
            scopes: vec!["keys:read".into(), "keys:write".into()],
        };
        let parsed: Vec<AdminTokenConfig> = serde_yaml_ng::from_str(&entry_yaml(&entry)).unwrap();
        assert_eq!(parsed, vec![entry]);
    }
}
