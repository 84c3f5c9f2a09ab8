//! Built-in TLS (`serve.http.tls`): HTTPS on the API port with a certificate made here by openssl,
//! a plain metrics port, a certificate swap picked up without a restart, and clear startup errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use talos_test_support::TestApp;

use super::server;

/// Runs `openssl` with `args` split at spaces (no argument here contains one).
fn openssl(dir: &Path, args: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A private CA and the leaf certificates it signs (for `localhost` and `127.0.0.1`).
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        openssl(
            dir,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=talos-test-ca",
        );
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.pem")).unwrap()
    }

    /// Issues a leaf named `cn` and installs it at `cert`/`key` (each written then renamed, as a
    /// deployment tool would); returns the certificate's DER, to compare with what is served.
    fn install_leaf(&self, cn: &str, serial: &str, cert: &Path, key: &Path) -> Vec<u8> {
        openssl(
            &self.dir,
            &format!(
                "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout new.key -out new.csr -subj /CN={cn}"
            ),
        );
        openssl(
            &self.dir,
            &format!(
                "x509 -req -in new.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 1 -extfile leaf.ext -out new.pem"
            ),
        );
        let der = openssl(&self.dir, "x509 -in new.pem -outform DER");
        std::fs::rename(self.dir.join("new.key"), key).unwrap();
        std::fs::rename(self.dir.join("new.pem"), cert).unwrap();
        der
    }
}

/// The leaf certificate the server presents on a fresh connection.
async fn served_certificate(s: &TestApp, ca_pem: &[u8]) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem).unwrap())
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/health/alive", s.url))
        .send()
        .await
        .unwrap();
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS connection has a peer certificate")
        .to_vec()
}

async fn metrics(s: &TestApp) -> String {
    reqwest::get(format!("{}/metrics", s.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("curl is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_https_and_follows_certificate_swaps_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let first = pki.install_leaf("talos-test-one", "1001", &cert, &key);
    let ca = pki.ca_pem();
    let env = [
        ("TALOS_SERVE_HTTP_TLS_CERT_FILE", cert.to_str().unwrap()),
        ("TALOS_SERVE_HTTP_TLS_KEY_FILE", key.to_str().unwrap()),
    ];
    let mut s = server().dev().dir(dir.path()).envs(&env).tls(&ca).spawn();
    assert!(s.url.starts_with("https://"));

    // The API over HTTPS.
    let secret = s.issue().await;
    assert!(s.is_valid(&secret).await);
    let ca_file = dir.path().join("ca.pem");
    let alive = format!("{}/health/alive", s.url);
    let (ok, body) = curl(&["--cacert", ca_file.to_str().unwrap(), &alive]);
    assert!(ok && body.contains("ok"), "curl --cacert: {body}");
    assert!(
        !curl(&[&alive]).0,
        "curl without the CA refuses the certificate"
    );
    let plain = alive.replacen("https://", "http://", 1);
    assert!(!curl(&[&plain]).0, "the API port does not speak plain HTTP");
    assert!(
        !reqwest::get(&plain)
            .await
            .is_ok_and(|r| r.status().is_success()),
        "nor to reqwest"
    );
    // The metrics port stays plain HTTP.
    let health = reqwest::get(format!("{}/health/alive", s.metrics_url))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(served_certificate(&s, &ca).await, first);

    // A broken certificate file keeps the current pair.
    std::fs::write(dir.path().join("broken.tmp"), "not a certificate\n").unwrap();
    std::fs::rename(dir.path().join("broken.tmp"), &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !metrics(&s)
        .await
        .contains(r#"talos_tls_reloads_total{result="failure"}"#)
    {
        assert!(
            Instant::now() < deadline,
            "the broken certificate was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        served_certificate(&s, &ca).await,
        first,
        "still the old certificate"
    );
    assert!(s.is_valid(&secret).await);

    // A new pair (another name and serial) is served without a restart.
    let second = pki.install_leaf("talos-test-two", "2002", &cert, &key);
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_certificate(&s, &ca).await != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        metrics(&s)
            .await
            .contains(r#"talos_tls_reloads_total{result="success"}"#)
    );
    assert!(s.is_valid(&secret).await, "same process, same state");
    assert!(s.terminate().success());
}

/// Runs `talos-server serve --dev` in `dir` expecting it to exit; returns its log.
fn failed_start(dir: &Path, cert: &str, key: &str) -> String {
    let exited = server()
        .dev()
        .dir(dir)
        .env("TALOS_SERVE_HTTP_TLS_CERT_FILE", cert)
        .env("TALOS_SERVE_HTTP_TLS_KEY_FILE", key)
        .spawn_expecting_exit();
    assert!(
        !exited.status.success(),
        "talos-server started with cert {cert:?} and key {key:?}"
    );
    exited.log
}

#[test]
fn tls_startup_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    pki.install_leaf("a", "1", &cert, &key);
    let (other_cert, other_key) = (dir.path().join("b.crt"), dir.path().join("b.key"));
    pki.install_leaf("b", "2", &other_cert, &other_key);
    let p = |p: &Path| p.to_str().unwrap().to_owned();

    let err = failed_start(dir.path(), "missing.crt", &p(&key));
    assert!(
        err.contains("serve.http.tls.cert_file missing.crt"),
        "{err}"
    );
    let err = failed_start(dir.path(), &p(&cert), "missing.key");
    assert!(err.contains("serve.http.tls.key_file missing.key"), "{err}");
    let err = failed_start(dir.path(), &p(&cert), &p(&other_key));
    assert!(
        err.contains("is not the private key of the certificate") && err.contains("a.crt"),
        "{err}"
    );
    let key_text = std::fs::read_to_string(&other_key).unwrap();
    let secret_line = key_text.lines().nth(1).unwrap();
    assert!(!err.contains(secret_line), "no key material in errors");
    let err = failed_start(dir.path(), &p(&cert), "");
    assert!(err.contains("serve.http.tls.key_file"), "{err}");
}
