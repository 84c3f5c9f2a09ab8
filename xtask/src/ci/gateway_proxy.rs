//! `cargo xtask gateway-proxy`: gateway verify behind real reverse proxies, with the very
//! configurations of `docs/integrations/` (the first `nginx` block of `nginx.md`, the first
//! `caddyfile` block of `caddy.md`; their example addresses swapped for local ports).
//!
//! nginx (`auth_request`) and, where Debian packages it, Caddy (`forward_auth`) are installed with
//! apt-get when missing. One nginx process, in the foreground with its prefix, pid and logs in a
//! temporary directory, serves both the proxy and a small upstream that echoes the method and
//! identity headers it received; Caddy proxies to the same upstream. talos-server runs on SQLite
//! with the rate limiter on, `client_ip_source: X_FORWARDED_FOR` and a small failure limit.
//!
//! Through each proxy: a valid key reaches the upstream with its identity (bearer and `X-API-Key`,
//! any method), client-sent `X-Talos-*` headers never do (a key without scopes included), missing,
//! forged and revoked keys get 401 with a challenge, a missing scope 403, a rate-limited key 429
//! with `Retry-After`. Last, a client guessing keys (with a forged `X-Forwarded-For`, which the
//! proxies overwrite) is refused with 429 and then so is its valid key.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;

use crate::http::{self, Response};
use crate::proc::{self, Server, TmpDir, free_port, free_port_pair, loopback, tail};
use crate::workspace;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not run `cargo build --bin talos-server` first.
    #[arg(long)]
    pub no_build: bool,
}

/// Failed verifications the talos-server under test allows per client address (per hour): more
/// than the checks before the last one spend (two per proxy), few enough to reach quickly.
const FAILURE_QUOTA: usize = 8;

const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";

pub fn run(args: Args) -> Result<()> {
    let caddy = ensure_proxies()?;
    if !args.no_build {
        workspace::cargo_build(&["--bin", "talos-server"])?;
    }
    let tmp = TmpDir::new("gateway-proxy")?;
    let bins = workspace::private_copies(
        &workspace::target_dir().join("debug"),
        &["talos-server"],
        &tmp.path,
    )?;
    let talos = start_talos(&bins[0], &tmp)?;
    let keys = Keys::issue(&talos)?;

    let (upstream, nginx_port) = free_port_pair()?;
    let nginx = start_nginx(&tmp, talos.addr.port(), upstream, nginx_port)?;
    let mut proxies = vec![("nginx", nginx_port)];
    let _caddy = match caddy {
        true => {
            let port = free_port()?;
            let c = start_caddy(&tmp, talos.addr.port(), upstream, port)?;
            proxies.push(("caddy", port));
            Some(c)
        }
        false => {
            eprintln!("xtask gateway-proxy: Debian has no caddy package here; nginx only");
            None
        }
    };
    for &(name, port) in &proxies {
        eprintln!("xtask gateway-proxy: {name} on 127.0.0.1:{port}");
        check_proxy(name, port, &talos, &keys)
            .with_context(|| {
                format!(
                    "{name} in front of talos-server (logs in {})",
                    tmp.path.display()
                )
            })
            .inspect_err(|_| eprintln!("{}", tail(&tmp.join("nginx-error.log"), 20)))?;
    }
    check_guessing(&proxies, &keys)?;
    drop(nginx);
    eprintln!(
        "xtask gateway-proxy: {} behave as docs/integrations says",
        proxies
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>()
            .join(" and ")
    );
    Ok(())
}

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs nginx (required) and Caddy (when Debian has a package); answers whether Caddy runs.
fn ensure_proxies() -> Result<bool> {
    if !runs("nginx", "-v") {
        eprintln!("xtask gateway-proxy: installing nginx");
        proc::apt_install(&["nginx"])?;
    }
    ensure!(
        runs("nginx", "-v"),
        "nginx is not runnable after installing it"
    );
    if !runs("caddy", "version") {
        let packaged = proc::sh("apt-cache", &["policy", "caddy"])
            .is_some_and(|p| p.contains("Candidate:") && !p.contains("Candidate: (none)"));
        if !packaged {
            return Ok(false);
        }
        eprintln!("xtask gateway-proxy: installing caddy");
        proc::apt_install(&["caddy"])?;
    }
    Ok(runs("caddy", "version"))
}

