//! EdDSA (Ed25519) JWTs for derived tokens, on `ed25519-dalek` directly.
//!
//! Keys come from JWK Sets (`{"keys":[…]}`) of OKP/Ed25519 keys. A key of another type (RSA, EC, `oct`, X25519)
//! is refused with an error naming it, rather than skipped: upstream would sign with an RSA key (RS256), so a
//! configuration written for upstream must not start here and quietly sign or verify differently. Private parts
//! (`d`) never leave this module: `Debug` and [`Jwks::public_jwks`] show public members only.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};

use crate::b64::{self, URL_NO_PAD};
use crate::{CredentialsError, DerivedClaims};

/// Scheme of inline JWKS URLs.
pub const BASE64_SCHEME: &str = "base64://";
/// The only signing algorithm.
pub const ALG_EDDSA: &str = "EdDSA";
/// Longest JWT [`Jwks::verify`] looks at.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// One Ed25519 key of a JWK Set.
#[derive(Clone)]
pub struct Jwk {
    kid: Option<String>,
    key_use: Option<String>,
    verifying: VerifyingKey,
    signing: Option<SigningKey>,
}

impl Jwk {
    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `use` member, if any.
    pub fn key_use(&self) -> Option<&str> {
        self.key_use.as_deref()
    }

    /// Whether the private part (`d`) is present.
    pub fn has_private(&self) -> bool {
        self.signing.is_some()
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Whether the key may verify signatures (`use` absent or `sig`).
    fn verifies(&self) -> bool {
        self.key_use.as_deref().is_none_or(|u| u == "sig")
    }

    /// The public JWK: `kty`, `crv`, `x`, `kid`, `use`, `alg`.
    pub fn public_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kty".into(), "OKP".into());
        m.insert("crv".into(), "Ed25519".into());
        m.insert(
            "x".into(),
            URL_NO_PAD.encode(self.verifying.as_bytes()).into(),
        );
        if let Some(kid) = &self.kid {
            m.insert("kid".into(), kid.clone().into());
        }
        if let Some(u) = &self.key_use {
            m.insert("use".into(), u.clone().into());
        }
        m.insert("alg".into(), ALG_EDDSA.into());
        Value::Object(m)
    }

    fn from_json(obj: &Map<String, Value>, index: usize) -> Result<Jwk, CredentialsError> {
        let s = |name: &str| obj.get(name).and_then(Value::as_str);
        let err = |msg: &str| CredentialsError::InvalidJwks(format!("key {index}: {msg}"));
        if s("kty") != Some("OKP") || s("crv") != Some("Ed25519") {
            return Err(unusable(obj, index));
        }
        if let Some(alg) = obj.get("alg")
            && !matches!(alg.as_str(), Some("EdDSA" | "Ed25519"))
        {
            return Err(err("alg of an Ed25519 key must be EdDSA"));
        }
        let x = s("x").ok_or_else(|| err("missing x"))?;
        let x: [u8; 32] = URL_NO_PAD
            .decode(x)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| err("x must be 32 bytes of unpadded base64url"))?;
        let verifying =
            VerifyingKey::from_bytes(&x).map_err(|_| err("x is not a valid Ed25519 point"))?;
        let signing = match obj.get("d") {
            None => None,
            Some(d) => {
                let d: [u8; 32] = d
                    .as_str()
                    .and_then(|d| URL_NO_PAD.decode(d).ok())
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| err("d must be 32 bytes of unpadded base64url"))?;
                let sk = SigningKey::from_bytes(&d);
                if sk.verifying_key() != verifying {
                    return Err(err("d does not match x"));
                }
                Some(sk)
            }
        };
        let opt = |name: &str| -> Result<Option<String>, CredentialsError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(v)) => Ok(Some(v.clone())),
                Some(_) => Err(err(&format!("{name} must be a string"))),
            }
        };
        Ok(Jwk {
            kid: opt("kid")?,
            key_use: opt("use")?,
            verifying,
            signing,
        })
    }

    fn sign_bytes(&self, message: &[u8]) -> Option<Signature> {
        self.signing.as_ref().map(|sk| sk.sign(message))
    }
}

