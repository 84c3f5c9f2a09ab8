//! A TCP proxy on 127.0.0.1 that can be switched to stall: it stops forwarding bytes in both
//! directions while keeping every connection open (and keeps accepting new ones, which then hang
//! too). This is the failure TCP timeouts do not see: a peer that is there and never answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    stall: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
    closed: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the stall proxy")?;
        let addr = listener.local_addr()?;
        let (stall, rx) = watch::channel(false);
        let (closed, closed_rx) = watch::channel(());
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let rx = rx.clone();
                let mut closed = closed_rx.clone();
                tokio::spawn(async move {
                    // An upstream that refuses (PostgreSQL or Redis stopped) closes the client
                    // side at once, as a direct connection would be refused.
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let mut up = tokio::spawn(pump(cr, sw, rx.clone()));
                    let mut down = tokio::spawn(pump(sr, cw, rx));
                    // Either side closing ends both (a half-open pair would otherwise linger),
                    // and so does dropping the proxy.
                    tokio::select! {
                        _ = &mut up => {}
                        _ = &mut down => {}
                        _ = closed.changed() => {}
                    }
                    up.abort();
                    down.abort();
                });
            }
        });
        Ok(Proxy {
            addr,
            stall,
            accepted,
            closed,
            task,
        })
    }

    pub fn stall(&self) {
        let _ = self.stall.send(true);
    }

    pub fn resume(&self) {
        let _ = self.stall.send(false);
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.closed.send(());
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
