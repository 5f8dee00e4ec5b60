//! Running a closure on tokio's blocking pool: every store call that does file or database I/O
//! (SQLite, the git object database, the chunk store) and every walk over trees goes through
//! [`blocking`], so async tasks never block a runtime thread.
//!
//! It owns only the hand-off; it never interprets what the closure returns. A closure that
//! panics (or a runtime shutting down under it) is reported as [`Error::Internal`], what it is,
//! never as a failure of whichever store the closure happened to use.

use crate::error::{Error, Result};

/// Run `f` on the blocking pool and return what it returned, in the caller's tracing span (a
/// request's log lines carry its id wherever they are written).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(join_failure)?
}

fn join_failure(e: tokio::task::JoinError) -> Error {
    let what = if e.is_panic() {
        let payload = e.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        format!("a blocking task panicked: {message}")
    } else {
        "a blocking task was cancelled (the runtime is shutting down)".to_owned()
    };
    Error::Internal(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn returns_what_the_closure_returns() {
        assert_eq!(blocking(|| Ok(7)).await.unwrap(), 7);
        let err = blocking(|| -> Result<()> { Err(Error::not_found("x")) })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    /// A panic is an internal error carrying the panic's message, not a metadata error.
    #[tokio::test]
    async fn a_panic_is_an_internal_error() {
        let err = blocking(|| -> Result<()> { panic!("boom in a worker") })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err:?}");
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
        let text = err.to_string();
        assert!(text.starts_with("internal error:"), "{text}");
        assert!(text.contains("boom in a worker"), "{text}");
        assert!(!text.contains("metadata"), "{text}");
    }
}
