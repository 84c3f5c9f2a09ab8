//! A throwaway PostgreSQL database on the server of `TALOS_TEST_DATABASE_URL`, created with
//! `psql` (installed wherever PostgreSQL tests run) and dropped, connections and all, on drop.

use std::process::Command;

/// A database created for one test; `DROP DATABASE … WITH (FORCE)` on drop.
pub struct PgDatabase {
    admin: String,
    /// Its name (`<prefix>_<unique>`).
    pub name: String,
    /// Its DSN: the admin DSN with the database name replaced.
    pub dsn: String,
}

impl PgDatabase {
    /// `CREATE DATABASE <prefix>_<unique>` through the admin DSN `admin`; panics with psql's
    /// error when that fails. The database is empty: migrations are the caller's.
    pub fn create(admin: &str, prefix: &str) -> PgDatabase {
        let name = format!("{prefix}_{}", crate::unique());
        psql(admin, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
        PgDatabase {
            admin: admin.to_string(),
            dsn: format!("{}/{name}", base(admin)),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The admin DSN without its database: `postgres://u@h:5432/postgres` → `postgres://u@h:5432`.
fn base(admin: &str) -> &str {
    admin.rsplit_once('/').map_or(admin, |(b, _)| b)
}

fn psql(dsn: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([dsn, "-c", sql])
        .output()
        .map_err(|e| format!("psql could not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_replaces_the_admin_one() {
        assert_eq!(
            base("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432"
        );
    }
}
