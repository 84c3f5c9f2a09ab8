//! Settings that change while the server runs: a configuration reload swaps the value, requests
//! read the current one (`serve.http.cors`, `client_ip_source`, `request_log`, like upstream).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// A value swapped atomically as a whole; a reader sees the old or the new one, never a mix.
pub struct Live<T>(ArcSwap<T>);

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(ArcSwap::from_pointee(value))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Replaces the value; requests that already read the old one keep it.
    pub fn set(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T: Copy> Live<T> {
    /// The current value of a small `Copy` setting, without taking a reference count.
    pub fn value(&self) -> T {
        **self.0.load()
    }
}

impl<T> From<T> for Live<T> {
    fn from(value: T) -> Self {
        Live::new(value)
    }
}

impl<T: Default> Default for Live<T> {
    fn default() -> Self {
        Live::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.load().fmt(f)
    }
}
