//! The bench's scenarios, the keys seeded for them through the HTTP API, and the check that every
//! credential of a scenario gets the answer the scenario is about before it is loaded.

use std::net::SocketAddr;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::baseline::VERIFY_PATH;
use crate::http;
use crate::results::CacheKind;

/// The scenarios, in the order they run against one server (writes last).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    VerifyIssuedHit,
    GatewayVerifyHit,
    VerifyImportedValid,
    VerifyNoCache,
    VerifyImportedUnknown,
    VerifyForged,
    VerifyJwt,
    VerifyCredits,
    DeriveJwt,
    Issue,
    BatchImport,
}

pub const ALL: [Scenario; 11] = [
    Scenario::VerifyIssuedHit,
    Scenario::GatewayVerifyHit,
    Scenario::VerifyImportedValid,
    Scenario::VerifyNoCache,
    Scenario::VerifyImportedUnknown,
    Scenario::VerifyForged,
    Scenario::VerifyJwt,
    // Writes (one credit spent per request), so after the read-only verifies.
    Scenario::VerifyCredits,
    Scenario::DeriveJwt,
    Scenario::Issue,
    Scenario::BatchImport,
];

/// Keys per batch-import request.
pub const BATCH: usize = 1000;
pub const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";
const IMPORTED: &str = "/v2alpha1/admin/importedApiKeys";
const BATCH_IMPORT: &str = "/v2alpha1/admin/importedApiKeys:batchImport";
const DERIVE: &str = "/v2alpha1/admin/apiKeys:derive";
const GATEWAY: &str = "/gateway/verify";

impl Scenario {
    pub fn id(self) -> &'static str {
        match self {
            Scenario::VerifyIssuedHit => "verify_issued",
            Scenario::GatewayVerifyHit => "gateway_verify",
            Scenario::VerifyImportedValid => "verify_imported",
            Scenario::VerifyNoCache => "verify_no_cache",
            Scenario::VerifyImportedUnknown => "verify_unknown_imported",
            Scenario::VerifyForged => "verify_forged",
            Scenario::VerifyJwt => "verify_jwt",
            Scenario::VerifyCredits => "verify_credits",
            Scenario::DeriveJwt => "derive_jwt",
            Scenario::Issue => "issue",
            Scenario::BatchImport => "batch_import_1000",
        }
    }

    pub fn title(self, cache: CacheKind) -> &'static str {
        match (self, cache) {
            (Scenario::VerifyIssuedHit, CacheKind::Memory) => "verify issued key (cache hit)",
            (Scenario::VerifyIssuedHit, CacheKind::Noop) => "verify issued key (storage)",
            (Scenario::GatewayVerifyHit, _) => "gateway verify, issued key (cache hit)",
            (Scenario::VerifyImportedValid, CacheKind::Memory) => "verify imported key (cache hit)",
            (Scenario::VerifyImportedValid, CacheKind::Noop) => "verify imported key (storage)",
            (Scenario::VerifyNoCache, _) => "verify issued key, `Cache-Control: no-cache`",
            (Scenario::VerifyImportedUnknown, _) => "verify unknown imported key",
            (Scenario::VerifyForged, _) => "verify forged key (bad checksum)",
            (Scenario::VerifyJwt, _) => "verify derived JWT",
            (Scenario::VerifyCredits, CacheKind::Memory) => {
                "verify issued key with credits (cache hit, one spend each)"
            }
            (Scenario::VerifyCredits, CacheKind::Noop) => {
                "verify issued key with credits (storage, one spend each)"
            }
            (Scenario::DeriveJwt, _) => "derive JWT",
            (Scenario::Issue, _) => "issue key",
            (Scenario::BatchImport, _) => "batch import of 1000 keys",
        }
    }

    /// Scenarios whose cost depends on the cache; the others run only with the memory cache.
    pub fn runs_with(self, cache: CacheKind) -> bool {
        cache == CacheKind::Memory
            || matches!(
                self,
                Scenario::VerifyIssuedHit
                    | Scenario::VerifyImportedValid
                    | Scenario::VerifyImportedUnknown
                    | Scenario::VerifyCredits
            )
    }

    pub fn saturation_connections(self, connections: usize) -> usize {
        match self {
            // Each request writes 1000 rows; SQLite serialises writers and more concurrency only
            // queues requests behind each other (and toward the pool timeout).
            Scenario::BatchImport => connections.min(4),
            _ => connections,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Scenario::DeriveJwt => DERIVE,
            Scenario::Issue => ISSUED,
            Scenario::BatchImport => BATCH_IMPORT,
            Scenario::GatewayVerifyHit => GATEWAY,
            _ => VERIFY_PATH,
        }
    }
}

/// Keys seeded through the HTTP API before the load runs.
pub struct Seed {
    issued: Vec<String>,
    forged: Vec<String>,
    imported: Vec<String>,
    unknown: Vec<String>,
    jwts: Vec<String>,
    /// Issued keys with more credits than any run can spend.
    credited: Vec<String>,
}

/// The credits of a `verify_credits` key: never spent in a run (a debug server would need a
/// month at its full rate).
const BENCH_CREDITS: i64 = 1_000_000_000_000;

