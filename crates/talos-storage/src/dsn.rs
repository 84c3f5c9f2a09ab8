//! DSN parsing and connection options. Errors never echo the DSN itself (it may hold a password).

use std::str::FromStr;
use std::time::Duration;

use crate::error::{Result, StorageError};

const SUPPORTED: &str = "supported: postgres://…, postgresql://…, sqlite://PATH, sqlite3://PATH (sqlite:///abs/path), sqlite::memory:";

/// Which database a DSN points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// Classify a DSN by its scheme; anything unsupported is `StorageError::Config`.
    pub fn from_dsn(dsn: &str) -> Result<Backend> {
        Target::parse(dsn).map(|t| t.backend())
    }
}

/// Pool settings. `pool_timeout` bounds waiting for a free connection; `connect_timeout` bounds
/// opening a new one; `statement_timeout` bounds one statement, lock waits included (PostgreSQL
/// `statement_timeout`, SQLite's busy wait). Together they make an unreachable or stalled database
/// fail with `Unavailable` promptly instead of hanging. A zero `statement_timeout` disables it.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_conns: usize,
    pub pool_timeout: Duration,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_conns: 16,
            pool_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// Seconds of idleness before the first TCP keepalive probe on a PostgreSQL connection.
pub(crate) const KEEPALIVE_IDLE_SECS: u64 = 30;

/// A parsed DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The DSN as given, minus parameters that are ours (pool sizing) or that tokio-postgres rejects.
    Postgres {
        url: String,
        max_conns: Option<usize>,
        has_connect_timeout: bool,
    },
    SqliteFile {
        path: String,
    },
    SqliteMemory,
}

/// Parameters ory/talos (pgx) users put in DSNs that configure the pool, not the connection.
/// tokio-postgres rejects unknown parameters, so they are taken out; `max_conns` is honoured.
const POOL_PARAMS: &[&str] = &[
    "max_conns",
    "max_idle_conns",
    "max_conn_lifetime",
    "max_conn_idle_time",
];
/// TLS file parameters: meaningless without TLS (see `sslmode` below) and unknown to tokio-postgres.
const TLS_FILE_PARAMS: &[&str] = &[
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslsni",
];

