//! One tree for the domain and the program around it. The domain's sections are [`Config`]; the
//! embedding program's own top-level sections are a [`Sections`] type; [`Tree`] is both.
//!
//! The two parts are not one serde struct with `#[serde(flatten)]`: flattening turns off
//! `deny_unknown_fields` and loses the key path of errors. The loader splits the document by
//! top-level key instead (`load.rs`), deserializes each part on its own, and refuses a key that
//! neither part has.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Config, ConfigError};

/// The top-level sections of a program that embeds the service, next to the domain's in one
/// configuration tree. Implement it on a struct with `#[serde(default, deny_unknown_fields)]`
/// whose fields are the sections; their names must differ from the domain's.
pub trait Sections: Serialize + DeserializeOwned + Default {
    /// Checks across keys that serde cannot express; returns warnings to log.
    fn validate(&self) -> Result<Vec<String>, ConfigError> {
        Ok(Vec::new())
    }

    /// One line of prose per key (dotted path) of these sections, for the configuration
    /// reference ([`reference_markdown`](super::reference_markdown)).
    fn describe(_path: &str) -> Option<&'static str> {
        None
    }

    /// Replaces the secret values of these sections in the tree's JSON form before
    /// [`config_hash`](super::config_hash) hashes it.
    fn redact(_tree: &mut Value) {}
}

/// No sections of its own: the domain's configuration alone.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSections {}

impl Sections for NoSections {}

/// The whole configuration of a program: the domain's sections and its own. Serializes as one
/// flat tree (the form `TALOS_*` names and `config_hash` are computed from).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tree<S> {
    /// The domain's sections, what [`Service`](crate::Service) is built from and reloads.
    #[serde(flatten)]
    pub core: Config,
    /// The program's own sections.
    #[serde(flatten)]
    pub app: S,
}

/// The top-level keys of `T`'s default tree: the section names.
pub(super) fn section_names<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()).expect("the default config serializes") {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}