/// Keys seeded per kind.
pub fn seed_count(smoke: bool) -> usize {
    if smoke { 20 } else { 100 }
}

/// The same key with a wrong checksum: its last part (the base58 HMAC) with one bit changed,
/// re-encoded to the same length, so the key stays well formed.
pub(super) fn forge(key: &str) -> String {
    let cut = key.rfind('_').map_or(0, |i| i + 1);
    let (head, mac) = key.split_at(cut);
    let Ok(bytes) = bs58::decode(mac).into_vec() else {
        return key.to_string();
    };
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bytes.len() - 1 - bit / 8] ^= 1 << (bit % 8);
        let forged = bs58::encode(&b).into_string();
        if forged.len() == mac.len() {
            return format!("{head}{forged}");
        }
    }
    key.to_string()
}

fn key_spec(name: &str) -> Value {
    json!({ "name": name, "actor_id": "bench-user", "scopes": ["read"] })
}

pub fn seed(addr: SocketAddr, n: usize, nonce: &str) -> Result<Seed> {
    let mut issued = Vec::with_capacity(n);
    for _ in 0..n {
        let mut spec = key_spec("bench-issued");
        spec["ttl"] = json!("720h");
        let v = http::post(addr, ISSUED, &spec)?.expect(201, "issue")?;
        let secret = v["secret"].as_str().context("issue answer has no secret")?;
        issued.push(secret.to_string());
    }
    // Half imported one by one, half in one batch.
    let raw = |i: usize| format!("legacy-{nonce}-{i:05}-5f3c9a0e7b214d6a");
    let imported: Vec<String> = (0..n).map(raw).collect();
    for key in &imported[..n / 2] {
        let mut spec = key_spec("bench-imported");
        spec["raw_key"] = json!(key);
        http::post(addr, IMPORTED, &spec)?.expect(201, "import")?;
    }
    let batch: Vec<Value> = imported[n / 2..]
        .iter()
        .map(|k| {
            let mut spec = key_spec("bench-imported");
            spec["raw_key"] = json!(k);
            spec
        })
        .collect();
    if !batch.is_empty() {
        let v = http::post(addr, BATCH_IMPORT, &json!({ "keys": batch }))?
            .expect(200, "batch import")?;
        ensure!(
            v["success_count"].as_u64() == Some(batch.len() as u64),
            "batch import: {v}"
        );
    }
    let mut credited = Vec::with_capacity(n);
    for _ in 0..n {
        let mut spec = key_spec("bench-credited");
        spec["ttl"] = json!("720h");
        spec["credits"] = json!({ "remaining": BENCH_CREDITS });
        let v = http::post(addr, ISSUED, &spec)?.expect(201, "issue with credits")?;
        let secret = v["secret"].as_str().context("issue answer has no secret")?;
        credited.push(secret.to_string());
    }
    let mut jwts = Vec::with_capacity(n);
    for key in &issued {
        let v = http::post(addr, DERIVE, &json!({ "credential": key, "ttl": "1h" }))?
            .expect(200, "derive")?;
        let token = v["token"]["token"]
            .as_str()
            .context("derive answer has no token")?;
        jwts.push(token.to_string());
    }
    Ok(Seed {
        forged: issued.iter().map(|k| forge(k)).collect(),
        unknown: (0..n)
            .map(|i| format!("unknown-{nonce}-{i:05}-0d9e8f7a6b5c4d3e"))
            .collect(),
        issued,
        imported,
        jwts,
        credited,
    })
}

/// One verify: the answer and its `Ory-Talos-Cache` header.
pub fn verify_once(
    addr: SocketAddr,
    credential: &str,
    headers: &[(&str, &str)],
) -> Result<(Value, String)> {
    let body = json!({ "credential": credential }).to_string();
    let r = http::request(addr, "POST", VERIFY_PATH, Some(&body), headers)?;
    let v = r.expect(200, "verify")?;
    let cache = r.header("ory-talos-cache").unwrap_or("").to_string();
    Ok((v, cache))
}

pub type Headers = Vec<(String, String)>;

