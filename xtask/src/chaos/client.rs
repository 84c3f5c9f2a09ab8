//! The harness's HTTP client: every call is bounded by a client timeout and classified into an
//! `Answer`, so a scenario can count what it saw and check the one invariant that matters: a
//! revoked, expired or unknown key is never answered valid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub const VERIFY: &str = "/v2alpha1/admin/apiKeys:verify";
pub const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";
pub const BATCH_IMPORT: &str = "/v2alpha1/admin/importedApiKeys:batchImport";

/// What one request got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 verify with `is_valid: true`.
    Valid,
    /// 200 verify with `is_valid: false` and this `error_code`.
    Invalid(String),
    /// Any other HTTP answer: status and the envelope's reason (`details[0].reason`) or status.
    Http(u16, String),
    /// No answer within the client timeout.
    Timeout,
    /// The TCP connect was refused (server not listening).
    Refused,
    /// Connection reset, closed before the answer, …
    Broken(String),
}

impl Answer {
    pub fn label(&self) -> String {
        match self {
            Answer::Valid => "valid".into(),
            Answer::Invalid(c) => {
                format!("invalid:{}", c.trim_start_matches("VERIFICATION_ERROR_"))
            }
            Answer::Http(s, r) if r.is_empty() => format!("http {s}"),
            Answer::Http(s, r) => format!("http {s} {r}"),
            Answer::Timeout => "client timeout".into(),
            Answer::Refused => "connection refused".into(),
            Answer::Broken(_) => "connection broken".into(),
        }
    }

    pub fn is_http(&self, status: u16) -> bool {
        matches!(self, Answer::Http(s, _) if *s == status)
    }
}

#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    client: reqwest::Client,
    fresh: bool,
}

/// One timed request.
#[derive(Clone, Debug)]
pub struct Timed {
    pub answer: Answer,
    pub latency: Duration,
    pub body: Value,
    pub cache: String,
}

