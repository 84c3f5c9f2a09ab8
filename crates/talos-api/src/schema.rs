//! JSON Schema of the wire types for the OpenAPI 3.0 document.
//!
//! The types derive [`schemars::JsonSchema`]; [`generator`] collects their schemas under
//! `#/components/schemas/`. Optional fields are documented as optional, not as nullable: the
//! server never writes `null`, and it reads a `null` as absent.

use schemars::generate::{Contract, SchemaSettings};
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

/// A function adding a type's schema to a generator and returning a reference to it (an
/// endpoint's request or response body).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` as an endpoint table entry ([`SchemaFn`]).
pub fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A generator for the OpenAPI document: definitions under `#/components/schemas/`.
pub fn generator() -> SchemaGenerator {
    SchemaSettings::openapi3()
        .with(|s| {
            s.meta_schema = None;
            s.contract = Contract::Deserialize;
            // OpenAPI 3.0 has no `null` type; optional is not nullable here (module docs).
            s.transforms = vec![Box::new(Tidy)];
        })
        .into_generator()
}

/// Removes `null` from optional fields' schemas and drops `default` values (the documentation
/// says what an absent field means).
#[derive(Debug, Clone)]
struct Tidy;

impl Transform for Tidy {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        obj.remove("default");
        if let Some(Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                obj.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(values)) = obj.get_mut("enum") {
            values.retain(|v| !v.is_null());
        }
        let non_null: Option<Value> = match obj.get("anyOf") {
            Some(Value::Array(alts)) if alts.len() == 2 => {
                let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
                match (is_null(&alts[0]), is_null(&alts[1])) {
                    (false, true) => Some(alts[0].clone()),
                    (true, false) => Some(alts[1].clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(Value::Object(inner)) = non_null {
            obj.remove("anyOf");
            for (k, v) in inner {
                obj.entry(k).or_insert(v);
            }
        }
        // A `$ref` takes no siblings in OpenAPI 3.0.
        if obj.contains_key("$ref") {
            obj.retain(|k, _| k == "$ref");
        }
    }
}

/// int64 written as a decimal string (protojson).
pub(crate) struct Int64;

impl JsonSchema for Int64 {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Int64".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^-?[0-9]+$", "description": "int64, as a string" })
    }
}

/// A requested quota: a positive number, or a decimal string.
pub(crate) fn quota_input(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "oneOf": [{ "type": "integer", "minimum": 1 }, { "type": "string" }] })
}

/// A requested int64: a number, or a decimal string.
pub(crate) fn int64_input(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "oneOf": [{ "type": "integer" }, { "type": "string", "pattern": "^-?[0-9]+$" }] })
}

/// The units a policy may name.
pub(crate) fn rate_limit_unit(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": crate::enums::RATE_LIMIT_UNITS })
}

/// A list of public JWKs.
pub(crate) fn jwk_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "kty": { "type": "string" }, "crv": { "type": "string" }, "x": { "type": "string" },
                "kid": { "type": "string" }, "use": { "type": "string" }, "alg": { "type": "string" }
            },
            "required": ["kty"]
        }
    })
}
