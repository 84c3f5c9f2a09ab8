//! The optional services of a test run (`TALOS_TEST_DATABASE_URL`, `TALOS_TEST_REDIS_URL`) and
//! unique names, so that tests running in parallel on one PostgreSQL or Redis never meet.

use std::sync::atomic::{AtomicU64, Ordering};

/// `TALOS_TEST_DATABASE_URL` (an admin DSN of a PostgreSQL that tests may create databases on),
/// or `None` after saying on stderr that the PostgreSQL leg does not run.
pub fn database_url() -> Option<String> {
    optional("TALOS_TEST_DATABASE_URL", "PostgreSQL")
}

/// `TALOS_TEST_REDIS_URL`, or `None` after saying on stderr that the Redis leg does not run.
pub fn redis_url() -> Option<String> {
    optional("TALOS_TEST_REDIS_URL", "Redis")
}

fn optional(var: &str, leg: &str) -> Option<String> {
    let value = std::env::var(var).ok().filter(|v| !v.is_empty());
    if value.is_none() {
        eprintln!("{var} unset: {leg} leg not run");
    }
    value
}

/// A string unique within this machine's test runs (process id, time, a counter), made of digits
/// and `_`: usable in raw keys, actor ids, database names and Redis key prefixes.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_identifiers() {
        let (a, b) = (unique(), unique());
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_digit() || c == '_'), "{a}");
    }
}
