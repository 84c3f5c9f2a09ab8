//! `talos jwk generate eddsa`: a private Ed25519 JWK set for `credentials.derived_tokens.jwt.signing_keys.urls`.
//!
//! Generated here with ed25519-dalek rather than through talos-credentials so that the CLI stays a pure wire
//! client; the shape (`kty OKP`, `crv Ed25519`, `alg EdDSA`, `use sig`) is what the server's JWKS loader reads.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use crate::Ctx;
use crate::exit::CliError;

/// A private JWK set with one fresh Ed25519 key.
pub fn generate_eddsa(kid: &str) -> Value {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    json!({
        "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            "d": URL_SAFE_NO_PAD.encode(seed),
        }]
    })
}

pub fn run(ctx: &Ctx, kid: Option<String>, base64_url: bool) -> Result<(), CliError> {
    let kid = kid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let set = generate_eddsa(&kid);
    if base64_url {
        ctx.out
            .text(&format!("base64://{}", STANDARD.encode(set.to_string())));
        return Ok(());
    }
    // A key set is a document in every format; table falls back to JSON.
    if ctx.out.format == crate::cli::Format::Yaml {
        ctx.out.document(&set)?;
    } else {
        ctx.out.text(
            &serde_json::to_string_pretty(&set).map_err(|e| CliError::Failed(e.to_string()))?,
        );
    }
    ctx.out.info(
        "This is a PRIVATE key. Use it as credentials.derived_tokens.jwt.signing_keys.urls: \
         [\"base64://<base64 of this JSON>\"] (or run with --base64-url).",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier, VerifyingKey};

    #[test]
    fn generated_key_signs_and_its_x_verifies() {
        let set = generate_eddsa("k1");
        let k = &set["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str(), k["kid"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("k1"))
        );
        let d: [u8; 32] = URL_SAFE_NO_PAD
            .decode(k["d"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let x: [u8; 32] = URL_SAFE_NO_PAD
            .decode(k["x"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let sig = SigningKey::from_bytes(&d).sign(b"msg");
        VerifyingKey::from_bytes(&x)
            .unwrap()
            .verify(b"msg", &sig)
            .unwrap();
        assert_ne!(generate_eddsa("k1")["keys"][0]["d"], k["d"]);
    }
}
