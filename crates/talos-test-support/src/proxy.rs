//! A TCP proxy on 127.0.0.1 in front of a dependency (Redis, PostgreSQL) that a fault test can
//! break in the two ways that matter, the dependency keeping its data throughout:
//! - [`stall`](StallProxy::stall): stop forwarding bytes in both directions while keeping every
//!   connection open (new ones are accepted and hang too). The failure TCP timeouts do not see:
//!   a peer that is there and never answers. [`resume`](StallProxy::resume) lets the held bytes
//!   through.
//! - [`cut`](StallProxy::cut): drop every open connection and close new ones at once, as an
//!   outage does. [`restore`](StallProxy::restore) accepts connections again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxy; dropping it closes its listener and every connection.
pub struct StallProxy {
    /// Where clients connect instead of the upstream.
    pub addr: SocketAddr,
    stall: watch::Sender<bool>,
    /// Cleared while cut: new connections are closed at once.
    up: Arc<AtomicBool>,
    /// Bumped to end every open connection (a cut, or the proxy dropped).
    ends: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl StallProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: impl ToString) -> std::io::Result<StallProxy> {
        let upstream = upstream.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stall, stall_rx) = watch::channel(false);
        let (ends, ends_rx) = watch::channel(0u64);
        let up = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicU64::new(0));
        let (count, open) = (accepted.clone(), up.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                if !open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let upstream = upstream.clone();
                let stall = stall_rx.clone();
                // Only cuts after this connection end it.
                let mut end = ends_rx.clone();
                end.borrow_and_update();
                tokio::spawn(async move {
                    // An upstream that refuses (PostgreSQL or Redis stopped) closes the client
                    // side at once, as a direct connection would be refused.
                    let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let mut up = tokio::spawn(pump(cr, sw, stall.clone()));
                    let mut down = tokio::spawn(pump(sr, cw, stall));
                    // Either side closing ends both (a half-open pair would otherwise linger),
                    // and so do a cut and dropping the proxy.
                    tokio::select! {
                        _ = &mut up => {}
                        _ = &mut down => {}
                        _ = end.changed() => {}
                    }
                    up.abort();
                    down.abort();
                });
            }
        });
        Ok(StallProxy {
            addr,
            stall,
            up,
            ends,
            accepted,
            task,
        })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Holds every byte in both directions; connections stay open.
    pub fn stall(&self) {
        let _ = self.stall.send(true);
    }

    /// Forwards again, starting with what was held.
    pub fn resume(&self) {
        let _ = self.stall.send(false);
    }

    /// Drops every open connection and closes new ones at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.ends.send_modify(|n| *n += 1);
    }

    /// Accepts and forwards new connections again after a [`cut`](Self::cut).
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Connections accepted so far (also those closed at once while cut).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.ends.send_modify(|n| *n += 1);
    }
}

/// Copies bytes one way; while stalled, holds what it read (TCP backpressure holds the rest).
async fn pump(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, mut stall: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while *stall.borrow_and_update() {
            if stall.changed().await.is_err() {
                return;
            }
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server: what it reads, it writes back.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(c: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        c.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        c.read_exact(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn forwards_stalls_and_resumes() {
        let proxy = StallProxy::start(echo().await).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut c, b"one").await, b"one");
        proxy.stall();
        c.write_all(b"two").await.unwrap();
        // A connection made while stalled is accepted and held too.
        let mut late = TcpStream::connect(proxy.addr).await.unwrap();
        late.write_all(b"three").await.unwrap();
        proxy.resume();
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"two", "the held bytes arrive after resume");
        let mut buf = [0u8; 5];
        late.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"three");
        assert_eq!(proxy.accepted(), 2);
    }

    #[tokio::test]
    async fn a_cut_closes_connections_until_restored() {
        let proxy = StallProxy::start(echo().await).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut c, b"x").await, b"x");
        proxy.cut();
        let mut buf = [0u8; 1];
        assert!(
            matches!(c.read(&mut buf).await, Ok(0) | Err(_)),
            "the open connection is closed"
        );
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(matches!(fresh.read(&mut buf).await, Ok(0) | Err(_)));
        proxy.restore();
        let mut back = TcpStream::connect(proxy.addr).await.unwrap();
        assert_eq!(round_trip(&mut back, b"y").await, b"y");
    }
}
