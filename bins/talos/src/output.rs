//! Where and how results are printed.
//!
//! Rule (decisions.md): with `--format json|json-pretty|yaml` stdout carries exactly the server's document, with
//! `jsonpath=`/`jsonpointer=` exactly the values selected from it; everything else (hints, warnings, progress)
//! goes to stderr. With `table`, results are human-readable text on stdout.

use std::io::{self, IsTerminal, Write};

use serde_json::Value;
use talos_client::{ApiKey, KeyStatus, VerifyApiKeyResponse};

use crate::cli::Format;
use crate::exit::CliError;

/// Printer configured from the global flags.
#[derive(Debug, Clone)]
pub struct Out {
    /// Effective format.
    pub format: Format,
    /// `-q`.
    pub quiet: bool,
    /// Whether stderr is a terminal (progress bars only then).
    pub stderr_tty: bool,
}

impl Out {
    /// Resolves the default format: table on a terminal, json otherwise (so pipes and `$(…)` get JSON).
    pub fn new(format: Option<Format>, quiet: bool) -> Self {
        let format = format.unwrap_or(if io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        });
        Out {
            format,
            quiet,
            stderr_tty: io::stderr().is_terminal(),
        }
    }

    /// True for every format but table.
    pub fn is_document(&self) -> bool {
        self.format != Format::Table
    }

    /// Prints a server document in the chosen format (see [`render`]); a JSONPath or pointer that
    /// selects nothing prints nothing and says so on stderr.
    pub fn document(&self, doc: &Value) -> Result<(), CliError> {
        let text = render(&self.format, doc)?;
        if text.is_empty() {
            self.warn("the --format expression selects nothing in the answer");
        }
        stdout(&text);
        Ok(())
    }

    /// Prints text on stdout (table format results).
    pub fn text(&self, text: &str) {
        let mut s = text.to_owned();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        stdout(&s);
    }

    /// A hint or notice on stderr, suppressed by `-q`.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// A warning on stderr (always shown).
    pub fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
    }
}

/// A document as `format` prints it: json on one line, json-pretty indented, yaml; for jsonpath
/// and jsonpointer the selected values one per line, strings unquoted (for `$(…)`), others as
/// JSON. Table falls back to indented JSON. Empty when nothing is selected.
pub fn render(format: &Format, doc: &Value) -> Result<String, CliError> {
    let failed = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    let mut text = match format {
        Format::Yaml => return serde_yaml_ng::to_string(doc).map_err(|e| failed(&e)),
        Format::Json => serde_json::to_string(doc).map_err(|e| failed(&e))?,
        Format::JsonPretty | Format::Table => {
            serde_json::to_string_pretty(doc).map_err(|e| failed(&e))?
        }
        Format::JsonPath(expr) => {
            // Checked when the flag was parsed.
            let path = serde_json_path::JsonPath::parse(expr).map_err(|e| failed(&e))?;
            let lines: Vec<String> = path.query(doc).all().into_iter().map(scalar).collect();
            return Ok(lines.iter().map(|l| format!("{l}\n")).collect());
        }
        Format::JsonPointer(ptr) => match doc.pointer(ptr) {
            Some(v) => scalar(v),
            None => return Ok(String::new()),
        },
    };
    text.push('\n');
    Ok(text)
}

/// A selected value: a string as is, anything else as one-line JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes to stdout, ending quietly when the reader went away (`talos … | head`).
pub fn stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
    }
}

/// `2026-01-02T03:04:05Z`, or `-`.
pub fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// `active`, `revoked`, `expired`, `-`.
pub fn status(s: KeyStatus) -> String {
    if s == KeyStatus::Unspecified {
        "-".into()
    } else {
        s.short_name()
    }
}

/// Aligns rows under a header, two spaces between columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The key list table: key_id, name, actor, status, expires.
pub fn key_table(keys: &[ApiKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.key_id.clone(),
                k.name.clone(),
                k.actor_id.clone(),
                status(k.status),
                time(k.expire_time),
            ]
        })
        .collect();
    table(&["KEY_ID", "NAME", "ACTOR", "STATUS", "EXPIRES"], &rows)
}

/// One key, one field per line.
pub fn key_details(k: &ApiKey) -> String {
    fields(&key_rows(k))
}

