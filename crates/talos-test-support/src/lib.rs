//! What the workspace's tests share, in one place: the configuration a test server runs with
//! ([`Builder`]), the real `talos-server` as a process ([`TestApp`], feature `process`) or the
//! actix application in-process ([`Builder::state`], feature `http`), the stall proxy for fault
//! tests ([`StallProxy`], feature `proxy`), private Redis Cluster and Sentinel deployments
//! ([`redis_topology`], feature `redis`), throwaway PostgreSQL databases, free ports, unique
//! names, and the dev JWKS of `testdata/`.
//!
//! A dev-dependency only (xtask may use it too): `cargo xtask tidy` refuses it as a normal
//! dependency of anything else. Each feature pulls in only what its part needs, so that the
//! pure crates' tests can read [`QUICKSTART_JWKS`] without building tokio.
//!
//! ```no_run
//! # #[cfg(feature = "process")] {
//! use talos_test_support::TestApp;
//! // A talos-server on free ports, a fresh SQLite database and a test secret; killed on drop.
//! let app = TestApp::builder()
//!     .binary("target/debug/talos-server")
//!     .admin_token("ci", "talos_admin_test_token", &["admin"])
//!     .config("serve:\n  http:\n    client_timeout: 1s\n")
//!     .spawn();
//! println!("{} {}", app.url, app.metrics_url);
//! # }
//! ```

mod config;
mod env;
mod net;
mod pg;

#[cfg(feature = "http")]
mod in_process;
#[cfg(feature = "process")]
mod process;
#[cfg(feature = "proxy")]
mod proxy;
#[cfg(feature = "redis")]
pub mod redis_topology;
#[cfg(feature = "process")]
mod requests;

pub use config::{Builder, TEST_SECRET};
pub use env::{database_url, redis_url, unique};
#[cfg(feature = "http")]
pub use in_process::{HttpConfig, HttpSections};
pub use net::{free_port, free_ports, http_get};
pub use pg::PgDatabase;
#[cfg(feature = "process")]
pub use process::{Exited, TestApp, replace_file};
#[cfg(feature = "proxy")]
pub use proxy::StallProxy;

/// The JWK set of the upstream quickstart's `config.yaml` as the `base64://` URL that
/// `credentials.derived_tokens.jwt.signing_keys.urls` takes: one Ed25519 key, `kid`
/// [`QUICKSTART_JWKS_KID`], private part included (it is published with the quickstart, so it
/// signs nothing that matters). The file lives in `testdata/` (see its README); this is the one
/// place that reads it.
pub const QUICKSTART_JWKS: &str = include_str!("../../../testdata/quickstart-jwks.url");

/// The `kid` of the one key in [`QUICKSTART_JWKS`].
pub const QUICKSTART_JWKS_KID: &str = "docker-dev-001";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_jwks_is_one_line_url() {
        assert!(QUICKSTART_JWKS.starts_with("base64://"));
        assert!(!QUICKSTART_JWKS.contains('\n'), "no trailing newline");
    }
}