/// The error for a key that is not OKP/Ed25519: what it is (`kty`, `crv`, `alg`, `kid`) and what
/// to use instead. Never any key material.
fn unusable(obj: &Map<String, Value>, index: usize) -> CredentialsError {
    let member = |name: &str| match obj.get(name) {
        Some(Value::String(v)) => format!(" {name} {v:?}"),
        Some(_) => format!(" {name} (not a string)"),
        None => String::new(),
    };
    let what = ["kty", "crv", "alg", "kid"]
        .iter()
        .map(|m| member(m))
        .collect::<String>();
    CredentialsError::InvalidJwks(format!(
        "key {index} ({}) cannot be used: derived JWTs are signed and verified with EdDSA \
         (kty \"OKP\", crv \"Ed25519\") only; replace it with a key from `talos jwk generate eddsa`",
        what.trim_start()
    ))
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("use", &self.key_use)
            .field("x", &URL_NO_PAD.encode(self.verifying.as_bytes()))
            .field("has_private", &self.signing.is_some())
            .finish()
    }
}

/// A set of Ed25519 JWKs used to sign and verify derived JWTs.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWK Set (`{"keys":[…]}`) or a single JWK object. A key that is not OKP/Ed25519, or a malformed
    /// one, is an error naming its index.
    pub fn from_json(bytes: &[u8]) -> Result<Jwks, CredentialsError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| CredentialsError::InvalidJwks(format!("not JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(CredentialsError::InvalidJwks(
                "expected a JSON object".into(),
            ));
        };
        let items: Vec<Map<String, Value>> = if obj.contains_key("kty") {
            vec![obj]
        } else {
            match obj.get("keys") {
                Some(Value::Array(keys)) => keys
                    .iter()
                    .map(|k| match k {
                        Value::Object(m) => Ok(m.clone()),
                        _ => Err(CredentialsError::InvalidJwks(
                            "keys must hold objects".into(),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(CredentialsError::InvalidJwks(
                        "missing \"keys\" array".into(),
                    ));
                }
            }
        };
        let keys = items
            .iter()
            .enumerate()
            .map(|(i, item)| Jwk::from_json(item, i))
            .collect::<Result<_, _>>()?;
        Ok(Jwks { keys })
    }

    /// Appends the keys of another set (for several `signing_keys.urls`).
    pub fn extend(&mut self, other: Jwks) {
        self.keys.extend(other.keys);
    }

    /// The Ed25519 keys, in order.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Picks the signing key: with `signing_key_id`, the private key with exactly that `kid`
    /// ([`CredentialsError::SigningKeyNotFound`] if none); otherwise the first private key with `use: "sig"`, else
    /// the first private key not marked for another use ([`CredentialsError::NoSigningKey`] if none).
    pub fn signing_key(&self, signing_key_id: Option<&str>) -> Result<&Jwk, CredentialsError> {
        let private = || self.keys.iter().filter(|k| k.has_private());
        match signing_key_id.filter(|id| !id.is_empty()) {
            Some(id) => private()
                .find(|k| k.kid() == Some(id))
                .ok_or_else(|| CredentialsError::SigningKeyNotFound(id.to_owned())),
            None => private()
                .find(|k| k.key_use() == Some("sig"))
                .or_else(|| private().find(|k| k.verifies()))
                .ok_or(CredentialsError::NoSigningKey),
        }
    }

    /// Signs `claims` with `key`: header `{"alg":"EdDSA","kid":…,"typ":"JWT"}` (no `kid` if the key has none).
    pub fn sign(&self, key: &Jwk, claims: &DerivedClaims) -> Result<String, CredentialsError> {
        sign(key, claims)
    }

    /// Verifies a JWT's signature and returns its claims. Time, issuer and network checks are the caller's (see
    /// [`crate::check_times`]).
    ///
    /// The header must say `alg` `EdDSA` (or `Ed25519`) and carry no `crit`. With a `kid`, only keys with that id
    /// are tried; without, every key. Signatures are checked with `verify_strict`.
    pub fn verify(&self, token: &str) -> Result<DerivedClaims, CredentialsError> {
        let malformed = CredentialsError::MalformedToken;
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has three parts"));
        };
        let header = URL_NO_PAD
            .decode(h64)
            .map_err(|_| malformed("header is not base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&header)
            .map_err(|_| malformed("header is not a JSON object"))?;
        if !matches!(
            header.get("alg").and_then(Value::as_str),
            Some("EdDSA" | "Ed25519")
        ) {
            return Err(malformed("unsupported alg"));
        }
        if header.contains_key("crit") {
            return Err(malformed("unsupported crit header"));
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(malformed("kid must be a string")),
        };
        let sig: [u8; 64] = URL_NO_PAD
            .decode(s64)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(malformed("signature must be 64 bytes of base64url"))?;
        let sig = Signature::from_bytes(&sig);
        let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        let valid = self
            .keys
            .iter()
            .filter(|k| k.verifies() && (kid.is_none() || k.kid() == kid))
            .any(|k| k.verifying.verify_strict(signing_input, &sig).is_ok());
        if !valid {
            return Err(CredentialsError::SignatureInvalid);
        }
        let payload = URL_NO_PAD
            .decode(p64)
            .map_err(|_| malformed("payload is not base64url"))?;
        DerivedClaims::from_json(&payload)
    }

    /// The public JWK Set, `{"keys":[…]}`, with public members only (`kty`, `crv`, `x`, `kid`, `use`, `alg`).
    /// Keys marked for a use other than `sig` are left out.
    pub fn public_jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| k.verifies())
            .map(Jwk::public_json)
            .collect();
        json!({ "keys": keys })
    }
}

