//! Claims of derived tokens (JWT payload and macaroon caveat, same keys).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::CredentialsError;

/// Claim names custom claims can never set: the upstream reserved list
/// (`jti sub iss aud iat exp nbf nid akid pid tty oid scp scope meta vis acl`) plus `act`, which Talos also emits.
pub const RESERVED_CLAIMS: &[&str] = &[
    "jti", "sub", "iss", "aud", "iat", "exp", "nbf", "nid", "akid", "pid", "tty", "oid", "scp",
    "scope", "meta", "vis", "acl", "act",
];

/// The only accepted value of a `tty` claim.
pub const TOKEN_TYPE_DERIVED: &str = "derived";

/// Whether `name` is in [`RESERVED_CLAIMS`].
pub fn is_reserved_claim(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}

/// Drops reserved claim names from a custom-claims map (silently, as the derive endpoint does).
pub fn strip_reserved(mut custom: Map<String, Value>) -> Map<String, Value> {
    custom.retain(|k, _| !is_reserved_claim(k));
    custom
}

/// Key visibility (`vis` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// `"public"`.
    Public,
    /// `"secret"` (the default).
    #[default]
    Secret,
}

impl Visibility {
    /// `"public"` or `"secret"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Secret => "secret",
        }
    }
}

/// Claims of a derived token.
///
/// Serialized as one flat JSON object: the named fields, then the custom claims minus any reserved name (custom
/// claims never override a named field). `tty`, `akid`, `pid`, `aud`, `oid` and `scope` are never emitted; when
/// parsing, `tty` must be `"derived"` if present, `scope` (space separated) is used only when `scp` is absent, and
/// the others are ignored.
///
/// Required when parsing: `jti`, `sub`, `iss`, `exp`, `nid`. Defaults: `iat`/`nbf` 0, `act` `""`, `scp`/`acl` `[]`,
/// `meta` `{}`, `vis` `secret`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DerivedClaims {
    /// Token id (a UUID).
    pub jti: String,
    /// Parent key id.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Actor id of the parent key.
    pub act: String,
    /// Network id.
    pub nid: Uuid,
    /// Scopes.
    pub scp: Vec<String>,
    /// Parent key metadata.
    pub meta: Map<String, Value>,
    /// Visibility.
    pub vis: Visibility,
    /// Allowed CIDRs.
    pub acl: Vec<String>,
    /// Custom claims (top level in the token).
    pub custom: Map<String, Value>,
}

