//! The `talos` command-line client. `main` only calls [`run`]; everything else lives here so it can be tested.
//!
//! Exit codes: 0 success, 1 negative result, 2 usage, 3 the server refused the request (4xx), 4 endpoint
//! unreachable, 5 the server failed (5xx), 130 interrupted (see `exit`).

use std::ffi::OsString;

use clap::FromArgMatches;
use talos_client::Client;

pub mod batch_import;
pub mod batch_input;
pub mod cli;
pub mod exit;
mod jwk;
mod keys;
mod manage;
mod metering;
pub mod output;
mod server;

use cli::{Cli, Command, ImportedCommand, IssuedCommand, KeysCommand, UsageCommand};
use exit::CliError;
use manage::Kind;
use output::Out;

/// What every command gets: the printer and the endpoint.
pub struct Ctx {
    /// Printer.
    pub out: Out,
    endpoint: String,
    /// Admin token (`--token` / `TALOS_TOKEN`); empty = none.
    token: String,
    /// Extra trusted roots (`--ca-cert` / `TALOS_CA_CERT`).
    ca_cert: Option<std::path::PathBuf>,
}

impl Ctx {
    /// A client for the endpoint; a malformed URL or an unreadable CA file is a usage error.
    pub fn client(&self) -> Result<Client, CliError> {
        let ca_pem = match self
            .ca_cert
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("cannot read --ca-cert {}: {e}", path.display()))
            })?,
            None => Vec::new(),
        };
        Client::with_ca_certs(&self.endpoint, &ca_pem)
            .and_then(|c| c.with_token(&self.token))
            .map_err(CliError::Client)
    }
}

/// Parses `args` (including the program name) and runs the command; returns the process exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if let Some(server_args) = server::passthrough(&args) {
        return finish(server::exec(server_args));
    }
    let cli = match cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return finish(Err(CliError::Failed(format!(
                "cannot start the async runtime: {e}"
            ))));
        }
    };
    finish(runtime.block_on(dispatch(cli)).map(|()| exit::OK))
}

fn finish(result: Result<i32, CliError>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(m) = e.message() {
                eprintln!("{m}");
            }
            e.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    // An empty TALOS_URL (or `-e ""`) means "not set", like every other empty setting.
    let endpoint = match cli.endpoint.clone().filter(|e| !e.trim().is_empty()) {
        Some(e) => e,
        None => match &cli.config {
            Some(path) => server::endpoint_from_config(path)?,
            None => talos_client::DEFAULT_ENDPOINT.to_owned(),
        },
    };
    let ctx = Ctx {
        out: Out::new(cli.format.clone(), cli.quiet),
        endpoint,
        token: cli.token.clone().unwrap_or_default(),
        ca_cert: cli.ca_cert.clone(),
    };
    match cli.command {
        Command::Keys { command } => keys_command(&ctx, command).await,
        Command::Usage {
            command: UsageCommand::Ingest(a),
        } => metering::ingest(&ctx, a).await,
        Command::Balances { command } => metering::balances(&ctx, command).await,
        Command::Jwk { command } => jwk::run(&ctx, command).await,
        Command::Completion { shell } => {
            let mut cmd = cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "talos", &mut buf);
            output::stdout(&String::from_utf8_lossy(&buf));
            Ok(())
        }
        Command::Version { server } => version(&ctx, server).await,
        // Normally intercepted before parsing (see `server::passthrough`); kept for `talos help serve`.
        Command::Serve { args } => exec_server("serve", args, cli.config),
        Command::Migrate { args } => exec_server("migrate", args, cli.config),
    }
}

fn exec_server(
    sub: &str,
    args: Vec<OsString>,
    config: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    let mut all = vec![OsString::from(sub)];
    all.extend(args);
    if let Some(c) = config {
        all.extend([OsString::from("--config"), c.into_os_string()]);
    }
    let code = server::exec(all)?;
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Negative(None))
    }
}

async fn version(ctx: &Ctx, with_server: bool) -> Result<(), CliError> {
    let client_version = env!("CARGO_PKG_VERSION");
    let server = if with_server {
        Some(ctx.client()?.version().await?)
    } else {
        None
    };
    if ctx.out.is_document() {
        let mut doc = serde_json::json!({ "client": { "version": client_version } });
        if let Some(s) = &server {
            doc["server"] = s.raw.clone();
        }
        return ctx.out.document(&doc);
    }
    let mut text = format!("talos {client_version}");
    if let Some(s) = server {
        text.push_str(&format!(
            "\nserver {} ({}): {} {}",
            ctx.endpoint, s.commit, s.version, s.build_time
        ));
    }
    ctx.out.text(&text);
    Ok(())
}

async fn keys_command(ctx: &Ctx, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Issue(a) => keys::issue(ctx, a).await,
        KeysCommand::Verify(a) => keys::verify(ctx, a).await,
        KeysCommand::BatchVerify(a) => keys::batch_verify(ctx, a).await,
        KeysCommand::Revoke(a) => keys::revoke(ctx, a).await,
        KeysCommand::DeriveToken(a) => keys::derive(ctx, a).await,
        KeysCommand::SelfRevoke(a) => keys::self_revoke(ctx, a).await,
        KeysCommand::Issued { command } => match command {
            IssuedCommand::Issue(a) => keys::issue(ctx, a).await,
            IssuedCommand::Get(a) => manage::get(ctx, Kind::Issued, &a.key_id).await,
            IssuedCommand::List(a) => manage::list(ctx, Kind::Issued, a).await,
            IssuedCommand::Update(a) => manage::update(ctx, Kind::Issued, a).await,
            IssuedCommand::Rotate(a) => manage::rotate(ctx, a).await,
            IssuedCommand::Revoke(a) => manage::revoke(ctx, Kind::Issued, a).await,
        },
        KeysCommand::Imported { command } => match command {
            ImportedCommand::Import(a) => manage::import(ctx, a).await,
            ImportedCommand::BatchImport(a) => batch_import::batch_import(ctx, a).await,
            ImportedCommand::List(a) => manage::list(ctx, Kind::Imported, a).await,
            ImportedCommand::Get(a) => manage::get(ctx, Kind::Imported, &a.key_id).await,
            ImportedCommand::Update(a) => manage::update(ctx, Kind::Imported, a).await,
            ImportedCommand::Revoke(a) => manage::revoke(ctx, Kind::Imported, a).await,
            ImportedCommand::Delete(a) => manage::delete(ctx, &a.key_id).await,
        },
    }
}

#[cfg(test)]
mod cli_tests;