/// Signs `claims` with `key` (see [`Jwks::sign`]).
pub fn sign(key: &Jwk, claims: &DerivedClaims) -> Result<String, CredentialsError> {
    let mut header = String::from("{\"alg\":\"EdDSA\"");
    if let Some(kid) = key.kid() {
        header.push_str(",\"kid\":");
        header.push_str(&Value::String(kid.to_owned()).to_string());
    }
    header.push_str(",\"typ\":\"JWT\"}");
    let mut token = URL_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_NO_PAD.encode(claims.to_json()));
    let sig = key.sign_bytes(token.as_bytes()).ok_or_else(|| {
        CredentialsError::SigningKeyNotFound(key.kid().unwrap_or_default().to_owned())
    })?;
    token.push('.');
    token.push_str(&URL_NO_PAD.encode(sig.to_bytes()));
    Ok(token)
}

/// Decodes a `base64://` URL (standard or URL-safe alphabet, padded or not). `file://` URLs are read by the caller.
pub fn decode_base64_url(url: &str) -> Result<Vec<u8>, CredentialsError> {
    let body = url
        .strip_prefix(BASE64_SCHEME)
        .ok_or(CredentialsError::InvalidBase64Url(
            "expected a base64:// URL",
        ))?;
    b64::decode_any(body).ok_or(CredentialsError::InvalidBase64Url(
        "the payload is not valid base64",
    ))
}

/// Encodes bytes (a JWK Set) as a `base64://` URL (standard alphabet, padded).
pub fn encode_base64_url(bytes: &[u8]) -> String {
    format!(
        "{BASE64_SCHEME}{}",
        base64::prelude::BASE64_STANDARD.encode(bytes)
    )
}