impl DerivedClaims {
    /// The claims as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("jti".into(), self.jti.clone().into());
        map.insert("sub".into(), self.sub.clone().into());
        map.insert("iss".into(), self.iss.clone().into());
        map.insert("iat".into(), self.iat.into());
        map.insert("nbf".into(), self.nbf.into());
        map.insert("exp".into(), self.exp.into());
        map.insert("act".into(), self.act.clone().into());
        map.insert("nid".into(), self.nid.hyphenated().to_string().into());
        map.insert("scp".into(), self.scp.clone().into());
        map.insert("meta".into(), Value::Object(self.meta.clone()));
        map.insert("vis".into(), self.vis.as_str().into());
        map.insert("acl".into(), self.acl.clone().into());
        for (k, v) in &self.custom {
            if !is_reserved_claim(k) && !map.contains_key(k) {
                map.insert(k.clone(), v.clone());
            }
        }
        map
    }

    /// The claims as compact JSON.
    pub fn to_json(&self) -> String {
        Value::Object(self.to_map()).to_string()
    }

    /// Parses claims from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CredentialsError> {
        let map: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|_| CredentialsError::InvalidClaims("claims are not a JSON object".into()))?;
        Self::from_map(map)
    }

    /// Parses claims from a JSON object.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Self, CredentialsError> {
        if let Some(tty) = map.get("tty")
            && tty.as_str() != Some(TOKEN_TYPE_DERIVED)
        {
            return Err(bad("tty must be \"derived\""));
        }
        let jti = req_string(&mut map, "jti")?;
        let sub = req_string(&mut map, "sub")?;
        let iss = req_string(&mut map, "iss")?;
        let exp = numeric_date(map.remove("exp"), "exp")?.ok_or_else(|| missing("exp"))?;
        let iat = numeric_date(map.remove("iat"), "iat")?.unwrap_or(0);
        let nbf = numeric_date(map.remove("nbf"), "nbf")?.unwrap_or(0);
        let nid = req_string(&mut map, "nid")?;
        let nid = Uuid::try_parse(&nid).map_err(|_| bad("nid must be a UUID"))?;
        let act = opt_string(&mut map, "act")?.unwrap_or_default();
        let scope = opt_string(&mut map, "scope")?;
        let scp = match string_list(map.remove("scp"), "scp")? {
            Some(list) => list,
            None => scope
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        let meta = match map.remove("meta") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad("meta must be an object")),
        };
        let vis = match opt_string(&mut map, "vis")?.as_deref() {
            None | Some("") | Some("secret") => Visibility::Secret,
            Some("public") => Visibility::Public,
            Some(_) => return Err(bad("vis must be \"public\" or \"secret\"")),
        };
        let acl = string_list(map.remove("acl"), "acl")?.unwrap_or_default();
        Ok(DerivedClaims {
            jti,
            sub,
            iss,
            iat,
            nbf,
            exp,
            act,
            nid,
            scp,
            meta,
            vis,
            acl,
            custom: strip_reserved(map),
        })
    }

    /// The verify response `metadata`: the custom claims overlaid by `meta`.
    pub fn response_metadata(&self) -> Map<String, Value> {
        let mut out = self.custom.clone();
        for (k, v) in &self.meta {
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

impl Serialize for DerivedClaims {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DerivedClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        DerivedClaims::from_map(map).map_err(serde::de::Error::custom)
    }
}

/// Checks `exp` (strict: expired when `now >= exp`) and `nbf` (valid once `now + skew >= nbf`).
pub fn check_times(
    claims: &DerivedClaims,
    now: DateTime<Utc>,
    skew: Duration,
) -> Result<(), CredentialsError> {
    let now = now.timestamp();
    if now >= claims.exp {
        return Err(CredentialsError::TokenExpired);
    }
    let skew = i64::try_from(skew.as_secs()).unwrap_or(i64::MAX);
    if claims.nbf > now.saturating_add(skew) {
        return Err(CredentialsError::TokenNotYetValid);
    }
    Ok(())
}

fn bad(msg: &str) -> CredentialsError {
    CredentialsError::InvalidClaims(msg.to_owned())
}

fn missing(name: &str) -> CredentialsError {
    CredentialsError::InvalidClaims(format!("missing claim {name}"))
}

fn opt_string(
    map: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, CredentialsError> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CredentialsError::InvalidClaims(format!(
            "{name} must be a string"
        ))),
    }
}

fn req_string(map: &mut Map<String, Value>, name: &str) -> Result<String, CredentialsError> {
    opt_string(map, name)?.ok_or_else(|| missing(name))
}

/// A NumericDate: an integer, or a float truncated toward zero, within ±1e15 seconds.
pub(crate) fn numeric_date(
    value: Option<Value>,
    name: &str,
) -> Result<Option<i64>, CredentialsError> {
    const LIMIT: f64 = 1e15;
    let err = || CredentialsError::InvalidClaims(format!("{name} must be a number of seconds"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < LIMIT => Ok(Some(f.trunc() as i64)),
                _ => Err(err()),
            }
        }
        Some(_) => Err(err()),
    }
}