fn start_talos(bin: &Path, tmp: &TmpDir) -> Result<Server> {
    let config = tmp.join("talos.yaml");
    std::fs::write(
        &config,
        format!(
            "serve:\n  http:\n    client_ip_source: X_FORWARDED_FOR\n    gateway:\n      failure_limit: {{ quota: {FAILURE_QUOTA}, window: 1h }}\n\
             credentials:\n  issuer: \"http://talos.gateway.test\"\n  api_keys:\n    default_ttl: \"720h\"\n\
             secrets:\n  hmac:\n    current: \"gateway-proxy-ci-secret-0123456789abcdef\"\n\
             db:\n  dsn: \"sqlite://{}\"\ncache:\n  type: memory\nrate_limit:\n  enabled: true\n",
            tmp.join("talos.db").display()
        ),
    )?;
    let (port, metrics) = free_port_pair()?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(&tmp.path)
        .args(["serve", "--config"])
        .arg(&config)
        .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
        .env("TALOS_SERVE_HTTP_PORT", port.to_string())
        .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
        .env("TALOS_SERVE_METRICS_PORT", metrics.to_string());
    Server::start("talos-server", cmd, port, &tmp.join("talos.log"))
}

/// The keys the checks use, issued directly on talos-server.
struct Keys {
    /// Scopes `read` and `orders:read`, actor `ci-user`.
    valid: String,
    valid_id: String,
    /// No scopes.
    unscoped: String,
    /// Scope `admin`.
    admin: String,
    revoked: String,
    /// `valid` with its checksum changed.
    forged: String,
}

impl Keys {
    fn issue(talos: &Server) -> Result<Keys> {
        let issue = |scopes: &[&str]| -> Result<(String, String)> {
            let v = http::post(
                talos.addr,
                ISSUED,
                &json!({"name": "gw", "actor_id": "ci-user", "scopes": scopes}),
            )?
            .expect(201, "issue")?;
            Ok((
                v["issued_api_key"]["key_id"]
                    .as_str()
                    .context("key_id")?
                    .to_string(),
                v["secret"].as_str().context("secret")?.to_string(),
            ))
        };
        let (valid_id, valid) = issue(&["read", "orders:read"])?;
        let (revoked_id, revoked) = issue(&["read"])?;
        http::post(
            talos.addr,
            &format!("{ISSUED}/{revoked_id}:revoke"),
            &json!({}),
        )?;
        let mut forged = valid.clone();
        let last = forged.pop().context("empty key")?;
        forged.push(if last == 'a' { 'b' } else { 'a' });
        Ok(Keys {
            valid_id,
            unscoped: issue(&[])?.1,
            admin: issue(&["admin"])?.1,
            revoked,
            forged,
            valid,
        })
    }
}

/// A proxy process in the foreground, stopped (SIGTERM, then SIGKILL) when dropped.
struct Foreground {
    name: &'static str,
    child: Child,
}

impl Foreground {
    fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Foreground> {
        let out = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Foreground { name, child })
    }

    /// Waits until `GET path` on `port` answers at all (any status).
    fn wait(&mut self, port: u16, path: &str, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited with {status}:\n{}", self.name, tail(log, 30));
            }
            if http::request(loopback(port), "GET", path, None, &[]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} did not answer on port {port}:\n{}",
            self.name,
            tail(log, 30)
        )
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first fenced block of `lang` in `docs/integrations/<file>`.
fn doc_block(file: &str, lang: &str) -> Result<String> {
    let path = workspace::root()
        .join("docs")
        .join("integrations")
        .join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let start = text
        .find(&format!("```{lang}\n"))
        .with_context(|| format!("no ```{lang} block in {}", path.display()))?;
    let body = &text[start + lang.len() + 4..];
    let end = body.find("\n```").context("unterminated block")?;
    Ok(body[..=end].to_string())
}

/// Replaces each `from` (which must occur) by `to`.
fn localize(mut text: String, swaps: &[(&str, String)]) -> Result<String> {
    for (from, to) in swaps {
        ensure!(
            text.contains(from),
            "the documented config no longer mentions {from:?}"
        );
        text = text.replace(from, to);
    }
    Ok(text)
}

