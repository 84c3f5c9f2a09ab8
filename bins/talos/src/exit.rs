//! Errors of the CLI and their exit codes (decisions.md, "Binaries").

use talos_client::ClientError;

/// Success.
pub const OK: i32 = 0;
/// A negative result: a credential that is not active, a batch row that failed.
pub const NEGATIVE: i32 = 1;
/// Bad command line or unusable input.
pub const USAGE: i32 = 2;
/// The server refused the request (a 4xx answer: bad input, not found, already exists, …).
pub const REFUSED: i32 = 3;
/// The endpoint could not be reached.
pub const UNREACHABLE: i32 = 4;
/// The server failed (a 5xx answer, or a success answer that is not what the endpoint returns).
pub const SERVER_FAILED: i32 = 5;

/// The exit codes for `--help` (after_help) and the docs.
pub const HELP: &str = "Exit codes: 0 success; 1 negative result (key not active, failed rows) or a local failure; \
2 usage error; 3 the server refused the request (4xx: message and reason printed); 4 endpoint unreachable; \
5 the server failed (5xx); 130 interrupted.";
/// Stopped by Ctrl-C (the shell convention 128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or input; exit 2.
    Usage(String),
    /// A call failed; exit 3 (4xx), 4 (unreachable) or 5 (5xx).
    Client(ClientError),
    /// The answer is "no" (already reported on stdout/stderr); exit 1, with an optional extra line.
    Negative(Option<String>),
    /// A local failure (I/O, missing talos-server); exit 1.
    Failed(String),
    /// Ctrl-C; exit 130. The progress report has already been printed.
    Interrupted,
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Client(e)
    }
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Client(e) => client_exit_code(e),
            CliError::Negative(_) | CliError::Failed(_) => NEGATIVE,
            CliError::Interrupted => INTERRUPTED,
        }
    }

    /// The message for stderr, if any.
    pub fn message(&self) -> Option<String> {
        match self {
            CliError::Usage(m) => Some(format!("error: {m}")),
            CliError::Client(e) => Some(describe_client_error(e)),
            CliError::Negative(m) => m.clone(),
            CliError::Failed(m) => Some(format!("error: {m}")),
            CliError::Interrupted => None,
        }
    }
}

/// Exit code of a client error: 3 when the server refused the request (4xx), 5 when it failed
/// (5xx or an answer that does not decode), 4 when it could not be reached, 2 for a bad URL.
pub fn client_exit_code(e: &ClientError) -> i32 {
    match e {
        ClientError::Api { status, .. } if (400..500).contains(status) => REFUSED,
        ClientError::Unreachable { .. } => UNREACHABLE,
        ClientError::InvalidEndpoint { .. } | ClientError::InvalidCaCert { .. } => USAGE,
        _ => SERVER_FAILED,
    }
}

/// Human-readable, multi-line description of a client error (message and reason first, for scripts that grep).
pub fn describe_client_error(e: &ClientError) -> String {
    match e {
        ClientError::Api {
            status,
            code,
            message,
            reason,
            context,
        } => {
            let mut s = format!("error: {message}");
            let mut parts = vec![format!("HTTP {status}")];
            if !code.is_empty() {
                parts.push(code.clone());
            }
            if let Some(r) = reason {
                parts.push(format!("reason {r}"));
            }
            s.push_str(&format!(" ({})", parts.join(", ")));
            if let Some(id) = &context.request_id {
                s.push_str(&format!("\n  request id: {id}"));
            }
            s
        }
        // rustls names certificate problems in the innermost cause ("invalid peer certificate: …").
        ClientError::Unreachable {
            endpoint, detail, ..
        } if detail.contains("certificate") => format!(
            "error: cannot reach the Talos server at {endpoint}: {detail}\n  \
             hint: the server's TLS certificate is not trusted; pass its CA with --ca-cert FILE or set TALOS_CA_CERT"
        ),
        // A TLS port answers plain HTTP with a TLS alert, which reads as a bad HTTP version.
        ClientError::Unreachable {
            endpoint, detail, ..
        } if endpoint.starts_with("http://") && detail.contains("invalid HTTP version") => format!(
            "error: cannot reach the Talos server at {endpoint}: {detail}\n  \
             hint: the server may serve HTTPS; use an https:// endpoint"
        ),
        ClientError::Unreachable {
            endpoint, detail, ..
        } if endpoint.starts_with("https://") && detail.contains("InvalidContentType") => format!(
            "error: cannot reach the Talos server at {endpoint}: {detail}\n  \
             hint: the server may serve plain HTTP; use an http:// endpoint"
        ),
        ClientError::Unreachable {
            endpoint, detail, ..
        } => format!(
            "error: cannot reach the Talos server at {endpoint}: {detail}\n  \
             hint: pass --endpoint/-e URL or set TALOS_URL"
        ),
        other => format!("error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> ClientError {
        ClientError::Api {
            status,
            code: "NOT_FOUND".into(),
            message: "API key not found".into(),
            reason: Some("API_KEY_NOT_FOUND".into()),
            context: Box::new(talos_client::ApiErrorContext {
                request_id: Some("req-1".into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::Negative(None).exit_code(), 1);
        assert_eq!(CliError::Failed("x".into()).exit_code(), 1);
        assert_eq!(CliError::Client(api(404)).exit_code(), 3);
        assert_eq!(CliError::Client(api(409)).exit_code(), 3);
        assert_eq!(CliError::Client(api(500)).exit_code(), 5);
        assert_eq!(CliError::Client(api(503)).exit_code(), 5);
        assert_eq!(CliError::Interrupted.exit_code(), 130);
        let bad = talos_client::Client::new("ftp://x").unwrap_err();
        assert_eq!(CliError::Client(bad).exit_code(), 2);
    }

    #[test]
    fn api_error_message_names_the_reason() {
        let m = CliError::Client(api(404)).message().unwrap();
        assert!(
            m.starts_with(
                "error: API key not found (HTTP 404, NOT_FOUND, reason API_KEY_NOT_FOUND)"
            ),
            "{m}"
        );
        assert!(m.contains("request id: req-1"));
    }

    #[tokio::test]
    async fn unreachable_is_4_and_names_the_endpoint() {
        // Port 9 (discard) on loopback is closed on any sane test machine.
        let c = talos_client::Client::new("http://127.0.0.1:9").unwrap();
        let e = c.health_alive().await.unwrap_err();
        let e = CliError::Client(e);
        assert_eq!(e.exit_code(), 4);
        assert!(e.message().unwrap().contains("http://127.0.0.1:9"));
    }
}
