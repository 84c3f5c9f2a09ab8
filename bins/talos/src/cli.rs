//! The command tree (clap derive). Parsing only; behaviour lives in the command modules.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use talos_client::{JsonObject, RevocationReason, TokenAlgorithm};

/// Talos API key management: issue, verify, rotate, revoke and import API keys.
#[derive(Debug, Parser)]
#[command(
    name = "talos",
    version,
    propagate_version = true,
    max_term_width = 110
)]
#[command(after_help = crate::exit::HELP)]
pub struct Cli {
    /// Talos server URL [default: http://localhost:4420].
    #[arg(
        short = 'e',
        long,
        global = true,
        env = "TALOS_URL",
        value_name = "URL"
    )]
    pub endpoint: Option<String>,

    /// Admin API token, sent as `Authorization: Bearer` on admin requests (servers with
    /// serve.http.admin_auth.tokens).
    #[arg(
        long,
        global = true,
        env = "TALOS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        allow_hyphen_values = true
    )]
    pub token: Option<String>,

    /// PEM file of CA certificates to trust besides the system's (a private CA, or the server's
    /// self-signed certificate), for an https:// endpoint.
    #[arg(long, global = true, env = "TALOS_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Output format: table, json, json-pretty, yaml, jsonpath=EXPR (RFC 9535, e.g. 'jsonpath=$.secret') or
    /// jsonpointer=PTR (RFC 6901, e.g. jsonpointer=/issued_api_key/key_id) [default: table on a terminal, json
    /// otherwise]. Except with table, stdout holds exactly the server's document (or the selected values, strings
    /// unquoted, one per line) and everything else goes to stderr.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<Format>,

    /// Configuration file of the server: `talos serve` and `talos migrate` pass it on; other commands
    /// talk to the API address it configures (serve.http) when neither -e nor TALOS_URL is given.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print less: no progress or hints; in table format only the essential value (secret, key id, token).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The command tree as parsed and shown: the exit codes under every command's `--help`, and global
/// flags that a command ignores hidden from its help (`jwk generate` and `completion` run locally,
/// so no endpoint or other server flag; `completion` prints a script, so no format either).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    // A subcommand that already has an argument of a global's id does not receive the global
    // (clap skips it when propagating), so a hidden copy there hides it in that subtree.
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    // Every global but the ones listed, so a global added later (a server flag) is hidden too.
    let hide_all_but = |keep: &'static [&'static str]| {
        let hidden = hidden.clone();
        move |sub: clap::Command| {
            hidden
                .iter()
                .filter(|a| !keep.contains(&a.get_id().as_str()))
                .fold(sub, |sub, a| sub.arg(a.clone()))
        }
    };
    let cmd = cmd
        .mut_subcommand("jwk", |jwk| {
            jwk.mut_subcommand("generate", hide_all_but(&["format"]))
        })
        .mut_subcommand("completion", hide_all_but(&[]));
    with_exit_codes(cmd)
}

fn with_exit_codes(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let cmd = cmd.after_help(crate::exit::HELP);
    names
        .iter()
        .fold(cmd, |c, n| c.mut_subcommand(n, with_exit_codes))
}

/// Output formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Human-readable columns.
    Table,
    /// The server's JSON document, on one line.
    Json,
    /// The server's JSON document, indented.
    JsonPretty,
    /// The server's document as YAML.
    Yaml,
    /// The values an RFC 9535 JSONPath selects from the document (the text after `jsonpath=`,
    /// normalised to start with `$`).
    JsonPath(String),
    /// The value at an RFC 6901 JSON Pointer (the text after `jsonpointer=`).
    JsonPointer(String),
}