fn start_nginx(tmp: &TmpDir, talos: u16, upstream: u16, port: u16) -> Result<Foreground> {
    let server = localize(
        doc_block("nginx.md", "nginx")?,
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("talos:4420", format!("127.0.0.1:{talos}")),
            ("app:8080", format!("127.0.0.1:{upstream}")),
        ],
    )?;
    let dir = tmp.path.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log info;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n\
         access_log {dir}/nginx-access.log;\n\
         client_body_temp_path {dir}/nginx-body;\nproxy_temp_path {dir}/nginx-proxy;\n\
         fastcgi_temp_path {dir}/nginx-fastcgi;\nuwsgi_temp_path {dir}/nginx-uwsgi;\nscgi_temp_path {dir}/nginx-scgi;\n\
         # The application behind the proxy: says what it received.\n\
         server {{\n  listen 127.0.0.1:{upstream};\n  location / {{\n    default_type text/plain;\n\
         return 200 \"method=$request_method key=[$http_x_talos_key_id] actor=[$http_x_talos_actor_id] scopes=[$http_x_talos_scopes]\\n\";\n  }}\n}}\n\
         {server}\n}}\n"
    );
    let file = tmp.join("nginx.conf");
    std::fs::write(&file, conf)?;
    let log = tmp.join("nginx.out");
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(&tmp.path)
        .arg("-e")
        .arg(tmp.join("nginx-error.log"))
        .arg("-c")
        .arg(&file);
    let mut n = Foreground::spawn("nginx", cmd, &log)?;
    n.wait(upstream, "/", &tmp.join("nginx-error.log"))?;
    n.wait(port, "/", &tmp.join("nginx-error.log"))?;
    Ok(n)
}

fn start_caddy(tmp: &TmpDir, talos: u16, upstream: u16, port: u16) -> Result<Foreground> {
    let site = localize(
        doc_block("caddy.md", "caddyfile")?,
        &[
            ("api.example.com {", format!("http://127.0.0.1:{port} {{")),
            ("talos:4420", format!("127.0.0.1:{talos}")),
            ("app:8080", format!("127.0.0.1:{upstream}")),
        ],
    )?;
    let data = tmp.join("caddy");
    std::fs::create_dir_all(&data)?;
    let file = tmp.join("Caddyfile");
    std::fs::write(
        &file,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}\n}}\n\n{site}",
            data.display()
        ),
    )?;
    let log = tmp.join("caddy.log");
    let mut cmd = Command::new("caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", &data)
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", &data);
    let mut c = Foreground::spawn("caddy", cmd, &log)?;
    c.wait(port, "/", &log)?;
    Ok(c)
}

fn get(port: u16, path: &str, method: &str, headers: &[(&str, &str)]) -> Result<Response> {
    http::request(loopback(port), method, path, None, headers)
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).trim().to_string()
}

fn expect_status(r: &Response, status: u16, what: &str) -> Result<()> {
    ensure!(
        r.status == status,
        "{what}: expected {status}, got {} {:?} {}",
        r.status,
        r.headers,
        body(r)
    );
    Ok(())
}

