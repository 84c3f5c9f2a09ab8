//! HTTPS on the API port (`serve.http.tls`): the certificate pair is loaded at start (a missing or
//! unusable pair is a startup error naming the file) and re-read when the files change, so a
//! renewed certificate is served without a restart. A broken new pair keeps the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use talos_http::config::TlsConfig;

/// The pair currently served, swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

/// Every handshake takes the store's current pair, so a swap applies to the next connection.
#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

impl CertStore {
    /// Loads the pair named by `c`; the error names the file and what is wrong with it.
    pub fn load(c: &TlsConfig) -> anyhow::Result<Arc<CertStore>> {
        // The same provider as Redis TLS and reqwest (aws-lc-rs), passed explicitly so that the
        // process-wide default does not matter.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert_file = PathBuf::from(c.cert_file.trim());
        let key_file = PathBuf::from(c.key_file.trim());
        let pair = load_pair(&cert_file, &key_file, &provider)?;
        Ok(Arc::new(CertStore {
            cert_file,
            key_file,
            provider,
            current: ArcSwap::from_pointee(pair),
        }))
    }

    /// The rustls configuration of the API port: TLS 1.2 and 1.3, no client certificates.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        Ok(
            rustls::ServerConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()
                .context("configuring TLS")?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver(self.clone()))),
        )
    }

    fn fingerprint(&self) -> (Option<u64>, Option<u64>) {
        (
            crate::reload::file_fingerprint(Some(&self.cert_file)),
            crate::reload::file_fingerprint(Some(&self.key_file)),
        )
    }

    /// Re-reads the pair; on error the current one stays.
    fn reload(&self) -> anyhow::Result<()> {
        let pair = load_pair(&self.cert_file, &self.key_file, &self.provider)?;
        self.current.store(Arc::new(pair));
        Ok(())
    }

    /// Polls the files' contents every second (like the config file: this follows in-place writes,
    /// renames and symlink swaps such as Kubernetes secret volumes) and reloads when they change.
    pub fn watch(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut last = self.fingerprint();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = self.fingerprint();
                // A file briefly missing mid-rotation: wait for it rather than log an error.
                if now.0.is_none() || now.1.is_none() || now == last {
                    continue;
                }
                // Remember even a failed attempt: the next change (e.g. the key written after the
                // certificate) retries, and a broken pair is reported once, not every second.
                last = now;
                match self.reload() {
                    Ok(()) => {
                        metrics::counter!("talos_tls_reloads_total", "result" => "success")
                            .increment(1);
                        tracing::info!(
                            event = "tls_reloaded",
                            cert_file = %self.cert_file.display(),
                            "TLS certificate reloaded"
                        );
                    }
                    Err(e) => {
                        metrics::counter!("talos_tls_reloads_total", "result" => "failure")
                            .increment(1);
                        tracing::error!(
                            event = "tls_reload_failed",
                            error = format!("{e:#}"),
                            "TLS certificate reload failed; still serving the previous certificate"
                        );
                    }
                }
            }
        });
    }
}

fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_file).with_context(|| {
        format!(
            "cannot read serve.http.tls.cert_file {}",
            cert_file.display()
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow!(
                "serve.http.tls.cert_file {} is not a PEM certificate chain: {e}",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "serve.http.tls.cert_file {} holds no PEM CERTIFICATE block",
            cert_file.display()
        );
    }
    let key_pem = std::fs::read(key_file)
        .with_context(|| format!("cannot read serve.http.tls.key_file {}", key_file.display()))?;
    // The parse error says which PEM rule failed, never the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow!(
            "serve.http.tls.key_file {} holds no usable unencrypted PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY): {e}",
            key_file.display()
        )
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow!(
            "serve.http.tls.key_file {} is not the private key of the certificate in {}",
            key_file.display(),
            cert_file.display()
        ),
        e => anyhow!(
            "cannot use the certificate {} with the key {}: {e}",
            cert_file.display(),
            key_file.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(p("empty.pem"), "").unwrap();
        std::fs::write(p("junk.pem"), "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
        let tls = |cert: &str, key: &str| TlsConfig {
            cert_file: p(cert),
            key_file: p(key),
        };
        for (c, want) in [
            (
                tls("missing.pem", "key.pem"),
                "cannot read serve.http.tls.cert_file",
            ),
            (tls("empty.pem", "key.pem"), "holds no PEM CERTIFICATE"),
            (tls("junk.pem", "key.pem"), "is not a PEM certificate chain"),
        ] {
            let err = format!("{:#}", CertStore::load(&c).unwrap_err());
            assert!(err.contains(want), "{err} should say {want}");
            assert!(err.contains(&c.cert_file), "{err} should name the file");
        }
    }
}