/// Parses `--format`: the names, `jsonpath=EXPR` (checked here, so a bad expression is a usage
/// error before any request) and `jsonpointer=PTR`.
pub fn parse_format(s: &str) -> Result<Format, String> {
    let (name, arg) = match s.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    match (name.to_ascii_lowercase().as_str(), arg) {
        ("table", None) => Ok(Format::Table),
        ("json", None) => Ok(Format::Json),
        ("json-pretty", None) => Ok(Format::JsonPretty),
        ("yaml", None) => Ok(Format::Yaml),
        ("jsonpath", Some(expr)) => {
            let expr = jsonpath_expr(expr);
            serde_json_path::JsonPath::parse(&expr)
                .map_err(|e| format!("invalid JSONPath {expr:?}: {e}"))?;
            Ok(Format::JsonPath(expr))
        }
        ("jsonpointer", Some(ptr)) => {
            if !(ptr.is_empty() || ptr.starts_with('/')) {
                return Err(format!(
                    "invalid JSON Pointer {ptr:?}: it is empty or starts with /"
                ));
            }
            Ok(Format::JsonPointer(ptr.to_owned()))
        }
        ("jsonpath" | "jsonpointer", None) => {
            Err(format!("{name} needs an expression: --format {name}=…"))
        }
        _ => Err(format!(
            "unknown format {s:?}: use table, json, json-pretty, yaml, jsonpath=EXPR or jsonpointer=PTR"
        )),
    }
}

/// `$.secret` as given; `.secret`, `secret` and kubectl's `{.secret}` as `$.secret`.
fn jsonpath_expr(expr: &str) -> String {
    let e = expr.trim();
    let e = e
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(e);
    if e.starts_with('$') {
        e.to_owned()
    } else if e.starts_with('.') || e.starts_with('[') {
        format!("${e}")
    } else {
        format!("$.{e}")
    }
}

// Parsed once per process; boxing variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage and verify API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Record usage against actor balances (metering).
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// Actor balances: read them, set quotas, top them up (metering).
    Balances {
        #[command(subcommand)]
        command: BalancesCommand,
    },
    /// Print the server's JSON Web Key Set, or generate JSON Web Keys.
    Jwk {
        #[command(subcommand)]
        command: crate::jwk::JwkCommand,
    },
    /// Print a shell completion script.
    Completion {
        /// Shell to generate for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the CLI version (and the server's with --server).
    Version {
        /// Also ask the server at --endpoint for its version.
        #[arg(long)]
        server: bool,
    },
    /// Run the server (`talos-server serve …`, found beside this binary or on PATH).
    #[command(disable_help_flag = true)]
    Serve {
        /// Arguments passed to `talos-server serve`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<OsString>,
    },
    /// Run database migrations (`talos-server migrate …`).
    #[command(disable_help_flag = true)]
    Migrate {
        /// Arguments passed to `talos-server migrate`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a new API key (the secret is shown once).
    #[command(visible_alias = "create")]
    Issue(IssueArgs),
    /// Verify a credential (issued key, imported key, JWT or macaroon). Exits 1 when it is not active.
    #[command(visible_alias = "validate")]
    Verify(VerifyArgs),
    /// Verify several credentials. Exits 1 when any is not active.
    BatchVerify(BatchVerifyArgs),
    /// Revoke an issued or imported key by id.
    Revoke(RevokeArgs),
    /// Derive a short-lived JWT or macaroon from a key.
    DeriveToken(DeriveArgs),
    /// Revoke a key by presenting its own secret.
    SelfRevoke(SelfRevokeArgs),
    /// Manage issued keys.
    Issued {
        #[command(subcommand)]
        command: IssuedCommand,
    },
    /// Manage imported keys.
    Imported {
        #[command(subcommand)]
        command: ImportedCommand,
    },
}

/// Fields shared by issue, import, update and rotate.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyFields {
    /// Comma-separated scopes, e.g. "read:orders,write:orders" ("" for none).
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,
    /// Metadata as a JSON object, e.g. '{"team":"payments"}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub metadata: Option<JsonObject>,
    /// Rate limit: requests per window.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub rate_limit_quota: Option<i64>,
    /// Rate limit window, e.g. 60s or 1m [default: 60s when a quota is given].
    #[arg(long, value_name = "DURATION", requires = "rate_limit_quota")]
    pub rate_limit_window: Option<String>,
    /// Comma-separated CIDR allowlist, e.g. "10.0.0.0/8,2001:db8::/32" ("" for none).
    #[arg(long, value_name = "CIDRS")]
    pub allowed_cidrs: Option<String>,
}

