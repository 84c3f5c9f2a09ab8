//! Tests of the macaroon codec and of derived macaroon tokens.

use super::*;
use crate::claims::Visibility;
use chrono::Utc;
use talos_secrets::{RetiredSecret, Secret};
use uuid::Uuid;

/// go-macaroon `TestMarshalBinaryRoundTrip`: the libmacaroons README macaroon in V2 binary form.
fn libmacaroons_readme_v2() -> Vec<u8> {
    let mut d = vec![0x02];
    d.extend_from_slice(b"\x01\x0ehttp://mybank/");
    d.extend_from_slice(b"\x02\x1cwe used our other secret key");
    d.push(0);
    d.extend_from_slice(b"\x02\x14account = 3735928559");
    d.push(0);
    d.extend_from_slice(b"\x01\x13http://auth.mybank/");
    d.extend_from_slice(b"\x02'this was how we remind auth of key/pred");
    d.extend_from_slice(b"\x04\x48");
    d.extend_from_slice(&[0u8; 24]);
    d.extend_from_slice(
        &hex::decode(
            "d36ec502e05886d1f0279f055fa52554d16d16c1b14074bbb83ff0fdd79dc2fe098f0ed4a2b091130e6b5db46a20a86b",
        )
        .unwrap(),
    );
    d.push(0);
    d.push(0);
    d.extend_from_slice(b"\x06\x20");
    d.extend_from_slice(
        &hex::decode("d27db2fd1f22760e4c3dae8137e2d8fc1df6c0741c18aed4b97256bf78d1f55c").unwrap(),
    );
    d
}

#[test]
fn go_macaroon_v2_vector() {
    let data = libmacaroons_readme_v2();
    let m = Macaroon::decode_v2(&data).unwrap();
    assert_eq!(m.location, b"http://mybank/");
    assert_eq!(m.identifier, b"we used our other secret key");
    assert_eq!(m.caveats.len(), 2);
    assert_eq!(m.caveats[0].id, b"account = 3735928559");
    assert!(m.caveats[0].is_first_party());
    assert_eq!(m.caveats[1].location, b"http://auth.mybank/");
    assert_eq!(m.caveats[1].verification_id.len(), 72);
    assert_eq!(m.encode_v2(), data, "byte-exact re-encoding");
    // The README's root key reproduces the README's signature through the whole chain.
    let root = b"this is a different super-secret key; never use the same secret twice";
    assert_eq!(m.compute_signature(root), m.signature);
    // Third-party caveats need discharges: never verified here.
    assert!(!m.verify_with(root));
}

#[test]
fn libmacaroons_first_party_vector() {
    // libmacaroons / pymacaroons published signatures.
    let key = b"this is our super secret key; only we should know it";
    let m = Macaroon::mint(key, b"http://mybank/", b"we used our secret key", &[]);
    assert_eq!(
        hex::encode(m.signature),
        "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
    );
    let m = Macaroon::mint(
        key,
        b"http://mybank/",
        b"we used our secret key",
        &[b"test = caveat"],
    );
    assert_eq!(
        hex::encode(m.signature),
        "197bac7a044af33332865b9266e26d493bdd668a660e44d88ce1a998c23dbd67"
    );
    assert!(m.verify_with(key));
    assert!(!m.verify_with(b"this is our super secret key; only we should know iT"));

    // Hand-built V2 bytes.
    let mut want = vec![0x02, 0x01, 14];
    want.extend_from_slice(b"http://mybank/");
    want.extend_from_slice(&[0x02, 22]);
    want.extend_from_slice(b"we used our secret key");
    want.extend_from_slice(&[0x00, 0x02, 13]);
    want.extend_from_slice(b"test = caveat");
    want.extend_from_slice(&[0x00, 0x00, 0x06, 0x20]);
    want.extend_from_slice(&m.signature);
    assert_eq!(m.encode_v2(), want);
    assert_eq!(Macaroon::decode_v2(&want).unwrap(), m);
}

#[test]
fn root_key_derivation() {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"macaroons-key-generator").unwrap();
    mac.update(b"root");
    assert_eq!(
        derive_root_key(b"root").as_slice(),
        mac.finalize().into_bytes().as_slice()
    );
}

#[test]
fn no_location_and_long_fields() {
    let long = vec![b'a'; 300];
    let m = Macaroon::mint(b"k", b"", &long, &[&long]);
    let enc = m.encode_v2();
    // No location field; two-byte varint length (300 = 0xac 0x02).
    assert_eq!(&enc[..4], &[0x02, 0x02, 0xac, 0x02]);
    assert_eq!(Macaroon::decode_v2(&enc).unwrap(), m);
    assert!(Macaroon::decode_v2(&enc).unwrap().verify_with(b"k"));
}