fn check_proxy(name: &str, port: u16, talos: &Server, k: &Keys) -> Result<()> {
    let bearer = |key: &str| format!("Bearer {key}");
    let upstream_saw = format!(
        "key=[{}] actor=[ci-user] scopes=[read,orders:read]",
        k.valid_id
    );

    // A valid key, as a bearer token or X-API-Key, any method: the upstream sees its identity,
    // not what the client claimed.
    let spoof = [
        ("X-Talos-Actor-Id", "admin"),
        ("X-Talos-Scopes", "admin"),
        ("X-Talos-Key-Id", "someone-else"),
    ];
    let b = bearer(&k.valid);
    for (method, headers) in [
        ("GET", vec![("Authorization", b.as_str())]),
        ("GET", vec![("X-API-Key", k.valid.as_str())]),
        ("PUT", vec![("Authorization", b.as_str())]),
        (
            "GET",
            [vec![("Authorization", b.as_str())], spoof.to_vec()].concat(),
        ),
    ] {
        let r = get(port, "/orders/7", method, &headers)?;
        expect_status(&r, 200, &format!("{method} with a valid key"))?;
        let text = body(&r);
        ensure!(
            text == format!("method={method} {upstream_saw}"),
            "{name}: the upstream saw {text:?}"
        );
    }
    // A key without scopes: an empty X-Talos-Scopes, never the client's.
    let b = bearer(&k.unscoped);
    let r = get(
        port,
        "/",
        "GET",
        &[("Authorization", b.as_str()), ("X-Talos-Scopes", "admin")],
    )?;
    expect_status(&r, 200, "a key without scopes")?;
    ensure!(
        body(&r).ends_with("scopes=[]"),
        "{name}: the upstream saw {}",
        body(&r)
    );

    // Refused: nothing reaches the upstream.
    let r = get(port, "/orders/7", "GET", &spoof)?;
    expect_status(&r, 401, "no key")?;
    ensure!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "no challenge: {:?}",
        r.headers
    );
    for (key, what) in [(&k.forged, "a forged key"), (&k.revoked, "a revoked key")] {
        let b = bearer(key);
        let r = get(port, "/orders/7", "GET", &[("Authorization", b.as_str())])?;
        expect_status(&r, 401, what)?;
        ensure!(
            r.header("www-authenticate") == Some("Bearer error=\"invalid_token\""),
            "{what}: challenge {:?}",
            r.header("www-authenticate")
        );
        ensure!(!body(&r).contains("key=["), "{what} reached the upstream");
    }

    // /admin/ requires the `admin` scope, whatever the client claims it requires.
    let b = bearer(&k.valid);
    let r = get(
        port,
        "/admin/users",
        "GET",
        &[
            ("Authorization", b.as_str()),
            ("X-Talos-Required-Scopes", ""),
        ],
    )?;
    expect_status(&r, 403, "a key without the admin scope on /admin/")?;
    let b = bearer(&k.admin);
    let r = get(
        port,
        "/admin/users",
        "GET",
        &[("Authorization", b.as_str())],
    )?;
    expect_status(&r, 200, "an admin key on /admin/")?;

    // A key limited to 2 requests a minute: the third gets 429 with Retry-After.
    let v = http::post(
        talos.addr,
        ISSUED,
        &json!({"name": "limited", "actor_id": "ci-user", "rate_limit_policy": {"quota": "2", "window": "60s"}}),
    )?
    .expect(201, "issue a rate-limited key")?;
    let b = bearer(v["secret"].as_str().context("secret")?);
    for _ in 0..2 {
        expect_status(
            &get(port, "/", "GET", &[("Authorization", b.as_str())])?,
            200,
            "within the rate limit",
        )?;
    }
    let r = get(port, "/", "GET", &[("Authorization", b.as_str())])?;
    expect_status(&r, 429, "over the rate limit")?;
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("429 without a numeric Retry-After: {:?}", r.headers))?;
    ensure!((1..=30).contains(&retry), "Retry-After {retry}");
    Ok(())
}

/// A client guessing keys, claiming a new address each time: the proxies overwrite
/// X-Forwarded-For, so Talos counts its real address and refuses it with 429, valid key included,
/// through every proxy.
fn check_guessing(proxies: &[(&str, u16)], k: &Keys) -> Result<()> {
    let (_, port) = proxies[0];
    let mut refused = None;
    for i in 0..=FAILURE_QUOTA {
        let forged = format!("Bearer {}{i}", k.forged);
        let spoofed = format!("198.51.100.{i}");
        let r = get(
            port,
            "/",
            "GET",
            &[
                ("Authorization", forged.as_str()),
                ("X-Forwarded-For", spoofed.as_str()),
            ],
        )?;
        match r.status {
            401 => continue,
            429 => {
                refused = Some(r);
                break;
            }
            s => bail!("guess {i}: expected 401 or 429, got {s}: {}", body(&r)),
        }
    }
    let r = refused.context("guessing through nginx was never refused with 429")?;
    ensure!(
        r.header("retry-after").is_some(),
        "429 without Retry-After: {:?}",
        r.headers
    );
    let b = format!("Bearer {}", k.valid);
    for &(name, port) in proxies {
        let r = get(port, "/", "GET", &[("Authorization", b.as_str())])?;
        expect_status(
            &r,
            429,
            &format!("{name}: the valid key of a client that guessed"),
        )?;
        ensure!(
            r.header("retry-after").is_some(),
            "{name}: 429 without Retry-After"
        );
    }
    Ok(())
}
