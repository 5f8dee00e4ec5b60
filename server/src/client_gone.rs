//! Uploads the client abandoned. When a client goes away in the middle of a request body (closes
//! the connection, resets the HTTP/2 stream), nobody is left to answer and the failure is the
//! client's: it must not become a 500 logged as a server error. The request body is watched;
//! when it fails, the request's handler is dropped at once (as a cancelled HTTP/2 stream drops
//! it), so the unfinished write never reaches the session, and the request ends with a 400
//! (`client_closed`) that nobody reads, logged at debug.
//!
//! A body that sent nothing for the body idle timeout (`body_timeout`) ends the same way, but
//! answers 408 (`timeout`): that client may still be there to read it.
//!
//! Only transport failures of the body come here: size limits are applied by the extractors,
//! on top of this wrapper, and still answer 413.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;

use crate::plain_errors::json_error;

/// Middleware: run the request, unless its body fails first.
pub async fn cancel_when_client_leaves(req: Request, next: Next) -> Response {
    let gone = Arc::new(Notify::new());
    let timed_out = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(Watched {
            inner: body,
            gone: gone.clone(),
            timed_out: timed_out.clone(),
            failed: false,
        })
    });
    tokio::select! {
        resp = next.run(req) => resp,
        () = gone.notified() => if timed_out.load(Ordering::Relaxed) {
            json_error(
                StatusCode::REQUEST_TIMEOUT,
                aether_service::Code::RequestTimeout,
                "the request body sent nothing for longer than the body idle timeout".into(),
            )
        } else {
            json_error(
                StatusCode::BAD_REQUEST,
                aether_service::Code::ClientClosed,
                "the client closed the connection before the request body ended".into(),
            )
        },
    }
}

/// A request body that reports its failure instead of passing it to the handler.
struct Watched {
    inner: Body,
    gone: Arc<Notify>,
    timed_out: Arc<AtomicBool>,
    failed: bool,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.failed {
            return Poll::Pending; // the handler is about to be dropped
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                if crate::body_timeout::is_timeout(&e) {
                    tracing::debug!("a request body sent nothing for the body idle timeout");
                    self.timed_out.store(true, Ordering::Relaxed);
                } else {
                    tracing::debug!(error = %e, "the client went away during the request body");
                }
                self.failed = true;
                self.gone.notify_one();
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.failed && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