#[test]
fn decode_rejects() {
    let m = Macaroon::mint(b"k", b"loc", b"id", &[b"c1", b"c2"]);
    let good = m.encode_v2();
    for n in 0..good.len() {
        assert!(Macaroon::decode_v2(&good[..n]).is_err(), "truncated at {n}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(Macaroon::decode_v2(&trailing).is_err());
    let mut v1 = good.clone();
    v1[0] = 1;
    assert!(Macaroon::decode_v2(&v1).is_err());

    let sig = [0x06, 0x20];
    let cases: Vec<Vec<u8>> = vec![
        // identifier before location (out of order)
        [
            &[2u8, 2, 0x02, 1, b'i', 0x01, 1, b'l', 0, 0][..],
            &sig,
            &[0; 32],
        ]
        .concat(),
        // no identifier
        [&[2u8, 0x01, 1, b'l', 0, 0][..], &sig, &[0; 32]].concat(),
        // duplicate identifier
        [
            &[2u8, 0x02, 1, b'i', 0x02, 1, b'j', 0, 0][..],
            &sig,
            &[0; 32],
        ]
        .concat(),
        // vid in the header
        [
            &[2u8, 0x02, 1, b'i', 0x04, 1, b'v', 0, 0][..],
            &sig,
            &[0; 32],
        ]
        .concat(),
        // location on a first-party caveat
        [
            &[2u8, 0x02, 1, b'i', 0, 0x01, 1, b'l', 0x02, 1, b'c', 0, 0][..],
            &sig,
            &[0; 32],
        ]
        .concat(),
        // caveat without identifier
        [
            &[2u8, 0x02, 1, b'i', 0, 0x04, 1, b'v', 0, 0][..],
            &sig,
            &[0; 32],
        ]
        .concat(),
        // unknown field type in a caveat
        [
            &[2u8, 0x02, 1, b'i', 0, 0x02, 1, b'c', 0x05, 1, b'x', 0, 0][..],
            &sig,
            &[0; 32],
        ]
        .concat(),
        // short signature
        [&[2u8, 0x02, 1, b'i', 0, 0, 0x06, 0x1f][..], &[0; 31]].concat(),
        // wrong final field
        [&[2u8, 0x02, 1, b'i', 0, 0, 0x02, 0x20][..], &[0; 32]].concat(),
        // length past the end
        vec![2, 0x02, 0x7f, b'i'],
        // oversized varint
        vec![2, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f],
        vec![
            2, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        vec![],
    ];
    for (i, c) in cases.iter().enumerate() {
        assert!(Macaroon::decode_v2(c).is_err(), "case {i}");
    }
    assert!(Macaroon::decode_v2(&vec![2; MAX_MACAROON_BYTES + 1]).is_err());
    let many: Vec<&[u8]> = vec![b"c"; MAX_CAVEATS + 1];
    let m = Macaroon::mint(b"k", b"", b"id", &many);
    assert!(Macaroon::decode_v2(&m.encode_v2()).is_err());
}

#[test]
fn debug_hides_signature() {
    let m = Macaroon::mint(b"k", b"loc", b"id", &[b"c1"]);
    let dbg = format!("{m:?}");
    assert!(!dbg.contains(&hex::encode(m.signature)));
    assert!(!dbg.contains(&format!("{:?}", m.signature)));
}

fn claims() -> DerivedClaims {
    DerivedClaims {
        jti: Uuid::new_v4().to_string(),
        sub: Uuid::new_v4().to_string(),
        iss: "http://localhost:8080".into(),
        iat: 1_767_225_600,
        nbf: 1_767_225_600,
        exp: 1_767_229_200,
        act: "user".into(),
        nid: Uuid::nil(),
        scp: vec!["read".into(), "write".into()],
        meta: Map::new(),
        vis: Visibility::Public,
        acl: vec![],
        custom: serde_json::json!({"role": "x"})
            .as_object()
            .unwrap()
            .clone(),
    }
}

const CUR: &str = "current-current-current-current-current";
const OLD: &str = "retired-retired-retired-retired-retired";

#[test]
fn talos_round_trip() {
    let kr = Keyring::from_current(&Secret::new(CUR));
    let c = claims();
    let token = derive_macaroon(kr.current().unwrap(), "mc", &c);
    assert!(token.starts_with("mc_v1_Ag"));
    assert!(!token.contains('='));
    assert_eq!(verify_macaroon(&kr, &token, &["mc"]).unwrap(), c);

    // Structure: location = iss, id = {"jti":…}, one caveat with the claims.
    let m = Macaroon::from_token(&token, &["mc"]).unwrap();
    assert_eq!(m.location, c.iss.as_bytes());
    assert_eq!(
        m.identifier,
        format!("{{\"jti\":\"{}\"}}", c.jti).as_bytes()
    );
    assert_eq!(m.caveats.len(), 1);
    assert_eq!(DerivedClaims::from_json(&m.caveats[0].id).unwrap(), c);
    assert!(m.verify_with(kr.current().unwrap().macaroon_root_key()));

    // Padded base64 is accepted too.
    let padded = format!(
        "mc_v1_{}",
        base64::prelude::BASE64_URL_SAFE.encode(m.encode_v2())
    );
    assert_eq!(verify_macaroon(&kr, &padded, &["mc"]).unwrap(), c);
}

#[test]
fn talos_keyring_rotation() {
    let old = Keyring::from_current(&Secret::new(OLD));
    let c = claims();
    let token = derive_macaroon(old.current().unwrap(), "mc", &c);
    let rotated = Keyring::new(
        Some(&Secret::new(CUR)),
        &[RetiredSecret::new(OLD)],
        Utc::now(),
    );
    assert_eq!(verify_macaroon(&rotated, &token, &["mc"]).unwrap(), c);
    let forgotten = Keyring::from_current(&Secret::new(CUR));
    assert_eq!(
        verify_macaroon(&forgotten, &token, &["mc"]),
        Err(CredentialsError::SignatureInvalid)
    );
    assert_eq!(
        verify_macaroon(&Keyring::default(), &token, &["mc"]),
        Err(CredentialsError::SignatureInvalid)
    );
}

#[test]
fn talos_rejects() {
    let kr = Keyring::from_current(&Secret::new(CUR));
    let entry = kr.current().unwrap();
    let c = claims();
    let token = derive_macaroon(entry, "mc", &c);
    assert!(matches!(
        verify_macaroon(&kr, &token, &["other"]),
        Err(CredentialsError::MalformedToken(_))
    ));
    assert!(matches!(
        verify_macaroon(&kr, "mc_v1_!!!", &["mc"]),
        Err(CredentialsError::MalformedToken(_))
    ));
    // Any tampered byte breaks decoding or the signature.
    let bytes = Macaroon::from_token(&token, &["mc"]).unwrap().encode_v2();
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x20;
        let tok = format!("mc_v1_{}", URL_NO_PAD.encode(&t));
        assert!(verify_macaroon(&kr, &tok, &["mc"]).is_err(), "byte {i}");
    }
    let root = entry.macaroon_root_key();
    let mint = |loc: &str, id: &str, cavs: &[&str]| {
        let cavs: Vec<&[u8]> = cavs.iter().map(|c| c.as_bytes()).collect();
        Macaroon::mint(root, loc.as_bytes(), id.as_bytes(), &cavs).to_token("mc")
    };
    let id = format!("{{\"jti\":\"{}\"}}", c.jti);
    let json = c.to_json();
    let cases = [
        mint(&c.iss, &id, &[]),
        mint("http://elsewhere", &id, &[&json]),
        mint(&c.iss, "{\"jti\":\"other\"}", &[&json]),
        mint(&c.iss, "not json", &[&json]),
        mint(&c.iss, &id, &["not json"]),
        mint(&c.iss, &id, &["{\"sub\":\"x\"}"]),
        mint(&c.iss, &id, &[&json, "time < 2030"]),
        mint(&c.iss, &id, &[&json, "{\"exp\":1}"]),
        mint(
            &c.iss,
            &id,
            &[
                &json,
                &format!("{{\"exp\":1,\"iss\":\"{}\",\"sub\":\"x\"}}", c.iss),
            ],
        ),
        mint(
            &c.iss,
            &id,
            &[&json, "{\"exp\":1,\"iss\":\"http://elsewhere\"}"],
        ),
        mint(&c.iss, &id, &[&json, &format!("{{\"iss\":\"{}\"}}", c.iss)]),
        mint(
            &c.iss,
            &id,
            &[
                &json,
                &format!("{{\"exp\":1,\"iss\":\"{}\",\"scp\":\"read\"}}", c.iss),
            ],
        ),
    ];
    for (i, t) in cases.iter().enumerate() {
        assert!(verify_macaroon(&kr, t, &["mc"]).is_err(), "case {i}");
    }
}

#[test]
fn talos_attenuation_narrows() {
    let kr = Keyring::from_current(&Secret::new(CUR));
    let c = claims();
    let token = derive_macaroon(kr.current().unwrap(), "mc", &c);
    let mut m = Macaroon::from_token(&token, &["mc"]).unwrap();
    let cav = format!(
        "{{\"exp\":{},\"nbf\":{},\"iss\":\"{}\",\"scp\":[\"read\",\"admin\"]}}",
        c.exp - 100,
        c.nbf + 10,
        c.iss
    );
    m.add_first_party_caveat(cav.as_bytes());
    let later = format!("{{\"exp\":{},\"iss\":\"{}\"}}", c.exp + 1000, c.iss);
    m.add_first_party_caveat(later.as_bytes());
    let got = verify_macaroon(&kr, &m.to_token("mc"), &["mc"]).unwrap();
    assert_eq!(got.exp, c.exp - 100);
    assert_eq!(got.nbf, c.nbf + 10);
    assert_eq!(got.scp, ["read"]);
    assert_eq!(got.sub, c.sub);
}