impl Target {
    pub(crate) fn parse(dsn: &str) -> Result<Target> {
        let dsn = dsn.trim();
        if dsn == "sqlite::memory:" {
            return Ok(Target::SqliteMemory);
        }
        let Some((scheme, rest)) = dsn.split_once("://") else {
            return Err(StorageError::Config(format!(
                "unrecognised database DSN; {SUPPORTED}"
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => parse_postgres(dsn),
            "sqlite" | "sqlite3" => {
                // `?mode=rwc`, `?_fk=1` and friends are other drivers' knobs; our pragmas are fixed.
                let path = rest.split_once('?').map_or(rest, |(p, _)| p);
                match path {
                    "" => Err(StorageError::Config(
                        "sqlite DSN has no path (use sqlite://PATH)".into(),
                    )),
                    ":memory:" => Ok(Target::SqliteMemory),
                    // SQLite opens with SQLITE_OPEN_URI, which would read `file:` paths as URIs.
                    p if p.starts_with("file:") => Ok(Target::SqliteFile {
                        path: format!("./{p}"),
                    }),
                    p => Ok(Target::SqliteFile { path: p.to_owned() }),
                }
            }
            other => Err(StorageError::Config(format!(
                "unsupported database scheme {other:?}; {SUPPORTED}"
            ))),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Postgres { .. } => Backend::Postgres,
            Target::SqliteFile { .. } | Target::SqliteMemory => Backend::Sqlite,
        }
    }

    /// The URL handed to tokio-postgres, with a `connect_timeout` unless the DSN set one, and TCP
    /// keepalive probes (unless the DSN tunes them): tokio-postgres' default idle time is two
    /// hours, so a peer that vanished without a FIN would hold a pooled connection that long.
    pub(crate) fn postgres_url(
        url: &str,
        has_connect_timeout: bool,
        connect_timeout: Duration,
    ) -> String {
        let has = |key: &str| {
            url.split_once('?').is_some_and(|(_, q)| {
                q.split('&')
                    .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == key)
            })
        };
        let mut extra: Vec<String> = Vec::new();
        if !has_connect_timeout {
            // tokio-postgres takes whole seconds; round up so a sub-second option is not "no
            // timeout" (0).
            let secs = connect_timeout.as_secs() + u64::from(connect_timeout.subsec_nanos() > 0);
            extra.push(format!("connect_timeout={}", secs.max(1)));
        }
        if !has("keepalives") && !has("keepalives_idle") {
            // Idle 30 s, then 3 probes 10 s apart: a dead peer is noticed within about a minute.
            extra.push(format!(
                "keepalives=1&keepalives_idle={KEEPALIVE_IDLE_SECS}&keepalives_interval=10&keepalives_retries=3"
            ));
        }
        if extra.is_empty() {
            return url.to_owned();
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{}", extra.join("&"))
    }
}

fn parse_postgres(dsn: &str) -> Result<Target> {
    let (base, query) = dsn.split_once('?').unwrap_or((dsn, ""));
    let mut kept: Vec<String> = Vec::new();
    let mut max_conns = None;
    let mut has_connect_timeout = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            k if POOL_PARAMS.contains(&k) || k.starts_with("pool_") => {
                if k == "max_conns" || k == "pool_max_conns" {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            StorageError::Config(format!("invalid {k} in database DSN"))
                        })?;
                    max_conns = Some(n);
                }
            }
            k if TLS_FILE_PARAMS.contains(&k) => {}
            "sslmode" => match value {
                "disable" => kept.push(pair.to_owned()),
                // Without TLS support `allow`/`prefer` both end up as a plain connection.
                "allow" | "prefer" => kept.push("sslmode=prefer".to_owned()),
                // Silently downgrading a required TLS connection to plain text would be a security
                // bug, so this is refused up front.
                "require" | "verify-ca" | "verify-full" => {
                    return Err(StorageError::Config(format!(
                        "sslmode={value} needs TLS, which this build's PostgreSQL driver does not support; \
                         use sslmode=disable (e.g. over a local socket or a TLS-terminating proxy)"
                    )));
                }
                other => {
                    return Err(StorageError::Config(format!(
                        "invalid sslmode {other:?} in database DSN"
                    )));
                }
            },
            _ => {
                if key == "connect_timeout" {
                    has_connect_timeout = true;
                }
                kept.push(pair.to_owned());
            }
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    // Validate now, so a typo is a startup `Config` error rather than every connection failing.
    tokio_postgres::Config::from_str(&url)
        .map_err(|e| StorageError::Config(format!("invalid PostgreSQL DSN: {e}")))?;
    Ok(Target::Postgres {
        url,
        max_conns,
        has_connect_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg_url(dsn: &str) -> String {
        match Target::parse(dsn).unwrap() {
            Target::Postgres { url, .. } => url,
            other => panic!("not postgres: {other:?}"),
        }
    }

    #[test]
    fn schemes() {
        assert_eq!(
            Backend::from_dsn("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_dsn("postgresql://u@h:5432/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_dsn("sqlite://talos.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_dsn("sqlite3://talos.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_dsn("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        for bad in [
            "mysql://u:p@tcp(h:3306)/db",
            "cockroach://h/db",
            "talos.db",
            "sqlite:talos.db",
            "",
        ] {
            match Backend::from_dsn(bad) {
                Err(StorageError::Config(msg)) => assert!(msg.contains("sqlite3://"), "{msg}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn sqlite_paths() {
        let path = |d: &str| match Target::parse(d).unwrap() {
            Target::SqliteFile { path } => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(path("sqlite://talos.db"), "talos.db");
        assert_eq!(
            path("sqlite3://./data/talos.db?mode=rwc"),
            "./data/talos.db"
        );
        assert_eq!(
            path("sqlite:///var/lib/talos.db?_fk=true"),
            "/var/lib/talos.db"
        );
        assert_eq!(path("sqlite://file:x.db"), "./file:x.db");
        assert_eq!(
            Target::parse("sqlite://:memory:").unwrap(),
            Target::SqliteMemory
        );
        assert!(matches!(
            Target::parse("sqlite://"),
            Err(StorageError::Config(_))
        ));
        assert!(matches!(
            Target::parse("sqlite://?mode=rwc"),
            Err(StorageError::Config(_))
        ));
    }

    #[test]
    fn postgres_params() {
        assert_eq!(
            pg_url("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/db?sslmode=disable"
        );
        assert_eq!(
            pg_url("postgres://u@h/db?sslmode=allow"),
            "postgres://u@h/db?sslmode=prefer"
        );
        assert_eq!(
            pg_url(
                "postgres://u@h/db?max_conns=20&sslmode=disable&pool_max_conn_lifetime=1h&sslrootcert=/x"
            ),
            "postgres://u@h/db?sslmode=disable"
        );
        match Target::parse("postgres://u@h/db?max_conns=7&application_name=talos").unwrap() {
            Target::Postgres {
                url,
                max_conns,
                has_connect_timeout,
            } => {
                assert_eq!(url, "postgres://u@h/db?application_name=talos");
                assert_eq!(max_conns, Some(7));
                assert!(!has_connect_timeout);
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "postgres://u@h/db?sslmode=require",
            "postgres://u@h/db?sslmode=verify-full",
            "postgres://u@h/db?sslmode=bogus",
            "postgres://u@h/db?no_such_param=1",
            "postgres://u@h/db?max_conns=0",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(StorageError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn connect_timeout_is_added_once() {
        let d = Duration::from_millis(1500);
        const KA: &str =
            "keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_retries=3";
        assert_eq!(
            Target::postgres_url("postgres://h/db", false, d),
            format!("postgres://h/db?connect_timeout=2&{KA}")
        );
        assert_eq!(
            Target::postgres_url("postgres://h/db?sslmode=disable", false, Duration::ZERO),
            format!("postgres://h/db?sslmode=disable&connect_timeout=1&{KA}")
        );
        assert_eq!(
            Target::postgres_url("postgres://h/db?connect_timeout=9", true, d),
            format!("postgres://h/db?connect_timeout=9&{KA}")
        );
        // A DSN that tunes keepalives keeps its own settings.
        assert_eq!(
            Target::postgres_url("postgres://h/db?keepalives_idle=5", false, d),
            "postgres://h/db?keepalives_idle=5&connect_timeout=2"
        );
        for url in [
            Target::postgres_url("postgres://h/db", false, d),
            Target::postgres_url("postgres://h/db?keepalives=0", true, d),
        ] {
            tokio_postgres::Config::from_str(&url).expect(&url);
        }
    }
}
