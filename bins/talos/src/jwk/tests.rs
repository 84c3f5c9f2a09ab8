//! Generated keys are valid keys of their kind (rebuilt from the JWK members with the same crates
//! and used), thumbprints follow RFC 7638, and the set options behave.

use super::*;

fn member(jwk: &Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(
            jwk[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {jwk}")),
        )
        .unwrap()
}

#[test]
fn rfc7638_thumbprint_vector() {
    // RFC 7638 §3.1.
    let key = Generated::new(
        json!({"kty": "RSA", "alg": "RS256", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}),
        &["e", "kty", "n"],
        true,
    );
    assert_eq!(
        key.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn eddsa_signs_and_its_x_verifies() {
    use ed25519_dalek::{Signer, Verifier, VerifyingKey};
    let key = eddsa();
    let k = key.jwk(&key.thumbprint(), KeyUse::Sig, false);
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let d: [u8; 32] = member(&k, "d").try_into().unwrap();
    let x: [u8; 32] = member(&k, "x").try_into().unwrap();
    let sig = ed25519_dalek::SigningKey::from_bytes(&d).sign(b"msg");
    VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify(b"msg", &sig)
        .unwrap();
    assert_ne!(eddsa().members["d"], k["d"], "fresh randomness per key");
    let public = key.jwk("k", KeyUse::Sig, true);
    assert!(
        public.get("d").is_none() && public["x"] == k["x"],
        "{public}"
    );
}

/// Rebuilds the private key from `d`, checks it lies under `x`/`y`, and signs and verifies.
macro_rules! check_ec {
    ($curve:ident, $jwk:expr) => {{
        use $curve::ecdsa::signature::{Signer, Verifier};
        use $curve::elliptic_curve::sec1::ToSec1Point;
        let jwk = $jwk;
        let sk = $curve::SecretKey::from_slice(&member(&jwk, "d")).unwrap();
        let point = sk.public_key().to_sec1_point(false);
        let (x, y) = point.as_bytes()[1..].split_at((point.as_bytes().len() - 1) / 2);
        assert_eq!(
            (member(&jwk, "x"), member(&jwk, "y")),
            (x.to_vec(), y.to_vec())
        );
        let signing = $curve::ecdsa::SigningKey::from(&sk);
        let sig: $curve::ecdsa::Signature = signing.sign(b"msg");
        signing.verifying_key().verify(b"msg", &sig).unwrap();
    }};
}

#[test]
fn ecdsa_keys_on_each_curve() {
    for (curve, crv, alg, len) in [
        (Curve::P256, "P-256", "ES256", 32),
        (Curve::P384, "P-384", "ES384", 48),
        (Curve::P521, "P-521", "ES512", 66),
    ] {
        let key = ecdsa(curve);
        let jwk = key.jwk("k", KeyUse::Sig, false);
        assert_eq!(
            (jwk["crv"].as_str(), jwk["alg"].as_str()),
            (Some(crv), Some(alg))
        );
        for m in ["x", "y", "d"] {
            assert_eq!(member(&jwk, m).len(), len, "{crv} {m}: full length");
        }
        match curve {
            Curve::P256 => check_ec!(p256, jwk),
            Curve::P384 => check_ec!(p384, jwk),
            Curve::P521 => check_ec!(p521, jwk),
        }
        let public = key.jwk("k", KeyUse::Sig, true);
        assert_eq!(
            public.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["alg", "crv", "kid", "kty", "use", "x", "y"],
            "{public}"
        );
    }
}

#[test]
fn rsa_key_is_consistent() {
    use rsa::BoxedUint;
    let key = rsa(2048, RsaAlg::Ps256).unwrap();
    let jwk = key.jwk("k", KeyUse::Sig, false);
    assert_eq!(jwk["alg"], "PS256");
    let n = member(&jwk, "n");
    assert_eq!(n.len(), 256, "a 2048-bit modulus");
    let int = |m: &str| BoxedUint::from_be_slice_vartime(&member(&jwk, m));
    // from_components checks n = p·q; validate checks d·e ≡ 1 and the CRT values it derives.
    let rebuilt =
        rsa::PrivateKey::from_components(int("n"), int("e"), int("d"), vec![int("p"), int("q")])
            .unwrap();
    rebuilt.validate().unwrap();
    let qi = rebuilt
        .crt_coefficient()
        .unwrap()
        .to_be_bytes_trimmed_vartime();
    assert_eq!(member(&jwk, "qi"), qi.to_vec());
    let public = key.jwk("k", KeyUse::Sig, true);
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(public.get(private).is_none(), "{private} in {public}");
    }
    for bad in [1024, 2047, 9000] {
        assert!(
            matches!(rsa(bad, RsaAlg::Rs256), Err(CliError::Usage(_))),
            "{bad}"
        );
    }
}

#[test]
fn hmac_sizes_and_algorithms() {
    for (bits, alg, want) in [
        (256, None, "HS256"),
        (384, None, "HS384"),
        (512, None, "HS512"),
        (1024, Some(HmacAlg::Hs256), "HS256"),
    ] {
        let key = hmac(bits, alg).unwrap();
        let jwk = key.jwk("k", KeyUse::Sig, false);
        assert_eq!(jwk["alg"], want);
        assert_eq!(member(&jwk, "k").len(), bits / 8);
        assert!(!key.has_public);
    }
    for (bits, alg) in [(128, None), (300, None), (256, Some(HmacAlg::Hs512))] {
        assert!(matches!(hmac(bits, alg), Err(CliError::Usage(_))), "{bits}");
    }
}

#[test]
fn jwks_file_gets_the_new_key_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.json");
    std::fs::write(&path, r#"{"keys":[{"kty":"OKP","kid":"old"}]}"#).unwrap();
    let set = with_existing(json!({"kid": "new"}), Some(&path), "new").unwrap();
    assert_eq!(set["keys"][0]["kid"], "new");
    assert_eq!(set["keys"][1]["kid"], "old");
    assert!(matches!(
        with_existing(json!({"kid": "old"}), Some(&path), "old"),
        Err(CliError::Usage(_))
    ));
    std::fs::write(&path, r#"{"nokeys":1}"#).unwrap();
    assert!(with_existing(json!({}), Some(&path), "x").is_err());
    assert_eq!(
        with_existing(json!({"kid": "a"}), None, "a").unwrap(),
        json!({"keys": [{"kid": "a"}]}),
        "without a file, the plain set"
    );
}
