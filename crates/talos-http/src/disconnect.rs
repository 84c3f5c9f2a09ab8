//! Noticing that a client went away while its request runs, so that the request is logged and
//! counted as 499 `CANCELLED` (upstream's answer) instead of as whatever its late answer was.
//!
//! actix does not tell: with half-closed connections allowed (its default, and right for clients
//! that shut down their sending side and wait), a handler runs on after its client closed the
//! connection, and the answer goes nowhere. So each connection keeps a second handle on its
//! socket (a `dup`, registered with the worker's reactor; `on_connect`), and a request still
//! running after [`WATCH_AFTER`] waits, beside its handler, for that socket to read end-of-file.
//! Upstream's Go server does the same: its background read cancels the request on EOF.
//!
//! The handler is then not dropped but left to finish in the background: cancelling a mutation
//! midway could commit a revoke and skip its cache eviction (as the request deadline does, see
//! `limits::within_deadline`). Quick requests, nearly all of them, never look at the socket.

use std::any::Any;
use std::rc::Rc;
use std::time::Duration;

use actix_web::dev::Extensions;

/// How long a request runs before its connection is watched. Cache-hit verifications take well
/// under a millisecond and never pay for the watch (a `recv(MSG_PEEK)` and a wake-up).
pub(crate) const WATCH_AFTER: Duration = Duration::from_millis(20);

/// A second handle on a connection's socket, kept in the connection's data.
#[derive(Clone)]
pub(crate) struct Peer(Rc<tokio::net::TcpStream>);

/// `HttpServer::on_connect`: keeps a [`Peer`] for plain and TLS connections. Without one (the
/// duplicate failed), requests on that connection are simply not watched.
pub(crate) fn on_connect(io: &dyn Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<tokio::net::TcpStream>;
    let tcp = match io.downcast_ref::<tokio::net::TcpStream>() {
        Some(tcp) => tcp,
        None => match io.downcast_ref::<Tls>() {
            Some(tls) => tls.get_ref().0,
            None => return,
        },
    };
    let Ok(dup) = socket2::SockRef::from(tcp).try_clone() else {
        return;
    };
    // The duplicate shares the original's non-blocking mode (one open file description).
    if let Ok(stream) = tokio::net::TcpStream::from_std(std::net::TcpStream::from(dup)) {
        ext.insert(Peer(Rc::new(stream)));
    }
}

impl Peer {
    /// Resolves once the client closed or reset the connection. Bytes waiting to be read (a
    /// pipelined request, a body the handler has not read) say nothing about that: it then
    /// stays pending for good.
    pub(crate) async fn closed(&self) {
        let mut byte = [0u8; 1];
        match self.0.peek(&mut byte).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending().await,
        }
    }
}

/// Resolves when the request has run for [`WATCH_AFTER`] and its client has gone; never without
/// a peer.
pub(crate) async fn client_gone(peer: Option<Peer>) {
    let Some(peer) = peer else {
        return std::future::pending().await;
    };
    tokio::time::sleep(WATCH_AFTER).await;
    peer.closed().await;
}
