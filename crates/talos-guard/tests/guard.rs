//! The guard end to end: the actix-web and axum examples on the in-process backend (SQLite in a
//! temporary directory), and the remote backend against a real `talos-server`, whose
//! `/gateway/verify` must refuse exactly as the guard does.

#[allow(dead_code)]
#[path = "../examples/actix.rs"]
mod actix_example;
#[allow(dead_code)]
#[path = "../examples/axum.rs"]
mod axum_example;

#[path = "guard/actix.rs"]
mod actix;
#[path = "guard/axum.rs"]
mod axum;
#[path = "guard/remote.rs"]
mod remote;

use std::collections::BTreeMap;
use std::sync::Arc;

use talos_core::{KeySpec, RateLimitInput, RevocationReason, RevokeRequest, Service};
use talos_guard::Guard;
use uuid::Uuid;

/// An in-process deployment: a migrated SQLite file in a temporary directory, a memory cache,
/// the rate limiter on.
pub struct Embedded {
    pub service: Arc<Service>,
    pub guard: Guard,
    _dir: tempfile::TempDir,
}

impl Embedded {
    pub async fn new() -> Embedded {
        let dir = tempfile::tempdir().unwrap();
        let dsn = format!("sqlite://{}", dir.path().join("guard.db").display());
        talos_storage::migrate_up(&dsn).await.unwrap();
        let yaml = format!(
            "credentials:\n  issuer: \"http://talos.test\"\n  api_keys:\n    default_ttl: \"720h\"\n\
             secrets:\n  hmac:\n    current: \"{}\"\ndb:\n  dsn: \"{dsn}\"\n\
             cache:\n  type: memory\nrate_limit:\n  enabled: true\n",
            talos_test_support::TEST_SECRET
        );
        let (config, _) = talos_core::config::load_str(&yaml, "t.yaml", &BTreeMap::new()).unwrap();
        let service = Arc::new(Service::from_config(&config).await.unwrap());
        Embedded {
            guard: Guard::embedded(service.clone()),
            service,
            _dir: dir,
        }
    }

    /// Issues a key for actor `actor` with `scopes` (and a rate limit of `quota` per minute).
    pub async fn issue(
        &self,
        actor: &str,
        scopes: &[&str],
        quota: Option<i64>,
    ) -> (String, String) {
        let k = self
            .service
            .issue(
                Uuid::nil(),
                KeySpec {
                    name: "guard".into(),
                    actor_id: actor.into(),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    rate_limit_policy: quota.map(|quota| RateLimitInput {
                        quota,
                        window: "60s".into(),
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (k.key.key_id.clone(), k.secret)
    }

    pub async fn revoke(&self, key_id: &str) {
        self.service
            .revoke(
                Uuid::nil(),
                None,
                key_id,
                RevokeRequest {
                    reason: RevocationReason::KeyCompromise,
                    reason_text: None,
                },
            )
            .await
            .unwrap();
    }
}

/// The forged twin of a secret: one character changed, so the checksum fails.
pub fn forged(secret: &str) -> String {
    let mut s = secret.to_string();
    let last = s.pop().unwrap();
    s.push(if last == 'a' { 'b' } else { 'a' });
    s
}
