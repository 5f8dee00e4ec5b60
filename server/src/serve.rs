//! The listener: accepts TCP connections and serves each with HTTP/1.1 or HTTP/2 (h2c, for
//! gRPC) over the one router. It owns what happens to connections, never what a request means:
//!
//! - at most `max_connections` are served at once; further ones wait in the listen backlog;
//! - a connection whose first request headers have not arrived within `header_read_timeout`
//!   (one that sends nothing, or trickles its headers) is closed, and so is an HTTP/1.1
//!   connection that takes longer than that for the headers of a later request;
//! - on shutdown it stops accepting, asks every connection to finish (HTTP/1.1 closes after the
//!   request in flight, HTTP/2 sends GOAWAY), gives them `shutdown_drain` to do it, and closes
//!   what is left. Watch streams, which never finish by themselves, are ended at once by
//!   `stream_end` so the drain is not spent waiting for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::Connections;
use crate::wire_errors::JsonWireErrors;

/// Serve `app` on `listener` until `shutdown` resolves, then drain (see the module docs).
/// `closing` is set to true when the shutdown begins, before the connections are asked to finish.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Connections,
    shutdown: impl Future<Output = ()>,
    closing: watch::Sender<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow with the server's lifetime.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed; nothing sensible to serve without it
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little instead of spinning, and keep serving.
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        connections.spawn(connection(tcp, peer, app.clone(), limits, closing.subscribe(), permit));
    }
    drop(listener);
    let _ = closing.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(connections = open, drain = ?limits.shutdown_drain, "waiting for requests in flight");
    }
    let drained = tokio::time::timeout(limits.shutdown_drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "requests still in flight after the shutdown drain time; closing their connections"
        );
        connections.shutdown().await;
    }
}

/// Serve one connection until it ends, its first headers are late, or the drain ends.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Connections,
    mut closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // TCP_NODELAY: a streamed response is written as headers, then body pieces; with Nagle a
    // small second write waits for the client's delayed ACK (~40 ms a request).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY on a connection: {e}");
    }
    let started = Arc::new(AtomicBool::new(false));
    let service = {
        let started = started.clone();
        app.map_request(move |req: Request<Incoming>| {
            started.store(true, Ordering::Relaxed);
            req.map(Body::new)
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection_with_upgrades(
        TokioIo::new(JsonWireErrors::new(tcp)),
        TowerToHyperService::new(service),
    );
    tokio::pin!(conn);
    // HTTP/1's header timeout does not cover a connection that sends nothing at all, nor the
    // HTTP/2 preface: the first request must have arrived by this deadline, whatever the protocol.
    let first_deadline = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_deadline);
    let mut awaiting_first = true;
    let mut asked_to_finish = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // A client that goes away mid-request is the client's business: debug only.
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut first_deadline, if awaiting_first => {
                awaiting_first = false;
                if !started.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, timeout = ?limits.header_read_timeout,
                        "closing a connection that sent no complete request headers in time");
                    return;
                }
            }
            _ = closing.wait_for(|c| *c), if !asked_to_finish => {
                asked_to_finish = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
