//! Update masks: the fields a PATCH writes, named snake_case or camelCase, given in the
//! `update_mask` query parameter (`name,scopes`) or in the body (the same string, or the JSON form
//! of a protobuf `FieldMask`, `{"paths": [...]}`).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// A field an update may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdatePath {
    /// `name`.
    Name,
    /// `scopes`.
    Scopes,
    /// `metadata`.
    Metadata,
    /// `rate_limit_policy` (`rateLimitPolicy`).
    RateLimitPolicy,
    /// `ip_restriction` (`ipRestriction`).
    IpRestriction,
    /// `credits` (metering: the balance restarts from the new value).
    Credits,
}

impl UpdatePath {
    /// Every path, in the order the documentation lists them.
    pub const ALL: &'static [UpdatePath] = &[
        UpdatePath::Name,
        UpdatePath::Scopes,
        UpdatePath::Metadata,
        UpdatePath::RateLimitPolicy,
        UpdatePath::IpRestriction,
        UpdatePath::Credits,
    ];

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            UpdatePath::Name => "name",
            UpdatePath::Scopes => "scopes",
            UpdatePath::Metadata => "metadata",
            UpdatePath::RateLimitPolicy => "rate_limit_policy",
            UpdatePath::IpRestriction => "ip_restriction",
            UpdatePath::Credits => "credits",
        }
    }

    /// Parses one path, snake_case or camelCase (surrounding blanks ignored).
    pub fn parse(path: &str) -> Result<Self, String> {
        match path.trim() {
            "name" => Ok(UpdatePath::Name),
            "scopes" => Ok(UpdatePath::Scopes),
            "metadata" => Ok(UpdatePath::Metadata),
            "rate_limit_policy" | "rateLimitPolicy" => Ok(UpdatePath::RateLimitPolicy),
            "ip_restriction" | "ipRestriction" => Ok(UpdatePath::IpRestriction),
            "credits" => Ok(UpdatePath::Credits),
            other => Err(format!(
                "unknown update_mask path: {other:?} (allowed: {})",
                Self::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The body's `update_mask`: a comma-separated string or `{"paths": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateMask {
    /// `"name,scopes"` (the JSON form of a `FieldMask`).
    Text(String),
    /// `{"paths": ["name", "scopes"]}`.
    Paths(Vec<String>),
}

impl UpdateMask {
    /// The mask's paths as given; `None` for an empty mask (`""`), which means "no mask".
    pub fn paths(&self) -> Option<Vec<String>> {
        match self {
            UpdateMask::Text(s) if s.is_empty() => None,
            UpdateMask::Text(s) => Some(s.split(',').map(str::to_string).collect()),
            UpdateMask::Paths(p) => Some(p.clone()),
        }
    }

    /// Decodes the body's `update_mask` value; `null` is no mask.
    pub fn from_value(v: &Value) -> Result<Option<UpdateMask>, String> {
        const BAD_PATHS: &str = "update_mask.paths must be a list of strings";
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(UpdateMask::Text(s.clone()))),
            Value::Object(o) => match o.get("paths") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|p| p.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
                    .map(|p| Some(UpdateMask::Paths(p)))
                    .ok_or_else(|| BAD_PATHS.to_string()),
                None | Some(Value::Null) => Ok(Some(UpdateMask::Paths(Vec::new()))),
                _ => Err(BAD_PATHS.to_string()),
            },
            _ => Err("update_mask must be a string or {\"paths\": [...]}".into()),
        }
    }
}

/// The mask of a PATCH from the query's `update_mask` and the body's: given in both, they must
/// agree. `Ok(None)` means "no mask" (every non-empty field applies); an empty path (`name,`) is an
/// error, not "no mask", which would apply other fields than the ones meant.
pub fn resolve(
    query: Option<&str>,
    body: Option<&UpdateMask>,
) -> Result<Option<Vec<UpdatePath>>, String> {
    let query: Option<Vec<String>> = query
        .filter(|m| !m.is_empty())
        .map(|m| m.split(',').map(str::to_string).collect());
    let body = body.and_then(UpdateMask::paths);
    let mask = match (query, body) {
        (Some(q), Some(b)) if q != b => {
            return Err("update_mask given in the query and the body, and they differ".into());
        }
        (q, b) => q.or(b).filter(|m| !m.is_empty()),
    };
    mask.map(|m| m.iter().map(|p| UpdatePath::parse(p)).collect())
        .transpose()
}

impl Serialize for UpdateMask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UpdateMask::Text(t) => s.serialize_str(t),
            UpdateMask::Paths(p) => json!({ "paths": p }).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for UpdateMask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        UpdateMask::from_value(&v)
            .and_then(|m| m.ok_or_else(|| "update_mask must not be null".to_string()))
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for UpdateMask {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UpdateMask".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": { "paths": { "type": "array", "items": { "type": "string" } } },
                    "required": []
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_snake_or_camel() {
        assert_eq!(
            UpdatePath::parse(" rateLimitPolicy "),
            Ok(UpdatePath::RateLimitPolicy)
        );
        assert_eq!(
            UpdatePath::parse("actor_id").unwrap_err(),
            "unknown update_mask path: \"actor_id\" (allowed: name, scopes, metadata, \
             rate_limit_policy, ip_restriction, credits)"
        );
    }

    #[test]
    fn query_and_body_masks() {
        let text = |s: &str| UpdateMask::Text(s.into());
        assert_eq!(resolve(None, None), Ok(None));
        assert_eq!(resolve(Some(""), Some(&text(""))), Ok(None));
        assert_eq!(
            resolve(None, Some(&UpdateMask::Paths(vec![]))),
            Ok(None),
            "an empty FieldMask is no mask"
        );
        assert_eq!(
            resolve(Some("name,scopes"), None),
            Ok(Some(vec![UpdatePath::Name, UpdatePath::Scopes]))
        );
        assert_eq!(
            resolve(Some("name"), Some(&text("name"))),
            Ok(Some(vec![UpdatePath::Name]))
        );
        assert!(resolve(Some("name"), Some(&text("scopes"))).is_err());
        for bad in [",,,", "name,", ","] {
            assert!(resolve(Some(bad), None).is_err(), "{bad}");
        }
        for (v, ok) in [
            (json!({"paths": [1, 2]}), false),
            (json!({"paths": ["name", null]}), false),
            (json!({"paths": "name"}), false),
            (json!(5), false),
            (json!({}), true),
            (json!(null), true),
        ] {
            assert_eq!(UpdateMask::from_value(&v).is_ok(), ok, "{v}");
        }
    }
}
