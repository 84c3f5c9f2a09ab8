//! The service's clock. Every time the service acts on (expiry, refill boundaries, timestamps it
//! writes) comes from one [`Clock`], so tests can move time (a refill at midnight) without
//! waiting for it. The keyring's secret expiry is the exception: it reads the system clock.

use chrono::{DateTime, Utc};

/// Where the service reads the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
