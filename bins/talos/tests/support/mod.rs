//! Test harness: a real `talos-server` per test, and a runner for the real `talos` binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The quickstart configuration (shared/conformance/quickstart-config.yaml); host, ports and DSN come from the
/// environment, as in the conformance runner.
pub const QUICKSTART_CONFIG: &str = r#"
serve:
  http: { host: "0.0.0.0", port: 8080 }
  metrics: { host: "0.0.0.0", port: 4422 }
credentials:
  issuer: "http://localhost:8080"
  api_keys:
    default_ttl: "720h"
    prefix: { current: "talos" }
  derived_tokens:
    default_ttl: "1h"
    jwt:
      signing_keys:
        urls:
          - "base64://eyAgImtleXMiOiBbICAgIHsgICAgICAiYWxnIjogIkVkRFNBIiwgICAgICAiY3J2IjogIkVkMjU1MTkiLCAgICAgICJkIjogIjl3VTNfV3p0dmx3TXg0SGlfN2dsSVduY09XNlVIR2I5amxDdDZEZkVGa2MiLCAgICAgICJraWQiOiAiZG9ja2VyLWRldi0wMDEiLCAgICAgICJrdHkiOiAiT0tQIiwgICAgICAidXNlIjogInNpZyIsICAgICAgIngiOiAiNGtTQTdtNU5jYnFDUC1mZk9fNGhQM2tsNHB0NGctLTNRQ21zQmwzb05lVSIgICAgfSAgXX0="
    macaroon:
      prefix: { current: "mc" }
db:
  dsn: "postgres://talos:talos@talos-postgres:5432/talos?sslmode=disable"
secrets:
  default: { current: "preview-default-secret-minimum-32-chars-long" }
  hmac: { current: "preview-hmac-secret-minimum-32-chars-long" }
  pagination: { current: "preview-pagination-secret-32-chars-min" }
cache: { type: "memory", ttl: "5m" }
multitenancy: { enabled: false }
log: { level: "info", format: "json" }
"#;

const TALOS: &str = env!("CARGO_BIN_EXE_talos");

/// `talos-server` next to the `talos` binary under test (both are workspace binaries in the same target dir).
pub fn server_binary() -> PathBuf {
    let dir = Path::new(TALOS)
        .parent()
        .expect("talos has a parent directory");
    let p = dir.join(format!("talos-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "talos-server not found at {} — build it first (`cargo build -p talos-server`); these end-to-end tests \
         need a real server and do not pass without one",
        p.display()
    );
    p
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A string unique within this test run, for raw keys and actors.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Path as &str for argument lists.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its database.
    pub dsn: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Migrates a fresh SQLite database and starts `talos-server serve` with the quickstart config.
    pub fn start() -> Server {
        Server::start_with(&[], false)
    }

    /// Like [`Server::start`] with extra environment; `https` when that environment sets
    /// `serve.http.tls` (readiness is then checked on the plain metrics port).
    pub fn start_with(env: &[(&str, &str)], https: bool) -> Server {
        let bin = server_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let dsn = format!("sqlite://{}/t.db", dir.path().display());
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, QUICKSTART_CONFIG).expect("write config");

        let out = server_command(&bin, dir.path())
            .args(["migrate", "up", "--database", &dsn])
            .output()
            .expect("run talos-server migrate up");
        assert!(
            out.status.success(),
            "talos-server migrate up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port();
        let mut mport = free_port();
        while mport == port {
            mport = free_port();
        }
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = server_command(&bin, dir.path())
            .args(["serve", "--config", path(&config)])
            .env("TALOS_DB_DSN", &dsn)
            .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
            .env("TALOS_SERVE_HTTP_PORT", port.to_string())
            .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
            .env("TALOS_SERVE_METRICS_PORT", mport.to_string())
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn talos-server serve");
        let scheme = if https { "https" } else { "http" };
        let mut srv = Server {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            dsn,
            dir,
        };
        srv.wait_alive(if https { mport } else { port });
        srv
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_alive(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "talos-server exited early ({status}); its log:\n{}",
                    self.log()
                );
            }
            if http_get(port, "/health/alive")
                .is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "talos-server did not answer /health/alive within 30 s; its log:\n{}",
            self.log()
        );
    }

    /// Runs `talos ARGS -e URL`.
    pub fn talos(&self, args: &[&str]) -> Run {
        run_talos(args, Some(&self.url), None)
    }

    /// Runs `talos ARGS -e URL` with stdin.
    pub fn talos_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_talos(args, Some(&self.url), Some(stdin))
    }

    /// The public JWKS document, fetched without the CLI.
    pub fn jwks(&self) -> String {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        http_get(port, "/.well-known/jwks.json").unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_command(bin: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd);
    // Our own TALOS_* (e.g. TALOS_URL, secrets exported by a developer) must not leak into the server's config.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TALOS_") {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// Minimal HTTP/1.0 GET on loopback; the whole response as text.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

/// Result of one `talos` run.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(args: &[&str], out: Output) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit 0.
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "talos {:?} exited {}; stderr: {}\nstdout: {}",
            self.args, self.code, self.stderr, self.stdout
        );
        self
    }

    /// Asserts exit 0 and returns stdout as JSON.
    pub fn ok_json(&self) -> Value {
        self.ok();
        self.parse()
    }

    /// Asserts exit 0 and returns stdout.
    pub fn ok_text(&self) -> String {
        self.ok();
        self.stdout.clone()
    }

    /// Asserts the exit code and returns stdout as JSON.
    pub fn json_with_code(&self, code: i32) -> Value {
        assert_eq!(
            self.code, code,
            "talos {:?}; stderr: {}\nstdout: {}",
            self.args, self.stderr, self.stdout
        );
        self.parse()
    }

    /// Asserts the exit code (and that there is a message on stderr).
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "talos {:?}; stderr: {}\nstdout: {}",
            self.args, self.stderr, self.stdout
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "talos {:?} exited {code} without a message",
            self.args
        );
        self
    }

    fn parse(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "talos {:?}: stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.args, self.stdout, self.stderr
            )
        })
    }
}

fn base_command() -> Command {
    let mut cmd = Command::new(TALOS);
    cmd.env_remove("TALOS_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    cmd
}

/// Runs the real `talos` binary (stdout and stderr captured, so not terminals).
pub fn run_talos(args: &[&str], endpoint: Option<&str>, stdin: Option<&str>) -> Run {
    let mut cmd = base_command();
    cmd.args(args);
    if let Some(e) = endpoint {
        cmd.args(["-e", e]);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn talos");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    Run::from(args, child.wait_with_output().expect("talos output"))
}

/// Runs `talos` with extra environment and no `-e`.
pub fn run_talos_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = base_command();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    Run::from(args, cmd.output().expect("run talos"))
}

/// A private CA and a certificate it signs for `localhost` and `127.0.0.1`, made with `openssl` in
/// `dir`: the paths of the CA certificate, the server certificate and its key.
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &str| {
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
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=talos-cli-test-ca"
    ));
    openssl(&format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 1 -extfile server.ext -out server.pem",
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}
