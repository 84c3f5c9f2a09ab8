//! Connection failures explained: which database was tried (scheme, host, port, database, user;
//! never the password), the error the OS or the server gave, and what to do about it.
//!
//! The pool and diesel flatten a connect error to "error connecting to server", dropping its
//! cause. So when the first connection fails, one direct tokio-postgres connection is tried to
//! learn why; only the failure path pays for it.

use std::error::Error as _;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use crate::error::StorageError;

/// What a PostgreSQL DSN points at, printable (no password, no parameters).
pub(crate) struct PgTarget {
    scheme: String,
    host: String,
    port: u16,
    user: Option<String>,
    dbname: Option<String>,
}

impl PgTarget {
    pub(crate) fn parse(url: &str) -> Option<(PgTarget, tokio_postgres::Config)> {
        let cfg = tokio_postgres::Config::from_str(url).ok()?;
        let scheme = url
            .split_once("://")
            .map_or("postgres", |(s, _)| s)
            .to_ascii_lowercase();
        let host = match cfg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let target = PgTarget {
            scheme,
            host,
            port,
            user: cfg.get_user().map(str::to_owned),
            dbname: cfg.get_dbname().map(str::to_owned),
        };
        Some((target, cfg))
    }

    fn database(&self) -> &str {
        self.dbname
            .as_deref()
            .or(self.user.as_deref())
            .unwrap_or("(default)")
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        write!(
            f,
            "{}://{user}{}:{}/{} (host {}, port {}, database {})",
            self.scheme,
            self.host,
            self.port,
            self.database(),
            self.host,
            self.port,
            self.database()
        )
    }
}

/// The error and its causes, outermost first: "error connecting to server: Connection refused
/// (os error 111)".
fn chain(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "the server said: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        );
    }
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn io_kind(e: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cause = c.source();
    }
    None
}

fn hint(e: &tokio_postgres::Error, t: &PgTarget) -> String {
    let user = t.user.as_deref().unwrap_or("postgres");
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_CATALOG_NAME {
            return format!(
                "the database does not exist: create it with `createdb -h {} -p {} -U {user} {}`, \
                 then run `talos-server migrate up`",
                t.host,
                t.port,
                t.database()
            );
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return "check the user name and password in the DSN (db.dsn or TALOS_DB_DSN) and \
                    the server's pg_hba.conf"
                .to_owned();
        }
        return "see the PostgreSQL server's log for details".to_owned();
    }
    match io_kind(e) {
        Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "nothing accepts connections at {}:{}: is PostgreSQL running, and is the port right? \
             (`pg_isready -h {} -p {}`)",
            t.host, t.port, t.host, t.port
        ),
        Some(std::io::ErrorKind::TimedOut) => format!(
            "no answer from {}:{}: check the host, the port and any firewall in between",
            t.host, t.port
        ),
        _ if chain(e).contains("lookup") || chain(e).contains("resolve") => {
            format!("the host name {:?} does not resolve: check it", t.host)
        }
        _ => format!(
            "check that PostgreSQL runs at {}:{} and accepts this user",
            t.host, t.port
        ),
    }
}

/// Replaces an `Unavailable` error from connecting to `url` with one that names the target, the
/// underlying error and a hint. Other errors, and DSNs that do not parse, pass through.
pub(crate) async fn postgres(
    url: &str,
    connect_timeout: Duration,
    original: StorageError,
) -> StorageError {
    let StorageError::Unavailable(first) = &original else {
        return original;
    };
    let Some((target, cfg)) = PgTarget::parse(url) else {
        return original;
    };
    let probe = tokio::time::timeout(
        connect_timeout + Duration::from_secs(1),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await;
    let (cause, hint) = match probe {
        Ok(Err(e)) => (chain(&e), hint(&e, &target)),
        Err(_) => (
            format!("no answer within {} s", connect_timeout.as_secs()),
            format!(
                "check the host, the port and any firewall between here and {}:{}",
                target.host, target.port
            ),
        ),
        // It worked this time: the failure was transient; report what the pool saw.
        Ok(Ok(_)) => (
            first.clone(),
            "the database answered a second attempt: it may be restarting or overloaded".into(),
        ),
    };
    StorageError::Unavailable(format!(
        "cannot connect to PostgreSQL at {target}: {cause}\n  hint: {hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_everything_but_the_password() {
        let (t, _) =
            PgTarget::parse("postgresql://talos:s3cr3t-pw@db.internal:6543/keys?sslmode=disable")
                .unwrap();
        let s = t.to_string();
        assert_eq!(
            s,
            "postgresql://talos@db.internal:6543/keys (host db.internal, port 6543, database keys)"
        );
        assert!(!s.contains("s3cr3t"));
        let (t, _) = PgTarget::parse("postgres://u@h").unwrap();
        assert_eq!(t.port, 5432);
        assert_eq!(
            t.database(),
            "u",
            "libpq's default database is the user name"
        );
    }

    #[tokio::test]
    async fn refused_port_names_the_os_error_and_a_hint() {
        // Port 9 (discard) on loopback is closed on any sane test machine.
        let url = "postgres://app:hunter2-password@127.0.0.1:9/talos";
        let e = postgres(
            url,
            Duration::from_secs(2),
            StorageError::Unavailable("error connecting to server".into()),
        )
        .await
        .to_string();
        for want in [
            "postgres://app@127.0.0.1:9/talos",
            "port 9",
            "database talos",
            "os error",
            "pg_isready",
        ] {
            assert!(e.contains(want), "{want:?} missing: {e}");
        }
        assert!(!e.contains("hunter2"), "{e}");
    }
}
