//! The listener: accepts TCP connections and serves each with HTTP/1.1 or HTTP/2 (h2c, for
//! gRPC) over the one router. It owns what happens to connections, never what a request means:
//!
//! - at most `max_connections` are served at once; a connection over the limit has each of its
//!   requests answered 503 with `Retry-After` (gRPC: UNAVAILABLE), code `overloaded`, and is
//!   closed; a few are answered so at once (`MAX_REFUSING`), any more are closed unanswered;
//! - a connection whose first request headers have not arrived within `header_read_timeout`
//!   (one that sends nothing, or trickles its headers) is closed, and so is an HTTP/1.1
//!   connection that takes longer than that for the headers of a later request;
//! - a connection with no request in flight for `idle_timeout` is asked to finish (HTTP/2:
//!   GOAWAY) and closed if it has not after `idle_timeout` more, so idle keep-alive
//!   connections do not pile up;
//! - a write the client takes nothing of for `response_write_timeout` fails (`write_stall`),
//!   which closes the connection and stops the work feeding its response;
//! - on shutdown it stops accepting, asks every connection to finish (HTTP/1.1 closes after the
//!   request in flight, HTTP/2 sends GOAWAY), gives them `shutdown_drain` to do it, and closes
//!   what is left. Watch streams, which never finish by themselves, are ended at once by
//!   `stream_end` so the drain is not spent waiting for them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
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
use crate::write_stall::WriteStall;

/// Connections over the limit answered 503 at the same time; more are closed unanswered.
const MAX_REFUSING: usize = 64;

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
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow with the server's lifetime.
        while connections.try_join_next().is_some() {}
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
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                connections.spawn(connection(tcp, peer, app.clone(), limits, closing.subscribe(), permit));
            }
            Err(_) => match refusing.clone().try_acquire_owned() {
                Ok(permit) => {
                    connections.spawn(refuse(tcp, peer, limits, permit));
                }
                Err(_) => {
                    tracing::debug!(%peer, "closing a connection over the limit unanswered");
                    drop(tcp);
                }
            },
        }
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
    // Requests in flight (until their response body ends or is dropped), for the idle timeout.
    let (in_flight_tx, mut in_flight) = watch::channel(0usize);
    let in_flight_tx = Arc::new(in_flight_tx);
    let service = {
        let started = started.clone();
        tower::service_fn(move |req: Request<Incoming>| {
            started.store(true, Ordering::Relaxed);
            let guard = InFlight::enter(in_flight_tx.clone());
            let app = app.clone();
            async move {
                let resp = app.oneshot(req.map(Body::new)).await?;
                Ok::<_, Infallible>(resp.map(|body| {
                    Body::new(Tracked {
                        inner: body,
                        _guard: guard,
                    })
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let io = JsonWireErrors::new(WriteStall::new(tcp, limits.response_write_timeout));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    // HTTP/1's header timeout does not cover a connection that sends nothing at all, nor the
    // HTTP/2 preface: the first request must have arrived by this deadline, whatever the protocol.
    let first_deadline = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(first_deadline);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    // An idle connection asked to finish gets the idle time again to do it (an HTTP/2 client
    // that answers no PING would hold hyper's graceful shutdown open forever), then is closed.
    let finish_by = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(finish_by);
    let mut closing_idle = false;
    let mut awaiting_first = true;
    let mut asked_to_finish = false;
    let mut counting = true;
    loop {
        let nothing_in_flight = *in_flight.borrow() == 0;
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
            changed = in_flight.changed(), if counting => match changed {
                Ok(()) => {
                    if *in_flight.borrow_and_update() == 0 {
                        idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                    }
                }
                Err(_) => counting = false,
            },
            () = &mut idle, if nothing_in_flight && !asked_to_finish => {
                tracing::debug!(%peer, timeout = ?limits.idle_timeout, "closing an idle connection");
                asked_to_finish = true;
                closing_idle = true;
                finish_by.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                conn.as_mut().graceful_shutdown();
            }
            () = &mut finish_by, if closing_idle => {
                tracing::debug!(%peer, "an idle connection did not finish in time; closing it");
                return;
            }
        }
    }
}

/// One request in flight on a connection, from its head until its response body is done.
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn enter(count: Arc<watch::Sender<usize>>) -> InFlight {
        count.send_modify(|n| *n += 1);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answer every request of a connection over the limit with 503 + `Retry-After` (gRPC:
/// UNAVAILABLE with code `overloaded`), for at most the header read timeout, then close it.
async fn refuse(tcp: TcpStream, peer: SocketAddr, limits: Connections, _permit: OwnedSemaphorePermit) {
    tracing::debug!(%peer, max = limits.max_connections, "refusing a connection over the limit");
    let retry = limits.retry_after.as_secs().max(1);
    let service = tower::service_fn(move |req: Request<Incoming>| async move {
        Ok::<_, Infallible>(overloaded_response(&req, limits.max_connections, retry))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let io = JsonWireErrors::new(WriteStall::new(tcp, limits.response_write_timeout));
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let _ = tokio::time::timeout(limits.header_read_timeout, conn).await;
}

/// The answer to a request on a connection over the limit.
fn overloaded_response<B>(req: &Request<B>, max: usize, retry: u64) -> Response<Body> {
    let code = aether_service::Code::Overloaded;
    let message = format!("the server is serving its limit of {max} connections; try again in {retry} s");
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let mut resp = if grpc {
        // A trailers-only gRPC answer: the status travels in the headers.
        let mut r = Response::new(Body::empty());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from_static("14"));
        if let Ok(v) = HeaderValue::from_str(&message.replace(' ', "%20")) {
            h.insert("grpc-message", v);
        }
        h.insert(crate::grpc::status::CODE_KEY, HeaderValue::from_static(code.as_str()));
        r
    } else {
        crate::plain_errors::json_error(StatusCode::SERVICE_UNAVAILABLE, code, message)
    };
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry));
    resp
}