/// Refill intervals of key credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RefillArg {
    /// At 00:00 UTC every day.
    Daily,
    /// At 00:00 UTC on the first day of every month.
    Monthly,
}

/// Usage credits of a key (issue, import, update).
#[derive(Debug, Clone, Default, Args)]
pub struct CreditArgs {
    /// Usage credits: each verification spends its cost (default 1) and is refused at 0
    /// [default: with a refill, the refill amount; else unlimited].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub credits: Option<i64>,
    /// Reset the credits to N at each --refill-interval boundary.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..), requires = "refill_interval")]
    pub refill_amount: Option<i64>,
    /// When to refill: daily or monthly (00:00 UTC).
    #[arg(long, value_enum, requires = "refill_amount")]
    pub refill_interval: Option<RefillArg>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Human-readable name of the key.
    pub name: Option<String>,
    /// Actor (holder) of the key.
    #[arg(long, value_name = "ID")]
    pub actor: String,
    /// Lifetime, e.g. 720h or 1h30m [default: the server's default_ttl].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Idempotency key (≤36 characters): repeating it returns the existing key without a secret.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    #[command(flatten)]
    pub fields: KeyFields,
    #[command(flatten)]
    pub credits: CreditArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The credential.
    #[arg(allow_hyphen_values = true)]
    pub credential: String,
    /// Bypass the server's verification cache (Cache-Control: no-cache).
    #[arg(long)]
    pub no_cache: bool,
    /// Credits to spend from a key with credits [default: 1; 0 only checks that some are left].
    #[arg(long, value_name = "N")]
    pub cost: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BatchVerifyArgs {
    /// Credentials to verify.
    #[arg(value_name = "CREDENTIAL", required_unless_present = "file")]
    pub credentials: Vec<String>,
    /// Also read credentials from a file, one per line ("-" for stdin).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Bypass the server's verification cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Credits each verification spends from a key with credits [default: 1].
    #[arg(long, value_name = "N")]
    pub cost: Option<u64>,
}

/// Revocation reasons, with the CLI's snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReasonArg {
    /// The secret leaked.
    #[value(
        name = "key_compromise",
        alias = "key-compromise",
        alias = "REVOCATION_REASON_KEY_COMPROMISE"
    )]
    KeyCompromise,
    /// The holder's affiliation changed.
    #[value(
        name = "affiliation_changed",
        alias = "affiliation-changed",
        alias = "REVOCATION_REASON_AFFILIATION_CHANGED"
    )]
    AffiliationChanged,
    /// Replaced by another key.
    #[value(name = "superseded", alias = "REVOCATION_REASON_SUPERSEDED")]
    Superseded,
    /// Withdrawn by an admin (allows --reason-text).
    #[value(
        name = "privilege_withdrawn",
        alias = "privilege-withdrawn",
        alias = "REVOCATION_REASON_PRIVILEGE_WITHDRAWN"
    )]
    PrivilegeWithdrawn,
}

impl From<ReasonArg> for RevocationReason {
    fn from(r: ReasonArg) -> Self {
        match r {
            ReasonArg::KeyCompromise => RevocationReason::KeyCompromise,
            ReasonArg::AffiliationChanged => RevocationReason::AffiliationChanged,
            ReasonArg::Superseded => RevocationReason::Superseded,
            ReasonArg::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Key id (UUID for issued keys, 64 hex characters for imported keys).
    pub key_id: String,
    /// Why the key is revoked.
    #[arg(long, value_enum)]
    pub reason: Option<ReasonArg>,
    /// Explanation (only with --reason privilege_withdrawn).
    #[arg(long, value_name = "TEXT")]
    pub reason_text: Option<String>,
}

/// Derived token algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmArg {
    /// EdDSA-signed JWT.
    Jwt,
    /// HMAC macaroon.
    Macaroon,
}

impl From<AlgorithmArg> for TokenAlgorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Jwt => TokenAlgorithm::Jwt,
            AlgorithmArg::Macaroon => TokenAlgorithm::Macaroon,
        }
    }
}

