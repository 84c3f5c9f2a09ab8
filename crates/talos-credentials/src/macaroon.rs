//! Macaroons in the libmacaroons V2 binary format, byte-compatible with go-macaroon (`gopkg.in/macaroon.v2`), and
//! Talos derived macaroon tokens.
//!
//! V2 layout: version byte `0x02`; fields are `type (varint) ‖ length (varint) ‖ data`, `EOS` is a single `0x00`:
//! `[location] identifier EOS`, per caveat `[location] identifier [vid] EOS`, then `EOS`, then the 32-byte
//! signature field. Field types: location 1, identifier 2, vid 4, signature 6.
//!
//! Signature chain: `sig₀ = HMAC-SHA256(HMAC-SHA256(key = "macaroons-key-generator", root_key), id)`, then for a
//! first-party caveat `sig = HMAC-SHA256(sig, caveat_id)` and for a third-party one
//! `sig = HMAC-SHA256(sig, HMAC-SHA256(sig, vid) ‖ HMAC-SHA256(sig, caveat_id))`.
//!
//! Talos tokens: `<prefix>_v1_` + unpadded base64url of the V2 bytes; id `{"jti":"<uuid>"}`; location = issuer; one
//! first-party caveat holding the JSON [`DerivedClaims`]; root key = [`KeyEntry::macaroon_root_key`].

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use talos_secrets::{KeyEntry, Keyring};

use crate::b64::{self, URL_NO_PAD};
use crate::claims::numeric_date;
use crate::route::starts_with_versioned;
use crate::{CredentialsError, DerivedClaims};

/// The key of the root-key derivation HMAC.
pub const KEY_GENERATOR: &[u8] = b"macaroons-key-generator";
/// Largest V2 macaroon [`Macaroon::decode_v2`] accepts.
pub const MAX_MACAROON_BYTES: usize = 16 * 1024;
/// Most caveats [`Macaroon::decode_v2`] accepts.
pub const MAX_CAVEATS: usize = 64;

const VERSION_2: u8 = 2;
const FIELD_EOS: u64 = 0;
const FIELD_LOCATION: u64 = 1;
const FIELD_IDENTIFIER: u64 = 2;
const FIELD_VID: u64 = 4;
const FIELD_SIGNATURE: u64 = 6;

type HmacSha256 = Hmac<Sha256>;

fn keyed_hash(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for d in data {
        mac.update(d);
    }
    mac.finalize().into_bytes().into()
}

/// go-macaroon's `makeKey`: `HMAC-SHA256(key = "macaroons-key-generator", message = root_key)`.
pub fn derive_root_key(root_key: &[u8]) -> [u8; 32] {
    keyed_hash(KEY_GENERATOR, &[root_key])
}

/// A caveat. Empty `location`/`verification_id` mean absent (as in go-macaroon); a first-party caveat has neither.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Caveat {
    /// Caveat id (for Talos: JSON claims).
    pub id: Vec<u8>,
    /// Location hint (third-party caveats only).
    pub location: Vec<u8>,
    /// Verification id (third-party caveats only).
    pub verification_id: Vec<u8>,
}

impl Caveat {
    /// Whether this is a first-party caveat (no verification id).
    pub fn is_first_party(&self) -> bool {
        self.verification_id.is_empty()
    }
}

impl fmt::Debug for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caveat")
            .field("id", &String::from_utf8_lossy(&self.id))
            .field("location", &String::from_utf8_lossy(&self.location))
            .field("third_party", &!self.verification_id.is_empty())
            .finish()
    }
}

/// A macaroon. `Debug` hides the signature (it is the bearer proof).
#[derive(Clone, PartialEq, Eq)]
pub struct Macaroon {
    /// Location (empty = absent).
    pub location: Vec<u8>,
    /// Identifier.
    pub identifier: Vec<u8>,
    /// Caveats in order.
    pub caveats: Vec<Caveat>,
    /// HMAC chain signature.
    pub signature: [u8; 32],
}

impl fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Macaroon")
            .field("location", &String::from_utf8_lossy(&self.location))
            .field("identifier", &String::from_utf8_lossy(&self.identifier))
            .field("caveats", &self.caveats)
            .finish_non_exhaustive()
    }
}

