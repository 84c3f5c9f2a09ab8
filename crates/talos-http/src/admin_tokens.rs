//! Admin tokens (`serve.http.admin_auth.tokens`): bearer tokens for `/v2alpha1/admin/*`, kept only
//! as SHA-256 digests, each with a name (for audit events) and scopes.
//!
//! The token set lives in [`Access`](crate::Access) and is swapped atomically when the server
//! reloads its configuration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use talos_core::config::ConfigError;

/// What an admin token may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Admin,
    /// GET and list.
    KeysRead,
    /// Issue, import, batch import, update, rotate, revoke, delete.
    KeysWrite,
    /// Verify, batch verify, derive.
    KeysVerify,
    /// Usage ingest and balances.
    UsageWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Admin,
        Scope::KeysRead,
        Scope::KeysWrite,
        Scope::KeysVerify,
        Scope::UsageWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::KeysRead => "keys:read",
            Scope::KeysWrite => "keys:write",
            Scope::KeysVerify => "keys:verify",
            Scope::UsageWrite => "usage:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured token: `{name, sha256, scopes}`. The digest is of the token's UTF-8 bytes,
/// as 64 hex characters; the token itself is never configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenConfig {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminAuthConfig {
    /// Empty = the admin API is open (as upstream).
    pub tokens: Vec<AdminTokenConfig>,
}

/// Checks the token list; the message names the entry (never a token: none is configured).
pub fn validate(tokens: &[AdminTokenConfig]) -> Result<(), ConfigError> {
    check(tokens).map_err(|reason| ConfigError::Invalid {
        key: "serve.http.admin_auth.tokens".into(),
        reason,
    })
}

fn check(tokens: &[AdminTokenConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let at = format!("serve.http.admin_auth.tokens[{i}]");
        if t.name.trim().is_empty() {
            return Err(format!("{at}.name must not be empty"));
        }
        if !names.insert(t.name.as_str()) {
            return Err(format!("{at}.name {:?} is used twice", t.name));
        }
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{at}.sha256 must be 64 hex characters (the SHA-256 of the token; see `talos-server admin-token generate`)"
            ));
        }
        if t.scopes.is_empty() {
            return Err(format!("{at}.scopes must list at least one scope"));
        }
        for s in &t.scopes {
            if Scope::parse(s).is_none() {
                return Err(format!(
                    "{at}.scopes: unknown scope {s:?} (use admin, keys:read, keys:write, keys:verify, usage:write)"
                ));
            }
        }
    }
    Ok(())
}

/// A token that authenticated: its name and scopes.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub name: Arc<str>,
    scopes: Vec<Scope>,
}

impl AdminPrincipal {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == Scope::Admin || *s == scope)
    }
}

#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    principal: AdminPrincipal,
}

/// The configured tokens, as digests.
#[derive(Debug, Default)]
pub struct AdminTokens {
    entries: Vec<Entry>,
}

impl AdminTokens {
    /// Builds from validated config (entries that do not parse are skipped; `validate` refuses them).
    pub fn new(tokens: &[AdminTokenConfig]) -> Self {
        let entries = tokens
            .iter()
            .filter_map(|t| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(&t.sha256, &mut digest).ok()?;
                Some(Entry {
                    digest,
                    principal: AdminPrincipal {
                        name: t.name.as_str().into(),
                        scopes: t.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
                    },
                })
            })
            .collect();
        AdminTokens { entries }
    }

    /// No tokens configured: the admin API is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of `token`, comparing its digest with every entry in constant time (no early
    /// exit, so timing does not tell which entry, or how much of a digest, matched).
    pub fn authenticate(&self, token: &str) -> Option<&AdminPrincipal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&digest)) {
                found = Some(&e.principal);
            }
        }
        found
    }
}

/// Hex SHA-256 of a token, as configured in `sha256`.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, token: &str, scopes: &[&str]) -> AdminTokenConfig {
        AdminTokenConfig {
            name: name.into(),
            sha256: token_digest(token),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tokens_authenticate_by_digest_and_scopes_imply() {
        let t = AdminTokens::new(&[
            cfg("ops", "tok-ops", &["admin"]),
            cfg("reader", "tok-read", &["keys:read"]),
        ]);
        assert!(t.authenticate("tok-nope").is_none());
        assert!(t.authenticate("").is_none());
        let ops = t.authenticate("tok-ops").unwrap();
        assert_eq!(&*ops.name, "ops");
        assert!(Scope::ALL.iter().all(|s| ops.allows(*s)));
        let r = t.authenticate("tok-read").unwrap();
        assert!(r.allows(Scope::KeysRead));
        assert!(!r.allows(Scope::KeysWrite));
        assert!(!r.allows(Scope::Admin));
    }

    #[test]
    fn validation_names_the_entry() {
        assert!(validate(&[cfg("a", "x", &["keys:read"])]).is_ok());
        let bad = [
            (cfg("", "x", &["admin"]), "name"),
            (cfg("a", "x", &[]), "scopes"),
            (cfg("a", "x", &["keys:all"]), "unknown scope"),
            (
                AdminTokenConfig {
                    sha256: "abc".into(),
                    ..cfg("a", "x", &["admin"])
                },
                "sha256",
            ),
        ];
        for (t, want) in bad {
            let e = validate(&[t]).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("tokens[0]"), "{e}");
        }
        let e = validate(&[cfg("a", "x", &["admin"]), cfg("a", "y", &["admin"])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
