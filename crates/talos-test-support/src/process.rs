//! The real `talos-server` binary as a test's process: a working directory (a temporary one
//! unless the test brings its own), the configuration file the [`Builder`] renders, a fresh
//! database, free API and metrics ports on 127.0.0.1, the output in a log file, and a wait for
//! `/health/alive`. Killed on drop; the log's tail is printed when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Base, Builder, Database};
use crate::{PgDatabase, free_ports, http_get};

/// How long a server may take to answer `/health/alive`, or to exit when it must fail.
const START_LIMIT: Duration = Duration::from_secs(30);
const EXIT_LIMIT: Duration = Duration::from_secs(60);
/// The shutdown bound of decisions.md: SIGTERM exits within 10 s.
const SIGTERM_LIMIT: Duration = Duration::from_secs(10);

/// The process settings of a [`Builder`].
#[derive(Clone, Default)]
pub(crate) struct Options {
    binary: Option<PathBuf>,
    plane: Option<String>,
    host: Option<String>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    tls_ca: Option<Vec<u8>>,
    migrate: bool,
}

impl Builder {
    /// The `talos-server` binary to run: `env!("CARGO_BIN_EXE_talos-server")` in its own tests,
    /// found beside the binary under test elsewhere (cargo builds workspace binaries into one
    /// directory). Needed by [`spawn`](Self::spawn).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.process.binary = Some(path.into());
        self
    }

    /// `serve --dev`: the development defaults (database, secret, issuer) in the working
    /// directory; the builder writes a `--config` file only for what a test adds.
    pub fn dev(mut self) -> Self {
        self.base = Base::Dev;
        self
    }

    /// `serve <plane>` (`admin`, `public`) instead of the default `all`.
    pub fn plane(mut self, plane: &str) -> Self {
        self.process.plane = Some(plane.into());
        self
    }

    /// The API port's bind address (`serve.http.host`); 127.0.0.1 when not given. The URLs
    /// always name 127.0.0.1.
    pub fn host(mut self, host: &str) -> Self {
        self.process.host = Some(host.into());
        self
    }

    /// An environment variable of the server (after the ports, so it may override them).
    /// Inherited `TALOS_*` variables are removed: they would override the configuration.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.process.env.push((key.into(), value.into()));
        self
    }

    /// [`env`](Self::env) for each pair.
    pub fn envs(self, vars: &[(&str, &str)]) -> Self {
        vars.iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// Runs in `dir` (kept afterwards) instead of a temporary directory: for tests that look at
    /// what the server leaves there, or restart it on the same files.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.process.dir = Some(dir.to_path_buf());
        self
    }

    /// The API port speaks HTTPS (the test configures `serve.http.tls`) with a certificate
    /// signed by the PEM root `ca_pem`: URLs say `https`, the HTTP helpers trust that root, and
    /// readiness is checked on the plain metrics port.
    pub fn tls(mut self, ca_pem: &[u8]) -> Self {
        self.process.tls_ca = Some(ca_pem.to_vec());
        self
    }

    /// Runs `talos-server migrate up` on the database before serving (PostgreSQL always is).
    pub fn migrate(mut self) -> Self {
        self.process.migrate = true;
        self
    }

    /// Starts the server and waits until `/health/alive` answers; panics, with the log, when it
    /// exits first or does not answer within 30 s.
    pub fn spawn(self) -> TestApp {
        let shared = Arc::new(Shared::prepare(self));
        TestApp::start(shared, None)
    }

    /// Starts the server expecting it to fail: waits for its exit (panics if it still runs
    /// after 60 s) and returns the status and the log.
    pub fn spawn_expecting_exit(self) -> Exited {
        let shared = Arc::new(Shared::prepare(self));
        let mut app = TestApp::launch(shared, None);
        let deadline = Instant::now() + EXIT_LIMIT;
        let status = loop {
            if let Some(status) = app.try_wait() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "talos-server kept running; its log:\n{}",
                app.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Exited {
            status,
            log: app.log(),
        }
    }
}

/// A server that exited on its own ([`Builder::spawn_expecting_exit`]).
pub struct Exited {
    pub status: ExitStatus,
    /// Its stdout and stderr.
    pub log: String,
}

/// What the nodes of one deployment share: the working directory, the configuration file and
/// the database. The temporary directory and the PostgreSQL database go when the last node does.
struct Shared {
    builder: Builder,
    binary: PathBuf,
    dir: PathBuf,
    config: Option<PathBuf>,
    dsn: Option<String>,
    // Dropped after every node stopped (each holds an `Arc`).
    _pg: Option<PgDatabase>,
    _tmp: Option<tempfile::TempDir>,
}

impl Shared {
    fn prepare(builder: Builder) -> Shared {
        let binary = builder
            .process
            .binary
            .clone()
            .expect("name the talos-server binary with Builder::binary");
        let tmp = match &builder.process.dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("a temporary directory")),
        };
        let dir = match (&builder.process.dir, &tmp) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.path().to_path_buf(),
            (None, None) => unreachable!("a directory either way"),
        };
        let mut pg = None;
        let dsn = match (&builder.database, &builder.base) {
            (Database::Postgres(admin), _) => {
                let db = PgDatabase::create(admin, "talos_test");
                let dsn = db.dsn.clone();
                pg = Some(db);
                Some(dsn)
            }
            (Database::Sqlite, _) | (Database::Auto, Base::Settings) => {
                Some(format!("sqlite://{}/talos.db", dir.display()))
            }
            (Database::Auto, _) => None,
        };
        let config = (!builder.dev_without_file()).then(|| {
            let path = dir.join("config.yaml");
            std::fs::write(&path, builder.render(dsn.as_deref())).expect("write config.yaml");
            path
        });
        if let Some(dsn) = &dsn
            && (builder.process.migrate || pg.is_some())
        {
            let out = command(&binary, &dir)
                .args(["migrate", "up", "--database", dsn])
                .output()
                .expect("run talos-server migrate up");
            assert!(
                out.status.success(),
                "talos-server migrate up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Shared {
            builder,
            binary,
            dir,
            config,
            dsn,
            _pg: pg,
            _tmp: tmp,
        }
    }
}