impl Macaroon {
    /// Mints a macaroon with first-party caveats (go-macaroon `New` + `AddFirstPartyCaveat`).
    pub fn mint(
        root_key: &[u8],
        location: &[u8],
        identifier: &[u8],
        caveats: &[&[u8]],
    ) -> Macaroon {
        let mut m = Macaroon {
            location: location.to_vec(),
            identifier: identifier.to_vec(),
            caveats: Vec::with_capacity(caveats.len()),
            signature: keyed_hash(&derive_root_key(root_key), &[identifier]),
        };
        for c in caveats {
            m.add_first_party_caveat(c);
        }
        m
    }

    /// Appends a first-party caveat and advances the signature (anyone holding the macaroon can do this).
    pub fn add_first_party_caveat(&mut self, id: &[u8]) {
        self.signature = keyed_hash(&self.signature, &[id]);
        self.caveats.push(Caveat {
            id: id.to_vec(),
            ..Caveat::default()
        });
    }

    /// The signature the chain yields for `root_key`, third-party caveats included (no discharge checking).
    pub fn compute_signature(&self, root_key: &[u8]) -> [u8; 32] {
        let mut sig = keyed_hash(&derive_root_key(root_key), &[&self.identifier]);
        for c in &self.caveats {
            sig = if c.verification_id.is_empty() {
                keyed_hash(&sig, &[&c.id])
            } else {
                let a = keyed_hash(&sig, &[&c.verification_id]);
                let b = keyed_hash(&sig, &[&c.id]);
                keyed_hash(&sig, &[&a, &b])
            };
        }
        sig
    }

    /// Whether the signature is valid for `root_key` (constant-time compare). Macaroons with third-party caveats
    /// never verify here: discharges are not supported.
    pub fn verify_with(&self, root_key: &[u8]) -> bool {
        if self.caveats.iter().any(|c| !c.is_first_party()) {
            return false;
        }
        self.compute_signature(root_key)
            .ct_eq(&self.signature)
            .into()
    }

