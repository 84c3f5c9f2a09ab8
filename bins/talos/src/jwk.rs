//! `talos jwk`: print the server's public JWK Set (`jwk get`), or generate a JSON Web Key
//! (`jwk generate eddsa|ecdsa|rsa|hmac`) as a JWK Set, the shape
//! `credentials.derived_tokens.jwt.signing_keys.urls` reads.
//!
//! Keys are generated here with the RustCrypto crates (ed25519-dalek, p256/p384/p521, rsa) rather
//! than through talos-credentials, so that the CLI stays a pure wire client. The server signs and
//! verifies derived JWTs with EdDSA only and refuses other keys in its signing set at startup;
//! the other kinds are for the operator's other systems, as upstream's CLI offers them.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::Ctx;
use crate::cli::Format;
use crate::exit::CliError;

#[derive(Debug, Subcommand)]
pub enum JwkCommand {
    /// Print the server's public JSON Web Key Set (`/.well-known/jwks.json`): the keys that verify
    /// its derived JWTs.
    Get,
    /// Generate a JSON Web Key, printed as a JWK Set.
    Generate {
        #[command(subcommand)]
        kind: JwkKind,
    },
}

#[derive(Debug, Subcommand)]
pub enum JwkKind {
    /// An Ed25519 key (alg EdDSA): what talos-server signs derived JWTs with.
    Eddsa {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// An ECDSA key (alg ES256, ES384 or ES512, from the curve).
    Ecdsa {
        /// The curve.
        #[arg(long, value_enum, default_value = "P-256")]
        curve: Curve,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// An RSA key.
    Rsa {
        /// Modulus size in bits (2048..=8192, a multiple of 8).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Signature algorithm the key is for.
        #[arg(long, value_enum, default_value = "RS256")]
        alg: RsaAlg,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A symmetric HMAC key (kty oct).
    Hmac {
        /// Key size in bits (256..=4096, a multiple of 8).
        #[arg(long, default_value_t = 256)]
        bits: usize,
        /// Algorithm [default: HS256, HS384 or HS512, the strongest the size allows].
        #[arg(long, value_enum)]
        alg: Option<HmacAlg>,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// What every `jwk generate` takes.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Key id (`kid`) [default: the key's RFC 7638 thumbprint].
    #[arg(long)]
    pub kid: Option<String>,
    /// The key's intended use (`use`).
    #[arg(long = "use", value_enum, default_value = "sig")]
    pub key_use: KeyUse,
    /// Write the JWK Set to FILE (created owner-only, since it holds the private key) instead of
    /// printing it.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print a JWK Set (the default). With FILE: the JWK Set in FILE with the new key added first,
    /// so that the server signs with it while the older keys still verify tokens already issued.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<Option<PathBuf>>,
    /// Only the public members (to publish the key for verification; not usable for signing).
    #[arg(long)]
    pub public_only: bool,
    /// Print the ready-to-paste `base64://…` URL instead of the JSON.
    #[arg(long)]
    pub base64_url: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyUse {
    /// Signatures.
    Sig,
    /// Encryption.
    Enc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Curve {
    #[value(name = "P-256", alias = "p256")]
    P256,
    #[value(name = "P-384", alias = "p384")]
    P384,
    #[value(name = "P-521", alias = "p521")]
    P521,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RsaAlg {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "RS384")]
    Rs384,
    #[value(name = "RS512")]
    Rs512,
    #[value(name = "PS256")]
    Ps256,
    #[value(name = "PS384")]
    Ps384,
    #[value(name = "PS512")]
    Ps512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HmacAlg {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "HS384")]
    Hs384,
    #[value(name = "HS512")]
    Hs512,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A generated key: its private JWK members and the names of the public ones, in RFC 7638's
/// thumbprint order.
pub struct Generated {
    members: Map<String, Value>,
    /// The required public members (RFC 7638 §3.2), sorted.
    required: &'static [&'static str],
    /// Whether there is a public part at all (not for `oct`).
    has_public: bool,
}

impl Generated {
    fn new(members: Value, required: &'static [&'static str], has_public: bool) -> Self {
        let Value::Object(members) = members else {
            unreachable!("members are built as an object")
        };
        Generated {
            members,
            required,
            has_public,
        }
    }

    /// RFC 7638: base64url(SHA-256(the required members, sorted, without whitespace)).
    pub fn thumbprint(&self) -> String {
        let body: Vec<String> = self
            .required
            .iter()
            .map(|m| format!("{}:{}", Value::from(*m), self.members[*m]))
            .collect();
        b64(&Sha256::digest(format!("{{{}}}", body.join(","))))
    }

    /// The JWK with `kid`, `use` and `alg`; public members only when `public_only`.
    fn jwk(&self, kid: &str, key_use: KeyUse, public_only: bool) -> Value {
        let mut m = Map::new();
        m.insert("kid".into(), kid.into());
        m.insert(
            "use".into(),
            match key_use {
                KeyUse::Sig => "sig",
                KeyUse::Enc => "enc",
            }
            .into(),
        );
        for (k, v) in &self.members {
            if !public_only || self.required.contains(&k.as_str()) || k == "alg" {
                m.insert(k.clone(), v.clone());
            }
        }
        Value::Object(m)
    }
}

/// An Ed25519 key.
pub fn eddsa() -> Generated {
    let seed: [u8; 32] = rand::random();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Generated::new(
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
               "x": b64(key.verifying_key().as_bytes()), "d": b64(&seed)}),
        &["crv", "kty", "x"],
        true,
    )
}

/// `d` and the uncompressed SEC1 point (`04 ‖ x ‖ y`) of a fresh key on one NIST curve.
macro_rules! ec_key {
    ($curve:ident) => {{
        use $curve::elliptic_curve::Generate;
        use $curve::elliptic_curve::sec1::ToSec1Point;
        let sk = $curve::SecretKey::generate();
        let point = sk.public_key().to_sec1_point(false);
        (sk.to_bytes().to_vec(), point.as_bytes().to_vec())
    }};
}

/// An ECDSA key on `curve`.
pub fn ecdsa(curve: Curve) -> Generated {
    let (crv, alg, (d, point)) = match curve {
        Curve::P256 => ("P-256", "ES256", ec_key!(p256)),
        Curve::P384 => ("P-384", "ES384", ec_key!(p384)),
        Curve::P521 => ("P-521", "ES512", ec_key!(p521)),
    };
    // Uncompressed: the tag byte, then x and y of equal length.
    let (x, y) = point[1..].split_at((point.len() - 1) / 2);
    Generated::new(
        json!({"kty": "EC", "crv": crv, "alg": alg, "x": b64(x), "y": b64(y), "d": b64(&d)}),
        &["crv", "kty", "x", "y"],
        true,
    )
}

/// An RSA key of `bits` bits for `alg`.
pub fn rsa(bits: usize, alg: RsaAlg) -> Result<Generated, CliError> {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    if !(2048..=8192).contains(&bits) || !bits.is_multiple_of(8) {
        return Err(CliError::Usage(format!(
            "--bits {bits}: an RSA key has 2048 to 8192 bits, a multiple of 8"
        )));
    }
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
        .map_err(|e| CliError::Failed(format!("RSA key generation failed: {e}")))?;
    let (Some(dp), Some(dq), Some(qi)) = (key.dp(), key.dq(), key.crt_coefficient()) else {
        return Err(CliError::Failed(
            "RSA key generation did not precompute the CRT values".into(),
        ));
    };
    let primes = key.primes();
    let alg = match alg {
        RsaAlg::Rs256 => "RS256",
        RsaAlg::Rs384 => "RS384",
        RsaAlg::Rs512 => "RS512",
        RsaAlg::Ps256 => "PS256",
        RsaAlg::Ps384 => "PS384",
        RsaAlg::Ps512 => "PS512",
    };
    Ok(Generated::new(
        json!({
            "kty": "RSA", "alg": alg,
            "n": b64(&key.n_bytes()), "e": b64(&key.e_bytes()),
            "d": b64(&key.d().to_be_bytes_trimmed_vartime()),
            "p": b64(&primes[0].to_be_bytes_trimmed_vartime()),
            "q": b64(&primes[1].to_be_bytes_trimmed_vartime()),
            "dp": b64(&dp.to_be_bytes_trimmed_vartime()),
            "dq": b64(&dq.to_be_bytes_trimmed_vartime()),
            "qi": b64(&qi.to_be_bytes_trimmed_vartime()),
        }),
        &["e", "kty", "n"],
        true,
    ))
}

/// A random HMAC key of `bits` bits.
pub fn hmac(bits: usize, alg: Option<HmacAlg>) -> Result<Generated, CliError> {
    if !(256..=4096).contains(&bits) || !bits.is_multiple_of(8) {
        return Err(CliError::Usage(format!(
            "--bits {bits}: an HMAC key has 256 to 4096 bits, a multiple of 8"
        )));
    }
    let alg = alg.unwrap_or(match bits {
        ..384 => HmacAlg::Hs256,
        384..512 => HmacAlg::Hs384,
        _ => HmacAlg::Hs512,
    });
    let (name, min) = match alg {
        HmacAlg::Hs256 => ("HS256", 256),
        HmacAlg::Hs384 => ("HS384", 384),
        HmacAlg::Hs512 => ("HS512", 512),
    };
    if bits < min {
        return Err(CliError::Usage(format!(
            "--alg {name} needs a key of at least {min} bits (RFC 7518 §3.2), got --bits {bits}"
        )));
    }
    let k: Vec<u8> = (0..bits / 8).map(|_| rand::random::<u8>()).collect();
    Ok(Generated::new(
        json!({"kty": "oct", "alg": name, "k": b64(&k)}),
        &["k", "kty"],
        false,
    ))
}

pub async fn run(ctx: &Ctx, command: JwkCommand) -> Result<(), CliError> {
    match command {
        JwkCommand::Get => {
            let resp = ctx.client()?.well_known_jwks().await?;
            print(ctx, &resp.raw)
        }
        JwkCommand::Generate { kind } => generate(ctx, kind),
    }
}

fn generate(ctx: &Ctx, kind: JwkKind) -> Result<(), CliError> {
    let (key, out, eddsa_key) = match kind {
        JwkKind::Eddsa { out } => (eddsa(), out, true),
        JwkKind::Ecdsa { curve, out } => (ecdsa(curve), out, false),
        JwkKind::Rsa { bits, alg, out } => (rsa(bits, alg)?, out, false),
        JwkKind::Hmac { bits, alg, out } => (hmac(bits, alg)?, out, false),
    };
    if out.public_only && !key.has_public {
        return Err(CliError::Usage(
            "--public-only: an HMAC key has no public part".into(),
        ));
    }
    let kid = out.kid.clone().unwrap_or_else(|| key.thumbprint());
    let jwk = key.jwk(&kid, out.key_use, out.public_only);
    let set = with_existing(jwk, out.jwks.as_ref().and_then(Option::as_deref), &kid)?;
    if !eddsa_key {
        ctx.out.info(
            "note: talos-server signs and verifies derived JWTs with EdDSA only and refuses this key in \
             credentials.derived_tokens.jwt.signing_keys (use `talos jwk generate eddsa` for that)",
        );
    }
    if let Some(path) = &out.output {
        let text = if out.base64_url {
            format!("base64://{}\n", STANDARD.encode(set.to_string()))
        } else {
            crate::output::render(&Format::JsonPretty, &set)?
        };
        write_file(path, &text, !out.public_only)?;
        ctx.out.info(&format!(
            "Wrote the key set (kid {kid}) to {}.",
            path.display()
        ));
        return Ok(());
    }
    if out.base64_url {
        ctx.out
            .text(&format!("base64://{}", STANDARD.encode(set.to_string())));
        return Ok(());
    }
    print(ctx, &set)?;
    if !out.public_only && eddsa_key {
        ctx.out.info(
            "This is a PRIVATE key. Use it as credentials.derived_tokens.jwt.signing_keys.urls: \
             [\"base64://<base64 of this JSON>\"] (or run with --base64-url).",
        );
    }
    Ok(())
}

/// A key set is a document in every format; table prints it as indented JSON.
fn print(ctx: &Ctx, doc: &Value) -> Result<(), CliError> {
    if ctx.out.is_document() {
        ctx.out.document(doc)
    } else {
        ctx.out.text(&crate::output::render(&Format::Table, doc)?);
        Ok(())
    }
}

/// `{"keys":[jwk]}`, or with `--jwks FILE` the set in FILE with `jwk` first.
fn with_existing(
    jwk: Value,
    existing: Option<&std::path::Path>,
    kid: &str,
) -> Result<Value, CliError> {
    let Some(path) = existing else {
        return Ok(json!({ "keys": [jwk] }));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read --jwks {}: {e}", path.display())))?;
    let mut set: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("--jwks {}: not JSON: {e}", path.display())))?;
    let Some(keys) = set.get_mut("keys").and_then(Value::as_array_mut) else {
        return Err(CliError::Usage(format!(
            "--jwks {}: not a JWK Set (no \"keys\" array)",
            path.display()
        )));
    };
    if keys.iter().any(|k| k["kid"] == kid) {
        return Err(CliError::Usage(format!(
            "--jwks {}: it already holds a key with kid {kid:?}",
            path.display()
        )));
    }
    keys.insert(0, jwk);
    Ok(set)
}

fn write_file(path: &std::path::Path, text: &str, private: bool) -> Result<(), CliError> {
    use std::io::Write;
    let failed =
        |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", path.display()));
    let mut f = if private {
        crate::batch_import::create_private(path).map_err(failed)?
    } else {
        std::fs::File::create(path).map_err(failed)?
    };
    f.write_all(text.as_bytes()).map_err(failed)
}

#[cfg(test)]
mod tests;
