//! The domain service: issue, verify, rotate, revoke, import, derive — composed from the keyring,
//! the credential formats, storage and the cache.

mod derive;
mod keys;
mod list;
mod requests;
mod verify;

pub use derive::DerivedToken;
pub use keys::{BatchErrorCode, BatchItem, IssuedKey, Rotated, kind_of_key_id};
pub use list::Page;
pub use requests::*;
pub use verify::{
    CacheMode, CacheStatus, Verified, VerifyErrorCode, VerifyFailure, VerifyOutcome, VerifyRequest,
};

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use talos_cache::{CacheKey, KeyCache, MemoryCache, NoopCache};
use talos_storage::{KeyKind, KeyRecord, Store, StoreOptions};
use uuid::Uuid;

use crate::config::{CacheType, Config, ConfigSource};
use crate::error::{CoreError, Result};
use crate::network::Networks;
use crate::runtime::Runtime;

/// What the cache holds: a key's metadata row (never a secret).
pub type CachedKey = Arc<KeyRecord>;

/// Estimated bytes of a cached row, for the memory cache's size bound.
fn weigh(k: &CachedKey) -> u32 {
    let meta = k
        .metadata
        .iter()
        .map(|(a, b)| a.len() + b.to_string().len())
        .sum::<usize>();
    let scopes = k.scopes.iter().map(|s| s.len() + 24).sum::<usize>();
    (400 + k.name.len() + k.actor_id.len() + k.key_id.len() + meta + scopes).min(u32::MAX as usize)
        as u32
}

/// The Talos service. Cheap to share behind an `Arc`; every method is scoped by network id.
pub struct Service {
    runtime: ArcSwap<Runtime>,
    store: Arc<dyn Store>,
    cache: Arc<dyn KeyCache<CachedKey>>,
    networks: Networks,
    /// Keys whose `last_used_time` this node already wrote today: at most one write per key per day.
    touched: moka::sync::Cache<(Uuid, String), i64>,
    /// Audit events for failures, limited per network.
    failures: crate::audit::FailureAudit,
}

impl Service {
    /// Builds a service from a loaded configuration: connects storage (no migrations, except
    /// `sqlite::memory:`), builds the cache and the runtime snapshot.
    pub async fn from_config(config: &Config) -> Result<Service> {
        let opts = StoreOptions {
            max_conns: config.db.max_conns,
            pool_timeout: config.db.pool_timeout.get(),
            connect_timeout: config.db.connect_timeout.get(),
        };
        let store = talos_storage::connect(&config.db.dsn, &opts)
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        let cache: Arc<dyn KeyCache<CachedKey>> = match config.cache.kind {
            CacheType::Noop => Arc::new(NoopCache),
            CacheType::Memory => Arc::new(MemoryCache::new(config.cache.memory.max_size.0, weigh)),
            CacheType::Redis => {
                tracing::warn!(
                    "cache.type redis is not available in this build; using the in-memory cache"
                );
                Arc::new(MemoryCache::new(config.cache.memory.max_size.0, weigh))
            }
        };
        Service::new(config, store, cache)
    }

    /// Builds a service from parts (tests inject fakes here).
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        cache: Arc<dyn KeyCache<CachedKey>>,
    ) -> Result<Service> {
        let runtime = Runtime::build(config, Utc::now())
            .map_err(|e| CoreError::bad(format!("invalid configuration: {e}")))?;
        Ok(Service {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            cache,
            networks: Networks::new(&config.multitenancy),
            failures: crate::audit::FailureAudit::new(10),
            touched: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(86_400))
                .build(),
        })
    }

    /// Swaps in the reloadable settings of `config` as one atomic step.
    pub fn reload(&self, config: &Config) -> std::result::Result<(), String> {
        let runtime = Runtime::build(config, Utc::now())?;
        self.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// Re-reads the config file and env captured in `source`; a broken file keeps the old
    /// settings and returns why.
    pub fn reload_from(&self, source: &ConfigSource) -> std::result::Result<Vec<String>, String> {
        let (config, warnings) = crate::config::load(source).map_err(|e| e.to_string())?;
        self.reload(&config)?;
        Ok(warnings)
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn networks(&self) -> &Networks {
        &self.networks
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Readiness: the database answers and a current secret is configured.
    pub async fn ready(&self) -> std::result::Result<(), String> {
        self.store
            .ping()
            .await
            .map_err(|e| format!("database: {e}"))?;
        if self.runtime.load().keyring.current().is_err() {
            return Err("project has no HMAC key configured".into());
        }
        Ok(())
    }

    fn cache_key(nid: Uuid, rec: &KeyRecord) -> CacheKey {
        match (&rec.kind, &rec.imported) {
            (KeyKind::Imported, Some(h)) => CacheKey::new(nid, imported_cache_key(&h.hash)),
            _ => CacheKey::new(nid, rec.key_id.clone()),
        }
    }

    /// Drops a key's verification cache entry after a mutation.
    async fn evict(&self, rec: &KeyRecord) {
        if let Err(e) = self.cache.evict(&Self::cache_key(rec.nid, rec)).await {
            tracing::warn!(error = %e, "cache eviction failed");
        }
    }

    /// Writes `last_used_time` in the background, at most once per key per UTC day.
    fn touch(&self, rec: &KeyRecord, now: DateTime<Utc>) {
        let today = now.date_naive();
        if rec.last_used_time.is_some_and(|t| t.date_naive() == today) {
            return;
        }
        let day = i64::from(chrono::Datelike::num_days_from_ce(&today));
        let k = (rec.nid, rec.key_id.clone());
        if self.touched.get(&k) == Some(day) {
            return;
        }
        self.touched.insert(k, day);
        let (store, nid, kind, key_id) =
            (self.store.clone(), rec.nid, rec.kind, rec.key_id.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.touch_key(nid, kind, &key_id, now).await {
                    tracing::debug!(error = %e, "last_used update failed");
                }
            });
        }
    }
}

pub(crate) fn imported_cache_key(hash: &[u8; 32]) -> String {
    format!("h:{}", hex::encode(hash))
}