/// Generates a new Ed25519 key as a private JWK Set, `{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA",
/// "use":"sig","kid":…,"x":…,"d":…}]}`, usable in `signing_keys.urls` (via [`encode_base64_url`] or a file).
pub fn generate_eddsa_jwk(kid: &str) -> Value {
    let sk = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    json!({
        "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": ALG_EDDSA,
            "use": "sig",
            "kid": kid,
            "x": URL_NO_PAD.encode(sk.verifying_key().as_bytes()),
            "d": URL_NO_PAD.encode(sk.to_bytes()),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 section 7.1, test 1.
    const RFC_D: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_X: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC_SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn rfc_jwks() -> Jwks {
        let d = URL_NO_PAD.encode(hex::decode(RFC_D).unwrap());
        let x = URL_NO_PAD.encode(hex::decode(RFC_X).unwrap());
        let set = json!({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"rfc","x":x,"d":d}]});
        Jwks::from_json(set.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn rfc8032_vector_1() {
        let jwks = rfc_jwks();
        let key = jwks.signing_key(None).unwrap();
        assert_eq!(hex::encode(key.verifying_key().as_bytes()), RFC_X);
        let sig = key.sign_bytes(b"").unwrap();
        assert_eq!(hex::encode(sig.to_bytes()), RFC_SIG);
        assert!(key.verifying_key().verify_strict(b"", &sig).is_ok());
    }

    #[test]
    fn key_errors() {
        let x = URL_NO_PAD.encode(hex::decode(RFC_X).unwrap());
        let other_d = URL_NO_PAD.encode([7u8; 32]);
        for (set, msg) in [
            (json!({"keys":[{"kty":"OKP","crv":"Ed25519"}]}), "missing x"),
            (
                json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}),
                "x must be",
            ),
            (
                json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"d":other_d}]}),
                "d does not match x",
            ),
            (
                json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"d":5}]}),
                "d must be",
            ),
            (
                json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"alg":"RS256"}]}),
                "alg",
            ),
            (
                json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"kid":5}]}),
                "kid must be",
            ),
            (json!({"keys":[1]}), "objects"),
            (json!({"nokeys":[]}), "missing"),
            (json!([]), "object"),
        ] {
            let err = Jwks::from_json(set.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(msg), "{err} / {msg}");
            assert!(!err.contains(&other_d));
        }
        assert!(Jwks::from_json(b"not json").is_err());
    }

    #[test]
    fn refuses_other_key_types() {
        let x = URL_NO_PAD.encode(hex::decode(RFC_X).unwrap());
        for (key, named) in [
            (
                json!({"kty":"oct","k":"c2VjcmV0","kid":"hmac"}),
                r#"kty "oct" kid "hmac""#,
            ),
            (
                json!({"kty":"RSA","n":"AQAB","e":"AQAB","alg":"RS256","kid":"rsa"}),
                r#"kty "RSA" alg "RS256" kid "rsa""#,
            ),
            (
                json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"c2VjcmV0"}),
                r#"kty "EC" crv "P-256""#,
            ),
            (json!({"kty":"OKP","crv":"X25519","x":x}), r#"crv "X25519""#),
        ] {
            let set = json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"kid":"pub"}, key]});
            let err = Jwks::from_json(set.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains("key 1 (") && err.contains(named), "{err}");
            assert!(
                err.contains("EdDSA") && err.contains("talos jwk generate eddsa"),
                "{err}"
            );
            assert!(!err.contains("c2VjcmV0"), "no key material in {err}");
        }
        let set = json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"kid":"pub"}]});
        let jwks = Jwks::from_json(set.to_string().as_bytes()).unwrap();
        assert_eq!(
            jwks.public_jwks(),
            json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"kid":"pub","alg":"EdDSA"}]})
        );
        assert_eq!(
            jwks.signing_key(None).unwrap_err(),
            CredentialsError::NoSigningKey
        );
    }

    #[test]
    fn debug_hides_private_part() {
        let jwks = rfc_jwks();
        let dbg = format!("{jwks:?}");
        let d = URL_NO_PAD.encode(hex::decode(RFC_D).unwrap());
        assert!(!dbg.contains(&d) && !dbg.contains(RFC_D), "{dbg}");
        assert!(!jwks.public_jwks().to_string().contains(&d));
    }
}