#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// Parent credential.
    #[arg(allow_hyphen_values = true)]
    pub credential: String,
    /// Token type.
    #[arg(long, value_enum, default_value = "jwt")]
    pub algorithm: AlgorithmArg,
    /// Token lifetime, e.g. 1h [default: the server's derived_tokens.default_ttl].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Custom claims as a JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub claims: Option<JsonObject>,
    /// Comma-separated subset of the parent's scopes [default: all of them].
    #[arg(long, value_name = "A,B")]
    pub scopes: Option<String>,
}

#[derive(Debug, Args)]
pub struct SelfRevokeArgs {
    /// The key's own secret.
    #[arg(allow_hyphen_values = true)]
    pub credential: String,
    /// Why the key is revoked (privilege_withdrawn is admin-only).
    #[arg(long, value_enum)]
    pub reason: Option<ReasonArg>,
}

/// Paging and filters of the list commands.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Only keys of this actor.
    #[arg(long, value_name = "ID")]
    pub actor: Option<String>,
    /// Only keys in this status: active, revoked or expired (needs --actor).
    #[arg(long)]
    pub status: Option<String>,
    /// Raw filter expression, e.g. 'actor_id="x" AND status=KEY_STATUS_ACTIVE'.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Keys per page (1..1000).
    #[arg(long, value_name = "N")]
    pub page_size: Option<i64>,
    /// Continue from this next_page_token.
    // Page tokens are base64url, so one in 64 starts with '-'.
    #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
    pub page_token: Option<String>,
    /// Follow next_page_token until the last page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Key id.
    pub key_id: String,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub fields: KeyFields,
    #[command(flatten)]
    pub credits: CreditArgs,
    /// Comma-separated fields to change (name, scopes, metadata, rate_limit_policy, ip_restriction,
    /// credits) [default: the fields given]. A listed field that is not given is cleared.
    #[arg(long, value_name = "PATHS")]
    pub update_mask: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyIdArg {
    /// Key id.
    pub key_id: String,
}

#[derive(Debug, Subcommand)]
pub enum IssuedCommand {
    /// Issue a new API key (the same as `talos keys issue`).
    #[command(visible_alias = "create")]
    Issue(IssueArgs),
    /// Show an issued key.
    Get(KeyIdArg),
    /// List issued keys.
    List(ListArgs),
    /// Change name, scopes, metadata, rate limit or CIDRs (PATCH with update_mask).
    Update(UpdateArgs),
    /// Replace a key with a new one (new secret); the old one is revoked as superseded.
    Rotate(RotateArgs),
    /// Revoke an issued key.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Key id.
    pub key_id: String,
    /// New name [default: inherited].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub fields: KeyFields,
}

#[derive(Debug, Subcommand)]
pub enum ImportedCommand {
    /// Import an existing key (only its hash is stored).
    Import(ImportArgs),
    /// Import many keys from a JSON array, JSON lines or CSV file, in batches of up to 1000.
    #[command(visible_alias = "import-batch")]
    BatchImport(BatchImportArgs),
    /// List imported keys.
    List(ListArgs),
    /// Show an imported key.
    Get(KeyIdArg),
    /// Change name, scopes, metadata, rate limit or CIDRs.
    Update(UpdateArgs),
    /// Revoke an imported key.
    Revoke(RevokeArgs),
    /// Delete an imported key permanently (prefer revoke: it keeps an audit trail).
    Delete(KeyIdArg),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Human-readable name of the key.
    pub name: Option<String>,
    /// The existing key string.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    pub raw_key: String,
    /// Actor (holder) of the key.
    #[arg(long, value_name = "ID")]
    pub actor: String,
    /// Lifetime, e.g. 8760h [default: the server's default_ttl].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Idempotency key (≤36 characters).
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    #[command(flatten)]
    pub fields: KeyFields,
    #[command(flatten)]
    pub credits: CreditArgs,
}

