//! `talos-server`: serve the API, run migrations, print the version.

mod admin_token;
mod banner;
mod config;
mod dev;
mod listener;
mod plan;
mod reload;
mod serve;
#[cfg(test)]
mod settings_tests;
mod telemetry;
mod tls;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use talos_core::config::{ConfigSource, load_tree};

/// Where settings come from, for `--help`: a first-time operator's next question.
const SETTINGS_HELP: &str = "Configuration: a YAML file (--config) and TALOS_* environment variables, one per key: TALOS_ + the key \
path upper-cased with . -> _ (e.g. TALOS_DB_DSN, TALOS_SECRETS_HMAC_CURRENT, TALOS_SERVE_HTTP_PORT); the environment \
wins. Every key, its default and its variable: docs/configuration.md.\n\
Default ports: API 4420 (serve.http.port), metrics and health 4422 (serve.metrics.port). \
`serve --dev` needs nothing else: SQLite and a generated secret in the working directory.";

#[derive(Debug, Parser)]
#[command(
    name = "talos-server",
    version,
    about = "Talos API key management server",
    after_help = SETTINGS_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    #[command(after_help = SETTINGS_HELP)]
    Serve(ServeArgs),
    /// Apply or inspect database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
        /// Database DSN (else TALOS_DB_DSN, DB_DSN, DSN, else db.dsn of --config).
        #[arg(long, global = true)]
        database: Option<String>,
        /// Config file to read db.dsn from.
        #[arg(long, short = 'c', global = true)]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
    /// Manage admin API tokens.
    AdminToken {
        #[command(subcommand)]
        action: AdminTokenAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenAction {
    /// Print a new random token on stdout and its `serve.http.admin_auth.tokens` entry on stderr.
    Generate {
        /// Name of the token (appears in audit events).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: admin, keys:read, keys:write, keys:verify, usage:write.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Which routes to serve: `all`, `admin` (the admin API, internal) or `public` (self-revoke,
    /// JWKS; internet-facing).
    #[arg(value_enum, default_value_t = PlaneArg::All)]
    pub plane: PlaneArg,
    /// YAML configuration file (watched: secrets and credentials reload on change).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Development setup: embedded SQLite and a generated secret in the working directory.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlaneArg {
    All,
    Admin,
    Public,
}

impl From<PlaneArg> for talos_http::Plane {
    fn from(p: PlaneArg) -> Self {
        match p {
            PlaneArg::All => talos_http::Plane::All,
            PlaneArg::Admin => talos_http::Plane::Admin,
            PlaneArg::Public => talos_http::Plane::Public,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Revert the newest applied migrations (destroys the data of what they created).
    Down {
        /// How many migrations to revert, newest first.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Record the migrations up to VERSION as applied and later ones as not, running none of them
    /// (after applying or reverting one by hand). VERSION: a name from `migrate status`, its
    /// leading version (`2026-11-23-000001` or `20261123000001`), or 0 for none.
    Force {
        /// The migration to record as the newest applied one.
        version: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Migrate {
            action,
            database,
            config,
        } => migrate(action, database, config).await,
        Command::AdminToken {
            action: AdminTokenAction::Generate { name, scopes },
        } => admin_token::generate(&name, &scopes),
        Command::Version => {
            println!("talos-server {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

/// Where `migrate` finds its database, first match wins: `--database`, `TALOS_DB_DSN`, then
/// upstream's `DB_DSN` and `DSN`, then `db.dsn` of `--config`. Empty values count as unset.
const DSN_VARIABLES: [&str; 3] = ["TALOS_DB_DSN", "DB_DSN", "DSN"];

fn resolve_dsn(database: Option<String>, config: Option<PathBuf>) -> anyhow::Result<String> {
    if let Some(d) = database.filter(|d| !d.is_empty()) {
        return Ok(d);
    }
    if let Some(d) = DSN_VARIABLES
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|d| !d.is_empty()))
    {
        return Ok(d);
    }
    if let Some(path) = config {
        let (c, _) = load_tree::<config::ServerSections>(&ConfigSource::from_process(Some(path)))
            .context("loading the config")?;
        return Ok(c.core.db.dsn);
    }
    bail!("no database given: use --database DSN, TALOS_DB_DSN (or DB_DSN, DSN) or --config FILE")
}

async fn migrate(
    action: MigrateAction,
    database: Option<String>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dsn = resolve_dsn(database, config)?;
    match action {
        MigrateAction::Up => {
            let applied = talos_storage::migrate_up(&dsn).await?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
        }
        MigrateAction::Down { steps } => {
            let reverted = talos_storage::migrate_down(&dsn, steps as usize).await?;
            if reverted.is_empty() {
                println!("no migration is applied");
            }
            for name in reverted {
                println!("reverted {name}");
            }
        }
        MigrateAction::Force { version } => {
            let applied = talos_storage::migrate_force(&dsn, &version).await?;
            println!(
                "recorded {} migration(s) as applied, later ones as pending; none was run",
                applied.len()
            );
            for name in applied {
                println!("applied {name}");
            }
        }
        MigrateAction::Status => {
            for m in talos_storage::migration_status(&dsn).await? {
                println!(
                    "{} {}",
                    if m.applied { "applied" } else { "pending" },
                    m.name
                );
            }
        }
    }
    Ok(())
}