/// Checks every credential of a scenario gets the answer the scenario is about (and warms the
/// cache where it should be warm). Returns the bodies to send.
pub fn prepare(
    sc: Scenario,
    cache: CacheKind,
    addr: SocketAddr,
    seed: &Seed,
) -> Result<(Vec<String>, Headers)> {
    let verify_bodies = |creds: &[String]| -> Vec<String> {
        creds
            .iter()
            .map(|c| json!({ "credential": c }).to_string())
            .collect()
    };
    let check_all = |creds: &[String],
                     headers: &[(&str, &str)],
                     valid: bool,
                     want_code: Option<&str>|
     -> Result<()> {
        for c in creds {
            let (v, _) = verify_once(addr, c, headers)?;
            ensure!(
                v["is_valid"].as_bool() == Some(valid),
                "{}: expected is_valid {valid}, got {v}",
                sc.id()
            );
            if let Some(code) = want_code {
                ensure!(
                    v["error_code"].as_str() == Some(code),
                    "{}: expected {code}, got {v}",
                    sc.id()
                );
            }
        }
        Ok(())
    };
    let no_cache = [("Cache-Control", "no-cache")];
    Ok(match sc {
        Scenario::VerifyIssuedHit | Scenario::VerifyImportedValid => {
            let creds = if sc == Scenario::VerifyIssuedHit {
                &seed.issued
            } else {
                &seed.imported
            };
            check_all(creds, &[], true, None)?;
            if cache == CacheKind::Memory {
                for c in creds {
                    let (_, status) = verify_once(addr, c, &[])?;
                    ensure!(
                        status == "HIT",
                        "{}: expected a cache HIT, got {status:?}",
                        sc.id()
                    );
                }
            }
            (verify_bodies(creds), Vec::new())
        }
        Scenario::GatewayVerifyHit => {
            // The same keys as verify_issued, already in the cache, through the gateway's answer
            // (camelCase body, identity headers); the credential in the JSON body, so both runs
            // send the same bytes but for the path.
            let bodies = verify_bodies(&seed.issued);
            for b in &bodies {
                // Once to fill the cache (when this scenario runs alone), once to check.
                http::request(addr, "POST", GATEWAY, Some(b), &[])?;
                let r = http::request(addr, "POST", GATEWAY, Some(b), &[])?;
                let v = r.expect(200, "gateway verify")?;
                ensure!(
                    v["isValid"] == true
                        && r.header("x-talos-key-id").is_some_and(|k| !k.is_empty())
                        && (cache == CacheKind::Noop || r.header("ory-talos-cache") == Some("HIT")),
                    "gateway_verify: expected a valid key from the cache, got {v} ({:?})",
                    r.headers
                );
            }
            (bodies, Vec::new())
        }
        Scenario::VerifyNoCache => {
            check_all(&seed.issued, &no_cache, true, None)?;
            let (_, status) = verify_once(addr, &seed.issued[0], &no_cache)?;
            ensure!(status != "HIT", "no-cache verify answered from the cache");
            (
                verify_bodies(&seed.issued),
                vec![("Cache-Control".into(), "no-cache".into())],
            )
        }
        Scenario::VerifyImportedUnknown => {
            check_all(
                &seed.unknown,
                &[],
                false,
                Some("VERIFICATION_ERROR_NOT_FOUND"),
            )?;
            (verify_bodies(&seed.unknown), Vec::new())
        }
        Scenario::VerifyForged => {
            for c in &seed.forged {
                let (v, status) = verify_once(addr, c, &[])?;
                ensure!(
                    v["is_valid"].as_bool() == Some(false)
                        && v["error_message"]
                            .as_str()
                            .is_some_and(|m| m.contains("checksum"))
                        && status == "SKIP",
                    "forged key not rejected on its checksum: {v} (cache {status:?})"
                );
            }
            (verify_bodies(&seed.forged), Vec::new())
        }
        Scenario::VerifyJwt => {
            check_all(&seed.jwts, &[], true, None)?;
            (verify_bodies(&seed.jwts), Vec::new())
        }
        Scenario::VerifyCredits => {
            for c in &seed.credited {
                let (v, _) = verify_once(addr, c, &[])?;
                ensure!(
                    v["is_valid"].as_bool() == Some(true) && v["credits_remaining"].is_string(),
                    "verify_credits: expected a valid answer with credits_remaining, got {v}"
                );
            }
            (verify_bodies(&seed.credited), Vec::new())
        }
        Scenario::DeriveJwt => {
            let bodies: Vec<String> = seed
                .issued
                .iter()
                .map(|c| json!({ "credential": c, "ttl": "1h" }).to_string())
                .collect();
            let r = http::request(addr, "POST", DERIVE, Some(&bodies[0]), &[])?;
            r.expect(200, "derive")?;
            (bodies, Vec::new())
        }
        Scenario::Issue => {
            let body = key_spec("bench-load").to_string();
            http::request(addr, "POST", ISSUED, Some(&body), &[])?.expect(201, "issue")?;
            (vec![body], Vec::new())
        }
        Scenario::BatchImport => {
            let keys: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let mut s = key_spec("bulk");
                    s["raw_key"] = json!(format!("precheck-{i:05}-0123456789abcdef"));
                    s
                })
                .collect();
            let v = http::post(addr, BATCH_IMPORT, &json!({ "keys": keys }))?
                .expect(200, "batch import")?;
            ensure!(
                v["success_count"].as_u64() == Some(BATCH as u64),
                "batch import of {BATCH}: {}",
                v["failure_count"]
            );
            (Vec::new(), Vec::new())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_key_differs_only_in_its_checksum() {
        let mac = bs58::encode([7u8; 32]).into_string();
        let key = format!("talos_v1_2NEpo7TZRRrLZSi2U_{mac}");
        let forged = forge(&key);
        assert_ne!(forged, key);
        assert_eq!(forged.len(), key.len());
        let (head, tail) = forged.rsplit_once('_').unwrap();
        assert_eq!(head, "talos_v1_2NEpo7TZRRrLZSi2U");
        assert!(bs58::decode(tail).into_vec().is_ok());
    }
}
