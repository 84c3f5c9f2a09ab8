//! Integration tests of the public API of `talos-credentials`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::{BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use talos_credentials::cidr::{ip_allowed, parse_cidr, parse_cidrs};
use talos_credentials::duration::{format_seconds, parse_duration};
use talos_credentials::jwt::{Jwks, decode_base64_url, encode_base64_url, generate_eddsa_jwk};
use talos_credentials::macaroon::{Macaroon, derive_macaroon, verify_macaroon};
use talos_credentials::{
    Credential, CredentialsError, DerivedClaims, Visibility, check_times, classify, imported,
    issued, looks_issued,
};
use talos_secrets::{KeyEntry, Keyring, RetiredSecret, Secret};
use uuid::Uuid;

const HMAC_SECRET: &str = "preview-hmac-secret-minimum-32-chars-long";
const RETIRED_SECRET: &str = "previous-hmac-secret-rotated-out-on-2026-03-01-padded-to-64chars-";

/// The `signing_keys.urls` entry of `shared/conformance/quickstart-config.yaml` (docs quickstart).
const QUICKSTART_JWKS_URL: &str = talos_test_support::QUICKSTART_JWKS;

fn keyring() -> Keyring {
    Keyring::new(
        Some(&Secret::new(HMAC_SECRET)),
        &[RetiredSecret::new(RETIRED_SECRET)],
        Utc::now(),
    )
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn claims(nid: Uuid) -> DerivedClaims {
    DerivedClaims {
        jti: Uuid::new_v4().to_string(),
        sub: Uuid::new_v4().to_string(),
        iss: "http://localhost:8080".into(),
        iat: 1_767_225_600,
        nbf: 1_767_225_600,
        exp: 1_767_229_200,
        act: "user-1".into(),
        nid,
        scp: vec!["read".into()],
        meta: json!({"team": "a"}).as_object().unwrap().clone(),
        vis: Visibility::Secret,
        acl: vec!["10.0.0.0/8".into()],
        custom: json!({"role": "preview-user", "environment": "demo"})
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn quickstart_jwks() -> Jwks {
    Jwks::from_json(&decode_base64_url(QUICKSTART_JWKS_URL).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------- issued keys

#[test]
fn upstream_example_key_parses() {
    let k = "prod_v1_QixobFgVufjZNuoYXKtn78NAqFVroyN518nRaK3WD3nxTNufzwJq9sjdrDMrcyP2_3wyBJBd2KxqXK117oqGWZzJU85Nv7C9vKWj9nVSqbEby";
    let p = issued::parse(k).unwrap();
    assert_eq!(p.prefix(), "prod");
    assert_eq!(p.timestamp(), 1_780_334_005);
    assert_eq!(
        p.key_id().to_string(),
        "792b4c1a-1a2d-430b-b733-c789a2b7b1fe"
    );
    assert!(matches!(
        classify(k, &["talos"], &["mc"]),
        Credential::Issued(_)
    ));
    assert!(issued::verify_checksum(&p, &keyring()).is_none());
}

#[test]
fn issue_classify_verify() {
    let kr = keyring();
    let id = Uuid::new_v4();
    let key = issued::generate(kr.current().unwrap(), "talos", 1_767_225_600, id);
    let Credential::Issued(p) = classify(&key, &["talos"], &["mc"]) else {
        panic!("not issued");
    };
    assert_eq!(p.key_id(), id);
    let hit = issued::verify_checksum(&p, &kr).unwrap();
    assert!(hit.is_current());
    // Keys of the retired secret verify and report which entry matched.
    let old = KeyEntry::new(&Secret::new(RETIRED_SECRET));
    let key = issued::generate(&old, "talos", 1_767_225_600, id);
    let p = issued::parse(&key).unwrap();
    assert_eq!(issued::verify_checksum(&p, &kr).unwrap().id(), old.id());
    // Import refuses raw keys of issued shape, configured or not.
    assert!(!classify(&key, &["talos"], &["mc"]).is_imported());
    assert!(looks_issued(&key));
    assert!(!classify("talos_v1_nope", &["talos"], &["mc"]).is_imported());
}

/// A keyring built while a retired secret was live keeps serving requests after that secret's
/// `expires_at`: from then on, nothing signed with it may be accepted (regression: the expiry was
/// only applied when the keyring was built).
#[test]
fn retired_secret_stops_verifying_at_its_expiry_without_a_rebuild() {
    let built = Utc::now() - chrono::Duration::seconds(60);
    let expired_at = Utc::now() - chrono::Duration::seconds(5);
    let kr = Keyring::new(
        Some(&Secret::new(HMAC_SECRET)),
        &[RetiredSecret::expiring(RETIRED_SECRET, expired_at)],
        built,
    );
    let old = KeyEntry::new(&Secret::new(RETIRED_SECRET));
    let id = Uuid::new_v4();
    let key = issued::generate(&old, "talos", 1_767_225_600, id);
    assert!(issued::verify_checksum(&issued::parse(&key).unwrap(), &kr).is_none());
    let c = claims(Uuid::new_v4());
    let token = derive_macaroon(&old, "mc", &c);
    assert!(verify_macaroon(&kr, &token, &["mc"]).is_err());
    assert_eq!(kr.iter().count(), 1, "only the current secret is live");
    assert!(kr.get(old.id()).is_none());
    // The same keyring, asked before the expiry, still had both.
    assert_eq!(kr.iter_at(built).count(), 2);
    // A secret expiring later is still accepted.
    let later = Keyring::new(
        Some(&Secret::new(HMAC_SECRET)),
        &[RetiredSecret::expiring(
            RETIRED_SECRET,
            Utc::now() + chrono::Duration::seconds(3600),
        )],
        built,
    );
    assert!(issued::verify_checksum(&issued::parse(&key).unwrap(), &later).is_some());
    assert!(verify_macaroon(&later, &token, &["mc"]).is_ok());
}

// ---------------------------------------------------------------------------------------------- imported keys

#[test]
fn imported_hashes_are_per_secret_and_network() {
    let kr = keyring();
    let nid = Uuid::new_v4();
    let all = imported::hash_all(&kr, nid, b"sk_live_123");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0.id(), kr.current().unwrap().id());
    assert_eq!(
        all[0].1,
        imported::hash(kr.current().unwrap(), nid, b"sk_live_123")
    );
    assert_ne!(
        all[0].1,
        imported::hash(kr.current().unwrap(), Uuid::nil(), b"sk_live_123")
    );
    assert!(classify("sk_live_123", &["talos"], &["mc"]).is_imported());
}

// ---------------------------------------------------------------------------------------------- JWT

#[test]
fn quickstart_jwks_loads_and_x_matches_d() {
    let raw = decode_base64_url(QUICKSTART_JWKS_URL).unwrap();
    let doc: Value = serde_json::from_slice(&raw).unwrap();
    let jwk = &doc["keys"][0];
    let d: [u8; 32] = BASE64_URL_SAFE_NO_PAD
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let x = BASE64_URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&d).verifying_key().as_bytes());
    assert_eq!(jwk["x"], x);

    let jwks = quickstart_jwks();
    assert_eq!(jwks.len(), 1);
    let key = jwks.signing_key(None).unwrap();
    assert_eq!(key.kid(), Some("docker-dev-001"));
    assert_eq!(
        jwks.signing_key(Some("docker-dev-001")).unwrap().kid(),
        Some("docker-dev-001")
    );
    assert_eq!(
        jwks.signing_key(Some("nope")).unwrap_err(),
        CredentialsError::SigningKeyNotFound("nope".into())
    );
    assert_eq!(
        jwks.public_jwks(),
        json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":x,"kid":"docker-dev-001","use":"sig","alg":"EdDSA"}]})
    );
    assert!(
        !jwks
            .public_jwks()
            .to_string()
            .contains(jwk["d"].as_str().unwrap())
    );
}

#[test]
fn base64_url_variants() {
    let doc = br#"{"keys":[]}"#;
    for url in [
        format!("base64://{}", BASE64_STANDARD.encode(doc)),
        format!(
            "base64://{}",
            BASE64_STANDARD.encode(doc).trim_end_matches('=')
        ),
        format!("base64://{}", BASE64_URL_SAFE_NO_PAD.encode(doc)),
        encode_base64_url(doc),
    ] {
        assert_eq!(decode_base64_url(&url).unwrap(), doc, "{url}");
    }
    // '?' and '>' give '+'/'/' in standard and '-'/'_' in URL-safe base64.
    let tricky = b"??>>??>>";
    let std_url = format!("base64://{}", BASE64_STANDARD.encode(tricky));
    let url_url = format!("base64://{}", BASE64_URL_SAFE_NO_PAD.encode(tricky));
    assert_ne!(std_url, url_url);
    assert_eq!(decode_base64_url(&std_url).unwrap(), tricky);
    assert_eq!(decode_base64_url(&url_url).unwrap(), tricky);
    for bad in ["file:///etc/jwks.json", "base64://!!!", "base64:/abc"] {
        assert!(decode_base64_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn jwt_sign_verify() {
    let jwks = quickstart_jwks();
    let c = claims(Uuid::nil());
    let token = jwks.sign(jwks.signing_key(None).unwrap(), &c).unwrap();
    assert!(matches!(
        classify(&token, &["talos"], &["mc"]),
        Credential::Jwt(_)
    ));
    let mut parts = token.split('.');
    let header: Value = serde_json::from_slice(
        &BASE64_URL_SAFE_NO_PAD
            .decode(parts.next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg":"EdDSA","kid":"docker-dev-001","typ":"JWT"})
    );
    let got = jwks.verify(&token).unwrap();
    assert_eq!(got, c);
    assert_eq!(got.response_metadata()["role"], "preview-user");
    assert!(check_times(&got, at(c.iat), Duration::from_secs(0)).is_ok());
    assert_eq!(
        check_times(&got, at(c.exp), Duration::ZERO),
        Err(CredentialsError::TokenExpired)
    );

    // Another key set cannot verify it; a public-only copy of the set can.
    let other = Jwks::from_json(generate_eddsa_jwk("other").to_string().as_bytes()).unwrap();
    assert_eq!(
        other.verify(&token),
        Err(CredentialsError::SignatureInvalid)
    );
    let public_only = Jwks::from_json(jwks.public_jwks().to_string().as_bytes()).unwrap();
    assert_eq!(public_only.verify(&token).unwrap(), c);
    assert_eq!(
        public_only.signing_key(None).unwrap_err(),
        CredentialsError::NoSigningKey
    );
}

#[test]
fn jwt_rejects_forgeries() {
    let jwks = quickstart_jwks();
    let c = claims(Uuid::nil());
    let token = jwks.sign(jwks.signing_key(None).unwrap(), &c).unwrap();
    let (h, rest) = token.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let enc = |v: Value| BASE64_URL_SAFE_NO_PAD.encode(v.to_string());

    // Payload swapped, signature kept.
    let mut evil = c.clone();
    evil.scp.push("admin".into());
    let swapped = format!("{h}.{}.{s}", BASE64_URL_SAFE_NO_PAD.encode(evil.to_json()));
    assert_eq!(
        jwks.verify(&swapped),
        Err(CredentialsError::SignatureInvalid)
    );
    // alg none / HS256 / crit / unknown kid.
    let none = format!("{}.{p}.", enc(json!({"alg":"none"})));
    assert!(matches!(
        jwks.verify(&none),
        Err(CredentialsError::MalformedToken(_))
    ));
    let hs = format!(
        "{}.{p}.{s}",
        enc(json!({"alg":"HS256","kid":"docker-dev-001"}))
    );
    assert!(matches!(
        jwks.verify(&hs),
        Err(CredentialsError::MalformedToken(_))
    ));
    let crit = format!("{}.{p}.{s}", enc(json!({"alg":"EdDSA","crit":["exp"]})));
    assert!(matches!(
        jwks.verify(&crit),
        Err(CredentialsError::MalformedToken(_))
    ));
    let kid = format!("{}.{p}.{s}", enc(json!({"alg":"EdDSA","kid":"unknown"})));
    assert_eq!(jwks.verify(&kid), Err(CredentialsError::SignatureInvalid));
    // Bit flips anywhere in the signature.
    let sig = BASE64_URL_SAFE_NO_PAD.decode(s).unwrap();
    for i in 0..sig.len() {
        let mut t = sig.clone();
        t[i] ^= 1;
        let tok = format!("{h}.{p}.{}", BASE64_URL_SAFE_NO_PAD.encode(&t));
        assert!(jwks.verify(&tok).is_err(), "byte {i}");
    }
    for bad in ["", "a.b", "a.b.c.d", "eyJ.eyJ.", &format!("{token}=")] {
        assert!(jwks.verify(bad).is_err(), "{bad}");
    }
    // A validly signed token with tty != derived is refused.
    let mut m: Map<String, Value> = c.to_map();
    m.insert("tty".into(), json!("issued"));
    let header = enc(json!({"alg":"EdDSA","kid":"docker-dev-001","typ":"JWT"}));
    let payload = BASE64_URL_SAFE_NO_PAD.encode(Value::Object(m).to_string());
    let signing_input = format!("{header}.{payload}");
    let d = serde_json::from_slice::<Value>(&decode_base64_url(QUICKSTART_JWKS_URL).unwrap())
        .unwrap()["keys"][0]["d"]
        .as_str()
        .unwrap()
        .to_owned();
    let sk = SigningKey::from_bytes(
        &BASE64_URL_SAFE_NO_PAD
            .decode(d)
            .unwrap()
            .try_into()
            .unwrap(),
    );
    use ed25519_dalek::Signer;
    let sig = BASE64_URL_SAFE_NO_PAD.encode(sk.sign(signing_input.as_bytes()).to_bytes());
    let tty = format!("{signing_input}.{sig}");
    assert!(matches!(
        jwks.verify(&tty),
        Err(CredentialsError::InvalidClaims(_))
    ));
}

#[test]
fn jwks_key_selection() {
    let mut a = generate_eddsa_jwk("a");
    a["keys"][0].as_object_mut().unwrap().remove("use");
    let b = generate_eddsa_jwk("b");
    let set = json!({"keys":[a["keys"][0].clone(), b["keys"][0].clone()]});
    let jwks = Jwks::from_json(set.to_string().as_bytes()).unwrap();
    // First key with use:"sig" wins over the first private key.
    assert_eq!(jwks.signing_key(None).unwrap().kid(), Some("b"));
    assert_eq!(jwks.signing_key(Some("a")).unwrap().kid(), Some("a"));
    let mut merged = Jwks::from_json(a.to_string().as_bytes()).unwrap();
    assert_eq!(merged.signing_key(None).unwrap().kid(), Some("a"));
    merged.extend(Jwks::from_json(b.to_string().as_bytes()).unwrap());
    assert_eq!(merged.len(), 2);
    // Tokens from either key verify against the merged set.
    let c = claims(Uuid::nil());
    for kid in ["a", "b"] {
        let t = merged
            .sign(merged.signing_key(Some(kid)).unwrap(), &c)
            .unwrap();
        assert_eq!(merged.verify(&t).unwrap(), c);
    }
}

fn python_verifier() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    let ok = dir.join("ed25519.py").is_file()
        && Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    ok.then_some(dir)
}

#[test]
fn jwt_signature_checked_by_independent_python_verifier() {
    let Some(dir) = python_verifier() else {
        eprintln!("skipped: python3 or shared/conformance/ed25519.py not available");
        return;
    };
    let jwks = quickstart_jwks();
    let key = jwks.signing_key(None).unwrap();
    let token = jwks.sign(key, &claims(Uuid::nil())).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = hex::encode(BASE64_URL_SAFE_NO_PAD.decode(sig).unwrap());
    let pk = hex::encode(key.verifying_key().as_bytes());
    let script = "import sys; sys.path.insert(0, sys.argv[1]); import ed25519; \
                  ok = ed25519.verify(bytes.fromhex(sys.argv[2]), sys.argv[3].encode(), bytes.fromhex(sys.argv[4])); \
                  bad = ed25519.verify(bytes.fromhex(sys.argv[2]), sys.argv[3].encode() + b'x', bytes.fromhex(sys.argv[4])); \
                  sys.exit(0 if ok and not bad else 1)";
    let status = Command::new("python3")
        .args(["-c", script, dir.to_str().unwrap(), &pk, input, &sig])
        .status()
        .unwrap();
    assert!(status.success(), "python ed25519 verifier rejected our JWT");
}

// ---------------------------------------------------------------------------------------------- macaroons

#[test]
fn macaroon_flow() {
    let kr = keyring();
    let c = claims(Uuid::new_v4());
    let token = derive_macaroon(kr.current().unwrap(), "mc", &c);
    assert!(matches!(
        classify(&token, &["talos"], &["mc"]),
        Credential::Macaroon(_)
    ));
    let got = verify_macaroon(&kr, &token, &["mc"]).unwrap();
    assert_eq!(got, c);
    assert!(check_times(&got, at(c.nbf - 5), Duration::from_secs(10)).is_ok());
    assert_eq!(
        check_times(&got, at(c.nbf - 5), Duration::ZERO),
        Err(CredentialsError::TokenNotYetValid)
    );
}

// ---------------------------------------------------------------------------------------------- misc

#[test]
fn durations_and_cidrs() {
    assert_eq!(
        parse_duration("1y6mo").unwrap(),
        Duration::from_secs(545 * 86_400)
    );
    assert_eq!(format_seconds(parse_duration("1m").unwrap()), "60s");
    let nets = parse_cidrs(&["10.0.0.0/8", "::1"]).unwrap();
    assert!(ip_allowed(&nets, "10.0.0.1".parse().unwrap()));
    assert!(ip_allowed(&nets, "::1".parse().unwrap()));
    assert!(!ip_allowed(&nets, "11.0.0.1".parse().unwrap()));
    assert!(parse_cidr("300.0.0.1").is_err());
}

// ---------------------------------------------------------------------------------------------- properties

proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC{0,200}") {
        let _ = issued::parse(&s);
        let _ = looks_issued(&s);
        let _ = classify(&s, &["talos", "my_app"], &["mc"]);
        let _ = parse_duration(&s);
        let _ = parse_cidr(&s);
        let _ = decode_base64_url(&s);
        let _ = DerivedClaims::from_json(s.as_bytes());
        let _ = Jwks::from_json(s.as_bytes());
        let _ = quickstart_jwks().verify(&s);
        let _ = verify_macaroon(&keyring(), &s, &["mc"]);
        let _ = imported::is_imported_key_id(&s);
    }

    #[test]
    fn issued_like_strings_never_panic(
        prefix in "[a-zA-Z0-9_]{0,18}",
        ident in "[1-9A-HJ-NP-Za-km-z_]{0,140}",
        chk in "[1-9A-HJ-NP-Za-km-z]{0,60}",
    ) {
        let s = format!("{prefix}_v1_{ident}_{chk}");
        if let Some(p) = issued::parse(&s) {
            prop_assert!(issued::verify_checksum(&p, &keyring()).is_none());
        }
        let _ = classify(&s, &["talos"], &["mc"]);
    }

    #[test]
    fn jwt_like_strings_never_panic(a in "eyJ[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,80}", c in "[A-Za-z0-9_-]{0,90}") {
        let _ = quickstart_jwks().verify(&format!("{a}.{b}.{c}"));
    }

    #[test]
    fn macaroon_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Macaroon::decode_v2(&bytes);
        let mut v2 = vec![2u8];
        v2.extend_from_slice(&bytes);
        let _ = Macaroon::decode_v2(&v2);
        let token = format!("mc_v1_{}", BASE64_URL_SAFE_NO_PAD.encode(&v2));
        prop_assert!(verify_macaroon(&keyring(), &token, &["mc"]).is_err());
    }

    #[test]
    fn issued_round_trip(
        prefix in "[a-zA-Z0-9_]{1,16}",
        ts in 0i64..=i64::MAX,
        id in any::<u128>(),
        secret in "[ -~]{1,80}",
    ) {
        let kr = Keyring::from_current(&Secret::new(secret));
        let key_id = Uuid::from_u128(id);
        let key = issued::generate(kr.current().unwrap(), &prefix, ts, key_id);
        let p = issued::parse(&key).unwrap();
        prop_assert_eq!(p.prefix(), prefix.as_str());
        prop_assert_eq!(p.timestamp(), ts);
        prop_assert_eq!(p.key_id(), key_id);
        prop_assert!(issued::verify_checksum(&p, &kr).is_some());
        prop_assert!(looks_issued(&key));
        let is_issued = matches!(classify(&key, &["talos"], &["mc"]), Credential::Issued(_));
        let macaroon_prefixed = key.starts_with("mc_v1_");
        prop_assert!(is_issued || macaroon_prefixed);
        // Any single-character change breaks the checksum or the parse.
        let mut bytes = key.clone().into_bytes();
        let i = key.len() - 3;
        bytes[i] = if bytes[i] == b'2' { b'3' } else { b'2' };
        let tampered = String::from_utf8(bytes).unwrap();
        if let Some(t) = issued::parse(&tampered) {
            prop_assert!(issued::verify_checksum(&t, &kr).is_none());
        }
    }

    #[test]
    fn duration_round_trip(secs in 1u64..=9_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        prop_assert_eq!(parse_duration(&format_seconds(d)).unwrap(), d);
        prop_assert_eq!(parse_duration(&format!("{secs}s")).unwrap(), Duration::from_secs(secs));
    }

    #[test]
    fn jwt_round_trip(sub in "[a-z0-9-]{1,36}", scp in proptest::collection::vec("[a-z:]{1,12}", 0..5), exp in 0i64..4_000_000_000, role in "\\PC{0,20}") {
        let jwks = quickstart_jwks();
        let mut c = claims(Uuid::nil());
        c.sub = sub;
        c.scp = scp;
        c.exp = exp;
        c.custom.insert("role".into(), Value::String(role));
        let token = jwks.sign(jwks.signing_key(None).unwrap(), &c).unwrap();
        prop_assert_eq!(jwks.verify(&token).unwrap(), c);
    }

    #[test]
    fn macaroon_round_trip(
        root in proptest::collection::vec(any::<u8>(), 0..64),
        loc in proptest::collection::vec(any::<u8>(), 0..40),
        id in proptest::collection::vec(any::<u8>(), 0..200),
        caveats in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..5),
    ) {
        let cavs: Vec<&[u8]> = caveats.iter().map(Vec::as_slice).collect();
        let m = Macaroon::mint(&root, &loc, &id, &cavs);
        let decoded = Macaroon::decode_v2(&m.encode_v2()).unwrap();
        prop_assert_eq!(&decoded, &m);
        prop_assert!(decoded.verify_with(&root));
        let mut wrong = root.clone();
        wrong.push(0);
        prop_assert!(!decoded.verify_with(&wrong));
        let parsed = Macaroon::from_token(&m.to_token("mc"), &["mc"]).unwrap();
        prop_assert_eq!(parsed, m);
    }

    #[test]
    fn talos_macaroon_round_trip(sub in "[a-z0-9-]{1,36}", nid in any::<u128>(), exp in 0i64..4_000_000_000) {
        let kr = keyring();
        let mut c = claims(Uuid::from_u128(nid));
        c.sub = sub;
        c.exp = exp;
        let token = derive_macaroon(kr.current().unwrap(), "mc", &c);
        prop_assert_eq!(verify_macaroon(&kr, &token, &["mc"]).unwrap(), c);
    }
}