#[derive(Debug, Args)]
pub struct BatchImportArgs {
    /// Input file ("-" for stdin): a JSON array of objects, JSON lines, or CSV with a header
    /// (raw_key,name,actor_id,scopes,ttl,metadata).
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Write the failed rows here as JSON lines (with their index, line and error).
    #[arg(long, value_name = "FILE")]
    pub failures: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Record a usage event and debit its cost from the actor's balance (a repeated
    /// --request-id is not debited again).
    Ingest(IngestArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Whose balance is debited.
    #[arg(long, value_name = "ID")]
    pub actor: String,
    /// What it cost, in micro-units of the balance.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub cost_micros: i64,
    /// What was used, e.g. tokens.
    #[arg(long = "type", value_name = "TYPE")]
    pub usage_type: Option<String>,
    /// How much of it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub amount: Option<i64>,
    /// The model used.
    #[arg(long)]
    pub model: Option<String>,
    /// The key the usage was made with.
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
    /// Idempotency key (≤36 characters).
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// The session the usage belongs to.
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BalancesCommand {
    /// Show an actor's balance.
    Get {
        /// The actor.
        actor: String,
    },
    /// Set an actor's quota (0 = unlimited); the remaining balance moves by the change.
    SetQuota {
        /// The actor.
        actor: String,
        /// The quota in micro-units.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
        quota_micros: i64,
    },
    /// Add to an actor's remaining balance.
    TopUp {
        /// The actor.
        actor: String,
        /// The amount in micro-units.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        amount_micros: i64,
    },
}

/// Parses a JSON object argument (`--metadata`, `--claims`).
pub fn parse_json_object(s: &str) -> Result<JsonObject, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!("expected a JSON object, got {}", json_kind(&other))),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Splits a comma-separated list, trimming items and dropping empty ones (so "" is the empty list).
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Cli {
        let argv = std::iter::once("talos").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Opaque values (page tokens are base64url; imported keys and admin tokens are whatever
    /// their owner chose) may start with '-' and must still be read as values.
    #[test]
    fn opaque_values_may_start_with_a_hyphen() {
        let cli = parse(&[
            "keys",
            "issued",
            "list",
            "--page-token",
            "-ipu4SM",
            "--page-size",
            "2",
        ]);
        let Command::Keys {
            command:
                KeysCommand::Issued {
                    command: IssuedCommand::List(list),
                },
        } = cli.command
        else {
            panic!("not a list");
        };
        assert_eq!(list.page_token.as_deref(), Some("-ipu4SM"));
        assert_eq!(list.page_size, Some(2));

        let cli = parse(&[
            "--token",
            "-tok",
            "keys",
            "verify",
            "-sk_live",
            "--no-cache",
        ]);
        assert_eq!(cli.token.as_deref(), Some("-tok"));
        let Command::Keys {
            command: KeysCommand::Verify(verify),
        } = cli.command
        else {
            panic!("not a verify");
        };
        assert_eq!(verify.credential, "-sk_live");
        assert!(verify.no_cache);

        let cli = parse(&[
            "keys",
            "imported",
            "import",
            "--raw-key",
            "-legacy",
            "--actor",
            "a",
        ]);
        let Command::Keys {
            command:
                KeysCommand::Imported {
                    command: ImportedCommand::Import(import),
                },
        } = cli.command
        else {
            panic!("not an import");
        };
        assert_eq!(import.raw_key, "-legacy");

        for args in [
            &["keys", "derive-token", "-parent", "--algorithm", "jwt"][..],
            &["keys", "self-revoke", "-own"][..],
        ] {
            let cli = parse(args);
            let credential = match cli.command {
                Command::Keys {
                    command: KeysCommand::DeriveToken(d),
                } => d.credential,
                Command::Keys {
                    command: KeysCommand::SelfRevoke(s),
                } => s.credential,
                _ => panic!("{args:?}"),
            };
            assert_eq!(credential, args[2]);
        }
    }

    #[test]
    fn help_is_still_help_after_a_credential_flag() {
        let err = Cli::try_parse_from(["talos", "keys", "verify", "--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
