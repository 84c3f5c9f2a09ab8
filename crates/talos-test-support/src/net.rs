//! Loopback ports and a minimal HTTP GET that needs no async runtime (readiness checks, and
//! tests that must see the raw response).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A loopback port nothing listens on right now (bound and released: good enough for tests).
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` different free loopback ports: all are bound at once, so they cannot coincide.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

/// `GET path` over HTTP/1.0 on `127.0.0.1:port` (2 s to answer); the whole response as text, or
/// `None` when nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports();
        assert!(a != b && b != c && a != c);
    }
}
