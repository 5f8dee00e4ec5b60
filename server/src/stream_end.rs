//! Ending watch streams when the server shuts down. A watch (`WatchEvents`, which every mount
//! keeps open) never finishes by itself, so a graceful shutdown would wait for it forever. When
//! the shutdown begins, such a stream ends at once with gRPC status `UNAVAILABLE` ("the server is
//! shutting down"), which clients (the mount) take as "reconnect, to the next server". Other
//! responses are left to finish within the drain time (`serve`). This module never looks inside
//! messages: it only decides when a response body ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::watch;

/// gRPC methods whose response streams last until the client goes away.
const WATCHES: &[&str] = &[
    "/aether.v1.SessionService/WatchEvents",
    "/aether.v1.MountService/Attach",
];

/// `grpc-status` of a stream ended by the shutdown: UNAVAILABLE.
const UNAVAILABLE: &str = "14";

/// Middleware: give every watch response a body that ends when `closing` becomes true.
pub async fn end_watches_on_shutdown(
    State(closing): State<watch::Receiver<bool>>,
    req: Request,
    next: Next,
) -> Response {
    let watch = WATCHES.contains(&req.uri().path());
    let resp = next.run(req).await;
    if !watch {
        return resp;
    }
    resp.map(|body| Body::new(Ending::new(body, closing)))
}

/// A response body that ends with UNAVAILABLE trailers once the shutdown begins.
struct Ending {
    inner: Body,
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    done: bool,
}

impl Ending {
    fn new(inner: Body, mut closing: watch::Receiver<bool>) -> Self {
        let closing: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            // A dropped sender means the server is gone: end as well.
            let _ = closing.wait_for(|c| *c).await;
        });
        Ending {
            inner,
            closing: Some(closing),
            done: false,
        }
    }
}

impl HttpBody for Ending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(closing) = self.closing.as_mut()
            && closing.as_mut().poll(cx).is_ready()
        {
            self.closing = None;
            self.done = true;
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static(UNAVAILABLE));
            trailers.insert(
                "grpc-message",
                HeaderValue::from_static("the%20server%20is%20shutting%20down"),
            );
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.done = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
