//! `/version`'s `config_hash`: a fingerprint of the effective configuration that tells operators
//! whether two nodes run the same settings, computed with every secret value removed. A hash of
//! the file bytes would let anyone who can read `/version` test guesses of a weak HMAC secret
//! offline.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Sections, Tree};

/// What a secret value is replaced with before hashing.
pub const REDACTED: &str = "[REDACTED]";

/// Hex SHA-256 (first 16 bytes) of the whole tree as JSON with secrets removed: the domain's
/// here, the program's by [`Sections::redact`].
pub fn config_hash<S: Sections>(tree: &Tree<S>) -> String {
    // `Secret` values (HMAC secrets, the Redis password) already serialize as a placeholder.
    let mut v = serde_json::to_value(tree).expect("the config serializes");
    // JWK sets inline in `base64://` URLs carry private keys; `file://` paths are not secret.
    if let Some(urls) = v
        .pointer_mut("/credentials/derived_tokens/jwt/signing_keys/urls")
        .and_then(Value::as_array_mut)
    {
        for u in urls {
            if u.as_str().is_some_and(|s| s.starts_with("base64://")) {
                *u = Value::String(format!("base64://{REDACTED}"));
            }
        }
    }
    if let Some(dsn) = v.pointer_mut("/db/dsn") {
        let redacted = redact_dsn(dsn.as_str().unwrap_or_default());
        *dsn = Value::String(redacted);
    }
    S::redact(&mut v);
    let bytes = serde_json::to_vec(&v).expect("a JSON value serializes");
    hex::encode(&Sha256::digest(&bytes)[..16])
}

/// Drops the password of `scheme://user:password@host/…` and the query (which may hold one).
fn redact_dsn(dsn: &str) -> String {
    let without_query = dsn.split('?').next().unwrap_or(dsn);
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return without_query.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:{REDACTED}@{host}")
        }
        None => without_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NoSections, load_tree_str};

    fn hash(yaml: &str) -> String {
        config_hash(
            &load_tree_str::<NoSections>(yaml, "t.yaml", &Default::default())
                .unwrap()
                .0,
        )
    }

    #[test]
    fn the_hash_ignores_secret_values_and_follows_settings() {
        let base = |secret: &str, pw: &str, conns: u16| {
            format!(
                "secrets: {{ hmac: {{ current: \"{secret}\", retired: [\"{secret}-old\"] }} }}\ndb: {{ max_conns: {conns}, dsn: \"postgres://talos:{pw}@db:5432/talos?password={pw}\" }}\ncache: {{ redis: {{ password: \"{pw}\" }} }}\ncredentials: {{ derived_tokens: {{ jwt: {{ signing_keys: {{ urls: [\"base64://{pw}\"] }} }} }} }}\n"
            )
        };
        let a = hash(&base("first-secret-0123456789abcdefghijklmnop", "pw1", 80));
        assert_eq!(a.len(), 32);
        assert_eq!(
            a,
            hash(&base("other-secret-0123456789abcdefghijklmnop", "pw2", 80)),
            "secret values do not change the hash"
        );
        assert_ne!(
            a,
            hash(&base("first-secret-0123456789abcdefghijklmnop", "pw1", 81))
        );
        assert_eq!(
            redact_dsn("postgres://u:p@h:5432/db?sslmode=x"),
            "postgres://u:[REDACTED]@h:5432/db"
        );
        assert_eq!(redact_dsn("sqlite://talos.db"), "sqlite://talos.db");
    }
}
