//! The body idle timeout: a request body that sends nothing for the configured time fails with
//! tower-http's `TimeoutError`, which `client_gone` answers 408 (`timeout`) and which ends the
//! work reading it (an upload's ingest, an import) with it. Client streams that are meant to
//! stay quiet for long (a mount's `Attach` reports) are left alone; they end with their
//! connection or at shutdown (`stream_end`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::timeout::TimeoutBody;

/// gRPC methods whose request streams may be idle as long as their connection lives.
const QUIET_STREAMS: &[&str] = &["/aether.v1.MountService/Attach"];

/// Middleware: give every request body the idle timeout `idle`.
pub async fn limit_body_idle(State(idle): State<Duration>, req: Request, next: Next) -> Response {
    if QUIET_STREAMS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    next.run(req.map(|body| Body::new(TimeoutBody::new(idle, body)))).await
}

/// Whether `e` (a body error as axum passes it on) is the body idle timeout.
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}