/// Replaces `path` as an operator's atomic update does: written beside it, then renamed over
/// it, so a server watching the file never reads half of it.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename it over the old one");
}

/// `talos-server` in `dir`, without the inherited `TALOS_*` variables (a developer's exported
/// secret or `TALOS_URL` must not reach the server's configuration).
fn command(binary: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TALOS_") {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// A running `talos-server`; killed on drop.
pub struct TestApp {
    child: Child,
    /// `http(s)://127.0.0.1:PORT`: the API.
    pub url: String,
    /// `http://127.0.0.1:PORT`: metrics and health.
    pub metrics_url: String,
    /// Sent as `Authorization: Bearer` by the HTTP helpers; the builder's first admin token.
    pub admin_token: Option<String>,
    /// The database, when the builder chose it (not under `--dev` or a file base).
    pub dsn: Option<String>,
    log: PathBuf,
    pub(crate) http: reqwest::Client,
    shared: Arc<Shared>,
}

impl TestApp {
    /// The builder: see [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    fn launch(shared: Arc<Shared>, plane: Option<&str>) -> TestApp {
        static N: AtomicU64 = AtomicU64::new(0);
        let b = &shared.builder.process;
        let [port, metrics_port] = free_ports();
        let log = shared.dir.join(format!(
            "talos-server-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let out = std::fs::File::create(&log).expect("create the server log");
        let mut cmd = command(&shared.binary, &shared.dir);
        cmd.arg("serve");
        if let Some(plane) = plane.or(b.plane.as_deref()) {
            cmd.arg(plane);
        }
        if matches!(shared.builder.base, Base::Dev) {
            cmd.arg("--dev");
        }
        if let Some(config) = &shared.config {
            cmd.arg("--config").arg(config);
        }
        let child = cmd
            .env(
                "TALOS_SERVE_HTTP_HOST",
                b.host.as_deref().unwrap_or("127.0.0.1"),
            )
            .env("TALOS_SERVE_HTTP_PORT", port.to_string())
            .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
            .env("TALOS_SERVE_METRICS_PORT", metrics_port.to_string())
            .envs(b.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file handle"))
            .stderr(out)
            .spawn()
            .expect("talos-server starts");
        let http = match &b.tls_ca {
            Some(pem) => reqwest::Client::builder()
                .tls_certs_only(
                    reqwest::Certificate::from_pem_bundle(pem).expect("the test CA is PEM"),
                )
                .build()
                .expect("an HTTPS client"),
            None => reqwest::Client::new(),
        };
        let scheme = if b.tls_ca.is_some() { "https" } else { "http" };
        TestApp {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
            admin_token: shared.builder.first_token(),
            dsn: shared.dsn.clone(),
            log,
            http,
            shared,
        }
    }

    fn start(shared: Arc<Shared>, plane: Option<&str>) -> TestApp {
        let mut app = TestApp::launch(shared, plane);
        // HTTPS on the API port: ask the plain metrics port, bound after the API's listener.
        let probe = if app.shared.builder.process.tls_ca.is_some() {
            port_of(&app.metrics_url)
        } else {
            port_of(&app.url)
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = app.try_wait() {
                panic!(
                    "talos-server exited early ({status}); its log:\n{}",
                    app.log_tail()
                );
            }
            if http_get(probe, "/health/alive")
                .is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
            {
                return app;
            }
            assert!(
                Instant::now() < deadline,
                "talos-server did not answer /health/alive within 30 s; its log:\n{}",
                app.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Another node of the same deployment (same directory, configuration and database; new
    /// ports), serving `plane` when given.
    pub fn spawn_another(&self, plane: Option<&str>) -> TestApp {
        TestApp::start(self.shared.clone(), plane)
    }

    /// The API port.
    pub fn port(&self) -> u16 {
        port_of(&self.url)
    }

    /// The metrics port.
    pub fn metrics_port(&self) -> u16 {
        port_of(&self.metrics_url)
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The configuration file (`--config`); panics under a bare `--dev`.
    pub fn config_path(&self) -> &Path {
        self.shared
            .config
            .as_deref()
            .expect("this server runs without a configuration file")
    }

    /// Replaces the configuration file as an operator's atomic update does (write, then rename),
    /// for the server's reload to pick up.
    pub fn write_config(&self, yaml: &str) {
        replace_file(self.config_path(), yaml);
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The log once `done` holds for it; panics after `limit` (a guard against hanging, not a
    /// timed assertion).
    pub fn wait_for_log(&self, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "not in the server log:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the server exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the server's status")
    }

    /// Sends SIGTERM and returns at once.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// SIGTERM, then the exit status; asserts the server stops within the 10 s bound.
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        let deadline = Instant::now() + SIGTERM_LIMIT;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "talos-server did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- talos-server log ({}):\n{}", self.url, self.log_tail());
        }
    }
}

/// The port of `scheme://host:port`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a URL ending in its port")
}
