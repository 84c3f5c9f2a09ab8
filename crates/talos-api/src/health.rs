//! Health and build information.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::null_default;

/// `GET /health/alive` and `/health/ready`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Status", extend("required" = ["status"]))]
pub struct HealthStatus {
    /// `"ok"`.
    #[serde(default, deserialize_with = "null_default")]
    pub status: String,
}

impl HealthStatus {
    /// `{"status": "ok"}`.
    pub fn ok() -> Self {
        HealthStatus {
            status: "ok".into(),
        }
    }
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Version", extend("required" = ["version"]))]
pub struct VersionInfo {
    /// Release version.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Source commit.
    #[serde(default, deserialize_with = "null_default")]
    pub commit: String,
    /// Build time.
    #[serde(default, deserialize_with = "null_default")]
    pub build_time: String,
    /// Hash of the effective configuration.
    #[serde(default, deserialize_with = "null_default")]
    pub config_hash: String,
}
