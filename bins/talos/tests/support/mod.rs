//! Test harness: a real `talos-server` per test (the workspace's `TestApp` on the quickstart
//! configuration), and a runner for the real `talos` binary.

use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use talos_test_support::{QUICKSTART_JWKS, TestApp, http_get};
pub use talos_test_support::{free_port, unique};

/// The quickstart configuration (shared/conformance/quickstart-config.yaml) with the dev JWKS
/// in place of `JWKS_URL`; host, ports and database come from the harness, as in the conformance
/// runner.
const QUICKSTART_CONFIG: &str = r#"
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
          - "JWKS_URL"
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

/// Path as &str for argument lists.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A running server; killed on drop.
pub struct Server(TestApp);

impl Deref for Server {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl Server {
    /// Migrates a fresh SQLite database and starts `talos-server serve` with the quickstart config.
    pub fn start() -> Server {
        Server::start_with(&[], None)
    }

    /// Like [`Server::start`] with extra environment; with `ca`, the PEM root of the certificate
    /// that environment configures in `serve.http.tls` (URLs say `https`).
    pub fn start_with(env: &[(&str, &str)], ca: Option<&Path>) -> Server {
        let mut b = TestApp::builder()
            .binary(server_binary())
            .config_file(&QUICKSTART_CONFIG.replace("JWKS_URL", QUICKSTART_JWKS))
            .sqlite()
            .migrate()
            .envs(env);
        if let Some(ca) = ca {
            b = b.tls(&std::fs::read(ca).expect("read the CA certificate"));
        }
        Server(b.spawn())
    }

    /// Its database.
    pub fn dsn(&self) -> &str {
        self.0.dsn.as_deref().expect("a fresh SQLite database")
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
        http_get(self.port(), "/.well-known/jwks.json").unwrap_or_default()
    }
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
