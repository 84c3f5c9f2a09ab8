//! Configuration reload: the file and the network overlays it names are polled (cheap, and it
//! follows symlink swaps of a file or its directory) and, when any of them changes, the
//! reloadable settings are swapped in: the service's (every network's), the admin tokens, and
//! the HTTP settings that reload like upstream's (`serve.http.cors`, `client_ip_source`,
//! `request_log`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use talos_core::Service;
use talos_core::config::{Config, ConfigError, ConfigSource, load_tree};
use talos_http::AppState;
use talos_http::admin_tokens::AdminTokens;

use crate::config::{ServerConfig, ServerSections};
use crate::plan::LiveSettings;

/// A hash of a file's contents; `None` when it cannot be read.
pub(crate) fn file_fingerprint(path: Option<&std::path::Path>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path?).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// The overlay files of the networks in use.
fn overlays(c: &Config) -> Vec<PathBuf> {
    let m = &c.multitenancy;
    m.networks
        .iter()
        .filter(|_| m.enabled)
        .filter_map(|n| n.config_path.as_deref())
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from)
        .collect()
}

/// What is watched: the main file (when there is one) and the overlays, each with its
/// fingerprint.
struct Watched {
    main: Option<PathBuf>,
    overlays: Vec<PathBuf>,
}

impl Watched {
    /// `None` while the main file cannot be read (mid-replacement): nothing to compare yet.
    fn fingerprint(&self) -> Option<Vec<Option<u64>>> {
        let main = match &self.main {
            Some(p) => Some(file_fingerprint(Some(p))?),
            None => None,
        };
        let mut all = vec![main];
        all.extend(self.overlays.iter().map(|p| file_fingerprint(Some(p))));
        Some(all)
    }
}

/// Checks the files every second and reloads when a content changed. Runs when there is a file
/// to watch: the main one, or an overlay.
pub fn watch(
    service: Arc<Service>,
    state: web::Data<AppState>,
    source: ConfigSource,
    config: &ServerConfig,
) {
    let mut watched = Watched {
        main: source.path.clone(),
        overlays: overlays(&config.core),
    };
    if watched.main.is_none() && watched.overlays.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut last = watched.fingerprint();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = watched.fingerprint();
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            match reload(&service, &state, &source) {
                Ok((warnings, overlays)) => {
                    for w in warnings {
                        tracing::warn!("{w}");
                    }
                    if overlays != watched.overlays {
                        watched.overlays = overlays;
                        last = watched.fingerprint();
                    }
                    metrics::counter!("talos_config_reloads_total", "result" => "success")
                        .increment(1);
                    tracing::info!(event = "config_reloaded", "configuration reloaded");
                }
                Err(e) => {
                    metrics::counter!("talos_config_reloads_total", "result" => "failure")
                        .increment(1);
                    tracing::error!(event = "config_reload_failed", error = %e, "configuration reload failed; keeping the previous configuration")
                }
            }
        }
    });
}

/// Re-reads the file (with the environment and base captured at start) and swaps in the
/// reloadable settings: the service's, then the admin tokens and the HTTP settings. A file that
/// does not load, a JWK set that cannot be read or HTTP settings that do not check change
/// nothing. Returns the warnings to log and the overlay files now in use.
fn reload(
    service: &Service,
    state: &AppState,
    source: &ConfigSource,
) -> Result<(Vec<String>, Vec<PathBuf>), ConfigError> {
    let (config, mut warnings) = load_tree::<ServerSections>(source)?;
    let http = &config.app.serve.http;
    let live = LiveSettings::new(http)?;
    warnings.extend(service.reload(&config.core)?);
    state
        .access
        .set_admin_tokens(AdminTokens::new(&http.admin_auth.tokens));
    live.apply(state);
    Ok((warnings, overlays(&config.core)))
}