/// The `label: value` pairs of [`key_details`], for callers that append their own rows.
pub fn key_rows(k: &ApiKey) -> Vec<(&'static str, String)> {
    let mut rows: Vec<(&'static str, String)> = vec![
        ("key_id", k.key_id.clone()),
        ("name", k.name.clone()),
        ("actor", k.actor_id.clone()),
        ("status", status(k.status)),
        ("scopes", k.scopes.join(",")),
        ("metadata", Value::Object(k.metadata.clone()).to_string()),
        ("created", time(k.create_time)),
        ("updated", time(k.update_time)),
        ("expires", time(k.expire_time)),
        ("last used", time(k.last_used_time)),
    ];
    if let Some(p) = &k.rate_limit_policy {
        rows.push(("rate limit", format!("{} per {}", p.quota, p.window)));
    }
    if let Some(ip) = &k.ip_restriction {
        rows.push(("allowed cidrs", ip.allowed_cidrs.join(",")));
    }
    if let Some(c) = &k.credits {
        rows.push(("credits", c.remaining.to_string()));
        if let Some(r) = &c.refill {
            rows.push(("refill", format!("{} {}", r.amount, r.interval)));
        }
    }
    if let Some(r) = k.revocation_reason {
        rows.push(("revoked for", r.short_name()));
    }
    if let Some(d) = k
        .revocation_description
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        rows.push(("revocation text", d.to_owned()));
    }
    rows
}

/// `label: value` lines with aligned values.
pub fn fields(rows: &[(&str, String)]) -> String {
    let w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(l, v)| format!("{:<w$} {v}\n", format!("{l}:"), w = w))
        .collect()
}

/// Verification verdict: `active` with the key's identity, or `inactive` with the reason.
pub fn verify_details(v: &VerifyApiKeyResponse<'_>) -> String {
    if v.active() {
        let mut rows = vec![
            ("result", "active".to_owned()),
            ("key_id", v.key_id.clone()),
            ("actor", v.actor_id.clone()),
            ("scopes", v.scopes.join(",")),
            ("metadata", Value::Object(v.metadata.clone()).to_string()),
            ("expires", time(v.expire_time)),
            ("issuer", v.issuer.to_string()),
        ];
        if let Some(r) = v.rate_limit_remaining {
            rows.push(("rate limit left", r.to_string()));
        }
        rows.extend(metering_rows(v));
        fields(&rows)
    } else {
        let mut rows = vec![
            ("result", "inactive".to_owned()),
            ("reason", inactive_reason(v)),
        ];
        rows.extend(metering_rows(v));
        fields(&rows)
    }
}

/// Credits left and the actor's balance, when the server reported them.
fn metering_rows(v: &VerifyApiKeyResponse<'_>) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(c) = v.credits_remaining {
        rows.push(("credits left", c.to_string()));
    }
    if let (Some(r), Some(q)) = (v.balance_remaining, v.balance_quota) {
        rows.push(("balance", format!("{r} of {q}")));
    }
    rows
}

/// `REVOKED: key is revoked` from an inactive verdict.
pub fn inactive_reason(v: &VerifyApiKeyResponse<'_>) -> String {
    let code = v
        .error_code
        .map(|c| c.short_name().to_uppercase())
        .unwrap_or_else(|| "UNKNOWN".into());
    match v.error_message.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => format!("{code}: {m}"),
        None => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["A", "LONG_HEADER"],
            &[vec!["xxxx".into(), "1".into()], vec!["y".into(), "".into()]],
        );
        assert_eq!(t, "A     LONG_HEADER\nxxxx  1\ny\n");
    }

    #[test]
    fn formats_render_the_document() {
        let doc = serde_json::json!({"secret": "s3", "issued_api_key": {"key_id": "k1", "scopes": ["a", "b"]}});
        let r = |f: &str| render(&crate::cli::parse_format(f).unwrap(), &doc).unwrap();
        assert_eq!(r("json"), format!("{doc}\n"));
        assert_eq!(
            r("json-pretty"),
            format!("{}\n", serde_json::to_string_pretty(&doc).unwrap())
        );
        assert!(r("yaml").contains("key_id: k1"));
        assert_eq!(r("jsonpath=$.secret"), "s3\n");
        assert_eq!(r("jsonpath=.issued_api_key.key_id"), "k1\n");
        assert_eq!(r("jsonpath={.issued_api_key.key_id}"), "k1\n");
        assert_eq!(r("jsonpath=$.issued_api_key.scopes[*]"), "a\nb\n");
        assert_eq!(r("jsonpath=$.issued_api_key.scopes"), "[\"a\",\"b\"]\n");
        assert_eq!(r("jsonpath=$.missing"), "");
        assert_eq!(r("jsonpointer=/issued_api_key/key_id"), "k1\n");
        assert_eq!(
            r("jsonpointer=/issued_api_key"),
            format!("{}\n", doc["issued_api_key"])
        );
        assert_eq!(r("jsonpointer=/nope"), "");
        for bad in ["jsonpath", "jsonpath=$[", "jsonpointer=x", "xml", "json=1"] {
            assert!(crate::cli::parse_format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verify_shows_reason_when_inactive() {
        let v: VerifyApiKeyResponse<'_> = serde_json::from_value(serde_json::json!({
            "is_active": false, "error_code": "VERIFICATION_ERROR_REVOKED", "error_message": "key is revoked"
        }))
        .unwrap();
        let s = verify_details(&v);
        assert!(
            s.contains("inactive") && s.contains("REVOKED: key is revoked"),
            "{s}"
        );
    }
}
