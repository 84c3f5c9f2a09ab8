//! Closing the API listener without resetting connections the kernel has already accepted.
//!
//! Why: when a listening socket closes, Linux resets every connection still waiting in its accept
//! queue: their handshake completed, so the client sent its request and then reads a reset, not
//! a refusal. Under load at shutdown that is a handful of requests per node. So before the
//! listener closes, a socket filter that drops everything is attached to it: new SYNs (and
//! handshakes not yet complete) go unanswered, while the accept loop keeps taking the connections
//! already queued and serves them. When the socket then closes, a client still trying to connect
//! gets its retransmitted SYN refused: a connect error, which every client treats as "try another
//! node", never a request lost mid-way.

use std::net::TcpListener;
use std::time::Duration;

/// How long the accept loop gets to empty the queue once new connections are held back: accept
/// is a syscall per connection, so a full backlog drains in well under this.
pub const QUEUE_DRAIN: Duration = Duration::from_millis(100);

/// A second handle on the API listener (the server owns the first), kept to close it gently.
pub struct Gate(Option<TcpListener>);

impl Gate {
    /// Keeps a duplicate of `listener`'s descriptor; the socket itself is shared.
    pub fn new(listener: &TcpListener) -> Gate {
        Gate(listener.try_clone().ok())
    }

    /// Stops the kernel from completing new connections on the listener; the ones already
    /// queued are still accepted. Best effort: without it, shutdown is as before.
    pub fn hold_new_connections(&self) {
        let Some(listener) = &self.0 else { return };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Classic BPF, one instruction: `ret #0` (BPF_RET | BPF_K): keep 0 bytes, i.e. drop.
            let drop_all = [socket2::SockFilter::new(0x06, 0, 0, 0)];
            if let Err(e) = socket2::SockRef::from(listener).attach_filter(&drop_all) {
                tracing::debug!(error = %e, "could not hold new connections before closing the listener");
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = listener;
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Connections queued before the gate closes are still accepted and served; a connection
    /// attempted after it is never completed by the kernel (its SYN is dropped), so it cannot be
    /// reset mid-request when the listener closes.
    #[test]
    fn held_listener_keeps_queued_connections_and_completes_no_new_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = TcpStream::connect(addr).unwrap();
        queued.write_all(b"ping").unwrap();

        let gate = Gate::new(&listener);
        gate.hold_new_connections();

        let late = std::thread::spawn(move || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).map(|_| ())
        });
        let (mut served, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping", "the queued connection is served");
        served.write_all(b"pong").unwrap();
        queued.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");

        let late = late.join().unwrap();
        assert!(
            late.is_err(),
            "a connection after the gate closed must not complete"
        );
    }
}