fn string_list(value: Option<Value>, name: &str) -> Result<Option<Vec<String>>, CredentialsError> {
    let err = || CredentialsError::InvalidClaims(format!("{name} must be an array of strings"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(err()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> DerivedClaims {
        DerivedClaims {
            jti: "5b0b3f7e-0c2a-4d8e-9f1a-6b7c8d9e0f1a".into(),
            sub: "8d0f2b4e-6a3c-4e1f-9b7a-2c5d8e1f0a3b".into(),
            iss: "http://localhost:8080".into(),
            iat: 1_767_225_600,
            nbf: 1_767_225_600,
            exp: 1_767_229_200,
            act: "user-42".into(),
            nid: Uuid::nil(),
            scp: vec!["read".into(), "write".into()],
            meta: json!({"team": "a", "env": "meta-wins"})
                .as_object()
                .unwrap()
                .clone(),
            vis: Visibility::Secret,
            acl: vec!["10.0.0.0/8".into()],
            custom: json!({"role": "preview-user", "env": "demo"})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        let json = c.to_json();
        assert_eq!(DerivedClaims::from_json(json.as_bytes()).unwrap(), c);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["nid"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(v["vis"], "secret");
        assert_eq!(v["role"], "preview-user");
        assert!(v.get("tty").is_none());
        assert!(v.get("aud").is_none());
        let via_serde: DerivedClaims =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(via_serde, c);
    }

    #[test]
    fn custom_never_overrides() {
        let mut c = sample();
        c.custom.insert("sub".into(), json!("attacker"));
        c.custom.insert("act".into(), json!("attacker"));
        c.custom.insert("tty".into(), json!("other"));
        let v: Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["sub"], c.sub);
        assert_eq!(v["act"], c.act);
        assert!(v.get("tty").is_none());
    }

    #[test]
    fn strip() {
        let m = json!({"sub": 1, "scope": 2, "aud": 3, "role": "x", "akid": 4, "act": 5})
            .as_object()
            .unwrap()
            .clone();
        let s = strip_reserved(m);
        assert_eq!(Value::Object(s), json!({"role": "x"}));
        assert_eq!(RESERVED_CLAIMS.len(), 18);
    }

    #[test]
    fn parsing_rules() {
        let base = serde_json::to_value(sample()).unwrap();
        let with = |k: &str, v: Value| {
            let mut m = base.as_object().unwrap().clone();
            m.insert(k.into(), v);
            DerivedClaims::from_map(m)
        };
        assert!(with("tty", json!("derived")).is_ok());
        assert!(with("tty", json!("issued")).is_err());
        assert!(with("tty", json!(1)).is_err());
        assert!(with("exp", json!("soon")).is_err());
        assert_eq!(with("exp", json!(1.9e9)).unwrap().exp, 1_900_000_000);
        assert!(with("exp", json!(1e300)).is_err());
        assert!(with("nid", json!("nope")).is_err());
        assert!(with("scp", json!([1])).is_err());
        assert!(with("meta", json!([])).is_err());
        assert!(with("vis", json!("private")).is_err());
        assert_eq!(
            with("vis", json!("public")).unwrap().vis,
            Visibility::Public
        );
        assert!(with("aud", json!("x")).unwrap().custom.get("aud").is_none());
        for k in ["jti", "sub", "iss", "exp", "nid"] {
            let mut m = base.as_object().unwrap().clone();
            m.remove(k);
            let err = DerivedClaims::from_map(m).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid token claims: missing claim {k}")
            );
        }
        let mut m = base.as_object().unwrap().clone();
        m.remove("scp");
        m.insert("scope".into(), json!("a b  c"));
        assert_eq!(DerivedClaims::from_map(m).unwrap().scp, ["a", "b", "c"]);
        let mut m = base.as_object().unwrap().clone();
        for k in ["iat", "nbf", "act", "scp", "meta", "vis", "acl"] {
            m.remove(k);
        }
        let c = DerivedClaims::from_map(m).unwrap();
        assert_eq!((c.iat, c.nbf, c.vis), (0, 0, Visibility::Secret));
        assert!(DerivedClaims::from_json(b"[]").is_err());
        assert!(DerivedClaims::from_json(b"{").is_err());
    }

    #[test]
    fn metadata_overlay() {
        let md = sample().response_metadata();
        assert_eq!(
            Value::Object(md),
            json!({"role": "preview-user", "env": "meta-wins", "team": "a"})
        );
    }

    #[test]
    fn times() {
        let c = sample();
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let skew = Duration::from_secs(30);
        assert!(check_times(&c, at(c.nbf), skew).is_ok());
        assert!(check_times(&c, at(c.exp - 1), skew).is_ok());
        assert_eq!(
            check_times(&c, at(c.exp), skew),
            Err(CredentialsError::TokenExpired)
        );
        assert!(check_times(&c, at(c.nbf - 30), skew).is_ok());
        assert_eq!(
            check_times(&c, at(c.nbf - 31), skew),
            Err(CredentialsError::TokenNotYetValid)
        );
        assert!(check_times(&c, at(c.nbf - 31), Duration::from_secs(u64::MAX)).is_ok());
    }
}