    /// The V2 binary encoding.
    pub fn encode_v2(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            8 + self.location.len()
                + self.identifier.len()
                + self
                    .caveats
                    .iter()
                    .map(|c| 8 + c.id.len() + c.location.len() + c.verification_id.len())
                    .sum::<usize>()
                + 34,
        );
        out.push(VERSION_2);
        if !self.location.is_empty() {
            push_field(&mut out, FIELD_LOCATION, &self.location);
        }
        push_field(&mut out, FIELD_IDENTIFIER, &self.identifier);
        out.push(0);
        for c in &self.caveats {
            if !c.location.is_empty() {
                push_field(&mut out, FIELD_LOCATION, &c.location);
            }
            push_field(&mut out, FIELD_IDENTIFIER, &c.id);
            if !c.verification_id.is_empty() {
                push_field(&mut out, FIELD_VID, &c.verification_id);
            }
            out.push(0);
        }
        out.push(0);
        push_field(&mut out, FIELD_SIGNATURE, &self.signature);
        out
    }

    /// Decodes the V2 binary encoding with go-macaroon's rules, plus: no trailing bytes, at most
    /// [`MAX_MACAROON_BYTES`] and [`MAX_CAVEATS`].
    pub fn decode_v2(data: &[u8]) -> Result<Macaroon, CredentialsError> {
        let bad = CredentialsError::MalformedToken;
        if data.len() > MAX_MACAROON_BYTES {
            return Err(bad("macaroon too large"));
        }
        let (&version, mut rest) = data.split_first().ok_or(bad("empty macaroon"))?;
        if version != VERSION_2 {
            return Err(bad("unsupported macaroon version"));
        }
        let mut section = Vec::with_capacity(3);
        rest = parse_section(rest, &mut section)?;
        let mut fields = section.as_slice();
        let mut location: &[u8] = &[];
        if let Some(((FIELD_LOCATION, loc), tail)) = fields.split_first() {
            location = loc;
            fields = tail;
        }
        let identifier = match fields {
            [(FIELD_IDENTIFIER, id)] => *id,
            _ => return Err(bad("invalid macaroon header")),
        };
        let mut caveats = Vec::new();
        loop {
            section.clear();
            rest = parse_section(rest, &mut section)?;
            if section.is_empty() {
                break;
            }
            if caveats.len() == MAX_CAVEATS {
                return Err(bad("too many caveats"));
            }
            let mut fields = section.as_slice();
            let mut cav = Caveat::default();
            if let Some(((FIELD_LOCATION, loc), tail)) = fields.split_first() {
                cav.location = loc.to_vec();
                fields = tail;
            }
            match fields {
                [(FIELD_IDENTIFIER, id)] => {
                    if !cav.location.is_empty() {
                        return Err(bad("location not allowed in first party caveat"));
                    }
                    cav.id = id.to_vec();
                }
                [(FIELD_IDENTIFIER, id), (FIELD_VID, vid)] => {
                    cav.id = id.to_vec();
                    cav.verification_id = vid.to_vec();
                }
                _ => return Err(bad("invalid caveat")),
            }
            caveats.push(cav);
        }
        let (rest, ty, sig) = parse_packet(rest)?;
        if ty != FIELD_SIGNATURE {
            return Err(bad("expected the signature field"));
        }
        let signature: [u8; 32] = sig
            .try_into()
            .map_err(|_| bad("signature must be 32 bytes"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the signature"));
        }
        Ok(Macaroon {
            location: location.to_vec(),
            identifier: identifier.to_vec(),
            caveats,
            signature,
        })
    }

    /// The Talos token text: `<prefix>_v1_` + unpadded base64url of [`Macaroon::encode_v2`].
    pub fn to_token(&self, prefix: &str) -> String {
        format!("{prefix}_v1_{}", URL_NO_PAD.encode(self.encode_v2()))
    }

    /// Parses Talos token text for one of `prefixes` (base64url, padded or not).
    pub fn from_token<P: AsRef<str>>(
        token: &str,
        prefixes: &[P],
    ) -> Result<Macaroon, CredentialsError> {
        let bad = CredentialsError::MalformedToken;
        let prefix = prefixes
            .iter()
            .map(AsRef::as_ref)
            .find(|p| starts_with_versioned(token, p))
            .ok_or(bad("not a macaroon token"))?;
        let body = &token[prefix.len() + 4..];
        if body.len() > MAX_MACAROON_BYTES * 4 / 3 + 4 {
            return Err(bad("macaroon too large"));
        }
        let bytes = b64::decode_url(body).ok_or(bad("macaroon is not base64url"))?;
        Macaroon::decode_v2(&bytes)
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn push_field(out: &mut Vec<u8>, ty: u64, data: &[u8]) {
    push_varint(out, ty);
    push_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Go's `binary.Uvarint` plus go-macaroon's `0x7fffffff` bound.
fn parse_varint(data: &[u8]) -> Result<(&[u8], u64), CredentialsError> {
    let mut value: u64 = 0;
    for (i, &b) in data.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            break;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if value > 0x7fff_ffff {
                break;
            }
            return Ok((&data[i + 1..], value));
        }
    }
    Err(CredentialsError::MalformedToken("bad varint"))
}

fn parse_packet(data: &[u8]) -> Result<(&[u8], u64, &[u8]), CredentialsError> {
    let (rest, ty) = parse_varint(data)?;
    if ty == FIELD_EOS {
        return Ok((rest, ty, &[]));
    }
    let (rest, len) = parse_varint(rest)?;
    let len = usize::try_from(len).map_err(|_| CredentialsError::MalformedToken("bad length"))?;
    if len > rest.len() {
        return Err(CredentialsError::MalformedToken(
            "field extends past the end",
        ));
    }
    let (field, rest) = rest.split_at(len);
    Ok((rest, ty, field))
}

/// Fields up to EOS; types must strictly increase (go-macaroon `parseSectionV2`).
fn parse_section<'d>(
    mut data: &'d [u8],
    out: &mut Vec<(u64, &'d [u8])>,
) -> Result<&'d [u8], CredentialsError> {
    let mut prev: Option<u64> = None;
    loop {
        if data.is_empty() {
            return Err(CredentialsError::MalformedToken(
                "section extends past the end",
            ));
        }
        let (rest, ty, field) = parse_packet(data)?;
        if ty == FIELD_EOS {
            return Ok(rest);
        }
        if prev.is_some_and(|p| ty <= p) {
            return Err(CredentialsError::MalformedToken("fields out of order"));
        }
        prev = Some(ty);
        out.push((ty, field));
        data = rest;
    }
}