impl Api {
    /// `timeout` bounds every request; `fresh_conns` opens a new connection per request (no
    /// keep-alive), so a failure is attributable to that request alone.
    pub fn new(addr: SocketAddr, timeout: Duration, fresh_conns: bool) -> Result<Api> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            // Shorter than the server's idle timers (keep-alive 5 s; a connection that has not
            // sent its first request is answered 408 and closed after `client_timeout`, 5 s
            // here). A pooled connection the client opened but never used (hyper opens one when
            // no idle connection is free, then may hand the request to another that freed up)
            // would otherwise be reused just as the server closes it: under 10x overload the
            // client notices the close late and reads a 408 or a broken connection.
            .pool_idle_timeout(Duration::from_secs(2));
        if fresh_conns {
            b = b.pool_max_idle_per_host(0);
        }
        Ok(Api {
            addr,
            client: b.build()?,
            fresh: fresh_conns,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        no_cache: bool,
    ) -> Timed {
        let start = Instant::now();
        let mut rb = self.client.request(method, self.url(path));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        if no_cache {
            rb = rb.header("Cache-Control", "no-cache");
        }
        if self.fresh {
            rb = rb.header("Connection", "close");
        }
        let res = rb.send().await;
        let (answer, body, cache) = match res {
            Err(e) => (classify_err(&e), Value::Null, String::new()),
            Ok(r) => {
                let status = r.status().as_u16();
                let cache = r
                    .headers()
                    .get("ory-talos-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                match r.bytes().await {
                    Err(e) => (classify_err(&e), Value::Null, cache),
                    Ok(bytes) => {
                        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        (classify(status, path, &v), v, cache)
                    }
                }
            }
        };
        Timed {
            answer,
            latency: start.elapsed(),
            body,
            cache,
        }
    }

    pub async fn verify(&self, credential: &str) -> Timed {
        self.call(
            reqwest::Method::POST,
            VERIFY,
            Some(&json!({ "credential": credential })),
            false,
        )
        .await
    }

    pub async fn verify_no_cache(&self, credential: &str) -> Timed {
        self.call(
            reqwest::Method::POST,
            VERIFY,
            Some(&json!({ "credential": credential })),
            true,
        )
        .await
    }

    pub async fn issue_timed(&self, actor: &str) -> Timed {
        let spec = json!({ "name": "chaos", "actor_id": actor, "scopes": ["read"], "ttl": "720h" });
        self.call(reqwest::Method::POST, ISSUED, Some(&spec), false)
            .await
    }

    /// Issues a key; (key_id, secret).
    pub async fn issue(&self, actor: &str) -> Result<(String, String)> {
        let t = self.issue_timed(actor).await;
        if !t.answer.is_http(201) {
            bail!("issue: {} {}", t.answer.label(), t.body);
        }
        let id = t.body["issued_api_key"]["key_id"]
            .as_str()
            .context("issue answer has no key_id")?;
        let secret = t.body["secret"].as_str().context("no secret")?;
        Ok((id.to_string(), secret.to_string()))
    }

    pub async fn revoke_timed(&self, key_id: &str) -> Timed {
        self.call(
            reqwest::Method::POST,
            &format!("/v2alpha1/admin/apiKeys/{key_id}:revoke"),
            Some(&json!({ "reason": "REVOCATION_REASON_KEY_COMPROMISE" })),
            false,
        )
        .await
    }

    pub async fn revoke(&self, key_id: &str) -> Result<()> {
        let t = self.revoke_timed(key_id).await;
        if !t.answer.is_http(204) {
            bail!("revoke {key_id}: {} {}", t.answer.label(), t.body);
        }
        Ok(())
    }

    pub async fn ready(&self) -> Timed {
        self.call(reqwest::Method::GET, "/health/ready", None, false)
            .await
    }

    pub async fn alive(&self) -> Timed {
        self.call(reqwest::Method::GET, "/health/alive", None, false)
            .await
    }
}

fn classify(status: u16, path: &str, v: &Value) -> Answer {
    if status == 200 && path == VERIFY {
        return match v["is_valid"].as_bool() {
            Some(true) => Answer::Valid,
            _ => Answer::Invalid(v["error_code"].as_str().unwrap_or("?").to_string()),
        };
    }
    let reason = v["error"]["details"][0]["reason"]
        .as_str()
        .or_else(|| v["error"]["status"].as_str())
        .unwrap_or("")
        .to_string();
    Answer::Http(status, if status < 400 { String::new() } else { reason })
}

fn classify_err(e: &reqwest::Error) -> Answer {
    if e.is_timeout() {
        return Answer::Timeout;
    }
    // The chain's text is the only portable way to tell "refused" from "reset".
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_connect() && text.to_lowercase().contains("refused") {
        Answer::Refused
    } else {
        Answer::Broken(text)
    }
}

/// Counts and latencies of a series of answers.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    pub answers: BTreeMap<String, u64>,
    /// `Ory-Talos-Cache` of the valid answers (where a stale "valid" came from).
    pub valid_from: BTreeMap<String, u64>,
    pub latencies_us: Vec<u64>,
    pub max: Duration,
    /// The first "connection broken" error text, to say what broke.
    pub broken: Option<String>,
}

impl Tally {
    pub fn add(&mut self, t: &Timed) {
        *self.answers.entry(t.answer.label()).or_default() += 1;
        if let Answer::Broken(e) = &t.answer
            && self.broken.is_none()
        {
            self.broken = Some(e.chars().take(300).collect());
        }
        if t.answer == Answer::Valid {
            *self.valid_from.entry(t.cache.clone()).or_default() += 1;
        }
        self.latencies_us.push(t.latency.as_micros() as u64);
        self.max = self.max.max(t.latency);
    }

    pub fn count(&self) -> u64 {
        self.answers.values().sum()
    }

    pub fn merge(&mut self, o: &Tally) {
        for (k, v) in &o.answers {
            *self.answers.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.valid_from {
            *self.valid_from.entry(k.clone()).or_default() += v;
        }
        self.latencies_us.extend_from_slice(&o.latencies_us);
        self.max = self.max.max(o.max);
        if self.broken.is_none() {
            self.broken.clone_from(&o.broken);
        }
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies_us, p)
    }

    pub fn summary(&self) -> String {
        self.answers
            .iter()
            .map(|(k, v)| {
                if k == "valid" && !self.valid_from.is_empty() {
                    let from: Vec<String> = self
                        .valid_from
                        .iter()
                        .map(|(c, n)| format!("{}:{n}", if c.is_empty() { "-" } else { c }))
                        .collect();
                    format!("{k}×{v} (cache {})", from.join(" "))
                } else {
                    format!("{k}×{v}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn percentile(us: &[u64], p: f64) -> Duration {
    if us.is_empty() {
        return Duration::ZERO;
    }
    let mut v = us.to_vec();
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    Duration::from_micros(v[i.min(v.len() - 1)])
}