/// Mints a Talos derived macaroon with `entry` (the keyring's current secret): id `{"jti":…}`, location
/// `claims.iss`, one caveat with the JSON claims.
pub fn derive_macaroon(entry: &KeyEntry, prefix: &str, claims: &DerivedClaims) -> String {
    let mut id = Map::new();
    id.insert("jti".into(), Value::String(claims.jti.clone()));
    let id = Value::Object(id).to_string();
    let caveat = claims.to_json();
    Macaroon::mint(
        entry.macaroon_root_key(),
        claims.iss.as_bytes(),
        id.as_bytes(),
        &[caveat.as_bytes()],
    )
    .to_token(prefix)
}

/// Verifies a Talos macaroon token: prefix, V2 decoding, signature under any keyring entry (current, then retired),
/// then the caveats. Returns the claims of the first caveat, narrowed by the later ones.
///
/// Caveat rules: at least one; the first is full [`DerivedClaims`] with `iss` equal to the location and `jti` equal
/// to the id's; later (attenuating) caveats are JSON objects with `exp` and `iss` (same issuer) and optionally
/// `nbf`, `iat`, `scp`; the returned `exp` is the earliest, `nbf` the latest, `scp` the intersection. Any other key
/// in a later caveat is rejected. Time and issuer acceptance are the caller's ([`crate::check_times`]).
pub fn verify_macaroon<P: AsRef<str>>(
    keyring: &Keyring,
    token: &str,
    macaroon_prefixes: &[P],
) -> Result<DerivedClaims, CredentialsError> {
    let m = Macaroon::from_token(token, macaroon_prefixes)?;
    if !keyring.iter().any(|e| m.verify_with(e.macaroon_root_key())) {
        return Err(CredentialsError::SignatureInvalid);
    }
    let invalid = |msg: &str| CredentialsError::InvalidClaims(msg.to_owned());
    let id: Map<String, Value> =
        serde_json::from_slice(&m.identifier).map_err(|_| invalid("macaroon id is not JSON"))?;
    let jti = id
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("macaroon id has no jti"))?;
    let (first, rest) = m
        .caveats
        .split_first()
        .ok_or_else(|| invalid("macaroon has no caveat"))?;
    let mut claims = DerivedClaims::from_json(&first.id)?;
    if claims.iss.as_bytes() != m.location.as_slice() {
        return Err(invalid("caveat iss differs from the macaroon location"));
    }
    if claims.jti != jti {
        return Err(invalid("caveat jti differs from the macaroon id"));
    }
    for cav in rest {
        let mut obj: Map<String, Value> =
            serde_json::from_slice(&cav.id).map_err(|_| invalid("caveat is not a JSON object"))?;
        if obj
            .keys()
            .any(|k| !matches!(k.as_str(), "exp" | "nbf" | "iat" | "iss" | "scp"))
        {
            return Err(invalid("unsupported attenuation caveat"));
        }
        if obj.get("iss").and_then(Value::as_str) != Some(claims.iss.as_str()) {
            return Err(invalid("caveat iss differs from the macaroon location"));
        }
        let exp =
            numeric_date(obj.remove("exp"), "exp")?.ok_or_else(|| invalid("missing claim exp"))?;
        claims.exp = claims.exp.min(exp);
        if let Some(nbf) = numeric_date(obj.remove("nbf"), "nbf")? {
            claims.nbf = claims.nbf.max(nbf);
        }
        numeric_date(obj.remove("iat"), "iat")?;
        match obj.remove("scp") {
            None | Some(Value::Null) => {}
            Some(Value::Array(allowed)) => {
                if allowed.iter().any(|v| !v.is_string()) {
                    return Err(invalid("scp must be an array of strings"));
                }
                claims
                    .scp
                    .retain(|s| allowed.iter().any(|a| a.as_str() == Some(s)));
            }
            Some(_) => return Err(invalid("scp must be an array of strings")),
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
